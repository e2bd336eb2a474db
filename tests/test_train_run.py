"""Whole recipes: three stages end to end on tiny models, resume, skipping, quarantine."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from ecomvlm.samples import Sample
from ecomvlm.train.run import run_recipe
from ecomvlm.train.spec import Recipe, RecipeError
from ecomvlm.train.toy import write_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy_dataset(root, listings=16, seed=3)
    # one caption whose photo is missing: quarantined, the run goes on
    lines = (root / "stage1.jsonl").read_text().splitlines()
    bad = Sample.model_validate_json(lines[0]).model_copy(
        update={"id": "no-photo", "images": ["images/gone.png"]})
    (root / "stage1.jsonl").write_text("\n".join(lines + [bad.model_dump_json()]) + "\n")
    return root


def recipe(steps: int = 2, **extra) -> Recipe:
    common = {"batch_size": 4, "bf16": False, "warmup_ratio": 0.1, "steps": steps,
              "val_fraction": 0.1}
    return Recipe.model_validate({
        "model": {"vision": "tiny:siglip", "lm": "tiny:llama", "max_length": 512},
        "seed": 1, **extra,
        "stages": [
            {"name": "align", "lr": {"projector": 1e-2},
             "data": [{"path": "{data}/stage1.jsonl"}], **common},
            {"name": "mid", "lr": {"projector": 1e-3, "lm": 3e-3},
             "data": [{"path": "stage2.jsonl"}], **common},
            {"name": "instruct", "lr": {"projector": 1e-3, "lm": 3e-3},
             "data": [{"path": "stage3.jsonl", "weight": 3}, {"path": "stage2.jsonl"}],
             **common}]})


def losses(out, name):
    return [r["loss"] for r in map(json.loads, (out / name / "metrics.jsonl")
                                   .read_text().splitlines()) if "loss" in r]


def test_three_stages_train_chain_and_lower_the_loss(toy, tmp_path):
    from ecomvlm.model.vlm import VisionLanguageModel

    out = tmp_path / "run"
    overrides = [f"stages.{name}.eval_at_start=true" for name in ("align", "mid", "instruct")]
    summary = run_recipe(recipe(steps=12), toy, out, overrides=overrides, progress=False)
    assert [s["status"] for s in summary["stages"]] == ["trained"] * 3
    for name, gain in (("align", 0.99), ("mid", 0.8), ("instruct", 0.9)):
        assert len(losses(out, name)) == 12
        done = json.loads((out / name / "done.json").read_text())
        assert done["steps"] == 12 and done["wall_s"] > 0
        # held-out loss after the stage vs before it, on the same val samples
        assert done["val_loss"] < done["start_val_loss"] * gain, (name, done)
    assert json.loads((out / "mid" / "done.json").read_text())["init"] == \
        str(out / "align" / "final")
    records = [json.loads(line) for line in (out / "align" / "quarantine.jsonl")
               .read_text().splitlines()]
    assert {(r["id"], r["reason"]) for r in records} == {("no-photo", "unreadable")}
    assert (out / "loss_curves.png").stat().st_size > 10_000
    assert VisionLanguageModel.from_pretrained(summary["final_model"]) is not None
    # a second call finds every stage done and trains nothing
    again = run_recipe(recipe(steps=12), toy, out, progress=False)
    assert [s["status"] for s in again["stages"]] == ["done"] * 3


def test_a_skipped_stage_is_passed_over_in_the_chain(toy, tmp_path):
    from ecomvlm.model.vlm import VisionLanguageModel

    out = tmp_path / "run"
    summary = run_recipe(recipe(), toy, out, progress=False,
                         overrides=["stages.mid.skip=true", "stages.instruct.lora.r=4"])
    assert [s["status"] for s in summary["stages"]] == ["trained", "skipped", "trained"]
    assert not (out / "mid").exists()
    instruct = json.loads((out / "instruct" / "done.json").read_text())
    assert instruct["init"] == str(out / "align" / "final")
    # the LoRA stage saved plain, merged weights
    final = VisionLanguageModel.from_pretrained(summary["final_model"])
    assert not any("lora" in n for n, _ in final.named_parameters())


def test_selected_stages_run_alone_and_init_from_the_last_finished(toy, tmp_path):
    out = tmp_path / "run"
    first = run_recipe(recipe(), toy, out, stages=["align"], progress=False)
    assert [s["status"] for s in first["stages"]] == ["trained", "skipped", "skipped"]
    second = run_recipe(recipe(), toy, out, stages=["instruct"], progress=False)
    assert [s["status"] for s in second["stages"]] == ["skipped", "skipped", "trained"]
    assert json.loads((out / "instruct" / "done.json").read_text())["init"] == \
        str(out / "align" / "final")
    with pytest.raises(RecipeError, match="unknown stage"):
        run_recipe(recipe(), toy, out, stages=["polish"], progress=False)


def test_resuming_with_a_changed_stage_is_refused(toy, tmp_path):
    out = tmp_path / "run"
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe().model_dump(mode="json")))
    run_recipe(path, toy, out, stages=["align"], progress=False)
    (out / "align" / "done.json").unlink()  # as if it died after its last checkpoint
    shutil.rmtree(out / "align" / "final")
    with pytest.raises(RecipeError, match="changed: batch_size"):
        run_recipe(path, toy, out, overrides=["stages.align.batch_size=3"], stages=["align"],
                   progress=False)
    # the same recipe resumes from the finished checkpoint and only saves the model
    summary = run_recipe(path, toy, out, stages=["align"], progress=False)
    assert summary["stages"][0]["resumed_from"] == 2
    assert summary["stages"][0]["steps_this_run"] == 0
    assert (out / "align" / "final" / "config.json").is_file()
