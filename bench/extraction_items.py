"""Listings for the serving benches: the dev catalog's test split, else a fresh small catalog."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ecomvlm.catalog.synth import synthesize
from ecomvlm.catalog.taxonomy import CATEGORIES
from ecomvlm.curate.clean import canonical_category, clean_title
from ecomvlm.images import load_image
from ecomvlm.schema import read_listings

CATALOG = Path(__file__).parents[1] / "runs" / "dev" / "cat2k" / "test.jsonl"


def extraction_items(n: int, max_images: int, seed: int) -> list[tuple[str, str, list]]:
    """``n`` (category, cleaned title, up to ``max_images`` photos) of listings whose category
    is in the taxonomy and that have photos."""
    path = CATALOG
    if not path.exists():
        folder = Path(tempfile.mkdtemp(prefix="bench-items-"))
        synthesize(folder, max(2 * n, 32), seed=seed, progress=False)
        path = folder / "train.jsonl"  # a speed figure: any split will do, train is largest
    items = []
    for listing in read_listings(path):
        category = canonical_category(listing.category)
        if category in CATEGORIES and listing.images:
            images = [load_image(path.parent / ref) for ref in listing.images[:max_images]]
            items.append((category, clean_title(listing.title), images))
        if len(items) == n:
            return items
    raise SystemExit(f"{path} has fewer than {n} usable listings")
