"""Targeted crops for multi-image questions: regions likely to hold small compliance marks,
added as extra images so a 224 px tower sees them large.

Two proposal sources. ``detector`` (default) runs the curation stage's template detector for
marks and warning blocks (``curate.marks_detect``) on each photo at <= 400 px, ~0.2 s a photo.
``ocr`` reads each photo with RapidOCR and proposes the blocks of small print, at several
times the cost. Each detection, best first, becomes a square crop with context around it unless
a crop already chosen holds most of it; at most ``max_crops`` crops (the token budget is
``max_crops`` extra images).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image

from ecomvlm.images import load_image

DETECT_MAX_SIDE = 400  # the scale the mark templates were made for
PAD = 0.35  # context around a region, as a share of its longer side
MIN_SIDE = 64  # px: a tiny mark keeps some context (the tower upsamples the crop)


@dataclass(frozen=True)
class Region:
    image: int  # index of the photo in the listing
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the photo's pixels
    score: float


def _detector_boxes(image: Image.Image) -> list[tuple[tuple[int, int, int, int], float]]:
    from ecomvlm.curate.marks_detect import detect_marks

    k = min(1.0, DETECT_MAX_SIDE / max(image.size))
    small = image if k >= 1.0 else image.resize((round(image.width * k),
                                                 round(image.height * k)), Image.BICUBIC)
    return [(tuple(round(v / k) for v in m.box), m.score) for m in detect_marks(small)]


@lru_cache(maxsize=1)
def _ocr():
    import torch

    from ecomvlm.model import OcrEngine

    return OcrEngine(threads=torch.get_num_threads())


def _ocr_boxes(image: Image.Image) -> list[tuple[tuple[int, int, int, int], float]]:
    """Small print: lines lower than 6% of the short side (headlines and brands are legible
    without help), each scored by its OCR confidence."""
    short = min(image.size)
    return [(line.box, line.score) for line in _ocr().read(image)
            if line.box[3] - line.box[1] < 0.06 * short]


def _padded_square(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, ...]:
    """The box with context around it, as a square inside the photo (towers that centre-crop
    would cut the ends off a strip)."""
    x0, y0, x1, y1 = box
    side = round(max(x1 - x0, y1 - y0) * (1 + 2 * PAD))
    side = min(max(side, MIN_SIDE), min(size))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(min(max(cx - side / 2, 0), size[0] - side))
    top = int(min(max(cy - side / 2, 0), size[1] - side))
    return left, top, left + side, top + side


def _covered(box: tuple[int, ...], crop: tuple[int, ...]) -> float:
    """The share of ``box`` that lies inside ``crop``."""
    ix = max(0, min(box[2], crop[2]) - max(box[0], crop[0]))
    iy = max(0, min(box[3], crop[3]) - max(box[1], crop[1]))
    return ix * iy / max(1, (box[2] - box[0]) * (box[3] - box[1]))


def propose(images: list[Image.Image], source: str = "detector",
            max_crops: int = 4) -> list[Region]:
    """Up to ``max_crops`` square regions over all photos, best detection first; a detection
    mostly inside a chosen region adds none (neighbouring marks share a crop)."""
    if source not in ("detector", "ocr"):
        raise ValueError(f"crop source must be 'detector' or 'ocr', got {source!r}")
    found = _detector_boxes if source == "detector" else _ocr_boxes
    hits = [(score, index, box) for index, image in enumerate(images)
            for box, score in found(image)]
    hits.sort(key=lambda h: (-h[0], h[1], h[2]))
    regions: list[Region] = []
    for score, index, box in hits:
        if len(regions) >= max_crops:
            break
        if any(r.image == index and _covered(box, r.box) >= 0.5 for r in regions):
            continue
        crop = _padded_square(box, images[index].size)
        regions.append(Region(index, tuple(crop), round(score, 4)))
    return regions


def listing_crops(paths: list[str], source: str = "detector",
                  max_crops: int = 4) -> tuple[list[dict], float]:
    """Crop references ({"path", "box"}) for a listing's photos and the seconds it took."""
    start = time.perf_counter()
    images = [load_image(p) for p in paths]
    refs = [{"path": paths[r.image], "box": list(r.box)}
            for r in propose(images, source, max_crops)]
    return refs, time.perf_counter() - start


def open_ref(ref: str | dict) -> Image.Image:
    """An image reference (a path, or a crop of one) as an RGB PIL image."""
    if isinstance(ref, str):
        return load_image(ref)
    return load_image(ref["path"]).crop(tuple(ref["box"]))
