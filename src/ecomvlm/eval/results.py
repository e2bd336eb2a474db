"""Writing a run: ``OUT/<model-name>/results.json`` and ``samples_<benchmark>.jsonl``.

results.json follows lmms-eval's layout, so tools that read those files read ours:

    {"results":          {bench: {"alias": bench, "<metric>,none": value, ...}},
     "configs":          {bench: {task, version, seed, dataset_path, split, limit,
                                  generation_kwargs, ...}},
     "versions":         {bench: int},
     "n-samples":        {bench: {"original": all samples, "effective": scored samples}},
     "higher_is_better": {bench: {"<metric>": bool}},
     "breakdowns":       {bench: {...}}   # ours: per-aspect accuracy, colour confusion
                                          # (true -> predicted -> count), per-key F1,
                                          # per-mark F1, crop statistics, perplexity detail
     "model_name", "model_spec", "model_info", "config", "skipped", "date",
     "total_evaluation_time_seconds", "timing": {bench: seconds}}

Each JSONL line is one scored sample: id, benchmark, prompt (as the model saw it), images,
output (raw), parsed, target, score, latency_s, image_tokens, meta, details, error.
Files are written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .base import Scored

FILTER = "none"  # lmms-eval's filter suffix: no answer filter beyond each task's parser


def metric_key(name: str) -> str:
    return f"{name},{FILTER}"


def plain_metrics(results: dict[str, Any], bench: str) -> dict[str, float]:
    """{metric: value} of one benchmark without the lmms-eval suffix (for tables, tests)."""
    return {k.rsplit(",", 1)[0]: v for k, v in results["results"][bench].items() if "," in k}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_samples(out_dir: Path, bench: str, records: list[Scored]) -> Path:
    path = out_dir / f"samples_{bench}.jsonl"
    _atomic_write(path, "".join(json.dumps(r.to_json(), ensure_ascii=False, default=str) + "\n"
                                for r in records))
    return path


def write_results(out_dir: Path, results: dict[str, Any]) -> Path:
    path = out_dir / "results.json"
    _atomic_write(path, json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(results: dict[str, Any]) -> str:
    """One line per benchmark with its main metrics, for the CLI to print after a run."""
    main = {"aspect": ("accuracy", "accuracy_open", "accuracy_mc"),
            "fashion": ("accuracy",),
            "extract": ("f1_micro", "f1_macro", "json_valid_rate", "hallucination_rate"),
            "multi_image": ("marks_f1_micro", "battery_accuracy", "image_tokens", "latency_s"),
            "multi_image_crops": ("marks_f1_micro", "battery_accuracy", "image_tokens",
                                  "latency_s"),
            "general": ("accuracy", "perplexity")}
    lines = [f"{results['model_name']} ({results['model_spec']})"]
    for bench in results["results"]:
        metrics = plain_metrics(results, bench)
        shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in main.get(bench, ()) if k in metrics)
        lines.append(f"  {bench:<18} {shown}  (n={results['n-samples'][bench]['effective']})")
    lines += [f"  {bench:<18} skipped: {why}" for bench, why in results.get("skipped", {}).items()]
    return "\n".join(lines)
