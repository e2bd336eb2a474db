"""Vision towers from any transformers vision model (``hf:<hub id or local path>``).

SigLIP / SigLIP2 fixed-resolution checkpoints use ``SiglipVisionModel``, CLIP uses
``CLIPVisionModel`` (its CLS token is dropped), SigLIP2 NaFlex uses ``Siglip2VisionModel`` fed
with square images patchified here, and anything else falls back to ``AutoModel``. The
preprocessing recipe comes from ``preprocessor_config.json`` and is applied with PIL, so no
torchvision-backed image processor is needed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from PIL import Image
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from .vision import VisionTower

# model_type of the vision part -> leading tokens that are not image patches (CLS, distillation)
_PREFIX_TOKENS = {"clip_vision_model": 1, "vit": 1, "dinov2": 1, "deit": 2}
_VISION_PART = {"siglip": "siglip_vision_model", "clip": "clip_vision_model",
                "siglip2": "siglip2_vision_model"}
_DEFAULT_MEAN_STD = {
    "clip_vision_model": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}


class HFVisionTower(VisionTower):
    """Wraps a transformers vision encoder; ``forward`` returns patch tokens [B, N, D]."""

    def __init__(self, model: PreTrainedModel, spec: str, image_size: int, image_mean, image_std,
                 resize_mode: str = "squash", crop_pct: float = 1.0,
                 resample: int = Image.BICUBIC, feature_layer: int | None = None):
        super().__init__(spec, image_size, image_mean, image_std, resize_mode, crop_pct, resample)
        self.model = model
        self.model_type = model.config.model_type
        self.feature_layer = feature_layer  # None: final output; -2: penultimate block (LLaVA)
        self.num_prefix_tokens = _PREFIX_TOKENS.get(self.model_type, 0) + int(
            getattr(model.config, "num_register_tokens", 0) or 0)
        self.patch_size = getattr(model.config, "patch_size", None)
        self.hidden_size, self.num_tokens = self._token_geometry()

    def _token_geometry(self) -> tuple[int, int]:
        cfg = self.model.config
        if self.patch_size and hasattr(cfg, "hidden_size"):
            return cfg.hidden_size, (self.image_size // self.patch_size) ** 2
        # unknown architecture (e.g. a ConvNet): measure with one blank image
        with torch.no_grad():
            probe = torch.zeros(1, 3, self.image_size, self.image_size, dtype=self.dtype)
            out = self.forward(probe.to(self.device))
        return out.shape[-1], out.shape[1]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, num_tokens, hidden_size]."""
        pixel_values = pixel_values.to(self.dtype)
        want_hidden = self.feature_layer is not None
        if self.model_type == "siglip2_vision_model":
            out = self.model(**self._naflex_inputs(pixel_values), output_hidden_states=want_hidden)
        else:
            out = self.model(pixel_values=pixel_values, output_hidden_states=want_hidden)
        feats = out.hidden_states[self.feature_layer] if want_hidden else out.last_hidden_state
        if feats.dim() == 4:  # ConvNet feature map [B, C, h, w] -> [B, h*w, C]
            return feats.flatten(2).transpose(1, 2)
        return feats[:, self.num_prefix_tokens:]

    def _naflex_inputs(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Square images -> SigLIP2 NaFlex patches [B, n*n, p*p*3] (channel-last within a patch)."""
        b, c, h, w = pixel_values.shape
        p = self.patch_size
        nh, nw = h // p, w // p
        patches = pixel_values.reshape(b, c, nh, p, nw, p).permute(0, 2, 4, 3, 5, 1)
        patches = patches.reshape(b, nh * nw, p * p * c)
        return {
            "pixel_values": patches,
            "pixel_attention_mask": torch.ones(b, nh * nw, dtype=torch.long, device=patches.device),
            "spatial_shapes": torch.tensor([[nh, nw]] * b, device=patches.device),
        }


def _vision_config(config: PretrainedConfig) -> PretrainedConfig:
    """The vision half of a dual-encoder config (SigLIP, CLIP), else the config itself."""
    vision = getattr(config, "vision_config", None)
    return config if vision is None else vision


def _read_preprocessor_config(name_or_path: str, **hub_kwargs: Any) -> dict[str, Any]:
    """The image-processor settings of a checkpoint, or {} when it ships none."""
    from transformers.utils import cached_file

    for filename in ("preprocessor_config.json", "processor_config.json"):
        path = cached_file(name_or_path, filename, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False, **hub_kwargs)
        if path:
            with open(path) as f:
                data = json.load(f)
            return data.get("image_processor", data)
    return {}


def _side(value: Any) -> int | None:
    """Pixels of a size entry: an int, or a dict with height / shortest_edge."""
    if isinstance(value, dict):
        value = value.get("height") or value.get("shortest_edge")
    return int(value) if value else None


def _per_channel(value: Any) -> list[float]:
    return [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]


def preprocessing_from(vcfg: PretrainedConfig, proc: dict[str, Any]) -> dict[str, Any]:
    """Tower preprocessing kwargs from the vision config and a preprocessor_config dict."""
    mean, std = _DEFAULT_MEAN_STD.get(vcfg.model_type, ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    if vcfg.model_type == "siglip2_vision_model":  # NaFlex: a square of num_patches patches
        num_patches = proc.get("max_num_patches", vcfg.num_patches)
        image_size = math.isqrt(num_patches) * vcfg.patch_size
    else:
        # the processor wins: DINOv2 configs say 518 but the model is fed 224 crops
        processed = _side(proc.get("crop_size")) if proc.get("do_center_crop") else None
        image_size = processed or _side(proc.get("size")) or getattr(vcfg, "image_size", 224)
        image_size = image_size[0] if isinstance(image_size, (list, tuple)) else image_size
    kwargs: dict[str, Any] = {
        "image_size": int(image_size),
        "image_mean": _per_channel(proc.get("image_mean", mean)),
        "image_std": _per_channel(proc.get("image_std", std)),
        "resample": int(proc.get("resample", Image.BICUBIC)),
        "resize_mode": "squash",
    }
    if proc.get("do_center_crop"):
        short, crop = _side(proc.get("size")), _side(proc.get("crop_size"))
        kwargs["resize_mode"] = "center_crop"
        kwargs["crop_pct"] = (crop / short) if (short and crop) else 1.0
    return kwargs


def _model_class(model_type: str):
    import transformers

    names = {"siglip_vision_model": "SiglipVisionModel", "clip_vision_model": "CLIPVisionModel",
             "siglip2_vision_model": "Siglip2VisionModel"}
    return getattr(transformers, names.get(model_type, "AutoModel"))


def wrap_hf_vision(model: PreTrainedModel, spec: str, proc: dict[str, Any] | None = None,
                   feature_layer: int | None | str = "auto", **overrides: Any) -> HFVisionTower:
    """An HFVisionTower around an already-built model (random tiny ones included).

    ``feature_layer="auto"`` takes the final output, except for CLIP where it takes the
    penultimate block as LLaVA does (it transfers better than CLIP's contrastive last layer).
    """
    if feature_layer == "auto":
        feature_layer = -2 if model.config.model_type == "clip_vision_model" else None
    kwargs = preprocessing_from(model.config, proc or {})
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return HFVisionTower(model, spec, feature_layer=feature_layer, **kwargs)


def load_hf_vision(name_or_path: str, *, dtype: str | torch.dtype | None = None,
                   feature_layer: int | None | str = "auto", resize_mode: str | None = None,
                   device: str | torch.device | None = None, **hub_kwargs: Any) -> HFVisionTower:
    """Load the vision part of a hub id or local checkpoint as a frozen-ready tower (eval mode)."""
    full = AutoConfig.from_pretrained(name_or_path, **hub_kwargs)
    vcfg = _vision_config(full)
    vision_type = _VISION_PART.get(vcfg.model_type, vcfg.model_type)
    cls = _model_class(vision_type)
    load_kwargs: dict[str, Any] = dict(hub_kwargs)
    if dtype is not None:
        load_kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if vision_type in ("siglip_vision_model", "siglip2_vision_model"):
        load_kwargs["vision_use_head"] = False  # the attention-pooling head is unused by a VLM
    model = cls.from_pretrained(name_or_path, **load_kwargs).eval()
    if device is not None:
        model = model.to(device)
    proc = _read_preprocessor_config(name_or_path, **hub_kwargs)
    return wrap_hf_vision(model, f"hf:{name_or_path}", proc, feature_layer=feature_layer,
                          resize_mode=resize_mode)
