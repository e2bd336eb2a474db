"""Tops and dresses as flat garment illustrations: T-Shirt, Shirt, Dress (jackets build on
the same helpers in draw_jacket).

They share one construction: a symmetric torso outline (left half mirrored), a neckline cut
into it, and sleeves hung from the shoulder at an angle. Sleeve length, neckline and dress
length change the silhouette itself, so they are readable from the outline alone.
"""

from __future__ import annotations

import math
import random

from ecomvlm.catalog.draw_kit import (
    RGB,
    Canvas,
    Point,
    arc_pts,
    detail,
    inside,
    jit,
    mirror,
    quad,
    shade,
)

LIGHT_BUTTON: RGB = (236, 234, 226)


def neckline(
    cx: float, top: float, nw: float, style: str, view: str, rng: random.Random
) -> list[Point]:
    """The neck edge from the right neck point to the left one; the back is a shallow curve."""
    if view == "alternate":
        return arc_pts(cx, top, nw, jit(rng, 6, 1.5), 0, 180, 12)
    if style == "V-Neck":
        dip = jit(rng, 52, 6)
        half = quad((cx + nw, top), (cx + nw * 0.5, top + dip * 0.45), (cx, top + dip), 8)
        return half + mirror(half[::-1], cx)[1:]
    return arc_pts(cx, top, nw, jit(rng, 17, 2.5), 0, 180, 14)


def torso(
    cx: float,
    top: float,
    sw: float,
    nw: float,
    drop: float,
    arm_y: float,
    hem_y: float,
    hw: float,
    neck: list[Point],
    *,
    sleeveless: bool,
    waist: tuple[float, float] | None = None,
    hem_sag: float = 4.0,
    tail: float = 0.0,
) -> list[Point]:
    """Closed torso outline. ``waist`` = (y, half-width) pinches it (dresses); ``tail`` lifts
    the hem at the sides (shirt tails)."""
    if sleeveless:  # narrow straps and a scooped armhole
        strap = (cx - sw * 0.72, top + drop * 0.6)
        left = [(cx - nw, top), strap] + quad(
            strap, (cx - sw * 0.66, arm_y - 8), (cx - sw + 2, arm_y + 6), 8
        )[1:]
    else:
        left = [(cx - nw, top), (cx - sw, top + drop), (cx - sw + 1, arm_y)]
    if waist is not None:
        wy, ww = waist
        left += quad(left[-1], (cx - ww - 3, (left[-1][1] + wy) / 2), (cx - ww, wy), 6)[1:]
        left += quad(
            (cx - ww, wy), (cx - ww - (hw - ww) * 0.2, (wy + hem_y) / 2), (cx - hw, hem_y - tail), 8
        )[1:]
    else:
        left.append((cx - hw, hem_y - tail))
    left += quad(
        (cx - hw, hem_y - tail), (cx - hw * 0.45, hem_y + hem_sag), (cx, hem_y + hem_sag), 8
    )[1:]
    right = mirror(left[::-1], cx)
    return left + right[1:] + neck[1:-1]


def sleeve(
    shoulder: Point, armpit: Point, theta: float, length: float, cuff_w: float
) -> tuple[list[Point], Point, Point]:
    """Left sleeve hanging ``theta`` degrees out from vertical; returns (outline, cuff outer,
    cuff inner). The right sleeve is its mirror image."""
    t = math.radians(theta)
    d = (-math.sin(t), math.cos(t))
    n = (math.cos(t), math.sin(t))
    sx, sy = shoulder
    cap = (sx + d[0] * length * 0.12 - n[0] * 3, sy + d[1] * length * 0.12 - n[1] * 3)
    o = (sx + d[0] * length, sy + d[1] * length)
    i = (o[0] + n[0] * cuff_w, o[1] + n[1] * cuff_w)
    return [shoulder, cap, o, i, armpit], o, i


