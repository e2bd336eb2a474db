"""A cheap detector for the small compliance marks printed on packaging.

Compliance marks are standardised symbols, so a template detector is legitimate: at start-up
each pictogram (CE, UKCA, WEEE bin, Mobius loop, food-safe glass and fork, under-3 circle) is
rendered from ``catalog.marks``'s drawing code at a ladder of heights, and each is slid over the
grey image with normalised cross-correlation (``cv2.matchTemplate``). Ink may be dark on light or
light on dark, so the absolute correlation counts. Warnings that are text blocks (choking
hazard, lithium battery, hot surface) are found in the OCR lines instead, by fuzzy match
against ``catalog.marks.WARNING_TEXT``; "CE"/"UKCA"/"0-3" read as words back up the pictograms.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ecomvlm.catalog.marks import ICON_ASPECT, WARNING_LINES, WARNING_TEXT, draw_mark, mark_size

from .records import MarkBox, OcrBox

HEIGHTS = (12, 14, 16, 18, 20, 23, 26, 30)  # px: marks on packs are ~2-8% of the short side
SUPERSAMPLE = 4
# NCC a match needs, per mark. Set on a dev catalog between the weakest true match and the
# strongest false one (letters of brand names, the triangle of a warning block):
# true matches score 0.75-1.0, false ones under 0.7.
ICON_THRESHOLD = {
    "ce": 0.75, "ukca": 0.7, "weee": 0.7, "recycle": 0.72, "food_safe": 0.65, "under_3": 0.64,
    "choking_hazard": 0.58, "battery_warning": 0.65, "hot_surface": 0.65,
}
SURE_MATCH = 0.85  # a pictogram match this good stands even inside an OCR line
TEXT_MATCH = 0.6  # fuzzy ratio an OCR line needs against a warning's words
NMS_IOU = 0.3


def _render(mark: str, size: float, variant: int = 0) -> np.ndarray:
    """One mark drawn 4x and box-reduced (ink=1 on 0), ``size`` as ``mark_size`` reads it."""
    w, h = mark_size(mark, size)
    s = SUPERSAMPLE
    tile = Image.new("L", ((int(w) + 3) * s, (int(h) + 3) * s), 0)
    draw_mark(ImageDraw.Draw(tile), mark, (s, s, (w + 1) * s, (h + 1) * s), 255, variant=variant)
    arr = np.asarray(tile.reduce(s), np.float32) / 255.0
    ys, xs = np.nonzero(arr > 0.05)
    return arr[max(0, ys.min() - 1):ys.max() + 2, max(0, xs.min() - 1):xs.max() + 2]


@lru_cache(maxsize=1)
def icon_templates() -> dict[str, list[np.ndarray]]:
    """mark -> float32 templates, one per height and drawing variant. Warning blocks (icon
    plus fixed small print) are templates too, at text sizes of 5.5-9.5 px: OCR cannot read
    print that small, but the block's layout is as fixed as a pictogram."""
    out: dict[str, list[np.ndarray]] = {}
    for mark in ICON_ASPECT:
        out[mark] = [_render(mark, h, v) for h in HEIGHTS
                     for v in ((0, 1) if mark == "under_3" else (0,))]
    for mark in WARNING_LINES:
        out[mark] = [_render(mark, px) for px in np.arange(5.5, 10.0, 0.5)]
    return out


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _covered(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """The share of box ``a`` that lies inside box ``b``."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, (a[2] - a[0]) * (a[3] - a[1]))


def _nms(cands: list[MarkBox]) -> list[MarkBox]:
    """Best first; a box overlapping a better one (of any mark) is dropped: one place, one mark."""
    kept: list[MarkBox] = []
    for c in sorted(cands, key=lambda m: -m.score):
        if all(_iou(c.box, k.box) < NMS_IOU for k in kept):
            kept.append(c)
    return kept


def detect_icons(image: Image.Image, max_per_mark: int = 2) -> list[MarkBox]:
    """Pictogram marks found by template matching at several scales."""
    grey = np.asarray(image.convert("L"), np.float32) / 255.0
    H, W = grey.shape
    cands: list[MarkBox] = []
    for mark, tiles in icon_templates().items():
        thr = ICON_THRESHOLD[mark]
        found: list[MarkBox] = []
        for t in tiles:
            th, tw = t.shape
            if th >= H or tw >= W:
                continue
            ncc = np.abs(cv2.matchTemplate(grey, t, cv2.TM_CCOEFF_NORMED))
            ncc[~np.isfinite(ncc)] = 0  # flat patches have no defined correlation
            ys, xs = np.nonzero(ncc >= thr)
            if len(xs) == 0:
                continue
            order = np.argsort(-ncc[ys, xs])[:20]
            for i in order:
                x, y = int(xs[i]), int(ys[i])
                found.append(MarkBox(mark=mark, box=(x + 1, y + 1, x + tw - 1, y + th - 1),
                                     score=round(float(ncc[y, x]), 3)))
        cands += _nms(found)[:max_per_mark]
    return _nms(cands)


_WORD = re.compile(r"[^a-z0-9]+")


def _norm(text: str) -> str:
    return _WORD.sub(" ", text.lower()).strip()


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def detect_text_marks(ocr: list[OcrBox]) -> list[MarkBox]:
    """Warnings and word marks read by OCR. A warning matches when a run of consecutive lines
    reads like its fixed text (packs wrap it differently, OCR may split or reorder lines);
    its box covers the lines of the run that carry the warning's own words."""
    out: list[MarkBox] = []
    lines = [(_norm(o.text), o) for o in ocr if not _marklike(o.text)]
    for mark, text in WARNING_TEXT.items():
        target = _norm(text)
        vocab = set(target.split())
        best: tuple[float, list[tuple[str, OcrBox]]] = (0.0, [])
        for i in range(len(lines)):
            joined = ""
            for j in range(i, min(i + 5, len(lines))):
                joined = f"{joined} {lines[j][0]}".strip()
                r = SequenceMatcher(None, joined, target).ratio()
                if r > best[0]:
                    best = (r, lines[i:j + 1])
        own = [o for norm, o in best[1] if _share_in(norm, vocab) >= 0.5]
        if best[0] >= TEXT_MATCH and own:
            out.append(MarkBox(mark=mark, box=_union([o.box for o in own]),
                               score=round(best[0], 3)))
    for norm, o in ((_norm(o.text), o) for o in ocr):
        compact = norm.replace(" ", "")
        if compact == "ce":
            out.append(MarkBox(mark="ce", box=o.box, score=round(0.5 + 0.4 * o.score, 3)))
        elif compact == "ukca":
            out.append(MarkBox(mark="ukca", box=o.box, score=round(0.5 + 0.4 * o.score, 3)))
    return out


def _share_in(norm: str, vocab: set[str]) -> float:
    """Share of a line's characters in words that (nearly) belong to ``vocab``; OCR drops
    spaces ('Notfor'), so a token counts when it is a concatenation of vocabulary words."""
    tokens = norm.split()
    good = sum(len(t) for t in tokens if t in vocab or any(t.startswith(v) and len(v) > 2
                                                           for v in vocab))
    return good / max(1, sum(len(t) for t in tokens))


_MARK_LETTERS = set("ceuka03x")


def _marklike(text: str) -> bool:
    """OCR's reading of a mark rather than of words: 'CE', 'UK', 'CEK', 'K△ace', '0-3'."""
    compact = "".join(c for c in text.lower() if c.isascii() and c.isalnum())
    return len(compact) < 3 or (len(compact) <= 5 and set(compact) <= _MARK_LETTERS)


def _in_words(box: tuple[int, int, int, int], ocr: list[OcrBox]) -> bool:
    """Does ``box`` sit mostly inside an OCR line of ordinary words (a brand, a blurb)? A
    pictogram is never part of a word, but letters like C, E, W correlate with marks."""
    return any(_covered(box, o.box) > 0.5 for o in ocr if not _marklike(o.text))


def detect_marks(image: Image.Image, ocr: list[OcrBox] | None = None) -> list[MarkBox]:
    """All marks in a packaging image: pictograms and warning blocks by template, backed by
    warnings read in OCR text (when OCR ran)."""
    ocr = ocr or []
    found = detect_icons(image) + detect_text_marks(ocr)
    warnings = [m for m in found if m.mark in WARNING_LINES]
    # a warning block's own icon (triangle, cell) is not a pictogram mark of its own
    # OCR's veto is for middling matches only: it also reads marks as junk words ('YY4') or
    # runs them into a neighbouring line of small print
    icons = [m for m in found if m.mark not in WARNING_LINES
             and (m.score >= SURE_MATCH or not _in_words(m.box, ocr))
             and not any(_covered(m.box, w.box) > 0.5 for w in warnings)]
    merged: dict[str, MarkBox] = {}
    for m in icons + warnings:  # templates come first: their box is the whole mark
        if m.mark not in merged:
            merged[m.mark] = m
        elif m.score > merged[m.mark].score:
            merged[m.mark] = merged[m.mark].model_copy(update={"score": m.score})
    return sorted(merged.values(), key=lambda m: (m.box[1], m.box[0]))
