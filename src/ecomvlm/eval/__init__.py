"""The e-commerce benchmark suite (``ecomvlm eval``).

Five benchmarks built from a synthetic catalog's test split and its answer key (aspect,
fashion, extract, multi_image[_crops], general), model adapters for our checkpoints,
transformers VLMs and OpenAI-compatible endpoints, and the baselines (text-only, perception,
majority, untrained). ``run_eval`` runs one model and writes lmms-eval-style results plus
per-sample JSONL. Heavy imports wait until a function is called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BENCHMARKS", "load_adapter", "run_eval"]

BENCHMARKS = ("aspect", "fashion", "extract", "multi_image", "general")


def run_eval(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from .runner import run_eval as run

    return run(*args, **kwargs)


def load_adapter(*args: Any, **kwargs: Any) -> Any:
    from .adapters import load_adapter as load

    return load(*args, **kwargs)
