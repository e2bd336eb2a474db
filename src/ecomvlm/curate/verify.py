"""Stage 3 of curation, verify: judge every claim of a listing against what its photos show.

``VERIFIER.build(spec)`` gives a :class:`Verifier`; ``verify(listing, images)`` turns each
listed aspect (and the listed category) into a ``ClaimVerdict`` — supported, contradicted or
unverifiable — and keeps as *facts* only what the photos support, plus corrections perception
is confident of. Specs:

- ``perception`` (default): rules over the perception records (``verify_rules.py``).
- ``openai:http://HOST:PORT/v1?model=M`` / ``hf:<id or path>``: perception plus an LLM judge
  that may veto claims (``judge.py``).

``score_against_ground_truth`` measures how many injected wrong claims the verdicts catch;
only the quality report and tests call it (the pipeline never reads ground truth).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import defaultdict
from pathlib import Path
from typing import Any

from ecomvlm.catalog import taxonomy as tx
from ecomvlm.catalog.values import canonical_value
from ecomvlm.curate import verify_rules as rules
from ecomvlm.curate.records import ClaimVerdict, CleanListing, ImagePerception, VerifiedListing
from ecomvlm.registry import VERIFIER

_BATTERY_WORDS = ("lithium", "liion", "lipo", "battery")


class Verifier(ABC):
    """Judges a listing's claims against its perceived photos."""

    name: str = "verifier"

    @abstractmethod
    def verify(self, listing: CleanListing, images: list[ImagePerception]) -> VerifiedListing:
        ...


def facts_from(verdicts: list[ClaimVerdict]) -> dict[str, str]:
    """Supported claims keep their value; contradicted ones survive only as a confident
    correction (``corrected`` is set only then); unverifiable claims are dropped."""
    facts = {}
    for v in verdicts:
        if v.key == "Category":
            continue
        if v.status == "supported":
            facts[v.key] = v.value
        elif v.status == "contradicted" and v.corrected is not None:
            facts[v.key] = v.corrected
    return facts


def battery_from(images: list[ImagePerception], category: str, marks: list[str]) -> bool | None:
    """True on a battery warning, lithium text or a category that always has one; False when
    the category never has one or its packaging shows no battery warning; else unknown."""
    text = "".join(rules.fold(b.text) for p in images for b in p.ocr)
    if "battery_warning" in marks or any(w in text for w in _BATTERY_WORDS):
        return True
    cat = tx.CATEGORIES.get(category)
    if cat is None:
        return None
    if cat.battery >= 1.0:
        return True
    if cat.battery == 0.0:
        return False
    # a category whose battery models always carry the warning: a pack without it says no
    packs = [p for p in images if p.role == "packaging" and (p.marks or p.ocr)]
    if packs and "battery_warning" in cat.marks:
        return False
    return None


