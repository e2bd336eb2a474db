"""The model-side commands end to end through ``main(argv)``: train, export refusal, eval."""

from __future__ import annotations

import json

from ecomvlm.cli import main
from ecomvlm.train.toy import write_toy_dataset

TINY_RECIPE = """
model: {vision: "tiny:siglip", projector: mlp2x_gelu, lm: "tiny:llama", max_length: 512}
stages:
  - name: align
    lr: {projector: 1.0e-3}
    data: [{path: "{data}/stage1.jsonl"}]
    steps: 2
    batch_size: 2
    bf16: false
  - name: instruct
    lr: {projector: 1.0e-3, lm: 1.0e-3}
    data: [{path: "{data}/stage3.jsonl"}]
    steps: 2
    batch_size: 2
    bf16: false
"""


def test_train_then_export_refuses_a_tower_llava_cannot_hold(tmp_path, capsys):
    write_toy_dataset(tmp_path / "data", listings=6)
    (tmp_path / "r.yaml").write_text(TINY_RECIPE)
    code = main(["train", "--recipe", str(tmp_path / "r.yaml"), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "run"), "--set", "stages.instruct.steps=3"])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["align", "instruct"]
    assert summary["stages"][1]["steps"] == 3  # the override reached the recipe
    final = tmp_path / "run" / "instruct" / "final"
    assert (final / "model.safetensors").is_file()
    # tiny:siglip's default feature layer keeps post-layernorm, which Llava has no place for
    assert main(["export", str(final), str(tmp_path / "llava")]) == 1
    assert "feature_layer" in capsys.readouterr().err


def test_unknown_recipe_key_is_a_clear_error(tmp_path, capsys):
    write_toy_dataset(tmp_path / "data", listings=4)
    (tmp_path / "r.yaml").write_text(TINY_RECIPE)
    code = main(["train", "--recipe", str(tmp_path / "r.yaml"), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "run"), "--set", "stages.align.stepz=3"])
    assert code == 1
    assert "stepz" in capsys.readouterr().err


def test_eval_a_baseline_writes_lmms_eval_results(tmp_path, capsys):
    assert main(["catalog", "synth", "--out", str(tmp_path / "cat"), "--listings", "40",
                 "--seed", "3"]) == 0
    code = main(["eval", "--model", "majority", "--catalog", str(tmp_path / "cat"),
                 "--benchmarks", "aspect,extract", "--limit", "10", "--out", str(tmp_path / "ev")])
    assert code == 0
    results = json.loads(next((tmp_path / "ev").glob("*/results.json")).read_text())
    assert set(results["results"]) == {"aspect", "extract"}
    assert 0.0 <= results["results"]["aspect"]["accuracy,none"] <= 1.0
    assert "f1_micro" in capsys.readouterr().out
