"""Aspect Prediction: from the photos and the title, name one aspect's value.

Each photo-visible aspect of a test listing (plus its category) is asked twice: open (the
reply is mapped onto the taxonomy with ``canonical_value``, so 'Navy Blue' is Navy) and as
multiple choice (four options; the reply may be the letter or the option's text, the format
training uses is the letter). The title is fenced as seller data exactly as in training, and
it is the seller's title (cleaned as curation cleans it): it may state a wrong colour, so
reading the photo pays.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, ClassVar

from ecomvlm.catalog.taxonomy import CATEGORIES
from ecomvlm.curate.phrasings import aspect_name, title_block
from ecomvlm.registry import BENCHMARK

from .base import Benchmark, EvalSample, Scored, mean, options_block, options_for, stderr
from .catalog import EvalItem
from .parsing import parse_aspect, parse_category, parse_choice

CATEGORY = "Category"  # the pseudo-aspect: which category the listing belongs to
OPEN = ("{images}{title}\nLooking at the photos, what is the item's {name}? "
        "Reply with the value alone.")
OPEN_CATEGORY = ("{images}{title}\nWhich product category does this listing belong to? "
                 "Reply with the category name alone.")
MC = ("{images}{title}\nWhich {name} fits the product shown?\n{options}\n"
      "Reply with the letter of the right option.")


def images_prefix(n: int) -> str:
    return "<image>\n" * n


@BENCHMARK.register("aspect")
class AspectBenchmark(Benchmark):
    name = "aspect"
    version = 1
    main_metric = "accuracy"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "accuracy": True, "accuracy_open": True, "accuracy_mc": True}

    def questions(self, item: EvalItem) -> list[tuple[str, str, list[str]]]:
        """(key, true value, distractor pool) for every photo-visible aspect, category first."""
        cat = item.category
        out = [(CATEGORY, cat.name, list(CATEGORIES))]
        for key, value in item.visible_aspects().items():
            if value is not None:
                out.append((key, value, list(cat.aspect(key).values)))
        return out

    def build(self, items: list[EvalItem], limit: int | None = None) -> list[EvalSample]:
        samples = []
        for item in self.ordered(items):
            images = item.images
            fill = {"images": images_prefix(len(images)), "title": title_block(item.title)}
            for key, value, pool in self.questions(item):
                name = "category" if key == CATEGORY else aspect_name(key)
                meta = {"listing_id": item.id, "category": item.category.name, "key": key,
                        "held_out_brand": item.truth.get("held_out", {}).get("brand", False),
                        "held_out_combo": item.truth.get("held_out", {}).get("combo", False)}
                prompt = (OPEN_CATEGORY if key == CATEGORY else OPEN).format(name=name, **fill)
                samples.append(EvalSample(f"{item.id}:{key}:open", self.name, prompt, images,
                                          value, 16, {**meta, "variant": "open"}))
                if len(set(pool)) > 1:
                    options = options_for(value, pool, self.seed, f"{item.id}:{key}")
                    prompt = MC.format(name=name, options=options_block(options), **fill)
                    samples.append(EvalSample(f"{item.id}:{key}:mc", self.name, prompt, images,
                                              value, 8, {**meta, "variant": "mc",
                                                         "options": options}))
        return self.take(samples, limit)

    def score(self, sample: EvalSample, output: str) -> tuple[Any, float, dict[str, Any]]:
        meta = sample.meta
        if meta["variant"] == "mc":
            parsed = parse_choice(output, meta["options"])
        elif meta["key"] == CATEGORY:
            parsed = parse_category(output)
        else:
            parsed = parse_aspect(meta["category"], meta["key"], output)
        return parsed, float(parsed == sample.target), {}

    def aggregate(self, records: list[Scored]) -> tuple[dict[str, float], dict[str, Any]]:
        scores = [r.score for r in records]
        by_variant: dict[str, list[float]] = defaultdict(list)
        by_key: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        held: dict[str, list[float]] = defaultdict(list)
        confusion: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        for r in records:
            variant, key = r.meta["variant"], r.meta["key"]
            by_variant[variant].append(r.score)
            by_key[key][variant].append(r.score)
            if key == "Brand" and r.meta.get("held_out_brand"):
                held["brand"].append(r.score)
            if key == "Color" and r.meta.get("held_out_combo"):
                held["colour_combo"].append(r.score)
            if key == "Color":
                confusion[variant][str(r.target)][_label(r.parsed)] += 1
        metrics = {"accuracy": round(mean(scores), 4),
                   "accuracy_stderr": round(stderr(scores), 4)}
        for variant in ("open", "mc"):
            if by_variant[variant]:
                metrics[f"accuracy_{variant}"] = round(mean(by_variant[variant]), 4)
        per_aspect = {key: {**{v: round(mean(s), 4) for v, s in variants.items()},
                            "all": round(mean([x for s in variants.values() for x in s]), 4),
                            "n": sum(len(s) for s in variants.values())}
                      for key, variants in sorted(by_key.items())}
        breakdown = {
            "per_aspect": per_aspect,
            "held_out": {k: {"accuracy": round(mean(v), 4), "n": len(v)}
                         for k, v in sorted(held.items())},
            # colour confusion: true -> predicted -> count, per variant
            "confusion_color": {v: {t: dict(sorted(c.items())) for t, c in sorted(m.items())}
                                for v, m in sorted(confusion.items())},
        }
        return metrics, breakdown


def _label(parsed: Any) -> str:
    return "(no answer)" if parsed is None else str(parsed)