class PerceptionVerifier(Verifier):
    """Rules over perception records (OCR, colours, category bridge, marks); no model calls."""

    name = "perception"

    def __init__(self, **thresholds: Any):
        unknown = set(thresholds) - set(rules.Thresholds.__dataclass_fields__)
        if unknown:
            raise TypeError(f"perception verifier: unknown thresholds {sorted(unknown)}; "
                            f"known: {sorted(rules.Thresholds.__dataclass_fields__)}")
        self.th = rules.Thresholds(**thresholds)

    def claim_verdicts(self, listing: CleanListing,
                       images: list[ImagePerception]) -> tuple[list[ClaimVerdict], str]:
        """Verdicts (category first, then aspects in listing order) and the believed category."""
        keys = list(listing.aspects) + list(listing.unmapped_aspects)
        cat_verdict, category = rules.judge_category(listing.category, listing.title, keys,
                                                     images, self.th)
        verdicts = [cat_verdict]
        for key, value in listing.aspects.items():
            verdicts.append(self._aspect(key, value, listing.category, category, images))
        return verdicts, category

    def _aspect(self, key: str, value: str, listed_cat: str, believed_cat: str,
                images: list[ImagePerception]) -> ClaimVerdict:
        aspect = rules.aspect_for(key, listed_cat) or rules.aspect_for(key, believed_cat)
        believed = tx.CATEGORIES.get(believed_cat)
        if aspect is not None and value not in aspect.values and believed and key in believed.keys:
            # cleaning spelled values per listed category; re-spell under the one we believe
            value = canonical_value(believed_cat, key, value)
        if aspect is None or aspect.visible == "":
            return ClaimVerdict(key=key, value=value, status="unverifiable", confidence=0.0,
                                evidence=f"{key} cannot be seen in photos")
        if key == "Color":
            return rules.judge_colour(value, images, self.th)
        if key == "Pattern":
            return rules.judge_pattern(value, images, self.th)
        if aspect.visible == "label" or key == "Brand":
            return rules.judge_text_aspect(key, value, images, self.th)
        return ClaimVerdict(key=key, value=value, status="unverifiable", confidence=0.0,
                            evidence=f"no perception signal for {key}")

    def finish(self, listing: CleanListing, images: list[ImagePerception],
               verdicts: list[ClaimVerdict], category: str) -> VerifiedListing:
        """Assemble the record from (possibly judge-combined) verdicts."""
        cat_verdict = next((v for v in verdicts if v.key == "Category"), None)
        if cat_verdict is not None and cat_verdict.status == "contradicted":
            category = cat_verdict.corrected or category
        elif listing.category in tx.CATEGORIES:
            category = listing.category
        marks = sorted({m.mark for p in images for m in p.marks if m.score >= self.th.mark_score})
        labels = [i for i, p in enumerate(images) if p.role == "label"]
        label_image = max(labels, key=lambda i: images[i].role_confidence) if labels else None
        return VerifiedListing(listing=listing, images=images, verdicts=verdicts,
                               facts=facts_from(verdicts), category=category, compliance=marks,
                               battery=battery_from(images, category, marks),
                               label_image=label_image)

    def verify(self, listing: CleanListing, images: list[ImagePerception]) -> VerifiedListing:
        verdicts, category = self.claim_verdicts(listing, images)
        return self.finish(listing, images, verdicts, category)


@VERIFIER.register("perception")
def _perception(**kwargs: Any) -> PerceptionVerifier:
    return PerceptionVerifier(**kwargs)


@VERIFIER.register("openai:")
def _openai(url: str, **kwargs: Any) -> Verifier:
    from ecomvlm.curate.judge import JudgeVerifier, OpenAIJudge

    judge_kw = {k: kwargs.pop(k) for k in ("timeout", "max_retries", "api_key") if k in kwargs}
    return JudgeVerifier(PerceptionVerifier(**kwargs), OpenAIJudge(url, **judge_kw))


@VERIFIER.register("hf:")
def _hf(model: str, **kwargs: Any) -> Verifier:
    from ecomvlm.curate.judge import HFJudge, JudgeVerifier

    judge_kw = {k: kwargs.pop(k) for k in ("lm", "max_new_tokens") if k in kwargs}
    return JudgeVerifier(PerceptionVerifier(**kwargs), HFJudge(model, **judge_kw))


# ---------------------------------------------------------------- measurement
def _read_truth(truth_path: str | Path) -> dict[str, dict]:
    """The answer key: a ground-truth JSONL file, or a folder of them (a catalog's
    ``ground_truth/``, or the catalog folder itself)."""
    path = Path(truth_path)
    if path.is_dir():
        path = path / "ground_truth" if (path / "ground_truth").is_dir() else path
        files = sorted(path.glob("*.jsonl"))
    else:
        files = [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"no ground-truth JSONL at {truth_path}")
    truth = {}
    for f in files:
        with f.open(encoding="utf-8") as handle:
            for n, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                        truth[record["id"]] = record
                    except (json.JSONDecodeError, KeyError, TypeError) as error:
                        raise ValueError(f"{f}:{n}: bad ground-truth record ({error})") from None
    return truth


def _evidence_exists(key: str, truth: dict) -> bool:
    """Whether the true value can be seen in some photo at all: labels for label aspects (the
    brand also on packaging), product shots for colour and category."""
    roles = {im["role"] for im in truth["images"]}
    if key in ("Color", "Category"):
        return bool(roles & {"main", "alternate"})
    aspect = rules.aspect_for(key, truth["category"])
    if aspect is None or aspect.visible == "":
        return False
    if key == "Brand":
        return bool(roles & {"label", "packaging"})
    return "label" in roles if aspect.visible == "label" else bool(roles & {"main", "alternate"})


