"""Stage 6 (exporters): each format is written, loaded back the way its trainer loads it, and
compared with the canonical samples: ids, roles, texts and images (resolved to files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import pytest
from PIL import Image

from ecomvlm.catalog.products import plan_listings
from ecomvlm.curate.export import export_hf, export_llava, export_sharegpt
from ecomvlm.curate.instruct import make_samples
from ecomvlm.curate.records import CleanListing, ImagePerception, OcrBox, VerifiedListing
from ecomvlm.samples import Message, Sample, read_samples, write_samples

ROLE = {"main": "product", "alternate": "product", "lifestyle": "other", "label": "label",
        "packaging": "packaging"}


def verified(plan) -> VerifiedListing:
    """All claims supported: the exporters only need realistic, varied samples."""
    product = plan.product
    seen = [ImagePerception(sha256="0" * 64, role=ROLE[r],
                            ocr=[OcrBox(text=product.aspects["Brand"], box=(1, 1, 9, 9),
                                        score=0.9)] if r == "label" else [])
            for r in plan.roles]
    clean = CleanListing(id=plan.listing_id, title=f"{product.category} listing", description="",
                         category=product.category, aspects=product.aspects,
                         images=[f"x{i}.jpg" for i in range(len(seen))])
    return VerifiedListing(listing=clean, images=seen, verdicts=[], facts=product.aspects,
                           category=product.category, battery=product.battery,
                           label_image=plan.roles.index("label") if "label" in plan.roles
                           else None)


@pytest.fixture(scope="module")
def samples_file(tmp_path_factory) -> Path:
    """stage samples with real image files next to them, a text-only replay sample (absolute
    nothing, no images) and one with a system turn."""
    root = tmp_path_factory.mktemp("run")
    samples: list[Sample] = []
    for plan in plan_listings(2, 6):
        vl = verified(plan)
        rel = [f"images/{plan.listing_id}/{i}.png" for i in range(len(vl.images))]
        for i, path in enumerate(rel):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (20 + i, 10), (200, 30, 35)).save(root / path)
        for group in make_samples(vl, rel, seed=1).values():
            samples += group
    samples.append(Sample.chat("replay:text", [], "What is 2+2?", "4", stage=3, task="replay"))
    samples.append(Sample(id="sys", images=[str((root / rel[0]).resolve())], meta={"stage": 3},
                          messages=[Message(role="system", content="Be brief."),
                                    Message(role="user", content="<image>\nWhat is it?"),
                                    Message(role="assistant", content="A thing.")]))
    write_samples(samples, root / "stage.jsonl")
    return root / "stage.jsonl"


def originals(path: Path) -> list[tuple[Sample, list[str]]]:
    """Each sample with its images as absolute paths."""
    return [(s, [str((path.parent / p).resolve()) for p in s.images])
            for s in read_samples(path)]


def test_llava_round_trip(samples_file, tmp_path):
    info = export_llava(samples_file, tmp_path / "llava")
    folder = Path(info["image_folder"])
    assert folder == samples_file.parent.resolve()
    assert json.loads((tmp_path / "llava" / "export_info.json").read_text()) == info
    items = json.loads(Path(info["path"]).read_text())
    source = originals(samples_file)
    assert len(items) == len(source) == info["count"]
    for item, (sample, images) in zip(items, source):
        assert item["id"] == sample.id
        got = item.get("image", [])
        got = [got] if isinstance(got, str) else got
        assert isinstance(item.get("image", ""), str) == (len(images) <= 1)
        assert [str((folder / p).resolve()) for p in got] == images
        assert all(not os.path.isabs(p) for p in got)
        turns = [m for m in sample.messages if m.role != "system"]
        assert [c["from"] for c in item["conversations"]] == [
            {"user": "human", "assistant": "gpt"}[m.role] for m in turns]
        values = [c["value"] for c in item["conversations"]]
        if sample.id == "sys":
            assert values[0] == "Be brief.\n<image>\nWhat is it?"
        else:
            assert values == [m.content for m in turns]
        assert values[0].count("<image>") == len(images)
    # another image folder: paths follow it
    other = export_llava(samples_file, tmp_path / "llava2", image_folder=tmp_path)
    first = json.loads(Path(other["path"]).read_text())[0]
    image = first["image"][0] if isinstance(first["image"], list) else first["image"]
    assert str((tmp_path / image).resolve()) == source[0][1][0]


def test_sharegpt_round_trip(samples_file, tmp_path):
    out = tmp_path / "lf"
    export_sharegpt(samples_file, out, dataset_name="ecom_s3")
    export_sharegpt(samples_file, out, dataset_name="ecom_again")  # merges the registry
    registry = json.loads((out / "dataset_info.json").read_text())
    assert set(registry) == {"ecom_s3", "ecom_again"}
    entry = registry["ecom_s3"]
    assert entry["file_name"] == "ecom_s3.json" and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "messages", "images": "images"}
    tags = entry["tags"]
    assert (tags["role_tag"], tags["content_tag"], tags["user_tag"], tags["assistant_tag"]) == (
        "role", "content", "user", "assistant")
    # load it as LLaMA-Factory does: a json file through datasets, columns named by the entry
    rows = datasets.load_dataset("json", data_files=str(out / entry["file_name"]), split="train",
                                 cache_dir=str(tmp_path / "cache"))
    source = originals(samples_file)
    assert len(rows) == len(source)
    for row, (sample, images) in zip(rows, source):
        messages = row[entry["columns"]["messages"]]
        assert [m[tags["role_tag"]] for m in messages] == [m.role for m in sample.messages]
        assert [m[tags["content_tag"]] for m in messages] == [m.content for m in sample.messages]
        assert [str((out / p).resolve()) for p in row[entry["columns"]["images"]]] == images


def test_hf_round_trip(samples_file, tmp_path):
    info = export_hf(samples_file, tmp_path / "hf")
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(ds.column_names) == {"id", "images", "messages", "meta"} and info["count"] == len(ds)
    source = originals(samples_file)
    for row, (sample, images) in zip(ds, source):
        assert row["id"] == sample.id
        assert row["messages"] == [{"role": m.role, "content": m.content} for m in sample.messages]
        assert json.loads(row["meta"]) == sample.meta
        assert [str((tmp_path / "hf" / p).resolve()) for p in row["images"]] == images

    export_hf(samples_file, tmp_path / "embedded", embed_images=True)
    embedded = datasets.load_from_disk(str(tmp_path / "embedded"))
    assert isinstance(embedded.features["images"].feature, datasets.Image)
    for row, (_, images) in zip(embedded.select(range(6)), source):
        assert [im.size for im in row["images"]] == [Image.open(p).size for p in images]


def test_hf_export_reflects_new_samples_and_empty_files(tmp_path):
    path = tmp_path / "s.jsonl"
    write_samples([Sample.chat("a", [], "Q?", "first")], path)
    export_hf(path, tmp_path / "hf")
    write_samples([Sample.chat("a", [], "Q?", "second")], path)  # same path, new content
    export_hf(path, tmp_path / "hf")
    assert datasets.load_from_disk(str(tmp_path / "hf"))[0]["messages"][1]["content"] == "second"
    write_samples([], path)
    assert export_hf(path, tmp_path / "hf")["count"] == 0
    assert len(datasets.load_from_disk(str(tmp_path / "hf"))) == 0
    assert json.loads(Path(export_llava(path, tmp_path / "l")["path"]).read_text()) == []


def test_turns_that_do_not_alternate_are_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    bad = Sample(id="twice-user", messages=[Message(role="user", content="a"),
                                            Message(role="user", content="b"),
                                            Message(role="assistant", content="c")])
    write_samples([bad], path)
    with pytest.raises(ValueError, match="twice-user"):
        export_sharegpt(path, tmp_path / "out", "x")
    assert not (tmp_path / "out" / "x.json").exists()  # nothing half-written