def _sleeves(
    cx: float,
    top: float,
    sw: float,
    drop: float,
    arm_y: float,
    kind: str,
    rng: random.Random,
    scale: float = 1.0,
    lowest: float | None = None,
):
    """Sleeve outlines (left, right) and their cuff segments for a sleeve-length value;
    ``lowest`` caps how far down a long sleeve's cuff may reach."""
    if kind == "Sleeveless":
        return [], []
    if kind == "Long Sleeve":
        theta, length, cuff = jit(rng, 20, 3), jit(rng, 182, 7) * scale, jit(rng, 29, 2)
    else:
        theta, length, cuff = jit(rng, 55, 4), jit(rng, 54, 5) * scale, jit(rng, 44, 3)
    t = math.radians(theta)
    if lowest is not None:
        length = min(length, (lowest - top - drop - cuff * math.sin(t)) / math.cos(t))
    poly, o, i = sleeve((cx - sw, top + drop), (cx - sw + 3, arm_y), theta, length, cuff)
    return [poly, mirror(poly, cx)], [(o, i), tuple(mirror([o, i], cx))]


def hem_line(cv: Canvas, o: Point, i: Point, back: float, colour: RGB, width: float) -> None:
    """A stitch line parallel to a cuff, ``back`` units up the sleeve."""
    dx, dy = i[0] - o[0], i[1] - o[1]
    ln = math.hypot(dx, dy) or 1
    ux, uy = dy / ln, -dx / ln  # perpendicular pointing back up the sleeve
    if ux * (o[0] - 150) > 0:
        ux, uy = -ux, -uy
    cv.pen.line(
        [(o[0] + ux * back, o[1] + uy * back), (i[0] + ux * back, i[1] + uy * back)], colour, width
    )


def _neck_finish(
    cv: Canvas,
    cx: float,
    top: float,
    nw: float,
    neck: list[Point],
    colour: RGB,
    view: str,
    ow: float,
    rng: random.Random,
    band: bool = True,
) -> None:
    """Inside of the back seen through the neck opening (front), rib band, or back tag."""
    if view == "main":  # the back neck rises above the shoulder line behind the opening
        back = arc_pts(cx, top, nw, 6, 180, 360, 10)
        cv.pen.poly(back + neck[1:-1], fill=inside(colour))
        if band:
            cv.pen.line(back, shade(colour, 0.88) if sum(colour) > 90 else detail(colour), 5)
        if rng.random() < 0.6:
            cv.pen.rrect((cx - 5, top - 1, cx + 5, top + 6), 1.2, fill=(236, 236, 230))
    else:
        cv.pen.rrect(
            (cx - 9, top + 9, cx + 9, top + 21),
            2,
            fill=(240, 240, 234),
            outline=(150, 150, 150),
            width=0.8,
        )
        cv.pen.line([(cx - 5, top + 14), (cx + 5, top + 14)], (90, 90, 90), 1.2)
    if band:
        cv.pen.line(neck, shade(colour, 0.88) if sum(colour) > 90 else detail(colour), 6.5)
        cv.pen.line(neck, detail(colour), ow * 0.6)


