"""Household hard goods as flat product illustrations: Mug, Water Bottle, Kettle, Desk Lamp.

The body is painted solid in the product colour with cylinder shading; small parts that are
often another material (a bottle lid, a kettle's power base, a lamp's bulb) take a neutral so
the product colour stays the dominant one. Alternate views turn the product around (handle on
the other side), take it apart (lid off) or change its pose.
"""

from __future__ import annotations

import math
import random

from ecomvlm.catalog.draw_kit import (
    RGB,
    Canvas,
    arc_pts,
    detail,
    inside,
    jit,
    mirror,
    quad,
    shade,
)

TRANSPARENT = (0, 0, 0, 0)
STEEL: RGB = (196, 198, 204)
BASE_DARK: RGB = (44, 44, 47)


def draw_mug(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    cx, top = 140.0, 50.0
    w, h = jit(rng, 76, 6), jit(rng, 168, 14)
    taper = rng.choice((0.0, 0.0, jit(rng, 8, 3)))  # some mugs narrow towards the foot
    ell = jit(rng, 15, 3) * (1.6 if view == "alternate" else 1.0)
    line = detail(colour)
    hx0, hy0, hx1, hy1 = cx + w - 20, top + 26, cx + w + jit(rng, 50, 6), top + h - 34
    t = jit(rng, 17, 3)
    cv.pen.ellipse((hx0, hy0, hx1, hy1), fill=colour, outline=line, width=1.4)
    cv.pen.ellipse((hx0 + t, hy0 + t, hx1 - t, hy1 - t), fill=TRANSPARENT, outline=line, width=1.4)
    body = (
        [(cx - w, top), (cx - w + taper, top + h)]
        + arc_pts(cx, top + h, w - taper, ell, 180, 0, 16)[1:-1]
        + [(cx + w - taper, top + h), (cx + w, top)]
    )
    cv.pen.poly(body, fill=colour, outline=line, width=1.6)
    cv.pen.ellipse(
        (cx - w, top - ell, cx + w, top + ell), fill=shade(colour, 1.06), outline=line, width=1.2
    )
    cv.pen.ellipse((cx - w + 6, top - ell + 4, cx + w - 6, top + ell - 3), fill=inside(colour))
    cv.cylinder(cx - w, cx + w, 0.22)
    return {"edge": 0.12, "mirror": view == "alternate"}


def draw_water_bottle(
    cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random
) -> dict:
    cx = 100.0
    bw, nw = jit(rng, 44, 4), jit(rng, 25, 3)
    neck_y, shoulder_y, bottom = jit(rng, 80, 4), jit(rng, 118, 6), jit(rng, 350, 8)
    line = detail(colour)
    lid_c = rng.choice([shade(colour, 0.8), (40, 40, 42), STEEL, (236, 236, 232)])
    left = (
        [(cx - nw, neck_y)]
        + quad((cx - nw, neck_y + 12), (cx - bw, neck_y + 14), (cx - bw, shoulder_y), 6)[1:]
        + [(cx - bw, bottom - 6)]
    )
    left += arc_pts(cx, bottom - 6, bw, 9, 180, 90, 6)[1:]
    body = left + mirror(left[::-1], cx)[1:]
    cv.pen.poly(body, fill=colour, outline=line, width=1.6)
    if rng.random() < 0.5:  # a grip band
        cv.pen.line([(cx - bw + 1, bottom - 70), (cx + bw - 1, bottom - 70)], line, 1.2)
    cv.cylinder(cx - bw, cx + bw, 0.25)
    lid = (cx - nw - 3, neck_y - jit(rng, 44, 4), cx + nw + 3, neck_y + 4)
    if view == "alternate":  # lid off: threads at the neck, the lid standing beside
        cv.pen.rrect(
            (cx - nw + 3, neck_y - 12, cx - 3 + nw, neck_y + 2),
            3,
            fill=STEEL,
            outline=shade(STEEL, 0.6),
            width=1,
        )
        for y in (neck_y - 8, neck_y - 3):
            cv.pen.line([(cx - nw + 4, y), (cx + nw - 4, y + 2)], shade(STEEL, 0.6), 1)
        dx, dy = cx + bw + 48 - lid[0], bottom - 8 - lid[3]
        lid = (lid[0] + dx, lid[1] + dy, lid[2] + dx, lid[3] + dy)
    cv.pen.rrect(lid, 7, fill=lid_c, outline=detail(lid_c), width=1.4)
    lx = (lid[0] + lid[2]) / 2
    cv.pen.arc((lx - 16, lid[1] - 18, lx + 16, lid[1] + 14), 180, 360, fill=lid_c, width=6)
    for k in range(1, 5):
        x = lid[0] + (lid[2] - lid[0]) * k / 5
        cv.pen.line([(x, lid[1] + 8), (x, lid[3] - 6)], detail(lid_c), 1)
    return {"edge": 0.12}


def draw_kettle(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    cx, line = 160.0, detail(colour)
    handle_c = colour if rng.random() < 0.6 else (38, 38, 40)
    top, bottom = jit(rng, 66, 5), 250.0
    if rng.random() < 0.6:  # jug kettle: tapered body, spout at the rim, side handle
        bw, tw = jit(rng, 82, 5), jit(rng, 60, 4)
        cv.pen.line(
            quad((cx + tw - 6, top + 10), (cx + bw + 56, top + 8), (cx + bw - 6, bottom - 46), 12),
            handle_c,
            18,
        )
        spout = [
            (cx - tw + 6, top + 4),
            (cx - tw - 40, top - 8),
            (cx - tw - 34, top + 10),
            (cx - tw - 2, top + 52),
        ]
        cv.pen.poly(spout, fill=colour, outline=line, width=1.4)
        body = [(cx - tw, top)] + quad(
            (cx - tw, top), (cx - bw - 4, bottom - 60), (cx - bw, bottom), 8
        )[1:]
        body = body + mirror(body[::-1], cx)
        cv.pen.poly(body, fill=colour, outline=line, width=1.6)
        cv.pen.ellipse(
            (cx - tw + 2, top - 10, cx + tw - 2, top + 10),
            fill=shade(colour, 1.05),
            outline=line,
            width=1.2,
        )
        cv.pen.rrect((cx - 14, top - 18, cx + 14, top - 4), 5, fill=handle_c)
        wx = cx + tw - 18
        cv.pen.rrect(
            (wx - 6, top + 40, wx + 6, bottom - 40), 5, fill=(196, 214, 226), outline=line, width=1
        )
        for k in range(4):
            y = top + 60 + k * (bottom - top - 120) / 3
            cv.pen.line([(wx - 4, y), (wx + 1, y)], (80, 90, 100), 1)
        cv.cylinder(cx - bw, cx + bw, 0.2)
    else:  # dome kettle: round body, low spout, handle arching over the lid
        r = jit(rng, 92, 5)
        cy = bottom - r * 0.8
        cv.pen.line(arc_pts(cx, cy - r * 0.55, r * 0.72, r * 0.75, 200, 340, 16), handle_c, 14)
        spout = [
            (cx - r * 0.7, cy + 10),
            (cx - r - 48, cy - 54),
            (cx - r - 38, cy - 60),
            (cx - r * 0.62, cy - 20),
        ]
        cv.pen.poly(spout, fill=colour, outline=line, width=1.4)
        body = arc_pts(cx, cy, r, r * 0.8, 150, 390, 28)
        body = [(cx - r * 0.86, bottom)] + body[1:-1] + [(cx + r * 0.86, bottom)]
        body = [p if p[1] <= bottom else (p[0], bottom) for p in body]
        cv.pen.poly(body, fill=colour, outline=line, width=1.6)
        cv.pen.ellipse(
            (cx - 34, cy - r * 0.8 - 8, cx + 34, cy - r * 0.8 + 12),
            fill=shade(colour, 1.05),
            outline=line,
            width=1.2,
        )
        cv.pen.circle((cx, cy - r * 0.8 - 8), 8, fill=handle_c)
        bw = r * 0.86
        cv.cylinder(cx - r, cx + r, 0.22)
    cv.pen.rrect((cx - bw - 10, bottom - 2, cx + bw + 10, bottom + 22), 10, fill=BASE_DARK)
    cv.pen.rrect((cx + bw - 16, bottom - 20, cx + bw - 4, bottom - 10), 3, fill=BASE_DARK)
    return {"edge": 0.12, "mirror": (view == "alternate") != (rng.random() < 0.3)}


def draw_desk_lamp(
    cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random
) -> dict:
    line, bx = detail(colour), 90.0
    joint_c = shade(colour, 0.75)
    cv.pen.ellipse((bx - 62, 282, bx + 62, 308), fill=shade(colour, 0.9), outline=line, width=1.4)
    cv.pen.rrect((bx - 52, 268, bx + 52, 296), 12, fill=colour, outline=line, width=1.4)
    cv.pen.rrect((bx + 26, 274, bx + 38, 282), 3, fill=(60, 60, 62))  # switch
    base = (bx, 268.0)
    if rng.random() < 0.6:  # balanced-arm lamp
        up = 1.0 if view == "main" else 0.7
        elbow = (bx + jit(rng, 50, 12) * up, jit(rng, 120, 15) * up + (1 - up) * 60)
        head = (elbow[0] + jit(rng, 120, 12), elbow[1] + jit(rng, -20, 20))
        for p, q in ((base, elbow), (elbow, head)):
            cv.pen.line([p, q], colour, 10)
            cv.pen.line([p, q], line, 1)
        for p in (base, elbow):
            cv.pen.circle(p, 9, fill=joint_c, outline=line, width=1)
        ang = jit(rng, 70, 10)
    else:  # stem and bent neck
        stem_top = (bx, jit(rng, 110, 12))
        cv.pen.line([base, stem_top], colour, 10)
        neck = quad(stem_top, (bx, stem_top[1] - 60), (bx + 110, stem_top[1] - 50), 10)
        cv.pen.line(neck, colour, 9)
        head = neck[-1]
        ang = jit(rng, 60, 10)
    # cone shade: narrow at the joint, wide mouth pointing down and away
    d = (math.cos(math.radians(ang)), math.sin(math.radians(ang)))
    n = (-d[1], d[0])
    length, narrow, wide = jit(rng, 78, 6), 14.0, jit(rng, 46, 4)
    mouth = (head[0] + d[0] * length, head[1] + d[1] * length)
    shade_pts = [
        (head[0] + n[0] * narrow, head[1] + n[1] * narrow),
        (mouth[0] + n[0] * wide, mouth[1] + n[1] * wide),
        (mouth[0] - n[0] * wide, mouth[1] - n[1] * wide),
        (head[0] - n[0] * narrow, head[1] - n[1] * narrow),
    ]
    cv.pen.circle(head, 16, fill=colour, outline=line, width=1.2)
    cv.pen.poly(shade_pts, fill=colour, outline=line, width=1.6)
    bulb = [
        (mouth[0] + n[0] * (wide - 5) + d[0] * 2, mouth[1] + n[1] * (wide - 5) + d[1] * 2),
        (mouth[0] - n[0] * (wide - 5) + d[0] * 2, mouth[1] - n[1] * (wide - 5) + d[1] * 2),
    ]
    cv.pen.line(bulb, (255, 244, 200), 7)
    cv.pen.circle(head, 6, fill=joint_c)
    return {"edge": 0.15, "mirror": view == "alternate"}
