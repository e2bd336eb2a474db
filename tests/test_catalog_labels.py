"""Label close-ups and packaging backs: printed lines, OCR legibility, mark boxes, determinism."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ecomvlm.catalog import marks as mk
from ecomvlm.catalog.draw_labels import SIDE_MAX, SIDE_MIN, draw_label, draw_packaging
from ecomvlm.catalog.taxonomy import CATEGORIES, MARKS


def _label_fields(cat, rng: random.Random) -> dict[str, str]:
    return {a.key: rng.choice(a.values) for a in cat.aspects
            if a.visible == "label" or a.key == "Brand"}


def _squash(text: str) -> str:
    """Case-insensitive, spaces ignored, and the I/l and O/0 confusions every OCR makes."""
    return re.sub(r"\s+", "", text.lower()).replace("l", "i").replace("0", "o")


def _read(value: str, squashed: str, tokens: set[str]) -> bool:
    """A 1-2 character value ('M', 'XL') must be a whole OCR token (OCR drops spaces, so 'SIZE M'
    comes back as the token 'sizem'); a longer value must be a substring."""
    if len(value) <= 2:
        return _squash(value) in tokens or "size" + _squash(value) in tokens
    return _squash(value) in squashed


@pytest.mark.parametrize("name", sorted(CATEGORIES))
def test_label_prints_every_field(name: str) -> None:
    cat = CATEGORIES[name]
    for seed in range(4):
        rng = random.Random(seed)
        fields = _label_fields(cat, rng)
        img, lines = draw_label(name, fields, rng)
        assert img.mode == "RGB"
        assert SIDE_MIN <= img.width <= SIDE_MAX and SIDE_MIN <= img.height <= SIDE_MAX
        assert lines and all(isinstance(s, str) and s for s in lines)
        printed = " ".join(lines).lower()
        for value in fields.values():
            assert value.lower() in printed, (value, lines)


def test_label_is_deterministic() -> None:
    fields = {"Capacity": "10000mAh", "Battery Type": "Lithium-Ion", "Brand": "Arcton"}
    a, la = draw_label("Power Bank", fields, random.Random(7))
    b, lb = draw_label("Power Bank", fields, random.Random(7))
    assert la == lb and np.array_equal(np.asarray(a), np.asarray(b))
    c, _ = draw_label("Power Bank", fields, random.Random(8))
    assert c.size != a.size or not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.slow
def test_labels_are_ocr_readable() -> None:
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    engine = rapidocr.RapidOCR()
    names = sorted(CATEGORIES)
    read, n = 0, 30
    for i in range(n):
        rng = random.Random(500 + i)
        cat = CATEGORIES[names[rng.randrange(len(names))]]
        fields = _label_fields(cat, rng)
        img, _ = draw_label(cat.name, fields, rng)
        result, _ = engine(np.asarray(img))
        texts = [r[1] for r in result or []]
        squashed = _squash(" ".join(texts))
        tokens = {_squash(t) for t in re.split(r"[^0-9A-Za-z%+]+", " ".join(texts)) if t}
        read += all(_read(v, squashed, tokens) for v in fields.values())
    print(f"labels with brand and every label field read by RapidOCR: {read}/{n}")
    assert read / n >= 0.8


def _pack(name: str, seed: int, marks: list[str] | None = None):
    cat = CATEGORIES[name]
    chosen = list(cat.marks) if marks is None else marks
    return draw_packaging(name, "Arcton", chosen, random.Random(seed))


def _overlap(a, b) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


@pytest.mark.parametrize("name", [c.name for c in CATEGORIES.values() if c.marks])
def test_packaging_boxes_are_small_separate_and_inked(name: str) -> None:
    for seed in range(6):
        img, boxes = _pack(name, seed)
        w, h = img.size
        assert SIDE_MIN <= w <= SIDE_MAX and SIDE_MIN <= h <= SIDE_MAX
        assert set(boxes) == set(CATEGORIES[name].marks)
        grey = np.asarray(img.convert("L"), np.float32)
        items = list(boxes.items())
        for i, (mark, (x0, y0, x1, y1)) in enumerate(items):
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (mark, boxes[mark])
            bw, bh = x1 - x0, y1 - y0
            if mk.is_text_block(mark):  # small print: short, but a sentence needs some width
                assert bh <= 0.15 * h and bw <= 0.45 * w, (mark, bw, bh, img.size)
            else:
                assert max(bw, bh) <= 0.12 * min(w, h) + 1, (mark, bw, bh, img.size)
                assert bh >= 9, (mark, bh)
            assert grey[y0:y1, x0:x1].std() > 20, f"{mark} box looks blank"
            for other, box in items[i + 1:]:
                assert not _overlap(boxes[mark], box), (mark, other)


def test_packaging_draws_only_the_marks_asked_for() -> None:
    assert _pack("Kettle", 3, [])[1] == {}
    for seed in range(8):
        full, boxes = _pack("Power Bank", seed)
        last = list(CATEGORIES["Power Bank"].marks)[-1]
        fewer, fewer_boxes = _pack("Power Bank", seed, list(CATEGORIES["Power Bank"].marks)[:-1])
        assert last not in fewer_boxes
        assert fewer_boxes == {k: v for k, v in boxes.items() if k != last}
        # every pixel outside the dropped mark's box (plus blur margin) is unchanged
        diff = np.abs(np.asarray(full, np.int16) - np.asarray(fewer, np.int16)).max(axis=2)
        x0, y0, x1, y1 = boxes[last]
        inside = np.zeros_like(diff, bool)
        inside[max(0, y0 - 3):y1 + 3, max(0, x0 - 3):x1 + 3] = True
        assert diff[~inside].max() == 0
        assert diff[inside].max() > 60


def test_packaging_is_deterministic_and_marks_shrink_at_224() -> None:
    a, ba = _pack("Toy", 11)
    b, bb = _pack("Toy", 11)
    assert ba == bb and np.array_equal(np.asarray(a), np.asarray(b))
    heights = []
    for seed in range(20):
        img, boxes = _pack("Desk Lamp", seed)
        heights += [(y1 - y0) * 224 / img.height for (_, y0, _, y1) in boxes.values()]
    print(f"icon mark height after resizing to 224x224: {min(heights):.1f}-{max(heights):.1f} px "
          f"(mean {np.mean(heights):.1f})")
    assert max(heights) < 24


@pytest.mark.parametrize("mark", sorted(MARKS))
def test_each_mark_draws_inside_its_box(mark: str) -> None:
    w, h = mk.mark_size(mark, 60 if mark in mk.ICON_ASPECT else 20)
    tile = Image.new("L", (int(w) + 40, int(h) + 40), 0)
    box = (20, 20, 20 + w, 20 + h)
    for variant in (0, 1):
        tile.paste(0, (0, 0, *tile.size))
        mk.draw_mark(ImageDraw.Draw(tile), mark, box, 255, variant=variant)
        ink = np.asarray(tile) > 0
        assert ink.mean() > 0.02
        ys, xs = np.nonzero(ink)
        assert xs.min() >= 18 and ys.min() >= 18 and xs.max() <= 22 + w and ys.max() <= 22 + h


def test_unknown_mark_is_refused() -> None:
    with pytest.raises(KeyError):
        draw_packaging("Kettle", "Arcton", ["not_a_mark"], random.Random(0))
