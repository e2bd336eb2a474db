"""`ecomvlm curate` end to end: outputs, reconciliation, SIGKILL resume, fingerprint, Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecomvlm.catalog.synth import synthesize
from ecomvlm.cli import main
from ecomvlm.curate.config import CurateConfig
from ecomvlm.curate.pipeline import ConfigMismatch
from ecomvlm.curate.run import run_curate
from ecomvlm.samples import read_samples

pytestmark = pytest.mark.slow  # packaged OCR / EfficientNet / MiniLM run in the workers

N = 30
OUTPUTS = ("stage1.jsonl", "stage2.jsonl", "stage3.jsonl", "verified.jsonl",
           "duplicates.jsonl", "quarantine.jsonl")


@pytest.fixture(scope="module")
def noisy_listings(tmp_path_factory) -> Path:
    """A small catalog plus the web's worst: bad JSON, a truncated photo, a missing photo."""
    root = tmp_path_factory.mktemp("curate")
    synthesize(root / "cat", N, seed=21, workers=2, progress=False)
    path = root / "cat" / "listings.jsonl"
    lines, truth = [], ""
    for split in ("train", "val", "test"):
        lines += (root / "cat" / f"{split}.jsonl").read_text().splitlines()
        truth += (root / "cat" / "ground_truth" / f"{split}.jsonl").read_text()
    (root / "cat" / "ground_truth" / "all.jsonl").write_text(truth)
    broken = json.loads(lines[0])
    truncated = root / "cat" / "images" / "truncated.jpg"
    data = (root / "cat" / broken["images"][0]).read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    lines += [
        '{"id": "bad-json", "title": ',
        json.dumps({**broken, "id": "truncated-photo", "images": ["images/truncated.jpg"]}),
        json.dumps({**broken, "id": "missing-photo", "images": ["images/nowhere.jpg"]}),
        json.dumps({"id": "no-title", "images": []}),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def uninterrupted(noisy_listings, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    truth = noisy_listings.parent / "ground_truth" / "all.jsonl"
    run_curate(CurateConfig(listings=noisy_listings, out=out, workers=2, shard_size=4,
                            ground_truth=truth), progress=False)
    return out


def _read(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def test_outputs_reconcile_and_hold_samples_for_three_stages(uninterrupted):
    summary = json.loads((uninterrupted / "curate.done.json").read_text())
    assert summary["reconciled"]
    assert summary["seen"] == N + 4
    assert summary["seen"] == summary["kept"] + summary["duplicates"] + summary["quarantined"]
    quarantine = [json.loads(x) for x in (uninterrupted / "quarantine.jsonl").read_text()
                  .splitlines()]
    reasons = {q.get("id"): q["reason"] for q in quarantine}
    assert reasons["truncated-photo"] == "corrupt"
    assert reasons["missing-photo"] == "unreadable"
    assert reasons["no-title"] == "missing_field"
    assert "invalid_json" in reasons.values()
    tasks = set()
    for stage in (1, 2, 3):
        samples = list(read_samples(uninterrupted / f"stage{stage}.jsonl"))
        assert samples, f"stage {stage} is empty"
        for sample in samples[:50]:
            assert all((uninterrupted / p).is_file() for p in sample.images)
        tasks |= {s.meta["task"] for s in samples if stage == 3}
    assert {"aspect", "extract", "multi_image", "title"} <= tasks
    quality = json.loads((uninterrupted / "quality" / "quality.json").read_text())
    assert quality["wrong_claim_detection"]
    assert (uninterrupted / "quality" / "quality.png").stat().st_size > 10_000
    for fmt in ("llava", "sharegpt", "hf"):
        assert any((uninterrupted / "exports" / fmt / "stage3").iterdir())


def _killed_after(out: Path, moment: str) -> bool:
    if moment == "prepare":
        return (out / "work" / "prepare.done.json").exists()
    manifest = out / "work" / "manifest.jsonl"
    return manifest.exists() and len(manifest.read_text().splitlines()) >= 2


@pytest.mark.parametrize("moment", ["prepare", "shards"])
def test_sigkill_then_resume_equals_uninterrupted(noisy_listings, uninterrupted, tmp_path,
                                                  moment):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ecomvlm.cli", "curate", "--listings", str(noisy_listings),
           "--out", str(out), "--workers", "2", "--shard-size", "4",
           "--ground-truth", str(noisy_listings.parent / "ground_truth" / "all.jsonl")]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not _killed_after(out, moment):
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: driver and workers
    proc.wait()
    assert not (out / "curate.done.json").exists()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _read(out) == _read(uninterrupted)


def test_refuses_to_resume_with_another_configuration(noisy_listings, uninterrupted, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(uninterrupted, copy)
    (copy / "curate.done.json").unlink()
    with pytest.raises(ConfigMismatch):
        run_curate(CurateConfig(listings=noisy_listings, out=copy, shard_size=4, seed=1),
                   progress=False)
    assert main(["curate", "--listings", str(noisy_listings), "--out", str(copy),
                 "--seed", "5"]) == 1


def test_ray_engine_gives_the_local_engines_output(noisy_listings, uninterrupted, tmp_path):
    out = tmp_path / "ray"
    run_curate(CurateConfig(listings=noisy_listings, out=out, engine="ray", workers=2,
                            shard_size=4, ground_truth=noisy_listings.parent / "ground_truth"
                            / "all.jsonl"), progress=False)
    assert _read(out) == _read(uninterrupted)
