"""Backdrops for product photos: studio paper, gradients, a sweep, wood, fabric, concrete, a
coloured backdrop.

Most are near-neutral and light on purpose: the product must stay the dominant saturated
colour of the photo, so "what colour is it" has one answer. Everything is numpy on float32
(H, W, 3) arrays in 0..255, built from low-resolution noise upsampled, so a 384 px backdrop
costs about a millisecond.
"""

from __future__ import annotations

import colorsys
import math
import random

import numpy as np
from PIL import Image

RGB = tuple[int, int, int]


def numpy_rng(rng: random.Random) -> np.random.Generator:
    """A numpy generator seeded from ``rng`` so everything stays deterministic."""
    return np.random.default_rng(rng.getrandbits(64))


def smooth_noise(w: int, h: int, cells: int, gen: np.random.Generator) -> np.ndarray:
    """Smooth noise in [0, 1] with about ``cells`` blobs across."""
    cw, ch = max(2, cells), max(2, round(cells * h / w))
    coarse = (gen.random((ch, cw)) * 255).astype(np.uint8)
    return (
        np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        / 255.0
    )


def linear_ramp(w: int, h: int, angle: float) -> np.ndarray:
    """-1..1 along direction ``angle`` (radians) across the frame."""
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    ramp = math.cos(angle) * gx + math.sin(angle) * gy
    return ramp / max(1e-6, abs(math.cos(angle)) + abs(math.sin(angle)))


def _fill(w: int, h: int, colour) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (h, w, 3)).copy()


def _near_neutral(rng: random.Random, lo: int, hi: int, tint: float = 6) -> RGB:
    v = rng.uniform(lo, hi)
    return tuple(v + rng.uniform(-tint, tint) for _ in range(3))  # type: ignore[return-value]


def _pastel(
    rng: random.Random,
    sat: tuple[float, float] = (0.08, 0.25),
    val: tuple[float, float] = (0.82, 0.96),
) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return (r * 255, g * 255, b * 255)


def studio(w: int, h: int, rng: random.Random) -> np.ndarray:
    top, bottom = (
        np.array(_near_neutral(rng, 225, 252, 4)),
        np.array(_near_neutral(rng, 215, 250, 4)),
    )
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).copy()


def grey_studio(w: int, h: int, rng: random.Random) -> np.ndarray:
    base = np.array(_near_neutral(rng, 165, 215, 3), np.float32)
    ramp = linear_ramp(w, h, rng.uniform(0, math.tau))[..., None]
    return base * (1 + 0.06 * ramp)


def gradient(w: int, h: int, rng: random.Random) -> np.ndarray:
    a, b = np.array(_pastel(rng), np.float32), np.array(_pastel(rng), np.float32)
    t = (linear_ramp(w, h, rng.uniform(0, math.tau))[..., None] + 1) / 2
    return a * (1 - t) + b * t


def sweep(w: int, h: int, rng: random.Random) -> np.ndarray:
    """A wall meeting a floor behind the product, the horizon softened."""
    wall = np.array(_near_neutral(rng, 200, 245, 8), np.float32)
    floor = wall * rng.uniform(0.82, 0.95)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    horizon, soft = rng.uniform(0.55, 0.8), rng.uniform(0.04, 0.12)
    t = 1 / (1 + np.exp(-(y - horizon) / soft))
    return np.broadcast_to(wall * (1 - t) + floor * t, (h, w, 3)).copy()


_WOODS: tuple[RGB, ...] = ((214, 184, 146), (196, 160, 118), (226, 204, 172), (176, 138, 100))


def wood(w: int, h: int, rng: random.Random) -> np.ndarray:
    """Table top: planks with a warped grain."""
    gen = numpy_rng(rng)
    base = np.array(rng.choice(_WOODS), np.float32)
    plank = rng.uniform(50, 95)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    warp = smooth_noise(w, h, 5, gen) * rng.uniform(6, 14)
    grain = np.sin((y + warp) * rng.uniform(0.35, 0.6) + x * 0.01) * 0.5 + 0.5
    seam = ((y % plank) < 1.6).astype(np.float32)
    tone = 1 + 0.05 * (smooth_noise(w, h, 3, gen) - 0.5)
    gain = tone * (0.93 + 0.07 * grain) * (1 - 0.22 * seam)
    return base * gain[..., None]


def fabric(w: int, h: int, rng: random.Random) -> np.ndarray:
    """Linen: a fine weave and slubs on a light neutral."""
    gen = numpy_rng(rng)
    base = np.array(_near_neutral(rng, 190, 240, 8), np.float32)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    weave = np.sin(x * 2.1) * np.sin(y * 2.1) * 0.03
    slub = (gen.random((h, w), dtype=np.float32) - 0.5) * 0.05
    fold = (smooth_noise(w, h, 4, gen) - 0.5) * 0.12
    return base * (1 + weave + slub + fold)[..., None]


def concrete(w: int, h: int, rng: random.Random) -> np.ndarray:
    gen = numpy_rng(rng)
    base = np.array(_near_neutral(rng, 175, 225, 5), np.float32)
    blotch = (smooth_noise(w, h, 9, gen) - 0.5) * 0.14
    grit = (gen.random((h, w), dtype=np.float32) - 0.5) * 0.06
    return base * (1 + blotch + grit)[..., None]


def coloured(w: int, h: int, rng: random.Random) -> np.ndarray:
    """A paper backdrop in a soft colour; a bold one now and then."""
    if rng.random() < 0.2:
        c = _pastel(rng, (0.35, 0.6), (0.6, 0.9))
    else:
        c = _pastel(rng, (0.12, 0.3), (0.8, 0.95))
    return _fill(w, h, c)


BACKGROUNDS = (
    (studio, 0.32),
    (grey_studio, 0.10),
    (gradient, 0.13),
    (sweep, 0.11),
    (wood, 0.10),
    (fabric, 0.09),
    (concrete, 0.08),
    (coloured, 0.07),
)


def random_background(w: int, h: int, rng: random.Random) -> np.ndarray:
    """One backdrop drawn from the mix above (mostly plain studio)."""
    make = rng.choices([b for b, _ in BACKGROUNDS], [p for _, p in BACKGROUNDS])[0]
    return make(w, h, rng)
