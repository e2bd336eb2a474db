"""`ecomvlm catalog gallery`: a contact sheet of listings, so a person can look at the data.

Each cell is one listing: its photos in order, its (noisy) title, and, when the catalog's
ground truth is beside it, the true category, the claims that are wrong, and red boxes
around the compliance marks on the packaging shots.
"""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from ecomvlm.catalog.marks import load_font
from ecomvlm.images import load_image
from ecomvlm.schema import read_listings

THUMB = 112
PAD = 8
TEXT_LINES = 4
LINE_HEIGHT = 15
MAX_IMAGES = 6


def _font(size: int):
    return load_font(size)


def _printable(text: str) -> str:
    # Sellers' emoji have no glyph in our fonts; drawing them gives tofu boxes.
    return "".join(c for c in text if ord(c) < 0x2000).strip()


def _thumbnail(path: Path, mark_boxes: dict | None) -> Image.Image:
    img = load_image(path)
    if mark_boxes:  # outline marks at full resolution, before shrinking
        draw = ImageDraw.Draw(img)
        for box in mark_boxes.values():
            draw.rectangle(box, outline=(230, 0, 0), width=max(2, img.width // 100))
    img.thumbnail((THUMB, THUMB))
    cell = Image.new("RGB", (THUMB, THUMB), (245, 245, 245))
    cell.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
    return cell


def _truth_by_id(catalog: Path, split: str, ids: set[str]) -> dict[str, dict]:
    path = catalog / "ground_truth" / f"{split}.jsonl"
    if not path.exists():
        return {}
    found = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["id"] in ids:
                found[record["id"]] = record
                if len(found) == len(ids):
                    break
    return found


def _caption(listing, truth: dict | None) -> list[str]:
    lines = textwrap.wrap(" ".join(_printable(listing.title).split()), width=78)[:2]
    if truth:
        lines.append(f"true: {truth['category']} | "
                     + ", ".join(f"{k}={truth['aspects'][k]}" for k in list(truth["aspects"])[:3]))
        wrong = ", ".join(truth["wrong_aspects"]) or "none"
        marks = ", ".join(truth["compliance"]) or "none"
        lines.append(f"wrong claims: {wrong} | marks: {marks}")
    else:
        lines.append(f"{listing.category} | {len(listing.images)} images")
    return lines[:TEXT_LINES]


def draw_gallery(catalog_dir: str | Path, out_path: str | Path, *, split: str = "train",
                 n: int = 24, columns: int = 3) -> Path:
    """Draw the first ``n`` listings of ``split`` into a PNG contact sheet at ``out_path``."""
    catalog = Path(catalog_dir)
    listings_path = catalog / f"{split}.jsonl"
    if not listings_path.exists():
        raise FileNotFoundError(f"no listings file {listings_path}; run `ecomvlm catalog synth`")
    listings = list(itertools.islice(read_listings(listings_path), n))
    if not listings:
        raise ValueError(f"{listings_path} holds no valid listings")
    truths = _truth_by_id(catalog, split, {x.id for x in listings})

    cell_w = MAX_IMAGES * (THUMB + 2) + PAD
    cell_h = THUMB + PAD * 2 + TEXT_LINES * LINE_HEIGHT
    rows = -(-len(listings) // columns)
    sheet = Image.new("RGB", (columns * cell_w + PAD, rows * cell_h + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    font, bold = _font(12), _font(13)
    for i, listing in enumerate(listings):
        x0 = PAD + (i % columns) * cell_w
        y0 = PAD + (i // columns) * cell_h
        truth = truths.get(listing.id)
        for k, image in enumerate(listing.images[:MAX_IMAGES]):
            boxes = truth["images"][k].get("mark_boxes") if truth else None
            sheet.paste(_thumbnail(listings_path.parent / image, boxes), (x0 + k * (THUMB + 2), y0))
        y = y0 + THUMB + 4
        for j, line in enumerate(_caption(listing, truth)):
            draw.text((x0, y + j * LINE_HEIGHT), line, fill=(20, 20, 20) if j else (0, 60, 140),
                      font=bold if j == 0 else font)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
