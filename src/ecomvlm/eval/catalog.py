"""Benchmark material: a synthetic catalog's test split joined with its answer key.

Benchmarks are built from ``CATALOG/<split>.jsonl`` (what a seller listed) and
``CATALOG/ground_truth/<split>.jsonl`` (what is true), never from curated data, so an error of
the curation pipeline cannot leak into the answer key. Reposts (``duplicate_of`` set) are
skipped: the same product twice would count twice. ``visible_value`` says which true values a
photo can show; a value no photo shows is the ``null`` an extraction must answer.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ecomvlm.catalog.taxonomy import CATEGORIES, Category

PRODUCT_ROLES = ("main", "alternate")


@dataclass
class EvalItem:
    """One test listing: the seller's record and its ground truth (``truth``)."""

    listing: dict[str, Any]
    truth: dict[str, Any]
    root: Path  # the catalog folder; image paths are relative to it

    @property
    def id(self) -> str:
        return self.listing["id"]

    @property
    def category(self) -> Category:
        return CATEGORIES[self.truth["category"]]

    @cached_property
    def title(self) -> str:
        """The listed title as curation cleans it (emoji, shouting and repeated keywords gone):
        the form the training prompts carry. Its claims are the seller's, right or wrong."""
        from ecomvlm.curate.clean import clean_title

        return clean_title(self.listing.get("title", ""))

    @cached_property
    def images(self) -> list[str]:
        """Absolute paths of every photo, in listing order."""
        return [str((self.root / p).resolve()) for p in self.listing.get("images", [])]

    @property
    def roles(self) -> list[str]:
        return [im.get("role", "") for im in self.truth.get("images", [])]

    def product_images(self) -> list[str]:
        """Photos of the item itself (main and alternate shots), or all photos if none."""
        chosen = [p for p, r in zip(self.images, self.roles) if r in PRODUCT_ROLES]
        return chosen or list(self.images)

    def visible_value(self, key: str) -> str | None:
        """The true value of aspect ``key`` when some photo shows it, else None."""
        value = self.truth["aspects"].get(key)
        if value is None or key not in self.category.keys:
            return None
        aspect = self.category.aspect(key)
        roles = set(self.roles)
        if aspect.visible == "":
            return None  # only the seller knows (a cap's size, a lamp's bulb)
        if key == "Brand":  # printed on labels and on packs
            return value if roles & {"label", "packaging"} else None
        if aspect.visible == "label":
            texts = [t for im in self.truth["images"] if im.get("role") == "label"
                     for t in im.get("label_text", [])]
            return value if any(_folded(value) in _folded(t) for t in texts) else None
        return value if roles & set(PRODUCT_ROLES) else None

    def visible_aspects(self) -> dict[str, str | None]:
        """Every key of the category -> its photo-visible true value or None."""
        return {key: self.visible_value(key) for key in self.category.keys}


def _folded(text: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", text.lower())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is this a catalog written by "
                                f"`ecomvlm catalog synth`?")
    out = []
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "id" not in record:
                    raise KeyError("id")
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{n}: bad record ({error})") from None
            out.append(record)
    return out


def load_items(catalog_dir: str | Path, split: str = "test",
               keep_duplicates: bool = False) -> list[EvalItem]:
    """The split's listings joined with their ground truth, in file order."""
    root = Path(catalog_dir)
    truth = {r["id"]: r for r in _read_jsonl(root / "ground_truth" / f"{split}.jsonl")}
    items = []
    for listing in _read_jsonl(root / f"{split}.jsonl"):
        record = truth.get(listing["id"])
        if record is None:
            raise ValueError(f"listing {listing['id']!r} of {root / split}.jsonl has no "
                             f"ground-truth record")
        if record.get("category") not in CATEGORIES:
            raise ValueError(f"listing {listing['id']!r}: unknown true category "
                             f"{record.get('category')!r}")
        if record.get("duplicate_of") and not keep_duplicates:
            continue
        items.append(EvalItem(listing, record, root))
    return items


@dataclass
class TrainPriors:
    """Frequencies of true values in the train split's answer key (the majority baseline).

    ``values[(category, key)]`` counts visible true values (None where no photo shows one);
    ``categories`` counts true categories; ``marks`` counts mark sets per category;
    ``battery`` counts battery yes/no per category.
    """

    values: dict[tuple[str, str], Counter]
    categories: Counter
    marks: dict[str, Counter]
    battery: dict[str, Counter]

    @classmethod
    def from_catalog(cls, catalog_dir: str | Path, split: str = "train") -> TrainPriors:
        values: dict[tuple[str, str], Counter] = {}
        categories: Counter = Counter()
        marks: dict[str, Counter] = {}
        battery: dict[str, Counter] = {}
        for item in load_items(catalog_dir, split):
            cat = item.category.name
            categories[cat] += 1
            for key, value in item.visible_aspects().items():
                values.setdefault((cat, key), Counter())[value] += 1
            marks.setdefault(cat, Counter())[tuple(sorted(item.truth.get("compliance", [])))] += 1
            battery.setdefault(cat, Counter())[bool(item.truth.get("battery"))] += 1
        return cls(values, categories, marks, battery)
