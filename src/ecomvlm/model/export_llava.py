"""Export a VLM with transformers backbones as a ``LlavaForConditionalGeneration`` folder.

The folder is what plain transformers (``LlavaForConditionalGeneration.from_pretrained`` +
``AutoProcessor.from_pretrained``) and vLLM load: ``config.json`` (LlavaConfig),
``generation_config.json``, safetensors weights (sharded past ``max_shard_size``), the
tokenizer, a ``LlavaProcessor`` (patch size and select strategy that expand ``<image>`` to our
tokens per image, a PIL image processor with our tower's size / mean / std / resampling) and
the chat template.

Only the LLaVA construction maps exactly: a SigLIP or CLIP tower read at an integer
``feature_layer`` (Llava takes ``hidden_states[layer]``; SigLIP's final output adds
``post_layernorm``, which Llava and vLLM skip), the ``mlp2x_gelu`` projector, and a decoder whose
logits are ``lm_head(model(x))`` (Llama, Mistral, Qwen2, Qwen3). Anything else is refused
with the reason, rather than exported with silently different outputs.

Weights are written in the classic hub layout (``vision_tower.vision_model.*``,
``multi_modal_projector.*``, ``language_model.model.*``, ``language_model.lm_head.*``), the one
llava-hf checkpoints use: transformers 5 maps it onto its own module names when loading, and
vLLM's Llava weight loader expects it. The processor files likewise use the flat hub layout.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SUPPORTED_TOWERS = ("siglip_vision_model", "clip_vision_model")  # what vLLM's Llava runs too
SUPPORTED_LMS = ("llama", "mistral", "qwen2", "qwen3")
DEFAULT_SHARD_BYTES = 5 * 1024**3
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class ExportError(ValueError):
    """The model has a part that LlavaForConditionalGeneration cannot reproduce exactly."""


@dataclass(frozen=True)
class _Plan:
    strategy: str  # "default" drops one leading token (CLIP's CLS), "full" keeps all
    extra_tokens: int  # tokens the tower emits besides patches (LlavaProcessor's count)
    feature_layer: int
    patch_size: int


def _base_lm(lm: Any) -> Any:
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def check_exportable(model: Any) -> _Plan:
    """Why ``model`` cannot become a Llava folder (raises :class:`ExportError`), else the plan."""
    from .hf_vision import HFVisionTower
    from .projector import MLP2xGelu

    tower, spec = model.vision, model.config.vision
    if not isinstance(tower, HFVisionTower):
        raise ExportError(f"vision tower {spec!r} is not a transformers model; Llava (and vLLM) "
                          f"need an hf: SigLIP or CLIP tower")
    kind = tower.model.config.model_type
    if kind not in SUPPORTED_TOWERS:
        raise ExportError(f"vision tower {spec!r} is {kind!r}; Llava export supports "
                          f"{list(SUPPORTED_TOWERS)} (SigLIP2 NaFlex needs patch inputs Llava "
                          f"does not pass)")
    if not isinstance(tower.feature_layer, int) or isinstance(tower.feature_layer, bool):
        raise ExportError(f"vision tower {spec!r} uses its final output (feature_layer=None), "
                          f"which includes SigLIP's post_layernorm that Llava and vLLM skip; "
                          f"build the model with vision_kwargs={{'feature_layer': -1}} (or -2)")
    if tower.num_prefix_tokens not in (0, 1):
        raise ExportError(f"vision tower {spec!r} drops {tower.num_prefix_tokens} leading tokens; "
                          f"Llava can drop at most one (CLS)")
    if tower.resize_mode not in ("squash", "center_crop"):
        raise ExportError(f"vision tower {spec!r} resizes with {tower.resize_mode!r}; no "
                          f"transformers image processor reproduces it (LLaVA's pad-to-square "
                          f"pads before resizing); use 'squash' or 'center_crop'")
    size = getattr(tower.model.config, "image_size", None)
    if tower.image_size != size:
        raise ExportError(f"vision tower {spec!r} is fed {tower.image_size} px images but its "
                          f"config says {size} px; Llava runs the tower at the config size")
    if type(model.projector) is not MLP2xGelu:
        raise ExportError(f"projector {model.config.projector!r} has no Llava equivalent; only "
                          f"'mlp2x_gelu' (Linear-GELU-Linear per token) maps to "
                          f"LlavaMultiModalProjector")
    lm_type = _base_lm(model.lm).config.model_type
    if lm_type not in SUPPORTED_LMS:
        raise ExportError(f"LM {model.config.lm!r} is {lm_type!r}; Llava export supports "
                          f"{list(SUPPORTED_LMS)}, whose logits are exactly lm_head(decoder(x))")
    prefix = tower.num_prefix_tokens
    return _Plan(strategy="default" if prefix else "full", extra_tokens=prefix,
                 feature_layer=tower.feature_layer, patch_size=tower.patch_size)


# -- config and weights -----------------------------------------------------------------
def _llava_config(model: Any, plan: _Plan, dtype: torch.dtype) -> Any:
    from transformers import LlavaConfig

    vision_config = copy.deepcopy(model.vision.model.config)
    text_config = copy.deepcopy(_base_lm(model.lm).config)
    config = LlavaConfig(
        vision_config=vision_config, text_config=text_config,
        image_token_id=model.image_token_id, image_seq_length=model.tokens_per_image,
        projector_hidden_act="gelu",  # exact erf GELU, as nn.GELU() in MLP2xGelu
        vision_feature_layer=plan.feature_layer, vision_feature_select_strategy=plan.strategy,
        multimodal_projector_bias=True, tie_word_embeddings=text_config.tie_word_embeddings)
    config.architectures = ["LlavaForConditionalGeneration"]
    for part in (config, config.vision_config, config.text_config):
        part.dtype = dtype
    return config


def _merged_lm(lm: Any) -> Any:
    """LoRA adapters folded into plain weights, on a copy (the caller's model is untouched)."""
    if hasattr(lm, "merge_and_unload"):
        return copy.deepcopy(lm).merge_and_unload()
    return lm


def llava_state_dict(model: Any, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Our weights under Llava's hub names; a tied lm_head is left out (Llava re-ties it)."""
    lm = _merged_lm(model.lm)
    tied = bool(lm.config.tie_word_embeddings)
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.vision.model.state_dict().items():
        # transformers 5 flattens CLIP/SigLIP vision models; the hub keeps "vision_model."
        key = name if name.startswith("vision_model.") else f"vision_model.{name}"
        out[f"vision_tower.{key}"] = tensor
    for name, tensor in model.projector.state_dict().items():
        out[f"multi_modal_projector.{name}"] = tensor
    prefix = f"{lm.base_model_prefix}."
    for name, tensor in lm.state_dict().items():
        if name.startswith("lm_head."):
            if not tied:
                out[f"language_model.{name}"] = tensor
        elif name.startswith(prefix):
            out[f"language_model.model.{name[len(prefix):]}"] = tensor
        else:
            raise ExportError(f"LM weight {name!r} is outside {prefix!r} and lm_head")
    return {k: v.detach().to("cpu", dtype).contiguous() for k, v in out.items()}


def _write_weights(tensors: dict[str, torch.Tensor], directory: Path, max_shard_bytes: int) -> None:
    """model.safetensors, or shards plus model.safetensors.index.json past the size limit."""
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(directory / "model.safetensors"), metadata=meta)
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        filename = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / filename), metadata=meta)
        weight_map.update(dict.fromkeys(shard, filename))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _generation_config(model: Any) -> Any:
    """The LM's generation defaults, stopping on every token our generate stops on."""
    from .generate import stop_token_ids

    config = copy.deepcopy(_base_lm(model.lm).generation_config)
    stops = sorted(stop_token_ids(model))
    config.eos_token_id = stops[0] if len(stops) == 1 else stops
    config.pad_token_id = model.tokenizer.pad_token_id
    return config


