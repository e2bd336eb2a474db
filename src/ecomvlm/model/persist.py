"""Save and load a VisionLanguageModel without pickle.

A model folder holds ``config.json`` (the VLMConfig, how the tower preprocesses, LoRA
settings), ``model.safetensors`` (every weight, tied ones once), ``tokenizer/``, and the
transformers configs of the LM (``lm/``) and of an ``hf:`` tower (``vision/``). Loading builds
each part from those configs, so it never needs the original checkpoint or hub access.
The folder is written beside its target and renamed into place, so a crash leaves either
the old folder or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..registry import PROJECTOR, VISION
from .vlm import FORMAT, WEIGHTS, VLMConfig, read_config

_TOWER_FIELDS = ("image_size", "image_mean", "image_std", "resize_mode", "crop_pct", "resample",
                 "feature_layer")


def _lora_settings(lm: Any) -> dict[str, Any] | None:
    if not hasattr(lm, "peft_config"):
        return None
    settings = lm.peft_config["default"].to_dict()
    return json.loads(json.dumps(settings, default=lambda v: sorted(v) if isinstance(v, set)
                                 else str(v)))


def _base_lm(lm: Any) -> Any:
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def save_vlm(model: Any, directory: Path) -> Path:
    from safetensors.torch import save_model

    from .hf_vision import HFVisionTower

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    meta: dict[str, Any] = {"format": FORMAT, "version": 1,
                            "config": model.config.model_dump(),
                            "tokens_per_image": model.tokens_per_image,
                            "lora": _lora_settings(model.lm), "vision_tower": None}
    if isinstance(model.vision, HFVisionTower):
        meta["vision_tower"] = {f: getattr(model.vision, f) for f in _TOWER_FIELDS}
        model.vision.model.config.save_pretrained(scratch / "vision")
    _base_lm(model.lm).config.save_pretrained(scratch / "lm")
    model.tokenizer.save_pretrained(scratch / "tokenizer")
    save_model(model, str(scratch / WEIGHTS))  # drops the duplicate of tied embeddings
    os.chmod(scratch / WEIGHTS, 0o644)  # the writer makes it owner-only; others read models too
    (scratch / "config.json").write_text(json.dumps(meta, indent=2))
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(scratch, directory)
    return directory


def _load_vision(config: VLMConfig, directory: Path, tower: dict[str, Any] | None):
    if tower is None:  # packaged and tiny towers rebuild from their spec
        return VISION.build(config.vision, **config.vision_kwargs)
    from transformers import AutoConfig

    from .hf_vision import HFVisionTower, _model_class

    vcfg = AutoConfig.from_pretrained(directory / "vision")
    net = _model_class(vcfg.model_type)._from_config(vcfg).eval()
    return HFVisionTower(net, config.vision, **tower)


def load_vlm(cls: type, directory: Path) -> Any:
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from .lm import prepare_tokenizer

    meta = read_config(directory)
    config = VLMConfig(**meta["config"])
    vision = _load_vision(config, directory, meta.get("vision_tower"))
    lm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(directory / "lm")).eval()
    if meta.get("lora"):
        from peft import LoraConfig, get_peft_model

        lm = get_peft_model(lm, LoraConfig(**{k: v for k, v in meta["lora"].items()
                                              if k in LoraConfig.__dataclass_fields__}))
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(directory / "tokenizer"))
    projector = PROJECTOR.build(config.projector, vision_hidden=vision.hidden_size,
                                lm_hidden=_base_lm(lm).get_input_embeddings().embedding_dim,
                                vision_tokens=vision.num_tokens, **config.projector_kwargs)
    model = cls(config, vision, projector, lm, tokenizer)
    missing, unexpected = load_model(model, str(directory / WEIGHTS), strict=False)
    if missing or unexpected:
        raise ValueError(f"{directory / WEIGHTS} does not match {config.vision} + "
                         f"{config.projector} + {config.lm}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return model
