"""Shared test set-up: strictly offline, plus session-wide fixtures for expensive backbones."""

from __future__ import annotations

import os

# before transformers is imported anywhere: never reach for the hub
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def coffee_image() -> Image.Image:
    """A cup of espresso on a saucer (skimage sample photo, 600x400)."""
    import skimage.data

    return Image.fromarray(skimage.data.coffee()).convert("RGB")


@pytest.fixture(scope="session")
def smollm2():
    """The packaged SmolLM2 chat model from the real cache ($ECOMVLM_CACHE or ~/.cache/ecomvlm).

    The first run on a machine converts the GGUF (~25 s); later runs read the cache (<1 s).
    """
    from ecomvlm.model import load_lm

    return load_lm("packaged:smollm2-135m-instruct")
