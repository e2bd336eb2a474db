"""Toys as flat product illustrations, one drawing per "Type": Teddy Bear, Building Blocks,
Toy Car. The product colour is the plush, the bricks or the car body; faces, wheels and
windows are small neutral parts.
"""

from __future__ import annotations

import random

from ecomvlm.catalog.draw_kit import RGB, Canvas, arc_pts, detail, jit, mix, rotate, shade

EYE: RGB = (28, 24, 22)
GLASS: RGB = (178, 204, 224)
TYRE: RGB = (34, 34, 36)
HUB: RGB = (190, 192, 198)


def _oval(cx: float, cy: float, rx: float, ry: float, deg: float = 0.0):
    return rotate(arc_pts(cx, cy, rx, ry, 0, 360, 24), (cx, cy), deg)


def _teddy(cv: Canvas, colour: RGB, back: bool, rng: random.Random) -> None:
    cx, line = 150.0, detail(colour)
    tint = mix(colour, (246, 238, 222), 0.45)
    hr, by = jit(rng, 58, 4), jit(rng, 215, 6)
    hy = by - jit(rng, 118, 6)
    for sx in (-1, 1):  # feet with paw pads
        cv.pen.poly(_oval(cx + sx * 42, by + 62, 30, 26), fill=colour, outline=line, width=1.4)
        if not back:
            cv.pen.poly(_oval(cx + sx * 44, by + 66, 16, 14), fill=tint)
    cv.pen.poly(
        _oval(cx, by, jit(rng, 64, 4), jit(rng, 74, 4)), fill=colour, outline=line, width=1.6
    )
    if back:
        cv.pen.circle((cx, by + 44), 11, fill=shade(colour, 0.92), outline=line, width=1.2)
        cv.pen.rrect((cx + 52, by + 10, cx + 66, by + 30), 2, fill=(240, 240, 234))
    elif rng.random() < 0.4:
        cv.pen.poly(_oval(cx, by + 8, 34, 40), fill=tint)
    for sx in (-1, 1):
        cv.pen.poly(
            _oval(cx + sx * 62, by - 24, 22, 44, -sx * 35), fill=colour, outline=line, width=1.4
        )
        cv.pen.circle(
            (cx + sx * hr * 0.78, hy - hr * 0.7), 23, fill=colour, outline=line, width=1.4
        )
        if not back:
            cv.pen.circle((cx + sx * hr * 0.78, hy - hr * 0.7), 12, fill=tint)
    cv.pen.circle((cx, hy), hr, fill=colour, outline=line, width=1.6)
    if back:
        return
    cv.pen.poly(_oval(cx, hy + hr * 0.38, 28, 22), fill=tint)
    cv.pen.poly(_oval(cx, hy + hr * 0.24, 10, 7), fill=EYE)
    cv.pen.line([(cx, hy + hr * 0.3), (cx, hy + hr * 0.5)], EYE, 1.6)
    cv.pen.line(arc_pts(cx, hy + hr * 0.42, 10, 6, 20, 160, 8), EYE, 1.6)
    for sx in (-1, 1):
        ex, ey = cx + sx * hr * 0.38, hy - hr * 0.15
        cv.pen.circle((ex, ey), 6, fill=EYE)
        cv.pen.circle((ex + 2, ey - 2), 1.8, fill=(250, 250, 250))


def _brick(cv: Canvas, x: float, y: float, studs: int, colour: RGB) -> None:
    """A brick of ``studs`` studs with its front face at (x, y), drawn with top and side faces."""
    w, h, d = studs * 26.0, 34.0, 14.0
    lift = d * 0.6
    line = detail(colour)
    cv.pen.poly(
        [(x, y), (x + w, y), (x + w + d, y - lift), (x + d, y - lift)],
        fill=shade(colour, 1.08),
        outline=line,
        width=1,
    )
    cv.pen.poly(
        [(x + w, y), (x + w + d, y - lift), (x + w + d, y + h - lift), (x + w, y + h)],
        fill=shade(colour, 0.78),
        outline=line,
        width=1,
    )
    cv.pen.poly(
        [(x, y), (x + w, y), (x + w, y + h), (x, y + h)], fill=colour, outline=line, width=1.2
    )
    for k in range(studs):
        sx = x + 13 + k * 26 + d / 2
        sy = y - lift / 2
        cv.pen.rrect((sx - 8, sy - 8, sx + 8, sy), 1, fill=shade(colour, 0.9))
        cv.pen.ellipse(
            (sx - 8, sy - 12, sx + 8, sy - 4), fill=shade(colour, 1.12), outline=line, width=0.8
        )


