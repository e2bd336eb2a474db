"""Fashion accessories as flat product illustrations: Sneakers, Handbag, Cap.

Sneakers are shown in profile (main) and as a top-down pair (alternate), both showing laces or
the elastic gores of a slip-on. Handbag style is carried by the strap (two short handles, one
wide shoulder strap, a long thin crossbody strap); cap style by the brim (a bill vs all round).
"""

from __future__ import annotations

import random

from ecomvlm.catalog.draw_kit import (
    RGB,
    Canvas,
    Point,
    arc_pts,
    detail,
    inside,
    jit,
    mix,
    quad,
    rotate,
    shade,
)
from ecomvlm.catalog.patterns import luminance

GOLD: RGB = (200, 165, 80)
SILVER: RGB = (185, 185, 192)


def _sole_colour(colour: RGB, rng: random.Random) -> RGB:
    if luminance(colour) > 200:
        return rng.choice([(214, 212, 206), (190, 140, 85)])
    return rng.choice([(242, 242, 238), (242, 242, 238), (235, 232, 222), (38, 38, 40)])


def _lace_colour(colour: RGB) -> RGB:
    return (245, 245, 242) if luminance(colour) < 170 else (60, 60, 64)


def _sneaker_side(cv: Canvas, colour: RGB, sole_c: RGB, laced: bool, rng: random.Random) -> None:
    x0, length = 20.0, jit(rng, 280, 8)
    x1 = x0 + length
    st, sh = 150.0, jit(rng, 24, 3)
    g = st + sh
    line, ow = detail(colour), rng.uniform(1.4, 2.2)
    sole = (
        [(x0 + 2, st - 4)]
        + quad((x1 - 40, st - 4), (x1 + 6, st - 6), (x1 - 6, g - 6), 8)
        + [(x0 + 16, g)]
        + quad((x0 + 16, g), (x0 - 2, g), (x0 + 2, st), 5)[1:]
    )
    hy = jit(rng, 60, 4)  # collar height at the heel
    heel = quad((x0 + 8, st), (x0 - 6, st - 44), (x0 + 8, hy), 8)
    near = quad((x0 + 10, hy), (x0 + 52, hy + 26), (x0 + 98, hy + 12), 8)
    if laced:
        tongue = [(x0 + 102, hy - 6), (x0 + 116, hy - 14), (x0 + 128, hy - 4)]
        vamp = quad((x0 + 128, hy - 4), (x0 + 165, hy + 14), (x0 + 204, hy + 38), 8)
    else:
        tongue = []
        vamp = quad((x0 + 98, hy + 12), (x0 + 160, hy + 16), (x0 + 204, hy + 38), 8)
    toe = quad((x0 + 204, hy + 38), (x1 - 6, hy + 42), (x1 - 6, st - 4), 8)
    upper = heel + near[1:] + tongue + vamp[1:] + toe[1:]
    cv.pen.poly(upper, fill=colour, outline=line, width=ow)
    far = quad((x0 + 12, hy + 2), (x0 + 52, hy + 12), (x0 + 100, hy + 6), 8)
    cv.pen.poly(near + far[::-1], fill=inside(colour))
    cv.pen.line(near, line, ow)
    panel = shade(colour, 0.86)
    cv.pen.poly(
        quad((x1 - 70, st - 2), (x1 - 64, hy + 44), (x1 - 22, hy + 44), 6) + [(x1 - 8, st - 4)],
        fill=panel,
        outline=line,
        width=ow * 0.6,
    )  # toe cap
    cv.pen.poly(
        quad((x0 + 6, hy + 48), (x0 + 56, hy + 44), (x0 + 86, st - 2), 6) + [(x0 + 8, st - 2)],
        fill=panel,
        outline=line,
        width=ow * 0.6,
    )  # heel counter
    cv.pen.rrect((x0 + 2, hy - 6, x0 + 14, hy + 20), 3, fill=shade(colour, 0.75))
    if laced:
        lace = _lace_colour(colour)
        n = 6
        for k in range(n):
            ex, ey = vamp[1 + k * (len(vamp) - 2) // (n - 1)]
            ey += 9
            cv.pen.line([(ex - 2, ey), (ex + 9, ey - 12)], lace, 3.4)
            cv.pen.circle((ex, ey), 2.3, fill=(50, 50, 52))
        bx, by = x0 + 122, hy + 2
        for dx in (-16, 14):  # the bow: two loops and two loose ends
            cv.pen.ellipse(
                (bx + min(0, dx), by - 7, bx + max(0, dx), by + 5), outline=lace, width=2.8
            )
        cv.pen.line(quad((bx, by), (bx - 12, by + 16), (bx - 6, by + 32)), lace, 2.8)
        cv.pen.line(quad((bx, by), (bx + 12, by + 14), (bx + 16, by + 30)), lace, 2.8)
    else:  # elastic gore at the throat
        gx, gy = x0 + 106, hy + 12
        cv.pen.poly(
            [(gx - 8, gy - 2), (gx + 10, gy - 2), (gx + 2, gy + 34)],
            fill=shade(colour, 0.55),
            outline=line,
            width=0.8,
        )
        cv.pen.line(vamp, line, ow * 1.4)
    cv.pen.poly(sole, fill=sole_c, outline=detail(sole_c), width=ow * 0.8)
    cv.pen.line([(x0 + 12, g - 9), (x1 - 16, g - 9)], detail(sole_c), 1.0)


def _shoe_top(
    cv: Canvas, colour: RGB, laced: bool, cx: float, tilt: float, sole_c: RGB, rng: random.Random
) -> None:
    top, length, toe_w, heel_w = 30.0, jit(rng, 250, 6), jit(rng, 44, 3), jit(rng, 32, 2)
    outline = arc_pts(cx, top + toe_w, toe_w, toe_w, 180, 360, 12) + arc_pts(
        cx, top + length - heel_w, heel_w, heel_w, 0, 180, 12
    )
    sole = rotate(
        [
            (cx + (x - cx) * 1.07, top + length / 2 + (y - top - length / 2) * 1.03)
            for x, y in outline
        ],
        (cx, 150),
        tilt,
    )
    outline = rotate(outline, (cx, 150), tilt)
    line = detail(colour)
    cv.pen.poly(sole, fill=sole_c, outline=detail(sole_c), width=1)
    cv.pen.poly(outline, fill=colour, outline=line, width=1.6)

    def r(pts: list[Point]) -> list[Point]:
        return rotate(pts, (cx, 150), tilt)

    cv.pen.line(r(arc_pts(cx, top + toe_w + 8, toe_w - 6, toe_w - 4, 200, 340, 12)), line, 1.2)
    opening = arc_pts(cx, top + length - 50, heel_w - 13, 28, 0, 360, 20)
    cv.pen.poly(r(opening), fill=inside(colour), outline=line, width=1.6)
    cv.pen.poly(
        r(
            [
                (cx - 7, top + length - 8),
                (cx + 7, top + length - 8),
                (cx + 6, top + length),
                (cx - 6, top + length),
            ]
        ),
        fill=shade(colour, 0.75),
    )
    tongue = [
        (cx - 17, top + 70),
        (cx + 17, top + 70),
        (cx + 15, top + length - 80),
        (cx - 15, top + length - 80),
    ]
    cv.pen.poly(r(tongue), fill=shade(colour, 0.93), outline=line, width=1)
    if laced:
        lace = _lace_colour(colour)
        for k in range(5):
            y = top + 78 + k * 15
            cv.pen.line(r([(cx - 18, y), (cx + 18, y + 8)]), lace, 3)
            for sx in (-20, 20):
                cv.pen.circle(r([(cx + sx, y + (4 if sx > 0 else 0))])[0], 2, fill=(50, 50, 52))
    else:
        for sx in (-1, 1):
            cv.pen.poly(
                r([(cx + sx * 24, top + 86), (cx + sx * 10, top + 92), (cx + sx * 22, top + 130)]),
                fill=shade(colour, 0.55),
            )
        cv.pen.line(r(arc_pts(cx, top + 96, 26, 20, 180, 360, 10)), line, 1.2)


def draw_sneakers(
    cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random
) -> dict:
    laced = a.get("Closure", "Lace-Up") != "Slip-On"
    sole_c = _sole_colour(colour, rng)  # drawn first: both views show the same sole
    if view == "main":
        _sneaker_side(cv, colour, sole_c, laced, rng)
        return {"edge": 0.2, "mirror": rng.random() < 0.3}
    _shoe_top(cv, colour, laced, 95, jit(rng, -7, 3), sole_c, rng)
    _shoe_top(cv, colour, laced, 205, jit(rng, 7, 3), sole_c, rng)
    return {"edge": 0.2}


def draw_handbag(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    pattern, style = a.get("Pattern", "Solid"), a.get("Style", "Tote")
    cx, ow, line = 150.0, rng.uniform(1.5, 2.3), detail(colour)
    strap_c = colour if rng.random() < 0.6 else shade(colour, 0.8)
    back = view == "alternate"
    if style == "Crossbody":
        top, w, h = 200.0, jit(rng, 92, 5), jit(rng, 122, 6)
        apex = jit(rng, 36, 8)
        for sx in (-1, 1):  # long thin strap rising far above the bag
            cv.pen.line(
                quad((cx + sx * (w - 6), top + 4), (cx + sx * w * 0.8, apex + 40), (cx, apex), 12),
                strap_c,
                4.5,
            )
            cv.pen.circle((cx + sx * (w - 6), top + 2), 4.5, outline=GOLD, width=2)
        body = ("rrect", (cx - w, top, cx + w, top + h), 14)
        cv.fill([body], colour, pattern)
        cv.pen.rrect(body[1], 14, outline=line, width=ow)
        if back:
            cv.pen.line([(cx - w + 10, top + 34), (cx + w - 10, top + 34)], line, ow * 0.8)
        else:
            flap = (
                [(cx - w, top)]
                + quad((cx - w, top + h * 0.55), (cx, top + h * 0.8), (cx + w, top + h * 0.55), 12)
                + [(cx + w, top)]
            )
            cv.fill([("poly", flap)], colour, pattern)
            cv.pen.poly(flap, outline=line, width=ow)
            cv.pen.rrect(
                (cx - 9, top + h * 0.62, cx + 9, top + h * 0.76),
                3,
                fill=GOLD,
                outline=shade(GOLD, 0.6),
                width=1,
            )
        return {"edge": 0.22}
    if style == "Shoulder Bag":
        top, w, h = 150.0, jit(rng, 112, 6), jit(rng, 118, 6)
        cv.pen.line(arc_pts(cx, top + 10, w * 0.72, jit(rng, 125, 8), 180, 360, 24), strap_c, 14)
        cv.pen.line(
            arc_pts(cx, top + 10, w * 0.72, jit(rng, 125, 8), 180, 360, 24), shade(strap_c, 0.85), 2
        )
        # a half-moon body: a deep rounded bottom under a gently dipping top edge
        body = (
            arc_pts(cx, top, w, h, 0, 180, 28)
            + quad((cx - w, top), (cx, top + 18), (cx + w, top), 10)[1:-1]
        )
        cv.fill([("poly", body)], colour, pattern)
        cv.pen.poly(body, outline=line, width=ow)
        if not back:
            zip_line = quad((cx - w + 14, top + 8), (cx, top + 24), (cx + w - 14, top + 8), 10)
            cv.pen.line(zip_line, SILVER, 2.2)
            cv.pen.rrect((cx + w - 30, top + 10, cx + w - 24, top + 28), 2, fill=SILVER)
        return {"edge": 0.25}
    top, wt, wb, h = 150.0, jit(rng, 100, 5), jit(rng, 84, 4), jit(rng, 150, 8)
    handle_h, handle_w = jit(rng, 100, 8), jit(rng, 46, 4)
    for dx, f in ((6, 0.75), (0, 1.0)):  # back handle, then front handle
        cv.pen.line(
            arc_pts(cx + dx, top + 6, handle_w, handle_h, 180, 360, 20), shade(strap_c, f), 10
        )
    body = (
        [(cx - wt, top), (cx + wt, top), (cx + wb, top + h - 10)]
        + quad((cx + wb, top + h - 10), (cx + wb, top + h), (cx + wb - 12, top + h), 4)[1:]
        + quad((cx - wb + 12, top + h), (cx - wb, top + h), (cx - wb, top + h - 10), 4)
    )
    cv.fill([("poly", body)], colour, pattern)
    cv.pen.poly(body, outline=line, width=ow)
    cv.pen.poly(
        [(cx - wt + 4, top), (cx + wt - 4, top), (cx + wt - 8, top + 7), (cx - wt + 8, top + 7)],
        fill=inside(colour),
    )
    if back:
        cv.pen.line([(cx - wt + 16, top + 40), (cx + wt - 16, top + 40)], line, ow * 0.7)
    else:
        for sx in (-1, 1):
            cv.pen.rrect(
                (cx + sx * handle_w - 6, top + 2, cx + sx * handle_w + 6, top + 22),
                3,
                fill=shade(strap_c, 0.85),
                outline=line,
                width=0.8,
            )
    return {"edge": 0.25, "mirror": back}


def draw_cap(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    pattern, ow, line = a.get("Pattern", "Solid"), rng.uniform(1.4, 2.2), detail(colour)
    cx, base = 150.0, 200.0
    if a.get("Style") == "Bucket Hat":
        tw, bw, ch = jit(rng, 64, 4), jit(rng, 80, 4), jit(rng, 92, 6)
        reach, drop = jit(rng, 132, 6), jit(rng, 40, 4)
        if view == "alternate":  # three-quarter view from above
            brim = ("ellipse", (cx - reach, base - 40, cx + reach, base + 40))
            cv.fill([brim], colour, pattern)
            cv.pen.ellipse(brim[1], outline=line, width=ow)
            for k in (12, 22):
                cv.pen.ellipse(
                    (cx - reach + k, base - 40 + k * 0.35, cx + reach - k, base + 40 - k * 0.35),
                    outline=line,
                    width=0.8,
                )
            crown = (
                [(cx - bw, base)] + arc_pts(cx, base - ch, tw, 24, 180, 360, 12) + [(cx + bw, base)]
            )
            cv.fill([("poly", crown + arc_pts(cx, base, bw, 26, 0, 180, 12))], colour, pattern)
            cv.pen.poly(crown + arc_pts(cx, base, bw, 26, 0, 180, 12), outline=line, width=ow)
            cv.pen.ellipse(
                (cx - tw, base - ch - 24, cx + tw, base - ch + 24),
                fill=shade(colour, 1.05),
                outline=line,
                width=ow,
            )
            return {"edge": 0.2}
        crown = (
            [(cx - bw, base)]
            + [(cx - tw, base - ch)]
            + quad((cx - tw, base - ch), (cx, base - ch - 10), (cx + tw, base - ch), 8)[1:]
            + [(cx + bw, base)]
        )
        brim = [(cx - bw, base - 4), (cx + bw, base - 4), (cx + reach, base + drop)] + quad(
            (cx + reach, base + drop), (cx, base + drop + 26), (cx - reach, base + drop), 12
        )[1:]
        cv.fill([("poly", crown), ("poly", brim)], colour, pattern)
        cv.pen.poly(crown, outline=line, width=ow)
        cv.pen.poly(brim, outline=line, width=ow)
        cv.pen.line([(cx - bw + 2, base - 16), (cx + bw - 2, base - 16)], line, ow * 0.7)
        for k in (8, 16, 24):
            f = k / (reach - bw + 30)
            cv.pen.line(
                quad(
                    (cx - reach + k, base + drop - k * 0.8),
                    (cx, base + drop + 26 - k * 1.3),
                    (cx + reach - k, base + drop - k * 0.8),
                    12,
                ),
                line,
                0.8 + f,
            )
        return {"edge": 0.2}
    rx, ry = jit(rng, 96, 4), jit(rng, 104, 6)
    if view == "alternate":  # front view: crown panels over a crescent brim
        brim = arc_pts(cx, base - 6, rx + 12, jit(rng, 48, 4), 0, 180, 16) + arc_pts(
            cx, base - 2, rx - 6, 12, 180, 0, 16
        )
        cv.fill([("poly", brim)], shade(colour, 0.92), pattern)
        cv.pen.poly(brim, outline=line, width=ow)
        crown = arc_pts(cx, base, rx, ry, 180, 360, 24)
        cv.fill([("poly", crown)], colour, pattern)
        cv.pen.poly(crown, outline=line, width=ow)
        for f in (-0.55, 0.0, 0.55):
            cv.pen.line(
                quad((cx, base - ry), (cx + f * rx * 0.9, base - ry * 0.6), (cx + f * rx, base), 8),
                line,
                ow * 0.6,
            )
        cv.pen.ellipse((cx - 7, base - ry - 4, cx + 7, base - ry + 5), fill=shade(colour, 0.85))
        return {"edge": 0.22}
    # side view: dome crown with the bill pointing right
    ccx = cx - 30
    reach = jit(rng, 78, 6)
    bill = (
        [(ccx + rx - 16, base - 6)]
        + quad(
            (ccx + rx + 10, base - 16),
            (ccx + rx + reach - 10, base - 6),
            (ccx + rx + reach, base + 18),
            10,
        )
        + quad(
            (ccx + rx + reach, base + 20), (ccx + rx + 30, base + 12), (ccx + rx - 14, base + 8), 8
        )[1:]
    )
    crown = arc_pts(ccx, base, rx, ry, 180, 360, 24)
    cv.fill([("poly", crown), ("poly", bill)], colour, pattern)
    cv.pen.poly(bill, outline=line, width=ow)
    cv.pen.poly(crown, outline=line, width=ow)
    for f in (-0.5, 0.1, 0.65):  # panel seams from the button
        cv.pen.line(
            quad((ccx, base - ry), (ccx + f * rx * 0.8, base - ry * 0.7), (ccx + f * rx, base), 8),
            line,
            ow * 0.6,
        )
    cv.pen.ellipse((ccx - 8, base - ry - 5, ccx + 8, base - ry + 4), fill=shade(colour, 0.85))
    for ex, ey in ((ccx - rx * 0.45, base - ry * 0.62), (ccx + rx * 0.38, base - ry * 0.66)):
        cv.pen.circle((ex, ey), 2.6, fill=inside(colour))
    cv.pen.poly(arc_pts(ccx - rx * 0.62, base, 18, 22, 180, 360, 10), fill=(0, 0, 0, 0))
    cv.pen.line(arc_pts(ccx - rx * 0.62, base, 18, 22, 180, 360, 10), line, ow)
    cv.pen.line([(ccx - rx + 2, base - 8), (ccx + rx - 4, base - 8)], mix(line, colour, 0.4), 1)
    return {"edge": 0.22, "mirror": rng.random() < 0.3}
