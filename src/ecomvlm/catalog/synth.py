"""`ecomvlm catalog synth`: write a synthetic marketplace, its photos and its ground truth.

Layout of a catalog folder::

    catalog.json                 manifest, written last (its presence means "complete")
    train.jsonl val.jsonl test.jsonl   listings (ecomvlm.schema), image paths relative to here
    images/<listing id>/<k>.jpg  the photos, in listing order
    ground_truth/<split>.jsonl   answer key, kept apart so a pipeline never reads it by accident

Every random choice comes from a generator seeded by (seed, product or listing id), so the
same seed gives byte-identical files whatever the number of worker processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ecomvlm.catalog import taxonomy as tx
from ecomvlm.catalog.draw_labels import draw_label, draw_packaging
from ecomvlm.catalog.draw_products import draw_product
from ecomvlm.catalog.listing_text import (
    contains_injection,
    make_description,
    make_title,
    noisy_aspects,
)
from ecomvlm.catalog.products import ListingPlan, plan_listings
from ecomvlm.catalog.scene import compose_scene, draw_lifestyle

SPLITS = ("train", "val", "test")
GENERATOR_VERSION = 1
MISCATEGORISED_RATE = 0.03  # sellers sometimes file an item under a neighbouring category
CONDITIONS = ["New", "New", "New with tags", "New without tags", "Used", "Open box"]
PRICE_RANGE = {"fashion": (6.0, 120.0), "goods": (5.0, 90.0)}


def _render_rng(seed: int, source_id: str, part: str) -> random.Random:
    return random.Random(f"ecomvlm-catalog:{seed}:render:{source_id}:{part}")


def _encode(img: Image.Image, rng: random.Random) -> tuple[bytes, str]:
    """JPEG at a seller-ish quality (artefacts included), sometimes PNG."""
    buf = io.BytesIO()
    if rng.random() < 0.08:
        img.save(buf, format="PNG")
        return buf.getvalue(), "png"
    img.save(buf, format="JPEG", quality=rng.randint(55, 95))
    return buf.getvalue(), "jpg"


def _render_image(role: str, plan: ListingPlan, rng: random.Random) -> tuple[Image.Image, dict]:
    """One photo of the listing and what the answer key needs to know about it."""
    product = plan.product
    cat = tx.category(product.category)
    if role in ("main", "alternate"):
        view = "main" if role == "main" else "alternate"
        photo, box = compose_scene(draw_product(cat.name, product.aspects, view, rng), rng)
        return photo, {"object_box": list(box)}
    if role == "label":
        fields = {a.key: product.aspects[a.key] for a in cat.aspects if a.visible == "label"}
        fields["Brand"] = product.aspects["Brand"]
        photo, lines = draw_label(cat.name, fields, rng)
        return photo, {"label_text": lines}
    if role == "packaging":
        photo, boxes = draw_packaging(cat.name, product.aspects["Brand"], product.marks, rng)
        return photo, {"mark_boxes": {m: list(b) for m, b in boxes.items()}}
    if role == "lifestyle":
        return draw_lifestyle(rng), {}
    raise ValueError(f"unknown image role {role!r}")


def render_listing(args: tuple[int, Path, ListingPlan, float]) -> tuple[str, dict, dict]:
    """Render one listing: write its photos, return (split, listing record, ground truth)."""
    seed, out_dir, plan, wrong_rate = args
    product = plan.product
    # A re-post draws from the original's generators, so its text and photos are identical.
    source = plan.duplicate_of or plan.listing_id
    text_rng = _render_rng(seed, source, "text")

    image_dir = out_dir / "images" / plan.listing_id
    image_dir.mkdir(parents=True, exist_ok=True)
    paths, images_truth = [], []
    for k, role in enumerate(plan.roles):
        rng = _render_rng(seed, source, f"image{k}")
        photo, truth = _render_image(role, plan, rng)
        data, ext = _encode(photo, rng)
        name = f"{k}.{ext}"
        (image_dir / name).write_bytes(data)
        paths.append(f"images/{plan.listing_id}/{name}")
        images_truth.append({"role": role, "size": list(photo.size), **truth})

    listed, report = noisy_aspects(product.category, product.aspects, text_rng,
                                   wrong_rate=wrong_rate)
    listed_category = product.category
    if text_rng.random() < MISCATEGORISED_RATE:
        group = tx.category(product.category).group
        listed_category = text_rng.choice([c.name for c in tx.CATEGORIES.values()
                                           if c.group == group and c.name != product.category])
    lo, hi = PRICE_RANGE[tx.category(product.category).group]
    listing = {
        "id": plan.listing_id,
        "title": make_title(product.category, product.aspects, text_rng),
        "description": make_description(product.category, product.aspects, text_rng),
        "category": listed_category,
        "aspects": listed,
        "images": paths,
        "price": round(text_rng.uniform(lo, hi), 2),
        "currency": "GBP",
        "condition": text_rng.choice(CONDITIONS),
        "meta": {"seller": f"seller_{text_rng.randrange(1, 400):03d}"},
    }
    visible_marks = sorted({m for im in images_truth for m in im.get("mark_boxes", {})})
    truth = {
        "id": plan.listing_id,
        "product_id": product.product_id,
        "split": product.split,
        "category": product.category,
        "listed_category_wrong": listed_category != product.category,
        "aspects": product.aspects,
        "aspect_report": report,
        "wrong_aspects": sorted(k for k, r in report.items() if r["status"] == "wrong"),
        "battery": product.battery,
        "product_marks": product.marks,
        "compliance": visible_marks,  # what can be seen across this listing's photos
        "images": images_truth,
        # the description carries an instruction aimed at a model: it must stay data
        "prompt_injection": contains_injection(listing["description"]),
        "held_out": {"brand": product.held_out_brand, "combo": product.held_out_combo},
        "duplicate_of": plan.duplicate_of,
    }
    return product.split, listing, truth


def _dump(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n"


OWNER_MARK = ".ecomvlm-catalog"  # written first, so we only ever clean folders we made


def _prepare(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / OWNER_MARK).exists():
        raise FileExistsError(f"{out_dir} is not empty and is not a catalog folder; "
                              "choose a new or empty folder")
    if (out_dir / "catalog.json").exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a catalog; pass --overwrite to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / OWNER_MARK).touch()
    for name in ("images", "ground_truth"):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for split in SPLITS:
        (out_dir / f"{split}.jsonl").unlink(missing_ok=True)
    (out_dir / "catalog.json").unlink(missing_ok=True)
    (out_dir / "ground_truth").mkdir(parents=True)


def synthesize(out_dir: str | Path, n_listings: int, seed: int = 0, *, workers: int | None = None,
               wrong_rate: float = 0.15, overwrite: bool = False,
               progress: bool = True) -> dict:
    """Write a catalog of ``n_listings`` listings to ``out_dir``; return its manifest."""
    if n_listings < 1:
        raise ValueError("n_listings must be at least 1")
    if not 0.0 <= wrong_rate <= 1.0:
        raise ValueError("wrong_rate must lie in [0, 1]")
    out_dir = Path(out_dir)
    _prepare(out_dir, overwrite)
    plans = plan_listings(seed, n_listings)
    workers = workers or os.cpu_count() or 1
    tasks = [(seed, out_dir, plan, wrong_rate) for plan in plans]

    started = time.perf_counter()
    counts: dict[str, Counter] = {k: Counter() for k in
                                  ("split", "category", "role", "mark", "held_out")}
    wrong = claims = 0
    with contextlib.ExitStack() as stack:
        handles = {s: stack.enter_context(open(out_dir / f"{s}.jsonl.tmp", "w", encoding="utf-8"))
                   for s in SPLITS}
        truths = {s: stack.enter_context(open(out_dir / "ground_truth" / f"{s}.jsonl.tmp", "w",
                                              encoding="utf-8")) for s in SPLITS}
        pool = None
        if workers > 1 and len(plans) > 16:
            pool = stack.enter_context(mp.get_context("fork").Pool(workers))
        results = pool.imap(render_listing, tasks, chunksize=4) if pool else map(render_listing, tasks)
        for split, listing, truth in tqdm(results, total=len(tasks), disable=not progress,
                                          desc="catalog", unit="listing"):
            handles[split].write(_dump(listing))
            truths[split].write(_dump(truth))
            counts["split"][split] += 1
            counts["category"][truth["category"]] += 1
            counts["role"].update(im["role"] for im in truth["images"])
            counts["mark"].update(truth["compliance"])
            counts["held_out"].update(k for k, v in truth["held_out"].items() if v)
            statuses = [r["status"] for r in truth["aspect_report"].values()]
            wrong += statuses.count("wrong")
            claims += statuses.count("wrong") + statuses.count("correct")
    for split in SPLITS:  # publish the files only once every listing is in them
        os.replace(out_dir / f"{split}.jsonl.tmp", out_dir / f"{split}.jsonl")
        os.replace(out_dir / "ground_truth" / f"{split}.jsonl.tmp",
                   out_dir / "ground_truth" / f"{split}.jsonl")
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "listings": len(plans),
        "products": len({p.product.product_id for p in plans}),
        "wrong_rate": wrong_rate,
        "wrong_claim_share": round(wrong / max(claims, 1), 4),
        "exact_reposts": sum(p.duplicate_of is not None for p in plans),
        "counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
        "categories": {c.name: {"group": c.group, "aspects": c.keys, "marks": list(c.marks)}
                       for c in tx.CATEGORIES.values()},
    }
    # no timings in the manifest: it must stay byte-identical for a seed
    (out_dir / "catalog.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    manifest["seconds"] = time.perf_counter() - started
    return manifest
