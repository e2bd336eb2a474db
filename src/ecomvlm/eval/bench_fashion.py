"""Deep Fashion Understanding: several multiple-choice questions per fashion item.

Question types: pattern, sleeve length, neckline, colour combination ('Navy with stripes',
the wording training uses) and category. Only the item's own photos (main and alternate
shots) are shown and no listing text, so the answer must come from the pixels. Distractors
are drawn from the same taxonomy value set, four options, seeded order.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

from ecomvlm.catalog.taxonomy import FASHION_CATEGORIES, PATTERNS
from ecomvlm.curate.phrasings import colour_combo
from ecomvlm.registry import BENCHMARK

from .base import Benchmark, EvalSample, Scored, mean, options_block, options_for, stderr
from .catalog import EvalItem
from .parsing import parse_choice

QUESTIONS = {
    "pattern": "Which pattern is on this item's fabric?",
    "sleeve": "How long are the sleeves of this garment?",
    "neckline": "Which neckline does this garment have?",
    "colours": "Which description matches the item's colours?",
    "category": "What kind of fashion item do the photos show?",
}
PROMPT = "{images}{question}\n{options}\nAnswer with the letter only."
TYPES = tuple(QUESTIONS)


def subjects(item: EvalItem) -> dict[str, tuple[str, list[str]]]:
    """question type -> (true answer, the pool distractors come from)."""
    cat, facts = item.category, {k: v for k, v in item.visible_aspects().items() if v}
    out: dict[str, tuple[str, list[str]]] = {}
    for subject, key in (("pattern", "Pattern"), ("sleeve", "Sleeve Length"),
                         ("neckline", "Neckline")):
        if key in facts:
            out[subject] = (facts[key], list(cat.aspect(key).values))
    has_pattern = "Pattern" in cat.keys
    combo = colour_combo(facts, has_pattern)
    if combo is not None:
        pool = {colour_combo({"Color": c, "Pattern": p}, has_pattern)
                for c in cat.aspect("Color").values
                for p in (PATTERNS if has_pattern else ["Solid"])}
        out["colours"] = (combo, sorted(p for p in pool if p))
    out["category"] = (cat.name, [c.name for c in FASHION_CATEGORIES])
    return out


@BENCHMARK.register("fashion")
class FashionBenchmark(Benchmark):
    name = "fashion"
    version = 1
    main_metric = "accuracy"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "accuracy": True, **{f"accuracy_{t}": True for t in TYPES}}

    def build(self, items: list[EvalItem], limit: int | None = None) -> list[EvalSample]:
        samples = []
        for item in self.ordered([i for i in items if i.category.is_fashion]):
            images = item.product_images()
            for subject, (answer, pool) in subjects(item).items():
                if len(set(pool)) < 2:
                    continue
                options = options_for(answer, pool, self.seed, f"{item.id}:{subject}")
                prompt = PROMPT.format(images="<image>\n" * len(images),
                                       question=QUESTIONS[subject],
                                       options=options_block(options))
                samples.append(EvalSample(
                    f"{item.id}:{subject}", self.name, prompt, images, answer, 8,
                    {"listing_id": item.id, "category": item.category.name,
                     "question": subject, "options": options}))
        return self.take(samples, limit)

    def score(self, sample: EvalSample, output: str) -> tuple[Any, float, dict[str, Any]]:
        parsed = parse_choice(output, sample.meta["options"])
        return parsed, float(parsed == sample.target), {}

    def aggregate(self, records: list[Scored]) -> tuple[dict[str, float], dict[str, Any]]:
        scores = [r.score for r in records]
        by_type: dict[str, list[float]] = defaultdict(list)
        by_cat: dict[str, list[float]] = defaultdict(list)
        for r in records:
            by_type[r.meta["question"]].append(r.score)
            by_cat[r.meta["category"]].append(r.score)
        metrics = {"accuracy": round(mean(scores), 4),
                   "accuracy_stderr": round(stderr(scores), 4)}
        for t in TYPES:
            if by_type[t]:
                metrics[f"accuracy_{t}"] = round(mean(by_type[t]), 4)
        breakdown = {
            "per_question": {t: {"accuracy": round(mean(s), 4), "n": len(s)}
                             for t, s in by_type.items() if s},
            "per_category": {c: {"accuracy": round(mean(s), 4), "n": len(s)}
                             for c, s in sorted(by_cat.items())},
        }
        return metrics, breakdown
