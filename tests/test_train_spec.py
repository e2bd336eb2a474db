"""Recipes: YAML + dotted overrides, validated; unknown keys and bad stages are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ecomvlm.train.spec import Recipe, RecipeError, apply_overrides, load_recipe, override_recipe

REPO = Path(__file__).resolve().parents[1]


def raw_recipe() -> dict:
    return {"model": {"vision": "tiny:siglip", "lm": "tiny:llama"},
            "stages": [{"name": "align", "lr": {"projector": 1e-3},
                        "data": [{"path": "{data}/stage1.jsonl"}], "steps": 5},
                       {"name": "instruct", "lr": {"projector": 2e-4, "lm": 1e-5},
                        "data": [{"path": "stage3.jsonl", "weight": 3},
                                 {"path": "stage2.jsonl", "weight": 1}], "epochs": 1}]}


def test_yaml_and_overrides_reach_the_validated_recipe(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw_recipe()))
    recipe = load_recipe(path, ["stages.instruct.steps=50", "stages.instruct.epochs=null",
                                "model.lm=tiny:qwen2", "stages.align.lr.lm=1e-4",
                                "stages.1.lora.r=4", "model.lm_kwargs.seed=3", "seed=9"])
    assert recipe.stage("instruct").steps == 50 and recipe.stage("instruct").epochs is None
    assert recipe.model.lm == "tiny:qwen2" and recipe.model.lm_kwargs == {"seed": 3}
    assert recipe.stage("align").lr.lm == pytest.approx(1e-4)  # "1e-4" from YAML is a float
    assert recipe.stage("instruct").lora.r == 4  # created from null by a sub-key
    assert recipe.seed == 9
    # the untouched parts are as written
    assert [e.weight for e in recipe.stage("instruct").data] == [3, 1]


@pytest.mark.parametrize("override, message", [
    ("stages.align.stepz=3", "unknown key 'stepz'"),
    ("model.towr=tiny:clip", "unknown key 'towr'"),
    ("stages.polish.steps=1", "no stage 'polish'"),
    ("stages.align.lr.decoder=1", "unknown key 'decoder'"),
    ("seed.value=1", "'seed' is a value"),
    ("novalue", "expected key=value"),
])
def test_unknown_override_keys_name_the_key_and_the_known_ones(override, message):
    with pytest.raises(RecipeError, match=message) as info:
        apply_overrides(raw_recipe(), [override])
    if "unknown key" in message:
        assert "known:" in str(info.value)


def test_invalid_stage_values_are_refused_with_the_stage_name():
    bad = raw_recipe()
    bad["stages"][0]["epochs"] = 2  # and steps: 5
    with pytest.raises(ValueError, match="align.*exactly one of steps or epochs"):
        Recipe.model_validate(bad)
    bad = raw_recipe()
    bad["stages"][0]["lr"] = {"projector": 0}
    with pytest.raises(ValueError, match="nothing trains"):
        Recipe.model_validate(bad)
    bad = raw_recipe()
    bad["stages"][0]["lora"] = {"r": 8}  # LoRA on a frozen LM
    with pytest.raises(ValueError, match="LoRA needs lr.lm"):
        Recipe.model_validate(bad)
    bad = raw_recipe()
    bad["stages"][1]["name"] = "align"
    with pytest.raises(ValueError, match="repeated: align"):
        Recipe.model_validate(bad)
    recipe = Recipe.model_validate(raw_recipe())
    with pytest.raises(RecipeError, match="invalid recipe"):
        override_recipe(recipe, ["stages.align.batch_size=0"])


def test_epochs_become_steps_over_the_summed_entries():
    stage = Recipe.model_validate(raw_recipe()).stage("instruct")
    stage = stage.model_copy(update={"batch_size": 4, "grad_accum": 2, "epochs": 1.5})
    assert stage.total_steps(dataset_size=100) == 19  # ceil(1.5 * 100 / 8)
    assert stage.total_steps(dataset_size=100, world_size=2) == 10


def test_data_paths_resolve_under_the_data_root(tmp_path):
    recipe = Recipe.model_validate(raw_recipe())
    align, instruct = recipe.stage("align"), recipe.stage("instruct")
    assert align.data[0].resolve(tmp_path) == tmp_path / "stage1.jsonl"
    assert instruct.data[0].resolve(tmp_path) == tmp_path / "stage3.jsonl"
    assert instruct.data[0].resolve("/elsewhere") == Path("/elsewhere/stage3.jsonl")


@pytest.mark.parametrize("name", ["demo.yaml", "gpu.yaml"])
def test_shipped_recipes_validate(name):
    path = REPO / "recipes" / name
    if not path.exists():
        pytest.skip(f"{name} not written yet")
    recipe = load_recipe(path)
    assert [s.name for s in recipe.stages] == ["align", "mid", "instruct"]
    align = recipe.stage("align")
    assert align.lr.trainable() == ["projector"]  # alignment trains only the projector
    assert all("lm" in s.lr.trainable() for s in recipe.stages[1:])
