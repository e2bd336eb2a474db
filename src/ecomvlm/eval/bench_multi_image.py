"""Multi-image Item Intelligence: all photos of a listing at once; which compliance marks and
warnings appear anywhere, and does the product contain a battery.

Marks are scored as sets (micro F1 over listings, mean per-listing F1, exact-set accuracy,
per-mark F1); battery as yes/no accuracy. ``multi_image_crops`` asks the same questions with
up to ``max_crops`` targeted crops (``crops.py``) appended as extra images. Proposal time is
part of each sample's latency, and image tokens are counted per sample, so the two settings
compare F1 against cost.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

from tqdm import tqdm

from ecomvlm.catalog.taxonomy import MARKS
from ecomvlm.registry import BENCHMARK

from .base import Benchmark, EvalSample, Scored, cost_metrics, f1, mean, stderr
from .catalog import EvalItem
from .crops import listing_crops
from .parsing import mark_names, parse_marks, parse_yes_no

MARKS_Q = ("{images}{crops}Which compliance marks or warning symbols are printed anywhere in "
           "these photos? Name each one, or reply None.")
BATTERY_Q = ("{images}{crops}Judging by all the photos, does this product contain a battery? "
             "Reply Yes or No.")
CROPS_NOTE = "Images {first} to {last} are enlarged crops of small regions of the photos above.\n"


@BENCHMARK.register("multi_image")
class MultiImageBenchmark(Benchmark):
    name = "multi_image"
    version = 1
    main_metric = "marks_f1_micro"
    crops = False
    higher_is_better: ClassVar[dict[str, bool]] = {
        "marks_f1_micro": True, "marks_f1_sample_mean": True, "marks_exact_match": True,
        "battery_accuracy": True, "latency_s": False, "image_tokens": False}

    def __init__(self, seed: int = 0, crop_source: str = "detector", max_crops: int = 4,
                 progress: bool = False):
        options = {"crops": self.crops}
        if self.crops:
            options.update(crop_source=crop_source, max_crops=max_crops)
        super().__init__(seed, **options)
        self.crop_source, self.max_crops, self.progress = crop_source, max_crops, progress

    def build(self, items: list[EvalItem], limit: int | None = None) -> list[EvalSample]:
        samples: list[EvalSample] = []
        ordered = self.ordered(items)
        bar = tqdm(total=len(ordered) if limit is None else min(len(ordered), -(-limit // 2)),
                   desc=f"{self.name}: crops", unit="listing",
                   disable=not (self.progress and self.crops))
        for item in ordered:
            if limit is not None and len(samples) >= limit:
                break
            images: list[Any] = list(item.images)
            note, seconds = "", 0.0
            if self.crops:
                refs, seconds = listing_crops(item.images, self.crop_source, self.max_crops)
                if refs:
                    note = CROPS_NOTE.format(first=len(images) + 1, last=len(images) + len(refs))
                    images += refs
                bar.update(1)
            fill = {"images": "<image>\n" * len(images), "crops": note}
            meta = {"listing_id": item.id, "category": item.category.name,
                    "n_photos": len(item.images), "n_crops": len(images) - len(item.images),
                    "preprocess_s": round(seconds / 2, 4)}  # shared by the two questions
            marks = sorted(item.truth.get("compliance", []))
            # 40 new tokens: the longest trained answer (five marks) is 31 SmolLM2 tokens
            samples.append(EvalSample(f"{item.id}:marks", self.name, MARKS_Q.format(**fill),
                                      images, marks, 40, {**meta, "question": "marks",
                                                          "answer_text": mark_names(marks)}))
            samples.append(EvalSample(f"{item.id}:battery", self.name,
                                      BATTERY_Q.format(**fill), images,
                                      bool(item.truth.get("battery")), 4,
                                      {**meta, "question": "battery"}))
        bar.close()
        return self.take(samples, limit)

    def score(self, sample: EvalSample, output: str) -> tuple[Any, float, dict[str, Any]]:
        if sample.meta["question"] == "battery":
            parsed = parse_yes_no(output)
            return parsed, float(parsed == sample.target), {}
        predicted, truth = parse_marks(output), set(sample.target)
        tp, fp, fn = len(predicted & truth), len(predicted - truth), len(truth - predicted)
        return sorted(predicted), round(f1(tp, fp, fn)[2], 4), {"tp": tp, "fp": fp, "fn": fn}

    def aggregate(self, records: list[Scored]) -> tuple[dict[str, float], dict[str, Any]]:
        marks = [r for r in records if r.meta["question"] == "marks"]
        battery = [r for r in records if r.meta["question"] == "battery"]
        tp = sum(r.details["tp"] for r in marks)
        fp = sum(r.details["fp"] for r in marks)
        fn = sum(r.details["fn"] for r in marks)
        per_mark: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in marks:
            pred, truth = set(r.parsed), set(r.target)
            for m in MARKS:
                per_mark[m][0] += int(m in pred and m in truth)
                per_mark[m][1] += int(m in pred and m not in truth)
                per_mark[m][2] += int(m in truth and m not in pred)
        sample_f1 = [r.score for r in marks]
        metrics: dict[str, float] = {}
        if marks:
            p, rc, micro = f1(tp, fp, fn)
            metrics.update(marks_f1_micro=round(micro, 4), marks_precision=round(p, 4),
                           marks_recall=round(rc, 4),
                           marks_f1_sample_mean=round(mean(sample_f1), 4),
                           marks_f1_sample_stderr=round(stderr(sample_f1), 4),
                           marks_exact_match=round(mean([float(set(r.parsed) == set(r.target))
                                                         for r in marks]), 4))
        if battery:
            metrics["battery_accuracy"] = round(mean([r.score for r in battery]), 4)
            metrics["battery_accuracy_stderr"] = round(stderr([r.score for r in battery]), 4)
        metrics.update(cost_metrics(records))
        breakdown = {
            "per_mark_f1": {m: round(f1(*c)[2], 4) for m, c in sorted(per_mark.items())
                            if sum(c)},
            "per_mark_counts": {m: dict(zip(("tp", "fp", "fn"), c))
                                for m, c in sorted(per_mark.items()) if sum(c)},
            "crops": {"enabled": self.crops, "mean_crops": round(mean(
                [float(r.meta["n_crops"]) for r in records]), 3),
                      "mean_preprocess_s": round(mean(
                [float(r.meta["preprocess_s"]) for r in records]), 4)},
            "cost_by_question": {q: cost_metrics([r for r in records if r.meta["question"] == q])
                                 for q in ("marks", "battery")
                                 if any(r.meta["question"] == q for r in records)},
        }
        return metrics, breakdown


@BENCHMARK.register("multi_image_crops")
class MultiImageCropsBenchmark(MultiImageBenchmark):
    name = "multi_image_crops"
    crops = True
