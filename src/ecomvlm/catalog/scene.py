"""Product photos: an RGBA product placed on a varied backdrop like a seller's photo, and
'lifestyle' photos with no product in them.

The jitter (scale, position, rotation, shadow, lighting, blur, noise) is what makes the
catalog look like many photographers; it is kept mild enough that a Black product stays dark,
a White one stays light and the product colour keeps its name. ``compose_scene`` returns the
object's box measured on the placed alpha mask, so ground-truth boxes are exact.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ecomvlm.catalog.backgrounds import (
    linear_ramp,
    numpy_rng,
    random_background,
    smooth_noise,
)

Box = tuple[int, int, int, int]
SIDE_RANGE = (256, 384)
ALPHA_SOLID = 24  # alpha above this counts as object when measuring the box


def _frame_size(rng: random.Random, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        return size
    w = rng.randint(*SIDE_RANGE)
    return (w, w) if rng.random() < 0.55 else (w, rng.randint(*SIDE_RANGE))


def _tight_box(alpha: np.ndarray) -> Box:
    """Box (x0, y0, x1, y1) of the clearly opaque pixels of an alpha array."""
    a = alpha > ALPHA_SOLID
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    if rows.size == 0:
        raise ValueError("the object image is fully transparent")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _place(obj: Image.Image, w: int, h: int, rng: random.Random) -> Image.Image:
    """The object rotated, scaled to span 45-90% of the frame and moved to a random spot
    (mostly near the middle), as a w x h RGBA layer made by one affine warp."""
    obj = obj.crop(_tight_box(np.asarray(obj.getchannel("A"))))
    angle = rng.uniform(-20, 20) if rng.random() > 0.25 else 0.0  # some shoot upright
    frac = rng.uniform(0.45, 0.9)
    # extent of the rotated object, measured on its opaque pixels (every 2nd for speed)
    a = np.asarray(obj.getchannel("A"))[::2, ::2] > ALPHA_SOLID
    ys, xs = np.nonzero(a)
    pts = np.stack([xs * 2 + 1.0, ys * 2 + 1.0])
    cx, cy = obj.width / 2, obj.height / 2
    ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rx = ca * (pts[0] - cx) + sa * (pts[1] - cy)
    ry = -sa * (pts[0] - cx) + ca * (pts[1] - cy)
    ext_x, ext_y = float(rx.max() - rx.min()) + 2, float(ry.max() - ry.min()) + 2
    k = frac / max(ext_x / w, ext_y / h)
    if k < 0.8:  # shrink with a proper filter first so stripes and dots don't alias
        obj = obj.resize(
            (max(1, round(obj.width * k)), max(1, round(obj.height * k))), Image.Resampling.BILINEAR
        )
        sx, sy = obj.width / (2 * cx), obj.height / (2 * cy)
        rx, ry, cx, cy, k = rx * sx, ry * sy, obj.width / 2, obj.height / 2, k / sx
        # (sx ~ sy ~ k: the remaining warp is a near-identity scale plus the rotation)
    span_x, span_y = (rx.max() - rx.min()) * k, (ry.max() - ry.min()) * k
    left = (w - span_x) * rng.betavariate(2.2, 2.2)
    top = (h - span_y) * rng.betavariate(2.2, 2.2)
    ox, oy = left - rx.min() * k, top - ry.min() * k  # where the object centre lands
    # inverse map: output pixel -> source pixel
    data = (
        ca / k,
        -sa / k,
        cx - (ca * ox - sa * oy) / k,
        sa / k,
        ca / k,
        cy - (sa * ox + ca * oy) / k,
    )
    return obj.transform((w, h), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)


def _drop_shadow(alpha: np.ndarray, rng: random.Random) -> np.ndarray:
    """A soft shadow (0..1) cast down and to one side by the full-frame object alpha."""
    h, w = alpha.shape
    small = Image.fromarray(alpha).resize(
        (max(1, w // 4), max(1, h // 4)), Image.Resampling.BILINEAR
    )
    small = small.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 4)))
    dx, dy = rng.randint(-10, 10), rng.randint(3, 14)
    small = small.transform(
        small.size,
        Image.Transform.AFFINE,
        (1, 0, -dx / 4, 0, 1, -dy / 4),
        Image.Resampling.BILINEAR,
    )
    blurred = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), np.float32)
    return blurred * (rng.uniform(0.18, 0.4) / 255)


def _lighting(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """Exposure, contrast, white balance, a directional light falloff and, half the time, a
    soft vignette, applied in place as one gain map."""
    h, w = img.shape[:2]
    contrast = rng.uniform(0.92, 1.08)
    gain = rng.uniform(0.93, 1.07) * (
        1 + rng.uniform(0, 0.07) * linear_ramp(w, h, rng.uniform(0, math.tau))
    )
    if rng.random() < 0.5:
        gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        gain = gain * (1 - rng.uniform(0.03, 0.12) * (gx * gx + gy * gy) / 2)
    warm = rng.uniform(-0.025, 0.025)
    gain3 = gain[..., None] * np.array([1 + warm, 1.0, 1 - warm], np.float32)
    # ((img - 128) * contrast + 128) * gain, in three in-place passes
    img *= contrast
    img += 128 * (1 - contrast)
    img *= gain3
    return img


def compose_scene_with_mask(
    obj: Image.Image, rng: random.Random, *, size: tuple[int, int] | None = None
) -> tuple[Image.Image, Box, Image.Image]:
    """Like :func:`compose_scene`, plus the object's alpha mask ("L") in the photo."""
    w, h = _frame_size(rng, size)
    photo = random_background(w, h, rng).astype(np.float32, copy=False)
    layer = _place(obj.convert("RGBA"), w, h, rng)
    alpha8 = np.asarray(layer.getchannel("A"))
    box = _tight_box(alpha8)
    if rng.random() < 0.5:
        photo *= (1 - _drop_shadow(alpha8, rng))[..., None]
    # blend only inside the box: outside it the layer is transparent
    x0, y0, x1, y1 = box
    rgb = np.asarray(layer.convert("RGB"), np.float32)[y0:y1, x0:x1]
    a = alpha8[y0:y1, x0:x1, None].astype(np.float32) / 255
    region = photo[y0:y1, x0:x1]
    region += (rgb - region) * a
    photo = _lighting(photo, rng)
    if rng.random() < 0.3:  # sensor noise, mostly in brightness
        gen = numpy_rng(rng)
        photo += gen.standard_normal((h, w, 1), dtype=np.float32) * rng.uniform(1.5, 5)
    image = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0)))
    return image, box, Image.fromarray(alpha8, "L")


