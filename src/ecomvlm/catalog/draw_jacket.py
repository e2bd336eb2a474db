"""Jackets as flat garment illustrations: zip or button front, with or without a hood.

Built on the tops' torso and sleeve construction, broader and with long sleeves; the closure
(a zip line with its pull vs lapels and buttons) and the hood (a hood with its face opening
and drawstrings vs a collar) are what the buyer checks.
"""

from __future__ import annotations

import random

from ecomvlm.catalog.draw_kit import RGB, Canvas, arc_pts, detail, inside, jit, mirror, quad, shade
from ecomvlm.catalog.draw_tops import hem_line, sleeve, torso

METAL: RGB = (178, 178, 184)


def _hood(
    cv: Canvas,
    cx: float,
    top: float,
    nw: float,
    colour: RGB,
    view: str,
    ow: float,
    size: tuple[float, float],
) -> None:
    line = detail(colour)
    hw, hh = nw + size[0], size[1]
    outer = arc_pts(cx, top + 6, hw, hh, 180, 360, 20) + [
        (cx + hw - 4, top + 18),
        (cx - hw + 4, top + 18),
    ]
    cv.fill([("poly", outer)], colour)
    cv.pen.poly(outer, outline=line, width=ow)
    if view == "main":  # the face opening and drawstrings
        cv.pen.poly(arc_pts(cx, top + 8, hw - 12, hh - 14, 180, 360, 18), fill=inside(colour))
        cv.pen.line(arc_pts(cx, top + 8, hw - 12, hh - 14, 180, 360, 18), line, ow * 1.6)
        for dx, sway in ((-9, -2.0), (9, 1.5)):
            end = (cx + dx + sway, top + hh * 0.85)
            cv.pen.line([(cx + dx, top + 10), end], (236, 236, 230), 2.6)
            cv.pen.rrect((end[0] - 2, end[1], end[0] + 2, end[1] + 7), 1, fill=(70, 70, 70))
    else:
        cv.pen.line([(cx, top + 6 - hh), (cx, top + 12)], line, ow * 0.8)


def draw_jacket(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    cx, top = 150.0, 78.0
    sw, nw, drop = jit(rng, 64, 4), jit(rng, 19, 2), jit(rng, 14, 3)
    arm_y, hem_y = top + jit(rng, 76, 4), top + jit(rng, 206, 8)
    zipped, hooded = a.get("Closure", "Zip") != "Button", a.get("Hood") == "Hooded"
    ow, line = rng.uniform(1.6, 2.6), detail(colour)
    hood_size, hw = (jit(rng, 26, 3), jit(rng, 70, 5)), sw + jit(rng, -2, 2)
    theta, length, cuff = jit(rng, 17, 3), jit(rng, 196, 6), jit(rng, 38, 3)
    if hooded:
        _hood(cv, cx, top, nw, colour, view, ow, hood_size)
    front = view == "main"
    if front and not zipped:
        neck = quad((cx + nw, top), (cx + nw * 0.4, top + 40), (cx, top + 78), 8)
        neck = neck + mirror(neck[::-1], cx)[1:]
    else:
        neck = arc_pts(cx, top, nw, 12 if front else 5, 0, 180, 12)
    body = torso(cx, top, sw, nw, drop, arm_y, hem_y, hw, neck, sleeveless=False, hem_sag=3)
    left, o, i = sleeve((cx - sw, top + drop), (cx - sw + 3, arm_y), theta, length, cuff)
    sleeves = [left, mirror(left, cx)]
    cv.fill([("poly", s) for s in sleeves] + [("poly", body)], colour)
    for s in sleeves:
        cv.pen.poly(s, outline=line, width=ow)
    for co, ci in ((o, i), tuple(mirror([o, i], cx))):
        hem_line(cv, co, ci, 14, line, ow * 0.7)
    cv.pen.poly(body, outline=line, width=ow)
    cv.pen.line([(cx - sw + 1, hem_y - 14), (cx + sw - 1, hem_y - 14)], line, ow * 0.7)
    if not front:
        cv.pen.line([(cx, top + 8), (cx, hem_y)], line, ow * 0.6)
        if not hooded:
            cv.pen.poly(
                arc_pts(cx, top + 2, nw + 5, 10, 180, 360, 10), fill=colour, outline=line, width=ow
            )
        return {"edge": 0.3}
    if zipped:
        cv.pen.poly(neck[1:-1] + [neck[-1]], fill=inside(colour))
        if not hooded:  # stand collar
            collar = arc_pts(cx, top - 2, nw + 4, 16, 180, 360, 10) + arc_pts(
                cx, top + 10, nw + 4, 6, 0, 180, 10
            )
            cv.pen.poly(collar, fill=colour, outline=line, width=ow)
        cv.pen.line([(cx, top + 4), (cx, hem_y + 3)], METAL, 3.0)
        cv.pen.line([(cx, top + 4), (cx, hem_y + 3)], shade(METAL, 0.6), 1.0)
        cv.pen.rrect(
            (cx - 3.5, top + 10, cx + 3.5, top + 26),
            2,
            fill=METAL,
            outline=shade(METAL, 0.6),
            width=0.8,
        )
        for sx in (-1, 1):  # slanted welt pockets
            px = cx + sx * 42
            cv.pen.line([(px - sx * 6, top + 120), (px + sx * 8, top + 160)], line, ow * 1.2)
    else:
        cv.pen.poly(neck, fill=inside(colour))
        lapel = [
            (cx - nw + 1, top - 2),
            (cx - nw - 16, top + 24),
            (cx - nw - 8, top + 31),
            (cx - nw - 13, top + 40),
            (cx - 1, top + 80),
        ]
        for pts in (lapel, mirror(lapel, cx)):
            cv.pen.poly(pts, fill=colour, outline=line, width=ow)
        cv.pen.line([(cx + 4, top + 80), (cx + 4, hem_y + 3)], line, ow * 0.8)
        button = (40, 36, 34) if sum(colour) > 200 else (200, 196, 186)
        for k in range(4):
            cv.pen.circle(
                (cx - 4, top + 96 + k * (hem_y - top - 120) / 3),
                5.5,
                fill=button,
                outline=shade(button, 0.6),
                width=0.8,
            )
        for sx in (-1, 1):  # flap pockets
            px = cx + sx * 38
            cv.pen.poly(
                [
                    (px - 17, hem_y - 70),
                    (px + 17, hem_y - 70),
                    (px + 17, hem_y - 58),
                    (px - 17, hem_y - 58),
                ],
                outline=line,
                width=ow,
            )
    return {"edge": 0.3}