# -- processor ----------------------------------------------------------------------------
# Put in front of the LM's template: OpenAI/transformers content parts become one string with
# <image> where each image was, so templates written for string content (most LM templates)
# render image messages too; string content passes through unchanged.
_CONTENT_PARTS_TO_TEXT = (
    "{%- set _norm = namespace(messages=[]) -%}"
    "{%- for _m in messages -%}"
    "{%- if _m['content'] is string or _m['content'] is none -%}"
    "{%- set _norm.messages = _norm.messages + [_m] -%}"
    "{%- else -%}{%- set _text = namespace(value='') -%}"
    "{%- for _part in _m['content'] -%}"
    "{%- if _part['type'] in ('image', 'image_url') -%}"
    "{%- set _text.value = _text.value + '<image>' -%}"
    "{%- elif _part['type'] == 'text' -%}{%- set _text.value = _text.value + _part['text'] -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- set _norm.messages = _norm.messages + [{'role': _m['role'], 'content': _text.value}] -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- set messages = _norm.messages -%}"
)


def processor_chat_template(template: Any) -> str:
    """The LM's chat template made to accept image content parts."""
    if not isinstance(template, str) or not template:
        raise ExportError(f"the tokenizer needs one chat template string, got {type(template)}")
    return _CONTENT_PARTS_TO_TEXT + template


def image_processor_for(tower: Any) -> Any:
    """A PIL-backed transformers image processor that computes exactly ``tower.preprocess``."""
    import transformers

    common = {"do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255,
              "do_normalize": True, "do_convert_rgb": True, "resample": int(tower.resample),
              "image_mean": list(tower.image_mean), "image_std": list(tower.image_std)}
    side = tower.image_size
    if tower.resize_mode == "squash":  # stretch to the square, as SigLIP does
        return transformers.SiglipImageProcessorPil(size={"height": side, "width": side}, **common)
    # shortest side to size / crop_pct, then the central square (CLIP)
    return transformers.CLIPImageProcessorPil(
        size={"shortest_edge": round(side / tower.crop_pct)},
        crop_size={"height": side, "width": side}, do_center_crop=True, **common)