def compose_scene(
    obj: Image.Image, rng: random.Random, *, size: tuple[int, int] | None = None
) -> tuple[Image.Image, Box]:
    """Place the RGBA object on a varied backdrop.

    Returns the RGB photo (each side 256-384 px, drawn from ``rng`` when ``size`` is None)
    and the object's bounding box (x0, y0, x1, y1) in it, x1/y1 exclusive.
    """
    image, box, _ = compose_scene_with_mask(obj, rng, size=size)
    return image, box


# ---- lifestyle photos ----------------------------------------------------------------------


def _room(draw: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    wall = tuple(
        int(v) for v in (rng.uniform(200, 240), rng.uniform(195, 235), rng.uniform(185, 230))
    )
    floor_y = int(h * rng.uniform(0.62, 0.78))
    draw.rectangle((0, 0, w, floor_y), fill=wall)
    wood = rng.choice([(170, 130, 90), (196, 160, 118), (140, 105, 75)])
    draw.rectangle((0, floor_y, w, h), fill=wood)
    for k in range(1, 6):
        y = floor_y + (h - floor_y) * k / 6
        draw.line((0, y, w, y), fill=tuple(int(c * 0.88) for c in wood), width=1)
    wx0 = int(w * rng.uniform(0.05, 0.5))
    ww, wh = int(w * rng.uniform(0.25, 0.4)), int(floor_y * rng.uniform(0.4, 0.6))
    wy0 = int(floor_y * 0.12)
    draw.rectangle((wx0, wy0, wx0 + ww, wy0 + wh), fill=(250, 250, 248))
    draw.rectangle((wx0 + 5, wy0 + 5, wx0 + ww - 5, wy0 + wh - 5), fill=(170, 205, 235))
    draw.line((wx0 + ww // 2, wy0, wx0 + ww // 2, wy0 + wh), fill=(250, 250, 248), width=4)
    draw.line((wx0, wy0 + wh // 2, wx0 + ww, wy0 + wh // 2), fill=(250, 250, 248), width=4)
    sx = int(w * rng.uniform(0.35, 0.6))
    sofa = rng.choice([(110, 120, 140), (150, 110, 90), (120, 140, 110), (180, 170, 150)])
    sy = floor_y - int(h * 0.18)
    draw.rounded_rectangle((sx, sy, sx + int(w * 0.5), floor_y + 6), 10, fill=sofa)
    draw.rounded_rectangle(
        (sx - 8, sy + 18, sx + 14, floor_y + 6), 8, fill=tuple(int(c * 0.85) for c in sofa)
    )
    px = int(w * rng.uniform(0.05, 0.25))
    draw.polygon(
        [
            (px, floor_y - 30),
            (px + 30, floor_y - 30),
            (px + 25, floor_y + 4),
            (px + 5, floor_y + 4),
        ],
        fill=(180, 110, 80),
    )
    for _ in range(9):
        lx, ly = px + 15 + rng.uniform(-30, 30), floor_y - 30 - rng.uniform(5, 70)
        draw.ellipse((lx - 9, ly - 18, lx + 9, ly + 18), fill=(60, rng.randint(110, 150), 60))


def _landscape(draw: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    top, low = (90, 150, 220), (200, 225, 245)
    for y in range(h):
        t = y / h
        draw.line((0, y, w, y), fill=tuple(int(a + (b - a) * t) for a, b in zip(top, low)))
    sun = (w * rng.uniform(0.1, 0.9), h * rng.uniform(0.1, 0.3))
    draw.ellipse((sun[0] - 18, sun[1] - 18, sun[0] + 18, sun[1] + 18), fill=(255, 240, 190))
    for layer, colour in enumerate([(130, 145, 170), (95, 140, 95), (70, 115, 70)]):
        base = h * (0.5 + 0.14 * layer)
        pts = [(0, h)]
        for k in range(9):
            pts.append((w * k / 8, base - rng.uniform(0, 0.25 - 0.06 * layer) * h))
        pts.append((w, h))
        draw.polygon(pts, fill=colour)
    for _ in range(rng.randint(3, 8)):
        tx, ty = rng.uniform(0, w), h * rng.uniform(0.7, 0.95)
        draw.polygon([(tx, ty - 40), (tx - 14, ty), (tx + 14, ty)], fill=(40, 90, 50))


def _abstract(draw: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    bg = tuple(int(v) for v in (rng.uniform(40, 220), rng.uniform(40, 220), rng.uniform(40, 220)))
    draw.rectangle((0, 0, w, h), fill=bg)
    for _ in range(rng.randint(8, 20)):
        r = rng.uniform(10, 60)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        c = tuple(min(255, int(v + rng.uniform(-60, 80))) for v in bg)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=c)


def draw_lifestyle(rng: random.Random, size: tuple[int, int] | None = None) -> Image.Image:
    """An irrelevant 'lifestyle' photo (a room, a landscape, an abstract bokeh) with no
    product in it."""
    w, h = _frame_size(rng, size)
    image = Image.new("RGB", (w, h))
    scene = rng.choice((_room, _landscape, _abstract))
    scene(ImageDraw.Draw(image), w, h, rng)
    blur = 6 if scene is _abstract else rng.uniform(0.5, 1.5)
    image = image.filter(ImageFilter.GaussianBlur(blur))
    photo = _lighting(np.asarray(image, np.float32), rng)
    photo = photo * (1 + 0.04 * (smooth_noise(w, h, 4, numpy_rng(rng)) - 0.5))[..., None]
    return Image.fromarray(np.clip(photo + 0.5, 0, 255).astype(np.uint8), "RGB")
