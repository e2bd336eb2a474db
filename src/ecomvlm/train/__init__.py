"""Training: recipes of stages (YAML) run by one accelerate loop, resumable at any step.

    from ecomvlm.train import run_recipe
    summary = run_recipe("recipes/demo.yaml", data_root="runs/cur", out_dir="runs/demo",
                         overrides=["stages.instruct.steps=50"], stages=["align", "mid"])

Submodules: ``spec`` (Recipe, StageSpec, overrides), ``data`` (sources, mixture, feature
cache, quarantine), ``checkpoint`` (atomic checkpoints), ``loop`` (train_stage), ``run``
(run_recipe), ``plot`` (loss curves), ``toy`` (a tiny synthetic dataset). Importing this
package is cheap; torch loads with the first of these names used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Recipe", "RecipeError", "StageSpec", "format_summary", "load_recipe", "run_recipe",
           "train_stage"]

_LAZY = {"Recipe": "spec", "RecipeError": "spec", "StageSpec": "spec", "load_recipe": "spec",
         "run_recipe": "run", "format_summary": "run", "train_stage": "loop"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
