"""Product renderer: one flat product illustration per (category, aspects, view).

The drawings are the catalog's ground truth, so every "product"-visible aspect in the taxonomy
changes the drawing (colour, pattern, sleeve length, neckline, lengths, fit, closure, hood,
style, type, ports...). Each category has a drawer in a sibling module; this module picks the
drawer, resolves the colour and hands the canvas to ``Canvas.finish`` for cropping, scaling and
shading. Two random streams: the product's design (seeded by its category and aspects, so its
views agree) and the photo's (framing and light).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable

from PIL import Image

from ecomvlm.catalog.draw_accessories import draw_cap, draw_handbag, draw_sneakers
from ecomvlm.catalog.draw_bottoms import draw_jeans, draw_skirt
from ecomvlm.catalog.draw_gadgets import draw_headphones, draw_phone_case, draw_power_bank
from ecomvlm.catalog.draw_goods import draw_desk_lamp, draw_kettle, draw_mug, draw_water_bottle
from ecomvlm.catalog.draw_jacket import draw_jacket
from ecomvlm.catalog.draw_kit import RGB, Canvas, jitter_colour
from ecomvlm.catalog.draw_tops import draw_dress, draw_shirt, draw_tshirt
from ecomvlm.catalog.draw_toys import draw_toy
from ecomvlm.catalog.taxonomy import COLOURS

Drawer = Callable[[Canvas, RGB, dict[str, str], str, random.Random], dict]

# category -> (drawer, canvas width, canvas height) in product units
DRAWERS: dict[str, tuple[Drawer, int, int]] = {
    "T-Shirt": (draw_tshirt, 300, 300),
    "Shirt": (draw_shirt, 300, 300),
    "Dress": (draw_dress, 300, 380),
    "Skirt": (draw_skirt, 300, 320),
    "Jeans": (draw_jeans, 300, 360),
    "Jacket": (draw_jacket, 300, 320),
    "Sneakers": (draw_sneakers, 320, 300),
    "Handbag": (draw_handbag, 300, 360),
    "Cap": (draw_cap, 340, 260),
    "Mug": (draw_mug, 300, 260),
    "Water Bottle": (draw_water_bottle, 240, 380),
    "Phone Case": (draw_phone_case, 200, 340),
    "Power Bank": (draw_power_bank, 300, 320),
    "Headphones": (draw_headphones, 300, 380),
    "Desk Lamp": (draw_desk_lamp, 320, 320),
    "Toy": (draw_toy, 320, 320),
    "Kettle": (draw_kettle, 320, 300),
}

DEFAULT_COLOUR = "Black"
VIEWS = ("main", "alternate")


def product_colour(aspects: dict[str, str], rng: random.Random) -> RGB:
    """The aspect's colour with a small dye-lot variation; unknown names fall back to black."""
    base = COLOURS.get(aspects.get("Color", DEFAULT_COLOUR), COLOURS[DEFAULT_COLOUR])
    return jitter_colour(base, rng)


def design_seed(category: str, aspects: dict[str, str]) -> str:
    """The product's identity: a digest of its category and all its aspects. Everything an
    aspect doesn't fix (proportions, trims, pattern scale, styling) is drawn from it, so every
    view and every listing of the same product shows the same item."""
    key = json.dumps([category, sorted(aspects.items())], ensure_ascii=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def draw_product(
    category: str, aspects: dict[str, str], view: str, rng: random.Random
) -> Image.Image:
    """The item alone on a transparent background (RGBA, 300x300, object filling most of it).

    ``aspects`` maps canonical keys to canonical values; keys a drawing doesn't use are
    ignored and missing keys get a default. ``view`` is "main" (front) or "alternate" (back,
    another angle, another pose or a detail). The item's design follows from the category and
    aspects (see :func:`design_seed`); ``rng`` varies only this photo's framing and light.
    Deterministic given the rng state.
    """
    design = random.Random(design_seed(category, aspects))
    return draw_design(category, aspects, view, design, rng)


def draw_design(
    category: str,
    aspects: dict[str, str],
    view: str,
    design: random.Random,
    rng: random.Random,
) -> Image.Image:
    """:func:`draw_product` with the design drawn from ``design`` instead of the aspects."""
    if category not in DRAWERS:
        raise KeyError(f"no drawer for category {category!r}; known: {sorted(DRAWERS)}")
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    drawer, width, height = DRAWERS[category]
    canvas = Canvas(f"{design.getrandbits(64):016x}", width, height)
    colour = product_colour(aspects, design)
    opts = drawer(canvas, colour, aspects, view, design)
    return canvas.finish(
        rng, mirror_view=bool(opts.get("mirror", False)), edge=float(opts.get("edge", 0.2))
    )
