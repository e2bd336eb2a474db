"""Drawing kit shared by the product drawers: a supersampled canvas, a pen that works in
product units, curve helpers and colour helpers.

Drawers think in product units (about 300 across), never in pixels. The canvas draws at 2x so
edges come out anti-aliased; ``finish()`` crops to the object, scales it into the 300 px output
square and applies soft shading (a directional light, rounded edges, cylinder highlights), so
every product fills its image the same way whatever its aspect ratio.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ecomvlm.catalog.patterns import denim_fill, luminance, pattern_fill

RGB = tuple[int, int, int]
Point = tuple[float, float]
SS = 2  # supersampling factor
OUT = 300  # output side in pixels

# A shape for Canvas.fill: ("poly", points) | ("ellipse", box) | ("rrect", box, radius)
Shape = tuple


def clamp8(v: float) -> int:
    return max(0, min(255, round(v)))


def shade(c: RGB, f: float) -> RGB:
    return tuple(clamp8(v * f) for v in c)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(clamp8(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def detail(c: RGB) -> RGB:
    """Colour for seams and outlines: darker, or lighter on near-black so it still shows."""
    return shade(c, 0.6) if luminance(c) >= 45 else mix(c, (125, 125, 130), 0.3)


def inside(c: RGB) -> RGB:
    """The shadowed inside of an opening (a neck hole, a mug's interior)."""
    return shade(c, 0.55) if luminance(c) >= 45 else mix(c, (100, 100, 105), 0.15)


def jitter_colour(c: RGB, rng: random.Random, amount: int = 5) -> RGB:
    """A dye-lot variation small enough that the colour keeps its name."""
    d = rng.randint(-amount, amount)
    return tuple(clamp8(v + d + rng.randint(-2, 2)) for v in c)  # type: ignore[return-value]


# ---- geometry ----------------------------------------------------------------------------


def quad(p0: Point, p1: Point, p2: Point, n: int = 10) -> list[Point]:
    """Quadratic Bezier from p0 to p2 with control p1 (n+1 points)."""
    out = []
    for i in range(n + 1):
        t = i / n
        a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t * t
        out.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    return out


def arc_pts(
    cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 16
) -> list[Point]:
    """Points on an ellipse from angle a0 to a1 in degrees (0 = right, 90 = down)."""
    return [
        (
            cx + rx * math.cos(math.radians(a0 + (a1 - a0) * i / n)),
            cy + ry * math.sin(math.radians(a0 + (a1 - a0) * i / n)),
        )
        for i in range(n + 1)
    ]


def mirror(pts: Sequence[Point], cx: float) -> list[Point]:
    return [(2 * cx - x, y) for x, y in pts]


def rotate(pts: Sequence[Point], centre: Point, deg: float) -> list[Point]:
    a = math.radians(deg)
    ca, sa = math.cos(a), math.sin(a)
    ox, oy = centre
    return [
        (ox + (x - ox) * ca - (y - oy) * sa, oy + (x - ox) * sa + (y - oy) * ca) for x, y in pts
    ]


def jit(rng: random.Random, v: float, d: float) -> float:
    return v + rng.uniform(-d, d)


# ---- drawing -----------------------------------------------------------------------------


def _ink(c):
    if c is None or isinstance(c, int):
        return c
    return tuple(c) if len(c) == 4 else (*c, 255)


class Pen:
    """ImageDraw in product units; every colour is opaque unless given with alpha."""

    def __init__(self, image: Image.Image, scale: float) -> None:
        self.draw = ImageDraw.Draw(image)
        self.k = scale
        self._rgba = image.mode == "RGBA"

    def _c(self, c):
        return _ink(c) if self._rgba else c

    def _xy(self, pts: Sequence[Point]) -> list[Point]:
        return [(x * self.k, y * self.k) for x, y in pts]

    def _box(self, box: Sequence[float]) -> list[float]:
        x0, y0, x1, y1 = box
        return [
            min(x0, x1) * self.k,
            min(y0, y1) * self.k,
            max(x0, x1) * self.k,
            max(y0, y1) * self.k,
        ]

    def _w(self, w: float) -> int:
        return max(1, round(w * self.k))

    def poly(self, pts: Sequence[Point], fill=None, outline=None, width: float = 2.0) -> None:
        if fill is not None:
            self.draw.polygon(self._xy(pts), fill=self._c(fill))
        if outline is not None:
            self.line(list(pts) + [pts[0], pts[1]], outline, width)

    def line(self, pts: Sequence[Point], fill, width: float = 2.0) -> None:
        self.draw.line(self._xy(pts), fill=self._c(fill), width=self._w(width), joint="curve")

    def ellipse(self, box: Sequence[float], fill=None, outline=None, width: float = 2.0) -> None:
        self.draw.ellipse(
            self._box(box),
            fill=self._c(fill),
            outline=self._c(outline),
            width=self._w(width) if outline is not None else 0,
        )

    def circle(self, centre: Point, r: float, fill=None, outline=None, width: float = 2.0):
        x, y = centre
        self.ellipse((x - r, y - r, x + r, y + r), fill, outline, width)

    def rrect(
        self, box: Sequence[float], radius: float, fill=None, outline=None, width: float = 2.0
    ) -> None:
        b = self._box(box)
        r = max(0, min(radius * self.k, (b[2] - b[0]) / 2, (b[3] - b[1]) / 2))
        self.draw.rounded_rectangle(
            b,
            radius=r,
            fill=self._c(fill),
            outline=self._c(outline),
            width=self._w(width) if outline is not None else 0,
        )

    def arc(self, box: Sequence[float], start: float, end: float, fill, width: float) -> None:
        self.draw.arc(self._box(box), start, end, fill=self._c(fill), width=self._w(width))

    def shape(self, spec: Shape, fill) -> None:
        kind = spec[0]
        if kind == "poly":
            self.poly(spec[1], fill=fill)
        elif kind == "ellipse":
            self.ellipse(spec[1], fill=fill)
        elif kind == "rrect":
            self.rrect(spec[1], spec[2], fill=fill)
        else:
            raise ValueError(f"unknown shape {kind!r}")


class Canvas:
    """A transparent 2x canvas in product units; ``finish()`` gives the 300 px RGBA product.

    ``design_seed`` names the product: pattern swatches are drawn from it, so every view of
    the same product shows the same stripes, dots or flowers.
    """

    def __init__(self, design_seed: str, width: float = 300, height: float = 300) -> None:
        self.design_seed = design_seed
        self.img = Image.new("RGBA", (round(width * SS), round(height * SS)), (0, 0, 0, 0))
        self.pen = Pen(self.img, SS)
        self._textures: dict[tuple, Image.Image] = {}
        self._cylinders: list[tuple[float, float, float]] = []

    def texture(self, colour: RGB, pattern: str) -> Image.Image:
        """One swatch per (colour, pattern) per canvas, so all parts of a garment match."""
        key = (colour, pattern)
        if key not in self._textures:
            rng = random.Random(f"{self.design_seed}|{pattern}|{colour}")
            if pattern == "Denim":
                tex = denim_fill(self.img.size, colour, rng, scale=SS)
            else:
                tex = pattern_fill(self.img.size, colour, pattern, rng, scale=SS)
            self._textures[key] = tex
        return self._textures[key]

    def fill(self, shapes: Sequence[Shape], colour: RGB, pattern: str = "Solid") -> None:
        """Paint the union of ``shapes`` in the colour with the pattern."""
        if pattern == "Solid":
            for s in shapes:
                self.pen.shape(s, colour)
            return
        mask = Image.new("L", self.img.size, 0)
        mpen = Pen(mask, SS)
        for s in shapes:
            mpen.shape(s, 255)
        self.img.paste(self.texture(colour, pattern), (0, 0), mask)

    def cylinder(self, x0: float, x1: float, strength: float = 0.22) -> None:
        """Ask finish() for round shading (dark edges, a highlight) between x0 and x1."""
        self._cylinders.append((x0, x1, strength))

    def finish(
        self,
        rng: random.Random,
        *,
        mirror_view: bool = False,
        edge: float = 0.25,
        light: float = 0.08,
    ) -> Image.Image:
        """Crop, scale into the output square and shade; ``rng`` varies this one photo (margin,
        a slight squash of the proportions, light direction)."""
        bbox = self.img.getchannel("A").getbbox()
        if bbox is None:
            raise RuntimeError("the drawer painted nothing")
        crop = self.img.crop(bbox)
        if mirror_view:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        avail = OUT - 2 * rng.uniform(4, 12)
        squash = 1 + rng.uniform(-0.03, 0.03)
        k = min(avail / (crop.width * squash), avail / crop.height)
        nw, nh = max(1, round(crop.width * k * squash)), max(1, round(crop.height * k))
        obj = crop.resize((nw, nh), Image.Resampling.BILINEAR)
        arr = np.asarray(obj, dtype=np.float32)

        gx = np.linspace(-1, 1, nw, dtype=np.float32)[None, :]
        gy = np.linspace(-1, 1, nh, dtype=np.float32)[:, None]
        ang = rng.uniform(0, math.tau)
        gain = 1 + light * rng.uniform(0.5, 1) * (math.cos(ang) * gx + math.sin(ang) * gy)
        gain = np.broadcast_to(gain, (nh, nw)).copy()
        for x0, x1, st in self._cylinders:
            # product units -> output pixels
            p0, p1 = (x0 * SS - bbox[0]) * k * squash, (x1 * SS - bbox[0]) * k * squash
            if mirror_view:
                p0, p1 = nw - p1, nw - p0
            c = (np.arange(nw, dtype=np.float32) - p0) / max(1.0, p1 - p0)
            on = (c >= 0) & (c <= 1)
            hl = 0.45 if not mirror_view else 0.55
            g = 1 - st * (2 * c - 1) ** 2 + 0.5 * st * np.exp(-(((c - hl) / 0.09) ** 2))
            gain[:, on] *= g[on][None, :]
        if edge > 0:
            alpha = obj.getchannel("A")
            small = alpha.resize((max(1, nw // 3), max(1, nh // 3)), Image.Resampling.BILINEAR)
            small = small.filter(ImageFilter.GaussianBlur(2))
            inner = (
                np.asarray(small.resize((nw, nh), Image.Resampling.BILINEAR), np.float32) / 255.0
            )
            gain *= 1 - edge * np.clip(1 - inner, 0, 1)
        rgb = np.clip(arr[..., :3] * gain[..., None] + 0.5, 0, 255).astype(np.uint8)
        out_arr = np.dstack([rgb, arr[..., 3].astype(np.uint8)])
        out = Image.new("RGBA", (OUT, OUT), (0, 0, 0, 0))
        out.paste(Image.fromarray(out_arr, "RGBA"), ((OUT - nw) // 2, (OUT - nh) // 2))
        return out
