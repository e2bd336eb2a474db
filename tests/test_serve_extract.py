"""``extract`` over a listings file with bad records: quarantine reasons, reconciled counts,
valid constrained JSON, and a resume after a real SIGKILL that leaves no duplicate or gap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from ecomvlm.catalog.taxonomy import CATEGORIES
from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig
from ecomvlm.serve.extract import extract, extraction_prompt

CATS = ["T-Shirt", "mug", "Jeans", "power bank"]  # listed spellings; two need canonicalising
N_GOOD = 48


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("extract")
    torch.manual_seed(0)
    VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama")).save_pretrained(
        root / "model")
    (root / "images").mkdir()
    lines = []
    for i in range(N_GOOD):
        Image.new("RGB", (48, 40), (i * 5, 100, 200)).save(root / "images" / f"{i}.png")
        lines.append(json.dumps({"id": f"L{i:03d}", "title": f"Item {i} NEW!!!",
                                 "category": CATS[i % 4], "images": [f"images/{i}.png"]}))
    (root / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    bad = [(3, "{not json"), (9, json.dumps({"id": "B1", "category": "Mug"})),
           (14, json.dumps({"id": "B2", "title": "t", "category": "Spaceship"})),
           (20, json.dumps({"id": "B3", "title": "t", "category": "Mug",
                            "images": ["images/bad.png"]})),
           (27, json.dumps({"id": "L001", "title": "again", "category": "Mug"})),
           (33, json.dumps({"id": "B4", "title": "t", "category": "Mug",
                            "images": ["../outside.png"]}))]
    for line, text in bad:
        lines.insert(line, text)
    (root / "listings.jsonl").write_text("\n".join(lines) + "\n")
    return root


EXPECTED_REASONS = {"invalid_json": 1, "missing_field": 1, "unknown_category": 1, "corrupt": 1,
                    "duplicate_id": 1, "unreadable": 1}


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_complete(out: Path, quarantine: Path) -> None:
    records = _read(out)
    ids = [r["id"] for r in records]
    assert sorted(ids) == [f"L{i:03d}" for i in range(N_GOOD)]  # no gap, no duplicate
    reasons: dict[str, int] = {}
    for entry in _read(quarantine):
        reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
    assert reasons == EXPECTED_REASONS
    for r in records:
        assert r["category"] in CATEGORIES
        assert list(r["attributes"]) == CATEGORIES[r["category"]].keys


def test_extract_quarantines_bad_records_and_writes_valid_json(data, tmp_path):
    out = tmp_path / "attrs.jsonl"
    counts = extract(data / "model", data / "listings.jsonl", out, batch_size=8,
                     dtype="float32", threads=1, progress=False)
    assert counts["seen"] == N_GOOD + 6 == counts["written"] + counts["quarantined"]
    _check_complete(out, tmp_path / "attrs.quarantine.jsonl")
    first = _read(out)[0]
    assert first["id"] == "L000" and first["category"] == "T-Shirt"
    entry = next(e for e in _read(tmp_path / "attrs.quarantine.jsonl") if e["id"] == "B3")
    assert "images/bad.png" in entry["detail"]
    # a finished run resumed does nothing
    again = extract(data / "model", data / "listings.jsonl", out, dtype="float32", threads=1,
                    progress=False)
    assert again["new"] == 0 and again["written"] == N_GOOD


def test_resume_after_sigkill_has_no_duplicates_and_no_gaps(data, tmp_path):
    out = tmp_path / "attrs.jsonl"
    code = ("import sys, time\n"
            "import ecomvlm.serve.extract as ex\n"
            "original = ex.Engine.run_batch\n"
            "def slow(self, jobs):\n"  # slow enough that the kill lands mid-run
            "    time.sleep(0.3)\n"
            "    return original(self, jobs)\n"
            "ex.Engine.run_batch = slow\n"
            "ex.extract(sys.argv[1], sys.argv[2], sys.argv[3], batch_size=4, dtype='float32',"
            " threads=1, progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(data / "model"),
                             str(data / "listings.jsonl"), str(out)])
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(out.read_bytes().splitlines()) >= 12:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    written_before = len(_read_lenient(out))
    assert 12 <= written_before < N_GOOD
    # a torn last line, as a kill in the middle of a write leaves it
    with out.open("a") as f:
        f.write('{"id": "L0')
    counts = extract(data / "model", data / "listings.jsonl", out, batch_size=8,
                     dtype="float32", threads=1, progress=False)
    assert counts["written"] == N_GOOD and counts["quarantined"] == 6
    assert counts["new"] < N_GOOD + 6  # done records were skipped, not redone
    _check_complete(out, tmp_path / "attrs.quarantine.jsonl")


def _read_lenient(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.endswith("}")]


def test_prompt_is_the_trained_extraction_phrasing():
    keys = CATEGORIES["Mug"].keys
    prompt = extraction_prompt("Mug", keys, "Red mug <<<ignore>>>", 2, phrasing=0)
    assert prompt.startswith("<image>\n<image>\nListing title (seller-provided data")
    assert "Extract these attributes from the photos: Color, Capacity" in prompt
    assert "<<<ignore>>>" not in prompt  # the title cannot break out of its fence
    assert '"Color", "Capacity"' in extraction_prompt("Mug", keys, "x", 0, phrasing=1)


def test_targeted_crops_join_the_photos_of_listings_with_small_print(tmp_path):
    from ecomvlm.catalog.synth import synthesize

    catalog = tmp_path / "cat"
    synthesize(catalog, 40, seed=4, workers=1, progress=False)
    truth = {t["id"]: t for t in map(json.loads, (catalog / "ground_truth" / "train.jsonl")
                                     .read_text().splitlines())}
    listings = (catalog / "train.jsonl").read_text().splitlines()
    marked = [line for line in listings if truth[json.loads(line)["id"]]["compliance"]][:4]
    assert len(marked) == 4
    (catalog / "marked.jsonl").write_text("\n".join(marked) + "\n")
    torch.manual_seed(0)
    model = VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama"))
    model.save_pretrained(tmp_path / "model")
    counts = extract(tmp_path / "model", catalog / "marked.jsonl", tmp_path / "out.jsonl",
                     crops=2, dtype="float32", progress=False)
    assert counts["written"] == 4
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(1 <= line["crops"] <= 2 for line in lines)  # every marked listing got a crop
    keys = CATEGORIES[lines[0]["category"]].keys
    assert list(lines[0]["attributes"]) == keys
    prompt = extraction_prompt("Mug", CATEGORIES["Mug"].keys, "x", 3, n_crops=2)
    assert prompt.startswith("<image>\n" * 5 + "Images 4 to 5 are enlarged crops")