def draw_tshirt(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    pattern = a.get("Pattern", "Solid")
    cx, top = 150.0, 42.0
    sw, nw, drop = jit(rng, 60, 4), jit(rng, 23, 2.5), jit(rng, 12, 3)
    arm_y, hem_y = top + jit(rng, 64, 4), top + jit(rng, 182, 10)
    kind = a.get("Sleeve Length", "Short Sleeve")
    neck = neckline(cx, top, nw, a.get("Neckline", "Crew Neck"), view, rng)
    body = torso(
        cx,
        top,
        sw,
        nw,
        drop,
        arm_y,
        hem_y,
        sw + jit(rng, -1, 3),
        neck,
        sleeveless=kind == "Sleeveless",
    )
    sleeves, cuffs = _sleeves(cx, top, sw, drop, arm_y, kind, rng, scale=0.82, lowest=hem_y - 24)
    cv.fill([("poly", s) for s in sleeves] + [("poly", body)], colour, pattern)
    ow, line = rng.uniform(1.4, 2.4), detail(colour)
    for s in sleeves:
        cv.pen.poly(s, outline=line, width=ow)
    for o, i in cuffs:
        hem_line(cv, o, i, 8, line, ow * 0.6)
    cv.pen.poly(body, outline=line, width=ow)
    cv.pen.line(quad((cx - sw, hem_y - 9), (cx, hem_y - 5), (cx + sw, hem_y - 9)), line, ow * 0.5)
    _neck_finish(cv, cx, top, nw, neck, colour, view, ow, rng)
    return {"edge": 0.28}


def _collar(
    cv: Canvas,
    cx: float,
    top: float,
    nw: float,
    colour: RGB,
    button_down: bool,
    view: str,
    ow: float,
) -> None:
    line = detail(colour)
    if view == "alternate":  # collar band and the fold seen from behind
        band = arc_pts(cx, top - 8, nw + 3, 5, 180, 0, 10) + arc_pts(
            cx, top + 6, nw + 4, 6, 0, 180, 10
        )
        cv.pen.poly(band, fill=colour, outline=line, width=ow)
        cv.pen.line(arc_pts(cx, top, nw + 4, 5, 0, 180, 10), line, ow * 0.6)
        return
    cv.pen.ellipse((cx - nw + 2, top - 9, cx + nw - 2, top + 10), fill=inside(colour))
    tip_y = top + (28 if button_down else 44)
    tip_x = cx - (17 if button_down else 8)
    leaf = [
        (cx - 2, top - 10),
        (cx - nw - 6, top - 4),
        (cx - nw - 5, top + 6),
        (tip_x, tip_y),
        (cx - 1, top + 20),
    ]
    for pts in (leaf, mirror(leaf, cx)):
        cv.pen.poly(pts, fill=colour, outline=line, width=ow)
    if button_down:
        for x in (tip_x + 3, 2 * cx - tip_x - 3):
            cv.pen.circle(
                (x, tip_y - 5),
                3,
                fill=LIGHT_BUTTON if sum(colour) < 600 else (120, 120, 125),
                outline=line,
                width=0.8,
            )


def draw_shirt(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    pattern = a.get("Pattern", "Solid")
    cx, top = 150.0, 46.0
    sw, nw, drop = jit(rng, 57, 4), jit(rng, 17, 1.5), jit(rng, 13, 3)
    arm_y, hem_y = top + jit(rng, 68, 4), top + jit(rng, 232, 8)
    kind = a.get("Sleeve Length", "Long Sleeve")
    kind = kind if kind in ("Long Sleeve", "Short Sleeve") else "Long Sleeve"
    neck = arc_pts(cx, top, nw, 12 if view == "main" else 5, 0, 180, 12)
    body = torso(
        cx,
        top,
        sw,
        nw,
        drop,
        arm_y,
        hem_y,
        sw + jit(rng, -2, 2),
        neck,
        sleeveless=False,
        hem_sag=8,
        tail=jit(rng, 20, 4),
    )
    sleeves, cuffs = _sleeves(cx, top, sw, drop, arm_y, kind, rng)
    cv.fill([("poly", s) for s in sleeves] + [("poly", body)], colour, pattern)
    ow, line = rng.uniform(1.4, 2.2), detail(colour)
    for s in sleeves:
        cv.pen.poly(s, outline=line, width=ow)
    for o, i in cuffs:
        hem_line(cv, o, i, 16 if kind == "Long Sleeve" else 6, line, ow * 0.8)
    cv.pen.poly(body, outline=line, width=ow)
    buttons = LIGHT_BUTTON if sum(colour) < 600 else (120, 120, 125)
    if view == "main":
        cv.pen.line([(cx - 6, top + 14), (cx - 6, hem_y + 6)], line, ow * 0.6)
        cv.pen.line([(cx + 6, top + 14), (cx + 6, hem_y + 6)], line, ow * 0.6)
        n = 7
        for k in range(n):
            y = top + 26 + k * (hem_y - top - 40) / (n - 1)
            cv.pen.circle((cx, y), 3.2, fill=buttons, outline=shade(buttons, 0.7), width=0.6)
        if rng.random() < 0.6:  # chest pocket on the wearer's left
            px, py = cx + jit(rng, 22, 3), top + jit(rng, 52, 4)
            cv.pen.poly(
                [(px, py), (px + 30, py), (px + 30, py + 30), (px + 15, py + 36), (px, py + 30)],
                outline=line,
                width=ow * 0.6,
            )
    else:  # yoke seam and box pleat
        cv.pen.line(
            quad((cx - sw + 2, top + 30), (cx, top + 36), (cx + sw - 2, top + 30)), line, ow * 0.7
        )
        for dx in (-6, 6):
            cv.pen.line([(cx + dx, top + 34), (cx + dx, top + 80)], line, ow * 0.5)
    _collar(cv, cx, top, nw, colour, a.get("Collar") == "Button-Down Collar", view, ow)
    return {"edge": 0.25}


# dress length -> (skirt length below the waist, hem half-width)
_DRESS_HEMS = {"Mini": (74, 66), "Midi": (150, 84), "Maxi": (228, 98)}


def draw_dress(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    pattern = a.get("Pattern", "Solid")
    cx, top = 150.0, 30.0
    sw, nw, drop = jit(rng, 45, 3), jit(rng, 18, 2), jit(rng, 10, 2)
    arm_y = top + jit(rng, 58, 3)
    wy, ww = top + jit(rng, 100, 4), jit(rng, 33, 2)
    skirt, hem_half = _DRESS_HEMS.get(a.get("Dress Length", "Midi"), _DRESS_HEMS["Midi"])
    hem_y, hw = wy + jit(rng, skirt, 6), jit(rng, hem_half, 4)
    kind = a.get("Sleeve Length", "Sleeveless")
    neck = neckline(cx, top, nw, a.get("Neckline", "Crew Neck"), view, rng)
    body = torso(
        cx,
        top,
        sw,
        nw,
        drop,
        arm_y,
        hem_y,
        hw,
        neck,
        sleeveless=kind == "Sleeveless",
        waist=(wy, ww),
        hem_sag=8,
    )
    sleeves, cuffs = _sleeves(cx, top, sw, drop, arm_y, kind, rng, scale=0.85)
    cv.fill([("poly", s) for s in sleeves] + [("poly", body)], colour, pattern)
    ow, line = rng.uniform(1.3, 2.2), detail(colour)
    for s in sleeves:
        cv.pen.poly(s, outline=line, width=ow)
    for o, i in cuffs:
        hem_line(cv, o, i, 7, line, ow * 0.6)
    cv.pen.poly(body, outline=line, width=ow)
    cv.pen.line([(cx - ww, wy), (cx + ww, wy)], line, ow * 0.8)  # waist seam
    for f in (-0.55, -0.2, 0.2, 0.55):  # soft folds of the skirt
        if rng.random() < 0.8:
            x0 = cx + f * ww * 1.2
            cv.pen.line(
                quad(
                    (x0, wy + 12),
                    (x0 + f * 10, (wy + hem_y) / 2),
                    (cx + f * hw * 1.15, hem_y - 4),
                    6,
                ),
                line,
                ow * 0.45,
            )
    if view == "alternate":  # back zip
        cv.pen.line([(cx, top + 8), (cx, wy + 40)], shade(line, 0.8), ow * 0.7)
        cv.pen.rrect((cx - 2.5, top + 7, cx + 2.5, top + 17), 1, fill=(190, 190, 195))
    _neck_finish(cv, cx, top, nw, neck, colour, view, ow, rng, band=False)
    cv.pen.line(neck, line, ow)
    return {"edge": 0.22}
