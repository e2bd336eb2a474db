"""The synthetic marketplace: reproducible, split by product, honest ground truth, loadable."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pytest

from ecomvlm.catalog import taxonomy as tx
from ecomvlm.catalog.synth import synthesize
from ecomvlm.cli import main
from ecomvlm.images import load_image
from ecomvlm.schema import read_listings

N = 160


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("catalog") / "c"
    synthesize(out, N, seed=7, workers=2, progress=False)
    return out


@pytest.fixture(scope="module")
def truth(catalog) -> dict[str, dict]:
    return {r["id"]: r for s in ("train", "val", "test")
            for r in _jsonl(catalog / "ground_truth" / f"{s}.jsonl")}


def test_same_seed_gives_byte_identical_catalog_whatever_the_worker_count(catalog, tmp_path):
    again = tmp_path / "again"
    synthesize(again, N, seed=7, workers=1, progress=False)
    assert _tree_digest(again) == _tree_digest(catalog)
    other = tmp_path / "other"
    synthesize(other, N, seed=8, workers=1, progress=False)
    assert (other / "train.jsonl").read_bytes() != (catalog / "train.jsonl").read_bytes()


def test_every_listing_passes_the_schema_reader_and_counts_reconcile(catalog, tmp_path):
    ids = []
    for split in ("train", "val", "test"):
        quarantine = tmp_path / f"q_{split}.jsonl"
        listings = list(read_listings(catalog / f"{split}.jsonl", quarantine))
        assert not quarantine.exists() or quarantine.read_text() == ""
        for listing in listings:
            assert 2 <= len(listing.images) <= 6
            assert all((catalog / p).is_file() for p in listing.images)
        ids += [x.id for x in listings]
    manifest = json.loads((catalog / "catalog.json").read_text())
    assert len(ids) == len(set(ids)) == N == manifest["listings"]
    assert sum(manifest["counts"]["split"].values()) == N


def test_splits_are_disjoint_by_product_and_held_out_values_stay_in_test(truth):
    splits_of_product = defaultdict(set)
    for record in truth.values():
        splits_of_product[record["product_id"]].add(record["split"])
        brand, colour = record["aspects"]["Brand"], record["aspects"]["Color"]
        held = brand in tx.HELD_OUT_BRANDS or (record["category"], colour) in tx.HELD_OUT_COMBOS
        assert held == (record["held_out"]["brand"] or record["held_out"]["combo"])
        if record["split"] != "test":
            assert not held, record["id"]
    assert all(len(s) == 1 for s in splits_of_product.values())
    assert any(r["held_out"]["brand"] or r["held_out"]["combo"] for r in truth.values())
    assert {r["split"] for r in truth.values()} == {"train", "val", "test"}


def test_ground_truth_matches_the_listing_text_noise(catalog, truth):
    listings = {x.id: x for s in ("train", "val", "test")
                for x in read_listings(catalog / f"{s}.jsonl")}
    wrong = claims = 0
    for lid, record in truth.items():
        listed = listings[lid].aspects
        for key, report in record["aspect_report"].items():
            if report["status"] in ("correct", "wrong"):
                assert listed[report["listed_key"]] == report["listed_value"]
                claims += 1
                wrong += report["status"] == "wrong"
            assert (report["status"] == "wrong") == (key in record["wrong_aspects"])
        assert set(record["aspects"]) == set(tx.category(record["category"]).keys)
    assert 0.08 < wrong / claims < 0.22  # default wrong rate is 15%
    # the web's noise shows in the text: some HTML, some stuffed or shouting titles
    assert any("<" in x.description for x in listings.values())
    assert any(x.title.upper() == x.title or "!!" in x.title for x in listings.values())


def test_images_load_and_answer_key_boxes_lie_inside_them(catalog, truth):
    listings = {x.id: x for s in ("train", "val", "test")
                for x in read_listings(catalog / f"{s}.jsonl")}
    roles = set()
    for lid, record in list(truth.items())[:60]:
        assert record["images"][0]["role"] == "main"
        for path, image_truth in zip(listings[lid].images, record["images"]):
            img = load_image(catalog / path)
            assert img.mode == "RGB" and list(img.size) == image_truth["size"]
            assert 256 <= min(img.size) and max(img.size) <= 384
            roles.add(image_truth["role"])
            for box in list(image_truth.get("mark_boxes", {}).values()) + (
                    [image_truth["object_box"]] if "object_box" in image_truth else []):
                x0, y0, x1, y1 = box
                assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
        marks_seen = {m for im in record["images"] for m in im.get("mark_boxes", {})}
        assert sorted(marks_seen) == record["compliance"]
        assert set(record["compliance"]) <= set(tx.category(record["category"]).marks)
    assert {"main", "label"} <= roles


def test_exact_reposts_repeat_text_and_photos_under_a_new_id(tmp_path):
    out = tmp_path / "c"
    synthesize(out, 400, seed=11, workers=2, progress=False)
    truth = {r["id"]: r for s in ("train", "val", "test")
             for r in _jsonl(out / "ground_truth" / f"{s}.jsonl")}
    listings = {x.id: x for s in ("train", "val", "test") for x in read_listings(out / f"{s}.jsonl")}
    reposts = [r for r in truth.values() if r["duplicate_of"]]
    assert reposts, "a 400-listing catalog should hold a few exact re-posts"
    for record in reposts:
        copy, original = listings[record["id"]], listings[record["duplicate_of"]]
        assert copy.title == original.title and copy.aspects == original.aspects
        assert [(out / p).read_bytes() for p in copy.images] == \
               [(out / p).read_bytes() for p in original.images]


def test_refuses_to_clobber_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        synthesize(tmp_path, 5, seed=0, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_synth_then_gallery_draws_a_sheet(tmp_path):
    out = tmp_path / "cat"
    assert main(["catalog", "synth", "--out", str(out), "--listings", "12", "--seed", "3"]) == 0
    assert main(["catalog", "synth", "--out", str(out), "--listings", "12"]) == 1  # exists
    sheet = tmp_path / "sheet.png"
    assert main(["catalog", "gallery", str(out), "--out", str(sheet), "--n", "6"]) == 0
    img = load_image(sheet)
    assert img.width > 600
    # the sheet holds photos, not just white: many distinct colours
    assert len(img.convert("P", palette=1, colors=64).getcolors()) > 20
