"""Stage 4 of curation: a verified listing becomes canonical training samples for three stages.

Stage 1 (alignment): a short caption per product, label or packaging photo. Stage 2: one
dense caption of the whole listing. Stage 3 (instruction tuning): task families ``aspect``,
``fashion``, ``extract``, ``multi_image`` and ``title``. Every answer is built from what
survived verification (``VerifiedListing.facts``, the believed category, compliance marks,
battery, label photo) plus raw perception (roles, OCR text); a claim the verifier did not
support is never stated. The cleaned title is the only listing text that reaches a prompt,
fenced and marked as data (``phrasings.title_block``).

Everything is deterministic for a seed: phrasings, variants and option orders are picked by
hashing the sample id with the seed, never by a process-salted ``hash()``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ecomvlm.catalog.taxonomy import CATEGORIES, FASHION_CATEGORIES, MARKS, PATTERNS, Category
from ecomvlm.curate import phrasings as ph
from ecomvlm.curate.records import ImagePerception, VerifiedListing
from ecomvlm.samples import IMAGE_TOKEN, Message, Sample

STAGES = (1, 2, 3)
MC_OPTIONS = 4  # the right value plus up to three distractors from the taxonomy


def stable_hash(*parts: object) -> int:
    """A 64-bit hash that is the same in every process and Python run (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class _Ctx:
    """One listing's trusted material, and the sample factory that uses it."""

    lid: str
    seed: int
    cat: Category | None
    facts: dict[str, str]
    paths: list[str]
    seen: list[ImagePerception]
    compliance: list[str]
    battery: bool | None
    label_image: int | None
    title: str

    def pick(self, sample_id: str, n: int, salt: str = "phrasing") -> int:
        return stable_hash(self.seed, sample_id, salt) % n

    def sample(self, sid: str, images: list[str], templates: list[str], answer: str,
               fill: dict | None = None, **meta) -> Sample:
        index = self.pick(sid, len(templates))
        return self.emit(sid, images, templates[index].format(**(fill or {})), answer,
                         phrasing=index, **meta)

    def emit(self, sid: str, images: list[str], prompt: str, answer: str, *, stage: int = 3,
             **meta) -> Sample:
        return Sample.chat(sid, images, prompt, answer, stage=stage, listing_id=self.lid,
                           category=self.cat.name if self.cat else "unknown", **meta)

    def product_images(self) -> list[str]:
        chosen = [path for path, p in zip(self.paths, self.seen) if p.role == "product"]
        return chosen or list(self.paths)


def _context(vl: VerifiedListing, image_paths: list[str], seed: int) -> _Ctx:
    lid = vl.listing.id
    if len(image_paths) != len(vl.listing.images):
        raise ValueError(f"listing {lid!r}: {len(image_paths)} image paths for "
                         f"{len(vl.listing.images)} listing images")
    if len(vl.images) != len(image_paths):
        raise ValueError(f"listing {lid!r}: {len(vl.images)} perceptions for "
                         f"{len(image_paths)} images")
    if vl.label_image is not None and not 0 <= vl.label_image < len(image_paths):
        raise ValueError(f"listing {lid!r}: label_image {vl.label_image} out of range")
    unknown = [m for m in vl.compliance if m not in MARKS]
    if unknown:
        raise ValueError(f"listing {lid!r}: unknown compliance marks {unknown}")
    # a fact equal to a claim the verifier contradicted is inconsistent: never state it
    contradicted = {(v.key, v.value) for v in vl.verdicts if v.status == "contradicted"}
    facts = {k: str(v).strip() for k, v in vl.facts.items()
             if str(v).strip() and (k, v) not in contradicted}
    cat = CATEGORIES.get(vl.category)
    if cat is not None and ("Category", vl.category) in contradicted:
        cat = None
    return _Ctx(lid, seed, cat, facts, list(image_paths), list(vl.images),
                sorted(set(vl.compliance)), vl.battery, vl.label_image, vl.listing.title)


def make_samples(vl: VerifiedListing, image_paths: list[str], *, seed: int = 0,
                 stages: Iterable[int] = STAGES) -> dict[int, list[Sample]]:
    """All samples of one verified listing, by stage ({1: [...], 2: [...], 3: [...]}).

    ``image_paths`` are the paths to write into the samples, parallel to the listing's images.
    A listing without images gives no samples: every task here is grounded in photos.
    """
    ctx = _context(vl, image_paths, seed)
    wanted = set(stages)
    out: dict[int, list[Sample]] = {stage: [] for stage in STAGES}
    if not ctx.paths:
        return out
    if 1 in wanted:
        out[1] = _stage1(ctx)
    if 2 in wanted:
        out[2] = [_stage2(ctx)]
    if 3 in wanted:
        out[3] = _aspect(ctx) + _fashion(ctx) + _extract(ctx) + _multi_image(ctx) + _title(ctx)
    return out


# ---------------------------------------------------------------- stages 1 and 2
def _stage1(ctx: _Ctx) -> list[Sample]:
    samples = []
    for i, (path, p) in enumerate(zip(ctx.paths, ctx.seen)):
        sid = f"{ctx.lid}:s1:img{i}"
        if p.role == "product" and ctx.cat is not None:
            phrase = ph.noun_phrase(ctx.cat, ctx.facts)
            answer = (f"A photo of {phrase}." if ctx.pick(sid, 2, "form")
                      else phrase[0].upper() + phrase[1:] + ".")
        elif p.role == "label" and (lines := ph.ocr_lines(p)):
            answer = f"A label reading {ph.quoted(lines)}."
        elif p.role == "packaging":
            marks = ph.shown_marks(p, ctx.compliance)
            answer = f"Packaging for {ph.category_phrase(ctx.cat.name if ctx.cat else None)}"
            answer += f" with these marks: {', '.join(ph.mark_names(marks))}." if marks else "."
        else:
            continue
        samples.append(ctx.sample(sid, [path], ph.STAGE1, answer, stage=1, task="caption",
                                  role=p.role, image_index=i))
    return samples


def _stage2(ctx: _Ctx) -> Sample:
    return ctx.sample(f"{ctx.lid}:s2:dense", ctx.paths, ph.STAGE2,
                      ph.dense_caption(ctx.cat, ctx.facts, ctx.seen, ctx.compliance, ctx.battery),
                      stage=2, task="dense_caption")


# ---------------------------------------------------------------- stage 3
def multiple_choice(correct: str, pool: Iterable[str], key: str, seed: int) -> tuple[list[str], str]:
    """Options (the right value plus distractors from ``pool``) in a hashed order; the letter."""
    others = sorted(set(pool) - {correct}, key=lambda v: stable_hash(seed, key, "d", v))
    options = sorted(others[: MC_OPTIONS - 1] + [correct],
                     key=lambda v: stable_hash(seed, key, "o", v))
    return options, chr(65 + options.index(correct))


def _aspect(ctx: _Ctx) -> list[Sample]:
    if ctx.cat is None:
        return []
    samples = []
    block = ph.title_block(ctx.title)
    for aspect in ctx.cat.aspects:
        value = ctx.facts.get(aspect.key)
        if value is None or aspect.visible == "":  # "" = no photo can show it
            continue
        sid = f"{ctx.lid}:s3:aspect:{aspect.key}"
        fill = {"title_block": block, "name": ph.aspect_name(aspect.key), "key": aspect.key}
        if value in aspect.values and len(aspect.values) > 1 and ctx.pick(sid, 2, "variant"):
            options, letter = multiple_choice(value, aspect.values, sid, ctx.seed)
            fill["options"] = ph.options_block(options)
            samples.append(ctx.sample(sid, ctx.paths, ph.ASPECT_MC, letter, fill, task="aspect",
                                      variant="mc", key=aspect.key, options=options))
        else:
            samples.append(ctx.sample(sid, ctx.paths, ph.ASPECT_OPEN, value, fill, task="aspect",
                                      variant="open", key=aspect.key))
    return samples


def _fashion_subjects(ctx: _Ctx) -> dict[str, tuple[str, list[str]]]:
    """subject -> (verified answer, the pool its distractors come from)."""
    cat, facts = ctx.cat, ctx.facts
    subjects: dict[str, tuple[str, list[str]]] = {}
    for subject, key in (("pattern", "Pattern"), ("sleeve", "Sleeve Length"),
                         ("neckline", "Neckline")):
        if key in cat.keys and key in facts:
            subjects[subject] = (facts[key], list(cat.aspect(key).values))
    has_pattern = "Pattern" in cat.keys
    combo = ph.colour_combo(facts, has_pattern)
    if combo is not None:
        colours = cat.aspect("Color").values
        pool = [ph.colour_combo({"Color": c, "Pattern": p}, has_pattern)
                for c in colours for p in (PATTERNS if has_pattern else ["Solid"])]
        subjects["colours"] = (combo, sorted(set(pool)))
    subjects["category"] = (cat.name, [c.name for c in FASHION_CATEGORIES])
    return subjects


def _fashion(ctx: _Ctx) -> list[Sample]:
    if ctx.cat is None or not ctx.cat.is_fashion:
        return []
    samples = []
    images = ctx.product_images()
    for subject, (answer, pool) in _fashion_subjects(ctx).items():
        sid = f"{ctx.lid}:s3:fashion:{subject}"
        questions = ph.FASHION_QUESTIONS[subject]
        index = ctx.pick(sid, len(questions))
        meta = {"task": "fashion", "key": subject, "phrasing": index}
        if answer in pool and len(pool) > 1 and ctx.pick(sid, 2, "variant"):
            options, letter = multiple_choice(answer, pool, sid, ctx.seed)
            wrapper = ph.FASHION_MC[ctx.pick(sid, len(ph.FASHION_MC), "wrapper")]
            prompt = wrapper.format(question=questions[index], options=ph.options_block(options))
            samples.append(ctx.emit(sid, images, prompt, letter, variant="mc", options=options,
                                    **meta))
        else:
            suffix = ph.FASHION_OPEN_SUFFIX[ctx.pick(sid, len(ph.FASHION_OPEN_SUFFIX), "sfx")]
            samples.append(ctx.emit(sid, images, questions[index] + suffix, answer,
                                    variant="open", **meta))
    return samples


def extract_answer(cat: Category, facts: dict[str, str]) -> str:
    """JSON with exactly the category's keys in taxonomy order; null where not verified."""
    return json.dumps({k: facts.get(k) for k in cat.keys}, ensure_ascii=False,
                      separators=(",", ":"))


def _extract(ctx: _Ctx) -> list[Sample]:
    if ctx.cat is None:
        return []
    keys = ctx.cat.keys
    fill = {"title_block": ph.title_block(ctx.title), "keys": ", ".join(keys),
            "keys_json": json.dumps(keys, ensure_ascii=False), "category": ctx.cat.name}
    return [ctx.sample(f"{ctx.lid}:s3:extract", ctx.paths, ph.EXTRACT,
                       extract_answer(ctx.cat, ctx.facts), fill, task="extract")]


def _multi_image(ctx: _Ctx) -> list[Sample]:
    lid, paths = ctx.lid, ctx.paths
    marks = ", ".join(ph.mark_names(ctx.compliance)) or "None"
    samples = [ctx.sample(f"{lid}:s3:multi_image:marks", paths, ph.MARKS_Q, marks,
                          task="multi_image", variant="marks")]
    if ctx.battery is not None:
        samples.append(ctx.sample(f"{lid}:s3:multi_image:battery", paths, ph.BATTERY_Q,
                                  "Yes" if ctx.battery else "No", task="multi_image",
                                  variant="battery"))
    if ctx.label_image is not None and len(paths) > 1:
        samples.append(ctx.sample(f"{lid}:s3:multi_image:label", paths, ph.LABEL_Q,
                                  f"Image {ctx.label_image + 1}", task="multi_image",
                                  variant="label"))
    return samples


def _title(ctx: _Ctx) -> list[Sample]:
    known = [k for k in ctx.cat.keys if k in ctx.facts] if ctx.cat else []
    if len(known) < 2:  # "T-Shirt" alone is no title worth learning
        return []
    return [ctx.sample(f"{ctx.lid}:s3:title", ctx.paths, ph.TITLE,
                       ph.make_title(ctx.cat, ctx.facts), task="title")]


# ---------------------------------------------------------------- balance and replay
def _group(sample: Sample) -> str:
    return f"{sample.meta.get('category', 'unknown')}/{sample.meta.get('task', 'unknown')}"


def balance(samples: Iterable[Sample], seed: int = 0, *, max_per_group: int | None = None,
            max_ratio: float = 2.0, stage: int = 3) -> tuple[list[Sample], dict]:
    """Cap over-represented (category, task) groups of ``stage``; other samples pass through.

    The cap is ``max_per_group``, or ``max_ratio`` times the median group size. Which samples
    a capped group keeps is decided by hashing ids with the seed, so it is deterministic and
    independent of input order. Returns (kept samples in input order, report).
    """
    samples = list(samples)
    members: dict[str, list[str]] = defaultdict(list)
    for s in samples:
        if s.meta.get("stage") == stage:
            members[_group(s)].append(s.id)
    before = {g: len(ids) for g, ids in sorted(members.items())}
    if not before:
        return samples, {"stage": stage, "cap": None, "before": {}, "after": {},
                         "total_before": 0, "total_after": 0, "dropped": 0}
    cap = max_per_group or max(1, math.ceil(max_ratio * statistics.median(before.values())))
    dropped: set[str] = set()
    for ids in members.values():
        if len(ids) > cap:
            dropped.update(sorted(ids, key=lambda i: stable_hash(seed, "balance", i))[cap:])
    kept = [s for s in samples if s.id not in dropped]
    after = {g: min(n, cap) for g, n in before.items()}
    return kept, {"stage": stage, "cap": cap, "before": before, "after": after,
                  "total_before": sum(before.values()), "total_after": sum(after.values()),
                  "dropped": len(dropped)}


def _replay_sample(record: dict, base: Path, where: str, stage: int, source: str) -> Sample:
    if "messages" in record:
        sample = Sample.model_validate(record)
    elif isinstance(record.get("prompt"), str) and isinstance(record.get("answer"), str):
        images = record.get("images") or ([record["image"]] if record.get("image") else [])
        sid = str(record.get("id") or where)
        if IMAGE_TOKEN in record["prompt"]:
            sample = Sample(id=sid, images=images, messages=[
                Message(role="user", content=record["prompt"]),
                Message(role="assistant", content=record["answer"])])
        else:
            sample = Sample.chat(sid, images, record["prompt"], record["answer"])
    else:
        raise ValueError("neither a canonical sample nor a {prompt, answer} pair")
    # the mixed file lives elsewhere: make relative image paths absolute now
    images = [p if "://" in p or os.path.isabs(p) else str((base / p).resolve())
              for p in sample.images]
    meta = {**sample.meta, "stage": stage, "task": "replay", "category": "general",
            "source": source}
    return sample.model_copy(update={"id": f"replay:{sample.id}", "images": images, "meta": meta})


def load_replay(path: str | os.PathLike, limit: int | None, seed: int = 0, *,
                stage: int = 3) -> list[Sample]:
    """Up to ``limit`` general samples from a JSONL of canonical samples or {"prompt", "answer"}
    pairs (optional "images"/"image"), chosen by hashing ids with the seed and streamed with a
    bounded heap, returned in file order with ``meta.task == "replay"``."""
    path = Path(path)
    if limit is not None and limit <= 0:
        return []
    heap: list[tuple[int, int, Sample]] = []  # (-hash, line, sample): a max-heap of the best
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{line_no}"
            try:
                sample = _replay_sample(json.loads(line), path.parent, where, stage, path.name)
            except ValueError as error:
                raise ValueError(f"{path}:{line_no}: bad replay record: {error}") from None
            item = (-stable_hash(seed, "replay", sample.id), line_no, sample)
            if limit is None or len(heap) < limit:
                heapq.heappush(heap, item)
            elif item[0] > heap[0][0]:
                heapq.heapreplace(heap, item)
    return [s for _, _, s in sorted(heap, key=lambda t: t[1])]


def mix_replay(samples: list[Sample], path: str | os.PathLike, *, fraction: float,
               seed: int = 0, stage: int = 3) -> list[Sample]:
    """``samples`` plus replay making up ``fraction`` of the result (fewer if the file is short)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"replay fraction must lie in [0, 1), got {fraction}")
    wanted = round(fraction * len(samples) / (1.0 - fraction))
    return list(samples) + load_replay(path, limit=wanted, seed=seed, stage=stage)


# ---------------------------------------------------------------- diversity
def _ngrams(texts: list[str], n: int = 2) -> float:
    grams = [tuple(w[i:i + n]) for w in (t.lower().split() for t in texts)
             for i in range(len(w) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def diversity_stats(samples: Iterable[Sample]) -> dict:
    """Figures for the quality report: distinct prompts and answers, phrasing use per task
    (task/variant -> phrasing index -> count), answer length, distinct bigram ratios."""
    prompts, answers = [], []
    usage: dict[str, Counter] = defaultdict(Counter)
    for s in samples:
        prompts.append(" ".join(m.content.replace(IMAGE_TOKEN, "").strip()
                                for m in s.messages if m.role == "user"))
        answers.append(s.messages[-1].content)
        task = "/".join(str(s.meta[k]) for k in ("task", "variant") if k in s.meta) or "unknown"
        usage[task][str(s.meta.get("phrasing", "-"))] += 1
    n = len(answers)
    return {
        "samples": n,
        "distinct_prompts": len(set(prompts)),
        "distinct_answers": len(set(answers)),
        "mean_answer_words": round(sum(len(a.split()) for a in answers) / n, 2) if n else 0.0,
        "mean_answer_chars": round(sum(map(len, answers)) / n, 1) if n else 0.0,
        "distinct_2gram_ratio_prompts": _ngrams(prompts),
        "distinct_2gram_ratio_answers": _ngrams(answers),
        "phrasing_usage": {t: dict(sorted(c.items())) for t, c in sorted(usage.items())},
    }
