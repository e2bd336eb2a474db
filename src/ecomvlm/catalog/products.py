"""Sampling products and the listings sellers write for them (no pixels here; see synth.py).

A product is the ground truth: a category, true aspect values, a battery flag and the
compliance marks on its packaging. Several sellers may list one product; each listing gets
its own noisy text and its own photos. The split is decided per product, so no product
crosses train/val/test, and only test products may use held-out brands and colour-category
combinations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ecomvlm.catalog import taxonomy as tx

SPLIT_WEIGHTS = {"train": 0.8, "val": 0.1, "test": 0.1}
# Chance that a test product is forced to use a held-out brand or colour-category pair, so
# the test split has enough of both to measure generalisation.
HELD_OUT_SHARE = 0.35
LISTINGS_PER_PRODUCT = {1: 0.72, 2: 0.2, 3: 0.08}
# Chance that a later listing of a product is an exact re-post of the one before it (same
# text, same photos, new id): about 3% of all listings, what curation's dedup must catch.
REPOST_RATE = 0.1


@dataclass
class Product:
    product_id: str
    split: str
    category: str
    aspects: dict[str, str]
    battery: bool
    marks: list[str]
    held_out_brand: bool
    held_out_combo: bool
    n_listings: int


@dataclass
class ListingPlan:
    """What one worker needs to render one listing, decided up front so output is ordered."""

    listing_id: str
    product: Product
    copy_index: int  # 0 for the first seller's listing of a product, 1.. for later ones
    duplicate_of: str | None = None  # set when this listing is an exact re-post
    roles: list[str] = field(default_factory=list)


def product_rng(seed: int, product_index: int) -> random.Random:
    # A string seed is hashed with SHA-512 by random.seed, so it is stable across processes
    # and Python runs, unlike hash().
    return random.Random(f"ecomvlm-catalog:{seed}:product:{product_index}")


def listing_rng(seed: int, listing_id: str) -> random.Random:
    return random.Random(f"ecomvlm-catalog:{seed}:listing:{listing_id}")


def _weighted(rng: random.Random, weights: dict) -> object:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _allowed(split: str, category: str, aspects: dict[str, str]) -> bool:
    if split == "test":
        return True
    if aspects.get("Brand") in tx.HELD_OUT_BRANDS:
        return False
    return (category, aspects.get("Color")) not in tx.HELD_OUT_COMBOS


def _sample_aspects(rng: random.Random, cat: tx.Category) -> dict[str, str]:
    return {a.key: rng.choice(a.values) for a in cat.aspects}


def _force_held_out(rng: random.Random, cat: tx.Category, aspects: dict[str, str]) -> None:
    combos = [colour for (name, colour) in tx.HELD_OUT_COMBOS if name == cat.name]
    if combos and rng.random() < 0.5:
        aspects["Color"] = rng.choice(combos)
    else:
        held = sorted(b for b in cat.aspect("Brand").values if b in tx.HELD_OUT_BRANDS)
        aspects["Brand"] = rng.choice(held)


def _has_battery(rng: random.Random, cat: tx.Category, aspects: dict[str, str]) -> bool:
    if cat.name == "Headphones":
        return aspects.get("Connectivity") == "Wireless"
    if cat.name == "Toy":
        return aspects.get("Type") == "Toy Car" and rng.random() < 0.6
    return rng.random() < cat.battery


def _sample_marks(rng: random.Random, cat: tx.Category, battery: bool) -> list[str]:
    marks = [m for m in cat.marks if m != "battery_warning" and rng.random() < 0.75]
    if battery and "battery_warning" in cat.marks:
        marks.append("battery_warning")
    if cat.marks and not marks:
        marks.append(rng.choice([m for m in cat.marks if m != "battery_warning"]))
    return sorted(marks)


def sample_product(seed: int, product_index: int) -> Product:
    rng = product_rng(seed, product_index)
    split = _weighted(rng, SPLIT_WEIGHTS)
    cat = rng.choice(list(tx.CATEGORIES.values()))
    aspects = _sample_aspects(rng, cat)
    if split == "test" and rng.random() < HELD_OUT_SHARE:
        _force_held_out(rng, cat, aspects)
    while not _allowed(split, cat.name, aspects):  # train/val never see held-out values
        aspects = _sample_aspects(rng, cat)
    battery = _has_battery(rng, cat, aspects)
    return Product(
        product_id=f"P{product_index:06d}",
        split=split,
        category=cat.name,
        aspects=aspects,
        battery=battery,
        marks=_sample_marks(rng, cat, battery),
        held_out_brand=aspects["Brand"] in tx.HELD_OUT_BRANDS,
        held_out_combo=(cat.name, aspects["Color"]) in tx.HELD_OUT_COMBOS,
        n_listings=_weighted(rng, LISTINGS_PER_PRODUCT),
    )


def image_roles(rng: random.Random, product: Product) -> list[str]:
    """2-6 image roles: the main photo first, then the rest in a seller-chosen order."""
    cat = tx.category(product.category)
    extra = []
    if rng.random() < 0.75:
        extra.append("alternate")
    if rng.random() < (0.8 if cat.is_fashion else 0.85):
        extra.append("label")
    if cat.marks and rng.random() < 0.8:
        extra.append("packaging")
    if rng.random() < 0.15:
        extra.append("lifestyle")
    if rng.random() < 0.2:
        extra.append("alternate")  # a second angle
    if not extra:
        extra.append("alternate")
    rng.shuffle(extra)
    return ["main"] + extra[:5]


def plan_listings(seed: int, n_listings: int) -> list[ListingPlan]:
    """Products and their listings until ``n_listings`` listings exist (the last product may
    get fewer copies than it drew)."""
    plans: list[ListingPlan] = []
    product_index = 0
    while len(plans) < n_listings:
        product = sample_product(seed, product_index)
        product_index += 1
        for copy_index in range(product.n_listings):
            if len(plans) >= n_listings:
                break
            listing_id = f"L{len(plans):07d}"
            rng = listing_rng(seed, listing_id)
            previous = plans[-1] if copy_index > 0 else None
            if previous is not None and rng.random() < REPOST_RATE:
                # exact re-post: same text, same photos, new id
                plans.append(ListingPlan(listing_id, product, copy_index,
                                         duplicate_of=previous.duplicate_of or previous.listing_id,
                                         roles=list(previous.roles)))
                continue
            plans.append(ListingPlan(listing_id, product, copy_index,
                                     roles=image_roles(rng, product)))
    return plans