def _same(key: str, claimed: str, true: str) -> bool:
    """One value? Units compare as quantities: a kettle-spelled '0.75L' is a 750ml bottle's
    capacity (cleaning spells values in the listed category's unit)."""
    if any(a.unit for a in rules.aspect_defs(key)):
        return rules.quantity(claimed) == rules.quantity(true)
    return claimed == true


def score_against_ground_truth(verified: list[VerifiedListing],
                               truth_path: str | Path) -> dict[str, dict[str, Any]]:
    """Per aspect key (and "Category"): how well verdicts catch wrong claims.

    A claim is *wrong* when its (cleaned, canonical) value differs from the true value (units
    compared as quantities). A wrong
    claim is *caught* when its verdict is ``contradicted`` — it is then never kept as a fact
    with its wrong value (it is corrected or dropped). ``tp`` = caught wrong claims, ``fp`` =
    correct claims flagged contradicted, ``fn`` = wrong claims left supported or unverifiable;
    precision = tp / (tp + fp), recall = tp / n_wrong. ``evidence_bound`` is the share of wrong
    claims whose true value shows in some photo: the recall any photo-based verifier can reach.
    ``corrected``/``corrected_right`` count corrections and how many equal the truth;
    ``facts``/``facts_right`` the kept facts and how many are true. "ALL" sums every key.
    """
    truth = _read_truth(truth_path)
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for record in verified:
        t = truth.get(record.listing.id)
        if t is None:
            raise KeyError(f"listing {record.listing.id!r} is not in the ground truth at "
                           f"{truth_path}")
        true_values = {**t["aspects"], "Category": t["category"]}
        for v in record.verdicts:
            if v.key not in true_values:
                continue  # a seller key the product does not have: nothing to score
            true = true_values[v.key]
            s = stats[v.key]
            wrong = not _same(v.key, v.value, true)
            flagged = v.status == "contradicted"
            s["n_claims"] += 1
            s["n_wrong"] += wrong
            s["tp"] += wrong and flagged
            s["fp"] += flagged and not wrong
            s["fn"] += wrong and not flagged
            s["with_evidence"] += wrong and _evidence_exists(v.key, t)
            s["corrected"] += v.corrected is not None
            s["corrected_right"] += v.corrected is not None and _same(v.key, v.corrected, true)
        for key, value in record.facts.items():
            if key in true_values:
                stats[key]["facts"] += 1
                stats[key]["facts_right"] += _same(key, value, true_values[key])
    keys = sorted(stats, key=lambda k: (k != "Category", k))
    total: dict[str, int] = defaultdict(int)
    for k in keys:
        for name, n in stats[k].items():
            total[name] += n
    out = {}
    for k, s in [*((k, stats[k]) for k in keys), ("ALL", total)]:
        flagged, wrong = s["tp"] + s["fp"], s["n_wrong"]
        out[k] = {
            "tp": s["tp"], "fp": s["fp"], "fn": s["fn"],
            "precision": round(s["tp"] / flagged, 4) if flagged else None,
            "recall": round(s["tp"] / wrong, 4) if wrong else None,
            "n_wrong": wrong, "n_claims": s["n_claims"],
            "evidence_bound": round(s["with_evidence"] / wrong, 4) if wrong else None,
            "corrected": s["corrected"], "corrected_right": s["corrected_right"],
            "facts": s["facts"], "facts_right": s["facts_right"],
        }
    return out


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.2f}"


def format_scores(scores: dict[str, dict[str, Any]]) -> str:
    """The per-aspect table as text, for logs and reports."""
    head = f"{'aspect':<18}{'claims':>7}{'wrong':>6}{'tp':>5}{'fp':>5}{'fn':>5}" \
           f"{'prec':>7}{'recall':>7}{'bound':>7}{'fixed ok':>10}{'facts ok':>10}"
    rows = [head]
    for k, s in scores.items():
        ok = f"{s['facts_right']}/{s['facts']}"
        fixed = f"{s['corrected_right']}/{s['corrected']}"
        rows.append(f"{k:<18}{s['n_claims']:>7}{s['n_wrong']:>6}{s['tp']:>5}{s['fp']:>5}"
                    f"{s['fn']:>5} {_pct(s['precision'])} {_pct(s['recall'])} "
                    f"{_pct(s['evidence_bound'])}{fixed:>10}{ok:>10}")
    return "\n".join(rows)
