"""Dynamic Attribute Extraction: the prompt names the category's keys; the reply must be one
JSON object with exactly those keys, null where the photos do not show a value.

Scoring is over (key, normalised value) pairs with a non-null value: micro F1 (pooled counts),
macro F1 (mean of per-key F1), the rate of replies that are valid JSON objects, the rate with
exactly the asked key set (strict instruction following) and the hallucination rate (a value
given where the truth is null). A reply that is not JSON, is cut off, or carries lists or
huge strings scores as a miss for every key; an extra key is a false positive.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, ClassVar

from ecomvlm.curate.phrasings import title_block
from ecomvlm.registry import BENCHMARK

from .base import Benchmark, EvalSample, Scored, f1, mean, stderr
from .catalog import EvalItem
from .parsing import json_value, parse_json_object

PROMPT = ("{images}{title}\nRead the photos and return the attributes {keys_json} as one JSON "
          "object with exactly these keys. Write null for any value the photos do not show.")


def answer_budget(item: EvalItem) -> int:
    """New tokens enough for the longest answer of this category (~3 chars a token)."""
    cat = item.category
    longest = {a.key: max(a.values, key=len) for a in cat.aspects}
    return len(json.dumps(longest, separators=(",", ":"))) // 3 + 16


def compare(category: str, keys: list[str], target: dict[str, str | None],
            reply: dict[str, Any] | None) -> dict[str, Any]:
    """Per-key outcome of one reply: tp, fp, fn counts and the parsed (normalised) values."""
    parsed: dict[str, str | None] = {}
    outcome: dict[str, dict[str, int]] = {}
    extra = 0
    if reply is not None:
        for key, raw in reply.items():
            if key in keys:
                parsed[key] = json_value(category, key, raw)
            elif json_value(category, key, raw) is not None:
                extra += 1  # an extra key with a value is a claim nobody asked for
    hallucinated = nulls = 0
    for key in keys:
        truth, pred = target.get(key), parsed.get(key)
        tp = int(pred is not None and pred == truth)
        outcome[key] = {"tp": tp, "fp": int(pred is not None and not tp),
                        "fn": int(truth is not None and not tp)}
        if truth is None:
            nulls += 1
            hallucinated += int(pred is not None)
    return {"parsed": parsed if reply is not None else None, "per_key": outcome,
            "extra_keys": extra, "hallucinated": hallucinated, "null_slots": nulls,
            "valid_json": reply is not None,
            "exact_keys": reply is not None and set(reply) == set(keys)}


@BENCHMARK.register("extract")
class ExtractBenchmark(Benchmark):
    name = "extract"
    version = 1
    main_metric = "f1_micro"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "f1_micro": True, "f1_macro": True, "precision_micro": True, "recall_micro": True,
        "json_valid_rate": True, "exact_keys_rate": True, "hallucination_rate": False}

    def build(self, items: list[EvalItem], limit: int | None = None) -> list[EvalSample]:
        samples = []
        for item in self.ordered(items):
            keys = item.category.keys
            prompt = PROMPT.format(images="<image>\n" * len(item.images),
                                   title=title_block(item.title),
                                   keys_json=json.dumps(keys, ensure_ascii=False))
            samples.append(EvalSample(f"{item.id}:extract", self.name, prompt, item.images,
                                      item.visible_aspects(), answer_budget(item),
                                      {"listing_id": item.id, "category": item.category.name,
                                       "keys": keys}))
        return self.take(samples, limit)

    def score(self, sample: EvalSample, output: str) -> tuple[Any, float, dict[str, Any]]:
        result = compare(sample.meta["category"], sample.meta["keys"], sample.target,
                         parse_json_object(output))
        tp = sum(o["tp"] for o in result["per_key"].values())
        fp = sum(o["fp"] for o in result["per_key"].values()) + result["extra_keys"]
        fn = sum(o["fn"] for o in result["per_key"].values())
        details = {k: v for k, v in result.items() if k != "parsed"}
        details.update(tp=tp, fp=fp, fn=fn)
        return result["parsed"], round(f1(tp, fp, fn)[2], 4), details

    def aggregate(self, records: list[Scored]) -> tuple[dict[str, float], dict[str, Any]]:
        tp = sum(r.details["tp"] for r in records)
        fp = sum(r.details["fp"] for r in records)
        fn = sum(r.details["fn"] for r in records)
        p, rc, micro = f1(tp, fp, fn)
        per_key: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in records:
            for key, o in r.details["per_key"].items():
                counts = per_key[key]
                counts[0] += o["tp"]
                counts[1] += o["fp"]
                counts[2] += o["fn"]
        # a key never true and never predicted has no F1 to average (it would read as 1)
        key_f1 = {k: round(f1(*c)[2], 4) for k, c in sorted(per_key.items()) if sum(c)}
        nulls = sum(r.details["null_slots"] for r in records)
        metrics = {
            "f1_micro": round(micro, 4), "f1_macro": round(mean(list(key_f1.values())), 4),
            "precision_micro": round(p, 4), "recall_micro": round(rc, 4),
            "f1_sample_mean": round(mean([r.score for r in records]), 4),
            "f1_sample_stderr": round(stderr([r.score for r in records]), 4),
            "json_valid_rate": round(mean([float(r.details["valid_json"]) for r in records]), 4),
            "exact_keys_rate": round(mean([float(r.details["exact_keys"]) for r in records]), 4),
            "hallucination_rate": round(sum(r.details["hallucinated"] for r in records)
                                        / nulls, 4) if nulls else 0.0,
        }
        breakdown = {"per_key_f1": key_f1,
                     "per_key_counts": {k: dict(zip(("tp", "fp", "fn"), c))
                                        for k, c in sorted(per_key.items())},
                     "null_slots": nulls}
        return metrics, breakdown
