"""Which specs the VISION and LM registries answer to.

Builders import their implementation on call, so ``import ecomvlm.model`` registers every
backbone without paying for torch or transformers (CLI start-up stays fast).
"""

from __future__ import annotations

from typing import Any

from ..registry import LM, PROJECTOR, VISION


@VISION.register("packaged:efficientnet-lite0")
def _efficientnet_lite0(**kwargs: Any):
    from .efficientnet import EfficientNetLiteTower

    return EfficientNetLiteTower(**kwargs)


@VISION.register("hf:")
def _hf_vision(name_or_path: str, **kwargs: Any):
    from .hf_vision import load_hf_vision

    return load_hf_vision(name_or_path, **kwargs)


def _tiny_vision(kind: str):
    def build(**kwargs: Any):
        from .tiny import tiny_vision

        return tiny_vision(kind, **kwargs)

    return build


for _kind in ("siglip", "clip", "siglip2"):  # exact names, so errors list them
    VISION.register(f"tiny:{_kind}")(_tiny_vision(_kind))


@LM.register("packaged:smollm2-135m-instruct")
def _smollm2(**kwargs: Any):
    from .smollm2 import load_smollm2

    return load_smollm2(**kwargs)


@LM.register("hf:")
def _hf_lm(name_or_path: str, **kwargs: Any):
    from .lm import load_hf_lm

    return load_hf_lm(name_or_path, **kwargs)


def _tiny_lm(kind: str):
    def build(**kwargs: Any):
        from .tiny import tiny_lm

        return tiny_lm(kind, **kwargs)

    return build


for _kind in ("llama", "qwen2"):
    LM.register(f"tiny:{_kind}")(_tiny_lm(_kind))


def _projector(name: str):
    def build(**kwargs: Any):
        from .projector import PROJECTORS

        return PROJECTORS[name](**kwargs)

    return build


for _name in ("mlp2x_gelu", "pool", "resampler"):
    PROJECTOR.register(_name)(_projector(_name))