def _blocks(cv: Canvas, colour: RGB, alt: bool, rng: random.Random) -> None:
    def c() -> RGB:
        return shade(colour, rng.uniform(0.93, 1.05))

    if not alt:  # a small pyramid
        for x, y, n in (
            (40, 230, 4),
            (150, 230, 4),
            (70, 196, 4),
            (140, 196, 2),
            (100, 162, 3),
            (120, 128, 2),
        ):
            _brick(cv, x + rng.uniform(-3, 3), y, n, c())
    else:  # a tower and loose bricks
        for k, n in enumerate((2, 2, 2, 2)):
            _brick(cv, 60 + rng.uniform(-2, 2), 230 - k * 34, n, c())
        _brick(cv, 150, 230, 4, c())
        _brick(cv, 170, 196, 2, c())


def _car(cv: Canvas, colour: RGB, front: bool, rng: random.Random) -> None:
    line = detail(colour)
    if front:
        cv.pen.rrect((62, 172, 100, 222), 8, fill=TYRE)
        cv.pen.rrect((200, 172, 238, 222), 8, fill=TYRE)
        cv.pen.poly(
            [(84, 126), (104, 66), (196, 66), (216, 126)], fill=colour, outline=line, width=1.6
        )
        cv.pen.poly(
            [(96, 122), (112, 76), (188, 76), (204, 122)], fill=GLASS, outline=line, width=1
        )
        cv.pen.rrect((46, 118, 254, 196), 22, fill=colour, outline=line, width=1.6)
        for x in (82, 218):
            cv.pen.circle((x, 146), 14, fill=(250, 244, 200), outline=line, width=1)
        cv.pen.rrect((118, 150, 182, 170), 5, fill=(50, 50, 54))
        cv.pen.rrect((56, 182, 244, 194), 5, fill=HUB)
        return
    length = jit(rng, 270, 10)
    x0, x1 = 20.0, 20 + length
    roof0, roof1 = x0 + length * 0.32, x0 + length * 0.66
    cabin = [(x0 + length * 0.22, 114), (roof0, 62), (roof1, 62), (x0 + length * 0.84, 114)]
    cv.pen.poly(cabin, fill=colour, outline=line, width=1.6)
    mid = (roof0 + roof1) / 2
    cv.pen.poly(
        [(x0 + length * 0.27, 110), (roof0 + 5, 70), (mid - 4, 70), (mid - 4, 110)],
        fill=GLASS,
        outline=line,
        width=1,
    )
    cv.pen.poly(
        [(mid + 4, 110), (mid + 4, 70), (roof1 - 4, 70), (x0 + length * 0.78, 110)],
        fill=GLASS,
        outline=line,
        width=1,
    )
    cv.pen.rrect((x0, 108, x1, 172), 24, fill=colour, outline=line, width=1.6)
    cv.pen.line([(mid, 114), (mid, 164)], line, 1.2)
    cv.pen.rrect((mid + 10, 122, mid + 26, 127), 2, fill=shade(colour, 0.7))
    cv.pen.ellipse((x1 - 14, 122, x1 - 2, 134), fill=(250, 244, 200))
    cv.pen.ellipse((x0 + 2, 122, x0 + 12, 134), fill=(200, 40, 40))
    for wx in (x0 + length * 0.2, x0 + length * 0.8):
        cv.pen.poly(arc_pts(wx, 172, 34, 34, 180, 360, 14), fill=shade(colour, 0.4))
        cv.pen.circle((wx, 172), 28, fill=TYRE)
        cv.pen.circle((wx, 172), 12, fill=HUB, outline=shade(HUB, 0.6), width=1)


def draw_toy(cv: Canvas, colour: RGB, a: dict[str, str], view: str, rng: random.Random) -> dict:
    kind, alt = a.get("Type", "Teddy Bear"), view == "alternate"
    if kind == "Building Blocks":
        _blocks(cv, colour, alt, rng)
        return {"edge": 0.1}
    if kind == "Toy Car":
        _car(cv, colour, alt, rng)
        return {"edge": 0.12, "mirror": rng.random() < 0.4}
    _teddy(cv, colour, alt, rng)
    return {"edge": 0.3}
