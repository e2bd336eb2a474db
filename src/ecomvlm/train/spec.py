"""Training recipes as data: a model config plus a list of stages, read from YAML.

A stage says which parts train and how fast (``lr: {vision: 0, projector: 1e-3, lm: 0}``;
0 freezes the part), LoRA or full fine-tuning of the LM, a weighted data mixture (general
replay is one more entry), the step budget and the optimiser settings. Dotted overrides such
as ``stages.instruct.steps=50`` or ``model.lm=tiny:llama`` edit the YAML before validation,
and a key the schema does not know is refused with the list of keys it does know.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ecomvlm.model.vlm import VLMConfig

PARTS = ("vision", "projector", "lm")


class RecipeError(ValueError):
    """A recipe or override that cannot be used; the message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartLR(_Strict):
    """Learning rate per part; 0 freezes the part (requires_grad False, no optimiser state)."""

    vision: float = Field(0.0, ge=0)
    projector: float = Field(0.0, ge=0)
    lm: float = Field(0.0, ge=0)

    def trainable(self) -> list[str]:
        return [part for part in PARTS if getattr(self, part) > 0]


class LoraSpec(_Strict):
    """LoRA adapters on the LM only (peft); merged into plain weights when the stage ends."""

    r: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                 "gate_proj", "up_proj", "down_proj"])


class DataEntry(_Strict):
    """One JSONL of canonical samples; ``{data}`` or a relative path resolves under the data root."""

    path: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)

    def resolve(self, data_root: str | Path) -> Path:
        return resolve_data_path(self.path, data_root)


def resolve_data_path(path: str, data_root: str | Path) -> Path:
    if "{data}" in path:
        return Path(path.replace("{data}", str(data_root)))
    p = Path(path)
    return p if p.is_absolute() else Path(data_root) / p


class StageSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    skip: bool = False
    # "previous": the last earlier stage that finished (else the base model); "base": a fresh
    # build from the recipe's model config; anything else: a saved model directory
    init: str = "previous"
    lr: PartLR = Field(default_factory=PartLR)
    lora: LoraSpec | None = None
    data: list[DataEntry] = Field(min_length=1)
    steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)  # passes over the summed size of all entries
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # cosine floor as a share of the peak lr
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    eval_every: int = Field(0, ge=0)  # steps between val losses; 0: only at the end
    eval_at_start: bool = False  # a val loss before the first step (step 0), as a baseline
    val_fraction: float = Field(0.0, ge=0, lt=1)  # held out of each entry
    val_path: str | None = None  # or a separate JSONL (under the data root)
    val_max_samples: int = Field(64, ge=1)  # keeps each val pass cheap
    save_every: int = Field(0, ge=0)  # steps between checkpoints; 0: only at the end
    keep_last: int = Field(2, ge=1)
    max_length: int | None = Field(None, ge=8)  # overrides the model's max_length
    bf16: bool = True
    cache_vision: bool = True  # reuse tower features when the tower is frozen
    cache_bytes: int = Field(2 << 30, ge=0)
    log_every: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> StageSpec:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"stage {self.name!r}: give exactly one of steps or epochs")
        if not self.lr.trainable():
            raise ValueError(f"stage {self.name!r}: every learning rate is 0, nothing trains")
        if self.lora is not None and self.lr.lm <= 0:
            raise ValueError(f"stage {self.name!r}: LoRA needs lr.lm > 0")
        if self.val_fraction and self.val_path:
            raise ValueError(f"stage {self.name!r}: give val_fraction or val_path, not both")
        return self

    def total_steps(self, dataset_size: int, world_size: int = 1) -> int:
        """Optimiser steps: ``steps`` as given, or ``epochs`` passes over ``dataset_size``."""
        if self.steps is not None:
            return self.steps
        per_step = self.batch_size * self.grad_accum * world_size
        return max(1, math.ceil(self.epochs * dataset_size / per_step))


class OutputSpec(_Strict):
    plot: bool = True  # out_dir/loss_curves.png after the run
    tensorboard: bool = True  # when torch.utils.tensorboard imports


class Recipe(_Strict):
    model: VLMConfig
    stages: list[StageSpec] = Field(min_length=1)
    seed: int = 0
    output: OutputSpec = Field(default_factory=OutputSpec)

    @model_validator(mode="after")
    def _unique(self) -> Recipe:
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dupes)}")
        return self

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise RecipeError(f"no stage {name!r}; stages: {', '.join(s.name for s in self.stages)}")


# -- overrides ---------------------------------------------------------------------------

def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``Optional[X]``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_class(arg)
        if found is not None:
            return found
    return None


def _is_mapping(annotation: Any) -> bool:
    """``dict[...]`` or a union holding one: a free-form mapping that takes any sub-key."""
    origin = typing.get_origin(annotation)
    if origin is dict or annotation is dict:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(annotation))
    return False


def _check_path(keys: list[str], full: str) -> None:
    """Walk ``keys`` through the Recipe schema; unknown keys raise naming the known ones."""
    cls: type[BaseModel] | None = Recipe
    i = 0
    while i < len(keys):
        key = keys[i]
        if cls is None:
            return  # inside a free-form dict (e.g. model.lm_kwargs.dtype)
        fields = cls.model_fields
        if key not in fields:
            raise RecipeError(f"override {full!r}: unknown key {key!r}; known: "
                              f"{', '.join(fields)}")
        annotation = fields[key].annotation
        if cls is Recipe and key == "stages" and i + 1 < len(keys):
            i += 2  # the next key names a stage (or indexes the list)
            cls = StageSpec
            continue
        if i + 1 < len(keys) and _model_class(annotation) is None and not _is_mapping(annotation):
            raise RecipeError(f"override {full!r}: {key!r} is a value, it has no sub-keys")
        cls = _model_class(annotation)
        i += 1


def _stage_index(stages: list[dict[str, Any]], key: str, full: str) -> int:
    for i, stage in enumerate(stages):
        if stage.get("name") == key:
            return i
    if key.isdigit() and int(key) < len(stages):
        return int(key)
    names = ", ".join(str(s.get("name")) for s in stages)
    raise RecipeError(f"override {full!r}: no stage {key!r}; stages: {names}")


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` edits (value parsed as YAML) to a raw recipe dict, in place."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r}: expected key=value")
        keys = [k for k in key.strip().split(".")]
        if any(not k for k in keys):
            raise RecipeError(f"override {item!r}: empty key segment")
        _check_path(keys, item)
        value = yaml.safe_load(text) if text.strip() else ""
        node: Any = raw
        for depth, k in enumerate(keys[:-1]):
            if isinstance(node, list):
                node = node[_stage_index(node, k, item)]
                continue
            if depth == 0 and k == "stages":
                node = node.setdefault("stages", [])
                continue
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[_stage_index(node, last, item)] = value
        else:
            node[last] = value
    return raw


def _validate(raw: dict[str, Any], source: str) -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(f"{source}: invalid recipe:\n{error}") from None


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a YAML recipe, apply dotted overrides, validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise RecipeError(f"{path}: cannot read recipe: {error}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with 'model' and 'stages'")
    return _validate(apply_overrides(raw, overrides), str(path))


def override_recipe(recipe: Recipe, overrides: Sequence[str]) -> Recipe:
    """A copy of ``recipe`` with dotted overrides applied and validated again."""
    if not overrides:
        return recipe
    raw = recipe.model_dump(mode="json")
    return _validate(apply_overrides(raw, overrides), "overrides")


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