def _write_processor(model: Any, plan: _Plan, directory: Path) -> None:
    from transformers import LlavaProcessor

    tower = model.vision
    grid = (tower.image_size // plan.patch_size) ** 2
    expands_to = grid + plan.extra_tokens - (1 if plan.strategy == "default" else 0)
    if expands_to != model.tokens_per_image:
        raise ExportError(f"LlavaProcessor would expand <image> to {expands_to} tokens but the "
                          f"model uses {model.tokens_per_image} per image")
    template = processor_chat_template(model.tokenizer.chat_template)
    tokenizer = copy.deepcopy(model.tokenizer)  # the model's own tokenizer keeps its template
    tokenizer.chat_template = template
    processor = LlavaProcessor(
        image_processor=image_processor_for(tower), tokenizer=tokenizer,
        patch_size=plan.patch_size, vision_feature_select_strategy=plan.strategy,
        chat_template=template, image_token="<image>",
        num_additional_image_tokens=plan.extra_tokens)
    processor.save_pretrained(directory)
    _hub_processor_layout(directory)


def _hub_processor_layout(directory: Path) -> None:
    """Rewrite transformers 5's nested processor files in the flat layout of hub checkpoints.

    transformers 5 reads both; older readers (transformers 4, tools that open
    preprocessor_config.json directly) only know the flat one.
    """
    proc_path = directory / "processor_config.json"
    proc = json.loads(proc_path.read_text())
    image = proc.pop("image_processor", None)
    if image is not None:
        image["processor_class"] = proc.get("processor_class", "LlavaProcessor")
        (directory / "preprocessor_config.json").write_text(json.dumps(image, indent=2))
        proc_path.write_text(json.dumps(proc, indent=2))
    tok_path = directory / "tokenizer_config.json"
    tok = json.loads(tok_path.read_text())
    if tok.get("tokenizer_class") == "TokenizersBackend":  # a class name only transformers 5 has
        tok["tokenizer_class"] = "PreTrainedTokenizerFast"
        tok_path.write_text(json.dumps(tok, indent=2))


# -- public -------------------------------------------------------------------------------
def _prepare_target(out: Path) -> None:
    """Only an empty folder or an earlier Llava export may be replaced."""
    if not out.exists():
        return
    config = out / "config.json"
    earlier = config.is_file() and json.loads(config.read_text()).get("model_type") == "llava"
    if out.is_dir() and (earlier or not any(out.iterdir())):
        return
    raise FileExistsError(f"{out} exists and is not a Llava export; choose another folder")


def _resolve_dtype(dtype: torch.dtype | str | None, model: Any) -> torch.dtype:
    if dtype is None:
        return next(_base_lm(model.lm).parameters()).dtype
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if isinstance(dtype, str):
        if dtype not in names:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
        return names[dtype]
    return dtype


def export_llava(model: Any, out_dir: str | Path, *, dtype: torch.dtype | str | None = None,
                 max_shard_size: int = DEFAULT_SHARD_BYTES) -> Path:
    """Write ``model`` (a VisionLanguageModel, or the folder of one) as a Llava folder.

    ``dtype`` defaults to the LM's; weights past ``max_shard_size`` bytes go into shards. The
    folder is written beside ``out_dir`` and renamed into place. Raises :class:`ExportError`
    naming the part that Llava cannot reproduce.
    """
    if isinstance(model, (str, os.PathLike)):
        from .vlm import VisionLanguageModel

        if not (Path(model) / "config.json").is_file():
            raise FileNotFoundError(f"{model} has no config.json: pass a folder written by "
                                    f"VisionLanguageModel.save_pretrained (a stage's final "
                                    f"model), not a training checkpoint")
        model = VisionLanguageModel.from_pretrained(model)
    plan = check_exportable(model)
    dtype = _resolve_dtype(dtype, model)
    out = Path(out_dir)
    _prepare_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        _llava_config(model, plan, dtype).save_pretrained(scratch)
        _generation_config(model).save_pretrained(scratch)
        _write_weights(llava_state_dict(model, dtype), scratch, max_shard_size)
        _write_processor(model, plan, scratch)
        # safetensors writes 0600 files; give weights the mode of the other files, so a
        # server running as another user can read them
        mode = (scratch / "config.json").stat().st_mode & 0o777
        for path in scratch.glob("*.safetensors"):
            path.chmod(mode)
        pickled = [p.name for p in scratch.iterdir() if p.suffix in _PICKLE_SUFFIXES]
        if pickled:  # nothing in an export may need pickle to load
            raise ExportError(f"pickle files were written: {pickled}")
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(scratch, out)
    return out
