"""Backbones: vision towers, causal LMs, OCR and a sentence encoder, addressed by spec.

``load_vision_tower("packaged:efficientnet-lite0")``, ``load_vision_tower("hf:google/siglip-
base-patch16-224")``, ``load_lm("packaged:smollm2-135m-instruct")``, ``load_lm("tiny:llama")``.
Importing this package only registers the specs; torch and transformers load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..registry import LM, VISION
from . import specs  # noqa: F401  (registers the specs)

if TYPE_CHECKING:
    from .efficientnet import EfficientNetLiteTower
    from .hf_vision import HFVisionTower
    from .lm import LoadedLM
    from .ocr import OcrEngine, OcrLine
    from .text_embed import TextEncoder
    from .vision import VisionTower

__all__ = [
    "EfficientNetLiteTower",
    "HFVisionTower",
    "LoadedLM",
    "OcrEngine",
    "OcrLine",
    "TextEncoder",
    "VisionTower",
    "lm_names",
    "load_lm",
    "load_vision_tower",
    "vision_tower_names",
]

# public name -> submodule that defines it, imported on first attribute access
_LAZY = {
    "VisionTower": "vision", "HFVisionTower": "hf_vision",
    "EfficientNetLiteTower": "efficientnet", "LoadedLM": "lm",
    "OcrEngine": "ocr", "OcrLine": "ocr", "TextEncoder": "text_embed",
}


def load_vision_tower(spec: str, **kwargs: Any) -> VisionTower:
    """A VisionTower for ``spec`` (see ``vision_tower_names()``); kwargs go to its builder."""
    return VISION.build(spec, **kwargs)


def load_lm(spec: str, **kwargs: Any) -> LoadedLM:
    """A LoadedLM (model + tokenizer with chat template) for ``spec``."""
    return LM.build(spec, **kwargs)


def vision_tower_names() -> list[str]:
    return VISION.names()


def lm_names() -> list[str]:
    return LM.names()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
