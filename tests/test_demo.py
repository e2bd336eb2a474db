"""``ecomvlm demo`` end to end on a small catalog and a tiny model: every step runs for real
(synthesis, curation, three stages, five benchmarks against every baseline, the report), a
re-run skips finished steps, and a failing step names itself and the file to look at."""

from __future__ import annotations

import json

import pytest
import yaml

from ecomvlm.cli import main
from ecomvlm.demo import BASELINES, StepFailed, run_demo

STAGE = {"batch_size": 4, "bf16": False, "steps": 2, "val_fraction": 0.1, "keep_last": 1}
TINY_RECIPE = {
    "model": {"vision": "tiny:siglip", "lm": "tiny:llama", "max_length": 512},
    "seed": 0,
    "stages": [
        {"name": "align", "lr": {"projector": 1e-2}, "data": [{"path": "{data}/stage1.jsonl"}],
         **STAGE},
        {"name": "mid", "lr": {"projector": 1e-3, "lm": 1e-3},
         "data": [{"path": "{data}/stage2.jsonl"}], **STAGE},
        {"name": "instruct", "lr": {"projector": 1e-3, "lm": 1e-3},
         "data": [{"path": "{data}/stage3.jsonl"}], **STAGE}]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    lines: list[str] = []
    timings = run_demo(root / "out", listings=60, recipe=recipe, eval_limit=3, echo=lines.append)
    return root, recipe, timings, lines


def test_every_step_runs_and_the_report_compares_every_model(demo):
    root, _, timings, lines = demo
    out = root / "out"
    assert list(timings) == ["catalog", "curate", "train", "eval", "report"]
    assert lines[0].startswith("[1/5] catalog: running")
    assert (out / "curated" / "quality" / "quality.json").is_file()
    summary = json.loads((out / "train" / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["trained"] * 3
    models = {p.parent.name: json.loads(p.read_text()) for p in (out / "eval").glob("*/results.json")}
    assert len(models) == 1 + len(BASELINES)
    # the un-adapted model is the recipe's own architecture with a fresh projector
    untrained = models["untrained"]
    assert untrained["model_info"]["lm"] == "tiny:llama"
    adapted = next(r for r in models.values() if r["model_spec"] == summary["final_model"])
    assert "multi_image_crops" in adapted["results"] and "general" in adapted["results"]
    page = (out / "report.html").read_text()
    for name in models:
        assert name in page
    assert "Training" in page and "Curation" in page and "val loss before" in page
    assert json.loads((out / "timings.json").read_text()).keys() == timings.keys()


def test_rerun_skips_finished_steps(demo):
    root, recipe, _, _ = demo
    lines: list[str] = []
    assert run_demo(root / "out", listings=60, recipe=recipe, eval_limit=3,
                    echo=lines.append) == {}
    assert all("done already" in line for line in lines) and len(lines) == 5


def test_failing_step_names_itself_and_keeps_earlier_steps(demo, tmp_path):
    root, _, _, _ = demo
    out = tmp_path / "out"
    (out).mkdir()
    for step in ("catalog", "curated"):  # reuse the finished steps: a re-run skips them
        (out / step).symlink_to(root / "out" / step, target_is_directory=True)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**TINY_RECIPE, "stages": [
        {**TINY_RECIPE["stages"][0], "data": [{"path": "{data}/missing.jsonl"}]}]}))
    with pytest.raises(StepFailed) as failure:
        run_demo(out, listings=60, recipe=broken, eval_limit=3, echo=lambda _: None)
    assert failure.value.step == "train" and failure.value.look_at == out / "train"
    assert "demo step 'train' failed" in str(failure.value) and "missing.jsonl" in str(failure.value)
    assert (out / "catalog" / "catalog.json").exists()  # the steps before it stay finished
    # through the CLI: exit code 1 and the same message
    assert main(["demo", "--out", str(out), "--recipe", str(broken), "--listings", "60"]) == 1
