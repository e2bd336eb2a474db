"""Vector drawings of the compliance marks and warnings in ``taxonomy.MARKS``.

Each ``draw_<mark>`` paints one mark into a box on an ``ImageDraw`` in a single ink, so the
caller can render it on a supersampled mask and paste it anti-aliased in any colour. Shapes
follow the real marks closely enough to be told apart (CE half-rings, UKCA 2x2 square, the
crossed-out wheelie bin, ...) while staying simple. Warnings that carry text are laid out as
small-print blocks: icon on the left, fixed line breaks on the right. The garment care-symbol
row and the cached font loader live here too, because the label drawer shares them.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

Box = tuple[float, float, float, float]

# Faces by role. A missing TTF falls back to Pillow's built-in scalable font, so rendering
# works everywhere; the choice of face index never depends on what is installed.
_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FACES: dict[str, str] = {
    "sans": "DejaVuSans.ttf",
    "sans_bold": "DejaVuSans-Bold.ttf",
    "condensed": "DejaVuSansCondensed.ttf",
    "condensed_bold": "DejaVuSansCondensed-Bold.ttf",
    "serif_bold": "DejaVuSerif-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "default": "",
}


@lru_cache(maxsize=512)
def load_font(size: int, face: str = "sans") -> ImageFont.FreeTypeFont:
    """A font of ``size`` px in ``face`` (a key of FACES), cached per (size, face)."""
    path = _DEJAVU / FACES.get(face, "")
    if FACES.get(face) and path.is_file():
        return ImageFont.truetype(str(path), max(1, int(size)))
    return ImageFont.load_default(size=max(1, int(size)))


# Fixed line breaks keep the blocks compact and identical from image to image, as on packs.
WARNING_LINES: dict[str, tuple[str, ...]] = {
    "choking_hazard": ("WARNING:", "CHOKING HAZARD -", "Small parts. Not for",
                       "children under 3 years."),
    "battery_warning": ("Contains lithium", "battery"),
    "hot_surface": ("Caution:", "hot surface"),
}
WARNING_TEXT: dict[str, str] = {
    "choking_hazard": "WARNING: CHOKING HAZARD - Small parts. Not for children under 3 years.",
    "battery_warning": "Contains lithium battery",
    "hot_surface": "Caution: hot surface",
}
# Width / height of the pictogram-only marks.
ICON_ASPECT: dict[str, float] = {
    "ce": 1.375, "ukca": 1.0, "weee": 0.74, "under_3": 1.0, "food_safe": 1.0, "recycle": 1.08,
}
_LINE_GAP = 1.18  # line pitch as a multiple of the text px size
_WARNING_ICON_ASPECT = {"choking_hazard": 1.1, "battery_warning": 0.62, "hot_surface": 1.1}


def is_text_block(mark: str) -> bool:
    return mark in WARNING_LINES


def mark_size(mark: str, height: float) -> tuple[float, float]:
    """Natural (w, h) of an icon mark ``height`` px tall, or of a warning block whose text is
    ``height`` px per line."""
    if mark in ICON_ASPECT:
        return ICON_ASPECT[mark] * height, height
    if mark not in WARNING_LINES:
        raise KeyError(f"unknown mark {mark!r}")
    lines = WARNING_LINES[mark]
    font = load_font(100, "condensed_bold")
    text_w = max(font.getlength(s) for s in lines) * height / 100
    block_h = len(lines) * height * _LINE_GAP
    icon_h = min(block_h, 2.6 * height)
    return icon_h * _WARNING_ICON_ASPECT[mark] + 0.4 * height + text_w, block_h


def _stroke(box: Box, frac: float) -> int:
    return max(1, round(min(box[2] - box[0], box[3] - box[1]) * frac))


def draw_ce(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255) -> None:
    """CE: two half-rings (the gap is 3/4 of a letter wide); the E adds a shorter middle bar."""
    x0, y0, _, y1 = box
    r = (y1 - y0) / 2
    w = _stroke(box, 0.2)
    draw.arc((x0, y0, x0 + 2 * r, y1), 90, 270, fill=ink, width=w)
    ex = x0 + 1.75 * r
    draw.arc((ex, y0, ex + 2 * r, y1), 90, 270, fill=ink, width=w)
    cy = y0 + r
    draw.rectangle((ex, cy - w / 2, ex + 0.8 * r, cy + w / 2), fill=ink)


def draw_ukca(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255) -> None:
    """UKCA: a square of heavy geometric letters, UK over CA."""
    x0, y0, x1, y1 = box
    s = min(x1 - x0, y1 - y0)
    c = s / 2
    w = _stroke(box, 0.11)
    p = w / 2 + s * 0.02
    # U
    lx, t, r, b = x0 + p, y0 + p, x0 + c - p, y0 + c - p
    draw.line([(lx + w / 2, t), (lx + w / 2, b - (r - lx) / 2)], fill=ink, width=w)
    draw.line([(r - w / 2, t), (r - w / 2, b - (r - lx) / 2)], fill=ink, width=w)
    draw.arc((lx, b - (r - lx), r, b), 0, 180, fill=ink, width=w)
    # K
    lx, r = x0 + c + p, x1 - p
    draw.line([(lx + w / 2, t), (lx + w / 2, b)], fill=ink, width=w)
    mid = (t + b) / 2
    draw.line([(r, t), (lx + w, mid), (r, b)], fill=ink, width=w, joint="curve")
    # C
    lx, t, r, b = x0 + p, y0 + c + p, x0 + c - p, y1 - p
    draw.arc((lx, t, r, b), 40, 320, fill=ink, width=w)
    # A
    lx, r = x0 + c + p, x1 - p
    draw.line([(lx, b), ((lx + r) / 2, t), (r, b)], fill=ink, width=w, joint="curve")
    cross = t + 0.62 * (b - t)
    inset = 0.165 * (r - lx)
    draw.line([(lx + inset, cross), (r - inset, cross)], fill=ink, width=max(1, int(w * 0.8)))


def draw_weee(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255) -> None:
    """WEEE: wheelie bin with lid, handle and wheel, crossed out, over a solid bar."""
    x0, y0, x1, y1 = box
    W, H = x1 - x0, y1 - y0
    w = _stroke(box, 0.07)
    top, bot = y0 + 0.2 * H, y0 + 0.74 * H
    draw.polygon([(x0 + 0.2 * W, top), (x1 - 0.2 * W, top), (x1 - 0.28 * W, bot),
                  (x0 + 0.3 * W, bot)], outline=ink, width=w)
    draw.line([(x0 + 0.12 * W, top - w), (x1 - 0.12 * W, top - w)], fill=ink, width=w)
    draw.rectangle((x0 + 0.4 * W, top - w - 0.07 * H, x1 - 0.4 * W, top - w), fill=ink)
    wr = 0.07 * H
    draw.ellipse((x0 + 0.3 * W, bot - wr, x0 + 0.3 * W + 2 * wr, bot + wr), fill=ink)
    draw.line([(x0 + 0.04 * W, y0 + 0.08 * H), (x1 - 0.04 * W, y0 + 0.8 * H)], fill=ink, width=w)
    draw.line([(x1 - 0.04 * W, y0 + 0.08 * H), (x0 + 0.04 * W, y0 + 0.8 * H)], fill=ink, width=w)
    draw.rectangle((x0 + 0.08 * W, y0 + 0.88 * H, x1 - 0.08 * W, y1), fill=ink)


def draw_battery(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255) -> None:
    """Upright cell with terminal nub, '+' mark and 'Li' - the lithium battery pictogram."""
    x0, y0, x1, y1 = box
    W, H = x1 - x0, y1 - y0
    w = _stroke(box, 0.1)
    draw.rectangle((x0 + 0.32 * W, y0, x1 - 0.32 * W, y0 + 0.1 * H), fill=ink)
    draw.rounded_rectangle((x0, y0 + 0.1 * H, x1, y1), radius=0.12 * W, outline=ink, width=w)
    draw.rectangle((x0, y0 + 0.1 * H + 0.5 * (0.9 * H), x1, y1), fill=ink)  # charge level
    cx, cy, a = (x0 + x1) / 2, y0 + 0.33 * H, 0.16 * W
    draw.line([(cx - a, cy), (cx + a, cy)], fill=ink, width=w)
    draw.line([(cx, cy - a), (cx, cy + a)], fill=ink, width=w)
    font = load_font(max(4, int(0.45 * W)), "sans_bold")
    draw.text((cx, y0 + 0.78 * H), "Li", fill=0, font=font, anchor="mm")


def _triangle(draw: ImageDraw.ImageDraw, box: Box, ink: int) -> tuple[float, float, float]:
    x0, y0, x1, y1 = box
    w = _stroke(box, 0.09)
    draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], outline=ink, width=w)
    return (x0 + x1) / 2, y0 + 0.62 * (y1 - y0), w


def draw_choking_triangle(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255) -> None:
    """Warning triangle with an exclamation mark."""
    cx, cy, w = _triangle(draw, box, ink)
    H = box[3] - box[1]
    draw.line([(cx, cy - 0.28 * H), (cx, cy + 0.08 * H)], fill=ink, width=max(1, int(w * 1.3)))
    r = w * 0.75
    draw.ellipse((cx - r, cy + 0.2 * H - r, cx + r, cy + 0.2 * H + r), fill=ink)


def draw_hot_triangle(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255) -> None:
    """Hot surface: triangle with three heat waves rising from a flat surface."""
    cx, _, w = _triangle(draw, box, ink)
    x0, y0, x1, y1 = box
    W, H = x1 - x0, y1 - y0
    base = y0 + 0.82 * H
    draw.line([(cx - 0.25 * W, base), (cx + 0.25 * W, base)], fill=ink, width=w)
    for dx in (-0.12, 0.0, 0.12):
        pts = [(cx + dx * W + 0.035 * W * math.sin(k * 1.2), base - 0.06 * H - k * 0.045 * H)
               for k in range(9)]
        draw.line(pts, fill=ink, width=max(1, int(w * 0.7)))


def draw_under_3(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255, *, face: bool = True) -> None:
    """Not for 0-3 years: crossed circle holding a child's face over '0-3' (or '0-3' alone)."""
    x0, y0, x1, y1 = box
    W, H = x1 - x0, y1 - y0
    w = _stroke(box, 0.08)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if face:
        fr = 0.2 * W
        fy = y0 + 0.36 * H
        draw.ellipse((cx - fr, fy - fr, cx + fr, fy + fr), outline=ink, width=max(1, w // 2 + 1))
        er = 0.035 * W
        for ex in (-0.08, 0.08):
            ey = fy - 0.04 * H
            draw.ellipse((cx + ex * W - er, ey - er, cx + ex * W + er, ey + er), fill=ink)
        draw.arc((cx - 0.1 * W, fy - 0.05 * H, cx + 0.1 * W, fy + 0.1 * H), 20, 160, fill=ink,
                 width=max(1, w // 2))
        font = load_font(max(4, int(0.3 * H)), "sans_bold")
        draw.text((cx, y0 + 0.74 * H), "0-3", fill=ink, font=font, anchor="mm")
    else:
        font = load_font(max(4, int(0.4 * H)), "sans_bold")
        draw.text((cx, cy), "0-3", fill=ink, font=font, anchor="mm")
    draw.ellipse(box, outline=ink, width=w)
    d = 0.5 * W * math.sqrt(0.5)
    draw.line([(cx - d, cy - d), (cx + d, cy + d)], fill=ink, width=w)


def draw_food_safe(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255) -> None:
    """Food contact: a wine glass beside a fork."""
    x0, y0, x1, y1 = box
    W, H = x1 - x0, y1 - y0
    w = _stroke(box, 0.07)
    gx = x0 + 0.32 * W
    draw.chord((gx - 0.22 * W, y0 - 0.45 * H, gx + 0.22 * W, y0 + 0.5 * H), 0, 180, outline=ink,
               width=w)
    draw.line([(gx - 0.22 * W, y0 + 0.03 * H), (gx + 0.22 * W, y0 + 0.03 * H)], fill=ink, width=w)
    draw.line([(gx, y0 + 0.5 * H), (gx, y1 - 0.06 * H)], fill=ink, width=w)
    draw.line([(gx - 0.16 * W, y1 - w / 2), (gx + 0.16 * W, y1 - w / 2)], fill=ink, width=w)
    fx = x0 + 0.78 * W
    for dx in (-0.1, 0.0, 0.1):
        draw.line([(fx + dx * W, y0 + 0.02 * H), (fx + dx * W, y0 + 0.3 * H)], fill=ink,
                  width=max(1, int(w * 0.7)))
    draw.arc((fx - 0.1 * W, y0 + 0.15 * H, fx + 0.1 * W, y0 + 0.45 * H), 0, 180, fill=ink,
             width=max(1, int(w * 0.7)))
    draw.line([(fx, y0 + 0.45 * H), (fx, y1)], fill=ink, width=w)


def draw_recycle(draw: ImageDraw.ImageDraw, box: Box, ink: int = 255) -> None:
    """Mobius loop: three bent arrows chasing each other round a triangle."""
    x0, y0, x1, y1 = box
    w = _stroke(box, 0.11)
    pad = 1.4 * w  # room for the arrowheads that poke past the corners
    verts = [((x0 + x1) / 2, y0 + pad), (x1 - pad, y1 - pad), (x0 + pad, y1 - pad)]
    for i in range(3):
        a, b, c = verts[i], verts[(i + 1) % 3], verts[(i + 2) % 3]
        start = ((a[0] + b[0]) / 2 * 0.85 + a[0] * 0.15, (a[1] + b[1]) / 2 * 0.85 + a[1] * 0.15)
        end = (b[0] + (c[0] - b[0]) * 0.32, b[1] + (c[1] - b[1]) * 0.32)
        draw.line([start, b, end], fill=ink, width=w, joint="curve")
        dx, dy = c[0] - b[0], c[1] - b[1]
        n = math.hypot(dx, dy)
        ux, uy = dx / n, dy / n
        tip = (end[0] + ux * 1.9 * w, end[1] + uy * 1.9 * w)
        side = 1.5 * w
        draw.polygon([tip, (end[0] - uy * side, end[1] + ux * side),
                      (end[0] + uy * side, end[1] - ux * side)], fill=ink)


def draw_warning(draw: ImageDraw.ImageDraw, mark: str, box: Box, ink: int = 255) -> None:
    """A warning block: pictogram left, the fixed lines of WARNING_LINES right."""
    x0, y0, _, y1 = box
    lines = WARNING_LINES[mark]
    px = (y1 - y0) / (len(lines) * _LINE_GAP)
    icon_h = min(y1 - y0, 2.6 * px)
    icon_w = icon_h * _WARNING_ICON_ASPECT[mark]
    iy = y0 + ((y1 - y0) - icon_h) / 2
    icon = (x0, iy, x0 + icon_w, iy + icon_h)
    {"choking_hazard": draw_choking_triangle, "battery_warning": draw_battery,
     "hot_surface": draw_hot_triangle}[mark](draw, icon, ink)
    font = load_font(max(4, int(px)), "condensed_bold")
    tx = x0 + icon_w + 0.4 * px
    for i, line in enumerate(lines):
        draw.text((tx, y0 + i * px * _LINE_GAP), line, fill=ink, font=font)


def draw_care_symbols(draw: ImageDraw.ImageDraw, x: float, y: float, s: float, ink) -> float:
    """Garment-label care row (not a compliance mark): wash tub, no-bleach triangle, iron,
    tumble-dry square, dry-clean circle, each ``s`` px; returns the row's width."""
    w = max(1, int(s / 10))
    tub = [(x, y + 0.25 * s), (x + s, y + 0.25 * s), (x + 0.85 * s, y + s), (x + 0.15 * s, y + s)]
    draw.polygon(tub, outline=ink, width=w)
    draw.ellipse((x + 0.45 * s, y + 0.55 * s, x + 0.57 * s, y + 0.67 * s), fill=ink)
    x += 1.35 * s
    draw.polygon([(x + s / 2, y), (x + s, y + s), (x, y + s)], outline=ink, width=w)
    draw.line([(x + 0.15 * s, y + 0.3 * s), (x + 0.85 * s, y + s)], fill=ink, width=w)
    draw.line([(x + 0.85 * s, y + 0.3 * s), (x + 0.15 * s, y + s)], fill=ink, width=w)
    x += 1.35 * s
    iron = [(x, y + s), (x + 0.2 * s, y + 0.4 * s), (x + 0.9 * s, y + 0.4 * s), (x + s, y + s)]
    draw.polygon(iron, outline=ink, width=w)
    x += 1.35 * s
    draw.rectangle((x, y, x + s, y + s), outline=ink, width=w)
    draw.ellipse((x + 0.18 * s, y + 0.18 * s, x + 0.82 * s, y + 0.82 * s), outline=ink, width=w)
    x += 1.35 * s
    draw.ellipse((x, y, x + s, y + s), outline=ink, width=w)
    return 6.4 * s


ICON_DRAWERS = {
    "ce": draw_ce, "ukca": draw_ukca, "weee": draw_weee, "under_3": draw_under_3,
    "food_safe": draw_food_safe, "recycle": draw_recycle,
}


def draw_mark(draw: ImageDraw.ImageDraw, mark: str, box: Box, ink: int = 255, *,
              variant: int = 0) -> None:
    """Draw any key of taxonomy.MARKS into ``box``; ``variant`` picks an alternative form."""
    if mark in WARNING_LINES:
        draw_warning(draw, mark, box, ink)
    elif mark == "under_3":
        draw_under_3(draw, box, ink, face=variant % 2 == 0)
    elif mark in ICON_DRAWERS:
        ICON_DRAWERS[mark](draw, box, ink)
    else:
        raise KeyError(f"unknown mark {mark!r}")
