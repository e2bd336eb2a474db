"""Electronics and their accessories as flat product illustrations: Phone Case, Power Bank,
Headphones.

Each visible aspect changes the drawing: the power bank's "Ports" are drawn on its top edge
(main) and large on its end face (alternate); headphone "Type" sets the cup size against the
headband and "Connectivity" adds a cable with a jack or an LED and button.
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
    rotate,
    shade,
)

TRANSPARENT = (0, 0, 0, 0)
PHONE: RGB = (24, 24, 27)
LENS: RGB = (44, 46, 52)
PORT: RGB = (22, 22, 24)
METAL: RGB = (192, 194, 200)
CUSHION: RGB = (46, 46, 50)


def draw_phone_case(
    cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random
) -> dict:
    w, h, r = jit(rng, 140, 6), jit(rng, 300, 10), jit(rng, 28, 4)
    x0, y0 = 30.0, 20.0
    x1, y1 = x0 + w, y0 + h
    line = detail(colour)
    for by in (y0 + 80, y0 + 120):  # side button covers
        cv.pen.rrect((x1 - 4, by, x1 + 4, by + 30), 3, fill=shade(colour, 0.85))
    box = (x0, y0, x1, y1)
    cam_w = jit(rng, 64, 6)
    cam = (x0 + 12, y0 + 12, x0 + 12 + cam_w, y0 + 12 + cam_w)
    if view == "alternate":  # inside of the case: a lip around a darker lining, holes through
        cv.pen.rrect(box, r, fill=colour, outline=line, width=2)
        cv.pen.rrect((x0 + 8, y0 + 8, x1 - 8, y1 - 8), r - 6, fill=shade(colour, 0.9))
        cv.pen.rrect((x0 + 8, y0 + 8, x1 - 8, y1 - 8), r - 6, outline=detail(colour), width=1)
        cam = (x1 - 12 - cam_w, y0 + 12, x1 - 12, y0 + 12 + cam_w)
        cv.pen.rrect(cam, 16, fill=TRANSPARENT, outline=line, width=1.5)
    else:
        cv.fill([("rrect", box, r)], colour, a.get("Pattern", "Solid"))
        cv.pen.rrect(box, r, outline=line, width=2.2)
        cv.pen.rrect((x0 + 4, y0 + 4, x1 - 4, y1 - 4), r - 3, outline=shade(colour, 1.1), width=1)
        cv.pen.rrect(cam, 16, fill=PHONE, outline=line, width=1.5)
        lens_r = cam_w * 0.19
        cx0, cy0 = cam[0] + cam_w * 0.3, cam[1] + cam_w * 0.3
        for lx, ly in (
            (cx0, cy0),
            (cx0, cam[3] - cam_w * 0.3),
            (cam[2] - cam_w * 0.3, cam[1] + cam_w / 2),
        ):
            cv.pen.circle((lx, ly), lens_r, fill=LENS, outline=(120, 120, 128), width=1)
            cv.pen.circle((lx, ly), lens_r * 0.5, fill=(12, 12, 16))
            cv.pen.circle(
                (lx - lens_r * 0.25, ly - lens_r * 0.25), lens_r * 0.15, fill=(160, 170, 200)
            )
        cv.pen.circle((cam[2] - cam_w * 0.3, cam[1] + cam_w * 0.15), 3, fill=(236, 232, 200))
    cx = (x0 + x1) / 2
    cv.pen.rrect((cx - 22, y1 - 7, cx + 22, y1 + 1), 4, fill=TRANSPARENT)
    return {"edge": 0.12}


def _port(cv: Canvas, kind: str, centre: Point, size: float, shear: float = 0.0) -> None:
    """A USB port, ``size`` = its width; ``shear`` slants it onto a receding face."""
    x, y = centre

    def s(pts: list[Point]) -> list[Point]:
        return [(px + (py - y) * shear, py) for px, py in pts]

    if kind == "A":
        w, h = size, size * 0.42
        cv.pen.poly(
            s(
                [
                    (x - w / 2, y - h / 2),
                    (x + w / 2, y - h / 2),
                    (x + w / 2, y + h / 2),
                    (x - w / 2, y + h / 2),
                ]
            ),
            fill=PORT,
            outline=METAL,
            width=max(1, size * 0.06),
        )
        cv.pen.poly(
            s(
                [
                    (x - w * 0.38, y - h * 0.3),
                    (x + w * 0.38, y - h * 0.3),
                    (x + w * 0.38, y),
                    (x - w * 0.38, y),
                ]
            ),
            fill=(228, 228, 224),
        )
    else:
        w, h = size * 0.75, size * 0.28
        cv.pen.poly(
            s(
                arc_pts(x - w / 2 + h / 2, y, h / 2, h / 2, 90, 270, 8)
                + arc_pts(x + w / 2 - h / 2, y, h / 2, h / 2, 270, 450, 8)
            ),
            fill=PORT,
            outline=METAL,
            width=max(1, size * 0.05),
        )
        cv.pen.line(s([(x - w * 0.3, y), (x + w * 0.3, y)]), (110, 110, 116), max(1, h * 0.25))


def _port_kinds(ports: str) -> list[str]:
    return {"USB-C": ["C"], "USB-A + USB-C": ["A", "C"], "2x USB-A + USB-C": ["A", "A", "C"]}.get(
        ports, ["A", "C"]
    )


def draw_power_bank(
    cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random
) -> dict:
    kinds, line = _port_kinds(a.get("Ports", "USB-A + USB-C")), detail(colour)
    if view == "alternate":  # the port end, face-on, with the body receding below it
        w, h = jit(rng, 250, 10), jit(rng, 74, 6)
        x0, y0 = 150 - w / 2, 110.0
        cv.pen.poly(
            [
                (x0 + 6, y0 + h - 4),
                (x0 + w - 6, y0 + h - 4),
                (x0 + w - 16, y0 + h + 36),
                (x0 + 16, y0 + h + 36),
            ],
            fill=shade(colour, 0.85),
            outline=line,
            width=1.4,
        )
        cv.pen.rrect((x0, y0, x0 + w, y0 + h), 20, fill=colour, outline=line, width=1.8)
        gap = w / (len(kinds) + 1.4)
        for k, kind in enumerate(kinds):
            _port(cv, kind, (x0 + gap * (k + 1.1), y0 + h / 2), 46 if kind == "A" else 40)
        cv.pen.circle((x0 + w - 18, y0 + h / 2), 3.5, fill=(120, 200, 255))
        return {"edge": 0.1}
    fw, fh, depth = jit(rng, 150, 8), jit(rng, 232, 14), jit(rng, 24, 3)
    x0, y0 = 60.0, 70.0
    x1, y1 = x0 + fw, y0 + fh
    top = [
        (x0 + 8, y0),
        (x1 - 8, y0),
        (x1 - 8 + depth, y0 - depth * 0.9),
        (x0 + 8 + depth, y0 - depth * 0.9),
    ]
    side = [
        (x1, y0 + 8),
        (x1 + depth, y0 + 8 - depth * 0.9),
        (x1 + depth, y1 - 8 - depth * 0.9),
        (x1, y1 - 8),
    ]
    cv.pen.poly(top, fill=shade(colour, 1.1), outline=line, width=1.2)
    cv.pen.poly(side, fill=shade(colour, 0.8), outline=line, width=1.2)
    cv.pen.rrect((x0, y0, x1, y1), 14, fill=colour, outline=line, width=1.8)
    gap = fw / (len(kinds) + 1)
    for k, kind in enumerate(kinds):
        _port(
            cv,
            kind,
            (x0 + gap * (k + 1) + depth * 0.45, y0 - depth * 0.45),
            26 if kind == "A" else 22,
            shear=-1.1,
        )
    lit = rng.randint(1, 4)
    for k in range(4):
        cv.pen.circle(
            (x0 + fw / 2 - 21 + k * 14, y1 - 24),
            3.2,
            fill=(120, 205, 255) if k < lit else shade(colour, 0.7),
        )
    cv.pen.rrect(
        (x0 + fw / 2 - 26, y0 + 40, x0 + fw / 2 + 26, y0 + 46), 3, fill=shade(colour, 0.88)
    )
    return {"edge": 0.1}


def draw_headphones(
    cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random
) -> dict:
    over, wired = a.get("Type", "Over-Ear") != "On-Ear", a.get("Connectivity") == "Wired"
    cx, line = 150.0, detail(colour)
    turn = jit(rng, 10, 3)  # drawn for both views so the rest of the design matches
    turn = turn if view == "alternate" else 0.0
    band_rx, band_ry, band_y = jit(rng, 102, 5), jit(rng, 128, 8), 176.0
    cup_rx, cup_ry = (
        (jit(rng, 38, 2), jit(rng, 54, 3)) if over else (jit(rng, 28, 2), jit(rng, 30, 2))
    )
    cup_y = band_y + (62 if over else 44)
    near, far = (1.15, 0.82) if turn else (1.0, 1.0)

    def t(pts: list[Point]) -> list[Point]:
        return rotate(pts, (cx, band_y), turn)

    band = t(arc_pts(cx, band_y, band_rx, band_ry, 185, 355, 24))
    cv.pen.line(band, colour, 17)
    cv.pen.line(t(arc_pts(cx, band_y + 8, band_rx - 9, band_ry - 6, 220, 320, 16)), CUSHION, 9)
    cv.pen.line(band, line, 1.2)
    for sx, f in ((-1, far), (1, near)):
        end = t([(cx + sx * band_rx * 0.99, band_y - 8)])[0]
        ccx, ccy = end[0] + sx * 8, cup_y + (f - 1) * 40
        cv.pen.line([end, (ccx - sx * 4, ccy - cup_ry * f)], METAL, 7)
        pad_x = ccx - sx * cup_rx * f * 0.72
        cv.pen.ellipse(
            (
                pad_x - cup_rx * 0.5 * f,
                ccy - cup_ry * f * 0.96,
                pad_x + cup_rx * 0.5 * f,
                ccy + cup_ry * f * 0.96,
            ),
            fill=CUSHION,
        )
        cup = (ccx - cup_rx * f, ccy - cup_ry * f, ccx + cup_rx * f, ccy + cup_ry * f)
        cv.pen.ellipse(cup, fill=colour, outline=line, width=1.6)
        cv.pen.ellipse(
            (cup[0] + 8 * f, cup[1] + 10 * f, cup[2] - 8 * f, cup[3] - 10 * f),
            outline=shade(colour, 0.85) if sum(colour) > 120 else line,
            width=1.2,
        )
        if sx == -1 and wired:  # cable dangling to a jack
            pts = [(ccx, cup[3] - 4)]
            for k in range(1, 9):
                pts.append((ccx + 22 * (1 if k % 2 else -1) * (k / 8) + k * 4, cup[3] + k * 14))
            cv.pen.line(pts, CUSHION, 3.5)
            jx, jy = pts[-1]
            cv.pen.rrect((jx - 5, jy, jx + 5, jy + 22), 3, fill=CUSHION)
            cv.pen.line([(jx, jy + 22), (jx, jy + 36)], METAL, 3)
        elif sx == 1 and not wired:
            cv.pen.circle((ccx, cup[3] - 14 * f), 2.6, fill=(110, 200, 255))
            cv.pen.rrect((ccx - 8, cup[3] - 2, ccx + 8, cup[3] + 3), 2, fill=inside(colour))
    return {"edge": 0.14, "mirror": view == "alternate" and rng.random() < 0.5}
