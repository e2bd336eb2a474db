"""Bottoms as flat garment illustrations: Skirt and Jeans.

Skirt length changes how far the hem sits below the waistband (and so the outline's aspect
ratio); jeans fit changes the leg width at the knee and hem, the first thing a buyer checks.
"""

from __future__ import annotations

import random

from ecomvlm.catalog.draw_kit import RGB, Canvas, Point, detail, jit, mirror, quad, shade

# skirt length -> (length below the waistband, hem half-width)
_SKIRTS = {"Mini": (80, 72), "Midi": (166, 88), "Maxi": (254, 100)}


def draw_skirt(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    pattern = a.get("Pattern", "Solid")
    cx, top = 150.0, 20.0
    wb, band = jit(rng, 50, 3), jit(rng, 15, 2)
    length, hem_half = _SKIRTS.get(a.get("Skirt Length", "Midi"), _SKIRTS["Midi"])
    y0 = top + band
    hem_y, hw = y0 + jit(rng, length, 5), jit(rng, hem_half, 3)
    left = [(cx - wb, y0)] + quad(
        (cx - wb, y0), (cx - wb - (hw - wb) * 0.25, y0 + length * 0.3), (cx - hw, hem_y), 8
    )[1:]
    left += quad((cx - hw, hem_y), (cx - hw * 0.5, hem_y + 9), (cx, hem_y + 9), 8)[1:]
    body = left + mirror(left[::-1], cx)[1:]
    waistband = [(cx - wb, top), (cx + wb, top), (cx + wb, y0), (cx - wb, y0)]
    cv.fill([("poly", body), ("poly", waistband)], colour, pattern)
    ow, line = rng.uniform(1.3, 2.2), detail(colour)
    cv.pen.poly(body, outline=line, width=ow)
    cv.pen.poly(waistband, outline=line, width=ow)
    pleated = rng.random() < 0.4
    folds = rng.randint(9, 13) if pleated else rng.randint(3, 5)
    for k in range(1, folds):
        f = k / folds * 2 - 1
        bend = 0 if pleated else rng.uniform(-8, 8)
        cv.pen.line(
            quad(
                (cx + f * wb * 0.9, y0 + 4),
                (cx + f * (wb + hw) / 2 + bend, (y0 + hem_y) / 2),
                (cx + f * hw * 0.95, hem_y + 8 * (1 - f * f) - 2),
                6,
            ),
            line,
            ow * (0.5 if pleated else 0.4),
        )
    cv.pen.line(quad((cx - hw, hem_y - 8), (cx, hem_y + 1), (cx + hw, hem_y - 8)), line, ow * 0.4)
    if view == "alternate":  # centre-back zip with its pull
        cv.pen.line([(cx, top + 2), (cx, y0 + 50)], shade(line, 0.8), ow * 0.8)
        cv.pen.rrect((cx - 2.5, y0 + 2, cx + 2.5, y0 + 13), 1, fill=(185, 185, 190))
    elif rng.random() < 0.5:
        cv.pen.circle(
            (cx + wb - 12, top + band / 2), 4, fill=(236, 234, 226), outline=line, width=0.7
        )
    return {"edge": 0.22}


# fit -> (knee width, hem width, hem centre offset from the middle)
_FITS = {"Skinny": (42, 31, 31), "Straight": (52, 47, 38), "Wide Leg": (66, 74, 50)}


def _thread(colour: RGB) -> RGB:
    """Contrast stitching: the golden thread of classic denim, paler on dark washes."""
    if sum(colour) > 600:
        return (200, 196, 180)
    if max(colour) - min(colour) < 20:
        return (150, 150, 150)
    return (205, 150, 70)


def draw_jeans(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    cx, top = 150.0, 16.0
    wh, band = jit(rng, 60, 3), jit(rng, 15, 1.5)
    hip_y, hh = top + jit(rng, 70, 4), wh + jit(rng, 6, 2)
    crotch_y, hem_y = top + jit(rng, 120, 5), top + jit(rng, 322, 6)
    knee_w, hem_w, off = _FITS.get(a.get("Fit", "Straight"), _FITS["Straight"])
    knee_w, hem_w, off = jit(rng, knee_w, 2), jit(rng, hem_w, 2), jit(rng, off, 1.5)
    knee_y = (crotch_y + hem_y) / 2 + 10
    knee_c = (cx - hh / 2 + cx - off) / 2
    left: list[Point] = [
        (cx - wh, top),
        (cx - hh, hip_y),
        (knee_c - knee_w / 2, knee_y),
        (cx - off - hem_w / 2, hem_y),
        (cx - off + hem_w / 2, hem_y + 2),
        (knee_c + knee_w / 2, knee_y),
        (cx, crotch_y),
    ]
    body = left + mirror(left[::-1], cx)[1:]
    cv.fill([("poly", body)], colour, "Denim")
    ow, line, thread = rng.uniform(1.3, 2.0), detail(colour), _thread(colour)
    cv.pen.poly(body, outline=line, width=ow)
    cv.pen.line([(cx - wh + 0.5, top + band), (cx + wh - 0.5, top + band)], line, ow)
    for side in (-1, 1):  # hem stitching
        hx = cx + side * off
        cv.pen.line([(hx - hem_w / 2 + 1, hem_y - 8), (hx + hem_w / 2 - 1, hem_y - 7)], thread, 1)
    for f in (-0.9, -0.45, 0.0, 0.45, 0.9):  # belt loops
        x = cx + f * (wh - 6)
        cv.pen.rrect(
            (x - 3, top - 2, x + 3, top + band + 3), 1, fill=colour, outline=line, width=0.8
        )
    if view == "main":
        cv.pen.circle(
            (cx + 3, top + band / 2), 4.5, fill=(190, 150, 75), outline=(120, 90, 40), width=0.8
        )
        fly = [(cx + 10, top + band + 2), (cx + 10, crotch_y - 26)] + quad(
            (cx + 10, crotch_y - 26), (cx + 10, crotch_y - 12), (cx, crotch_y - 12), 5
        )[1:]
        cv.pen.line(fly, thread, 1.2)
        cv.pen.line([(cx, top + band), (cx, crotch_y)], line, ow * 0.7)
        for side in (-1, 1):  # scooped front pockets
            pts = quad(
                (cx + side * (wh - 26), top + band),
                (cx + side * (wh - 20), hip_y - 22),
                (cx + side * (hh - 1), hip_y - 12),
                8,
            )
            cv.pen.line(pts, line, ow * 0.8)
            cv.pen.line([(x - side * 3, y) for x, y in pts], thread, 1)
        cv.pen.rrect(
            (cx + wh - 36, top + band + 8, cx + wh - 20, top + band + 24),
            1,
            outline=thread,
            width=1,
        )
    else:
        yoke = [
            (cx - hh + 1, top + band + 26),
            (cx, top + band + 38),
            (cx + hh - 1, top + band + 26),
        ]
        cv.pen.line(yoke, line, ow * 0.8)
        cv.pen.line([(cx, top + band), (cx, crotch_y)], line, ow * 0.7)
        for side in (-1, 1):  # back patch pockets
            x0, x1 = cx + side * 12, cx + side * (hh - 10)
            y0 = top + band + 44
            pocket = [
                (x0, y0),
                (x1, y0),
                (x1 - side * 2, y0 + 40),
                ((x0 + x1) / 2, y0 + 48),
                (x0 + side * 2, y0 + 40),
            ]
            cv.pen.poly(pocket, outline=line, width=ow)
            cv.pen.line([(x0 + side * 3, y0 + 4), (x1 - side * 3, y0 + 4)], thread, 1)
        cv.pen.rrect(
            (cx + 18, top + 2, cx + 44, top + band - 2),
            1.5,
            fill=(150, 105, 60),
            outline=(95, 65, 35),
            width=0.8,
        )
    return {"edge": 0.2}
