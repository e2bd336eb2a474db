"""Pattern swatches for fabric-like surfaces (the "Pattern" aspect), plus a denim texture.

Contract the catalog's measurements rely on: the base colour covers most of every swatch
(>= ~60%), so "what colour is it" keeps a single answer, and the secondary colour is a neutral
chosen to contrast with it (Floral adds a couple of small accent colours). Periods are 14-34 px
at ``scale=1`` (an object about 300 px across), so each pattern stays readable at 224 px.
Stripes and checks are axis-aligned on purpose: the scene rotates the whole object later.
Each swatch is a small numpy tile repeated, which keeps even a 600 px swatch near 1 ms.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

_DARK: RGB = (28, 28, 32)
_LIGHT: RGB = (245, 245, 241)
# Small flower accents; the ones close to the base colour are skipped.
_FLORAL_ACCENTS: tuple[RGB, ...] = (
    (245, 170, 190),
    (250, 222, 120),
    (160, 195, 235),
    (150, 185, 130),
    (240, 130, 110),
    (245, 245, 241),
)
_FLOWER_CENTRES: tuple[RGB, ...] = ((245, 200, 60), (250, 240, 200), (90, 60, 40))


def luminance(colour: RGB) -> float:
    r, g, b = colour
    return 0.299 * r + 0.587 * g + 0.114 * b


def contrast_neutral(colour: RGB, rng: random.Random) -> RGB:
    """White or near-black, whichever contrasts with ``colour`` (either for mid tones)."""
    lum = luminance(colour)
    if lum > 150:
        return _DARK
    if lum < 95:
        return _LIGHT
    return rng.choice((_DARK, _LIGHT))


def _band_profile(length: int, period: float, frac: float, phase: float) -> np.ndarray:
    """Coverage in [0, 1] of a band [0, frac*period) repeating every ``period`` px; 4x
    supersampled per pixel so band edges are anti-aliased."""
    t = np.arange(length, dtype=np.float32)[:, None] + phase
    t = t + np.array([0.125, 0.375, 0.625, 0.875], dtype=np.float32)[None, :]
    return ((t % period) < frac * period).mean(axis=1)


def _blend(base: RGB, sec: RGB, m: np.ndarray) -> np.ndarray:
    """uint8 colours base*(1-m) + sec*m, with m of any shape (a trailing RGB axis is added)."""
    b = np.array(base, np.float32)
    s = np.array(sec, np.float32)
    return (b + (s - b) * m[..., None] + 0.5).astype(np.uint8)


def _tile_to(tile: np.ndarray, w: int, h: int, rng: random.Random) -> np.ndarray:
    """Repeat ``tile`` over a w x h area starting at a random phase."""
    th, tw = tile.shape[:2]
    reps = (h // th + 2, w // tw + 2, 1)
    big = np.tile(tile, reps)
    oy, ox = rng.randrange(th), rng.randrange(tw)
    return big[oy : oy + h, ox : ox + w]


def _stripes(w: int, h: int, base: RGB, sec: RGB, rng: random.Random, s: float) -> np.ndarray:
    period = rng.uniform(15, 28) * s
    frac = rng.uniform(0.24, 0.36)
    horizontal = rng.random() < 0.7  # most striped tops are horizontal (Breton)
    n = h if horizontal else w
    row = _blend(base, sec, _band_profile(n, period, frac, rng.uniform(0, period)))
    arr = row[:, None, :] if horizontal else row[None, :, :]
    return np.ascontiguousarray(np.broadcast_to(arr, (h, w, 3)))


def _dots(w: int, h: int, base: RGB, sec: RGB, rng: random.Random, s: float) -> np.ndarray:
    p = max(6, round(rng.uniform(17, 30) * s))
    staggered = rng.random() < 0.6
    # radius keeps the dot area at ~12-22% of the swatch
    r = p * (rng.uniform(0.14, 0.18) if staggered else rng.uniform(0.19, 0.25))
    sub = (np.arange(2 * p, dtype=np.float32) + 0.5) / 2  # 2x supersampled coordinates
    yy, xx = np.meshgrid(sub, sub, indexing="ij")
    centres = [(p / 2, p / 2)]
    if staggered:
        centres += [(0, 0), (0, p), (p, 0), (p, p)]
    inside = np.zeros_like(yy, dtype=bool)
    for cy, cx in centres:
        inside |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    m = inside.reshape(p, 2, p, 2).mean(axis=(1, 3))
    return _tile_to(_blend(base, sec, m), w, h, rng)


def _checks(w: int, h: int, base: RGB, sec: RGB, rng: random.Random, s: float) -> np.ndarray:
    p = max(8, round(rng.uniform(22, 34) * s))
    frac = rng.uniform(0.15, 0.2)
    prof = _band_profile(p, p, frac, 0.0)
    # gingham: one band mixes half-way to the neutral, the crossings go (almost) all the way
    m = np.minimum(0.55 * (prof[:, None] + prof[None, :]), 0.9)
    return _tile_to(_blend(base, sec, m), w, h, rng)


def _floral(w: int, h: int, base: RGB, sec: RGB, rng: random.Random, s: float) -> np.ndarray:
    spacing = rng.uniform(40, 54) * s
    n = 3
    size = max(8, round(spacing * n))
    tile = Image.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(tile)
    accents = [c for c in _FLORAL_ACCENTS if sum(abs(a - b) for a, b in zip(c, base)) > 120]
    palette = [sec] + rng.sample(accents, min(2, len(accents)))
    for i in range(n):
        for j in range(n):
            cx = (i + 0.5 + rng.uniform(-0.25, 0.25)) * spacing
            cy = (j + 0.5 + rng.uniform(-0.25, 0.25)) * spacing
            radius = spacing * rng.uniform(0.2, 0.27)
            petal = rng.choice(palette)
            centre = rng.choice([c for c in _FLOWER_CENTRES if c != petal])
            k = rng.choice((5, 5, 6))
            a0 = rng.uniform(0, math.tau)
            # redraw copies shifted by the tile size so flowers wrap seamlessly
            for dx in (-size, 0, size):
                for dy in (-size, 0, size):
                    x, y = cx + dx, cy + dy
                    if x + radius < 0 or y + radius < 0 or x - radius > size or y - radius > size:
                        continue
                    pr = radius * 0.46
                    for q in range(k):
                        a = a0 + q * math.tau / k
                        px, py = x + math.cos(a) * radius * 0.55, y + math.sin(a) * radius * 0.55
                        draw.ellipse((px - pr, py - pr, px + pr, py + pr), fill=petal)
                    cr = radius * 0.28
                    draw.ellipse((x - cr, y - cr, x + cr, y + cr), fill=centre)
    return _tile_to(np.asarray(tile), w, h, rng)


_BUILDERS = {"Striped": _stripes, "Polka Dot": _dots, "Checked": _checks, "Floral": _floral}


def pattern_fill(
    size: tuple[int, int], colour: RGB, pattern: str, rng: random.Random, *, scale: float = 1.0
) -> Image.Image:
    """An RGB swatch of ``pattern`` in ``colour`` (unknown patterns are drawn Solid).

    ``scale`` multiplies the pattern period; drawers that render at 2x pass 2 so the pattern
    looks the same once the object is reduced.
    """
    w, h = size
    build = _BUILDERS.get(pattern)
    if build is None:
        return Image.new("RGB", (w, h), tuple(colour))
    sec = contrast_neutral(colour, rng)
    return Image.fromarray(build(w, h, tuple(colour), sec, rng, scale), "RGB")


def denim_fill(
    size: tuple[int, int], colour: RGB, rng: random.Random, *, scale: float = 1.0
) -> Image.Image:
    """Denim: the colour with a faint diagonal twill and soft fading, mild enough that the
    colour reads unchanged. Built as a grey gain image mapped per channel through LUTs."""
    w, h = size
    p = max(3, round(4 * scale))
    yy, xx = np.mgrid[0:p, 0:p]
    twill = np.where(((xx + yy) % p) < p / 2, 5, -5).astype(np.int16)
    gen = np.random.default_rng(rng.getrandbits(32))
    coarse = (gen.random((4, 4)) * 255).astype(np.uint8)
    fade = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
    gray = _tile_to(twill[..., None], w, h, rng)[..., 0] + (fade >> 4).astype(np.int16) + 120
    g = Image.fromarray(gray.astype(np.uint8), "L")
    # gain = gray / 128: twill +-4%, fading -6%..+6%
    luts = [[min(255, round(c * v / 128)) for v in range(256)] for c in colour]
    return Image.merge("RGB", [g.point(lut) for lut in luts])
