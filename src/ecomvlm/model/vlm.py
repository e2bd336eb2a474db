"""The VLM: vision tower -> projector -> causal LM, each picked by name from its registry.

    model = VisionLanguageModel.build(VLMConfig(vision="packaged:efficientnet-lite0",
                                                projector="mlp2x_gelu",
                                                lm="packaged:smollm2-135m-instruct"))

Image placeholders in the token sequence are overwritten by projected image features (the
LLaVA construction), so any tower, projector and decoder combine. Training computes logits
only where a label is set: with a 49k vocabulary the full [B, T, V] logits would cost as much
as a good part of the decoder. Weights save as safetensors next to a JSON config and the
tokenizer; nothing loads through pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from ..registry import LM, PROJECTOR, VISION
from ..samples import IMAGE_TOKEN
from .processor import IGNORE, VLMProcessor

FORMAT = "ecomvlm-vlm"
WEIGHTS = "model.safetensors"


class VLMConfig(BaseModel):
    """Which parts make the model; saved as ``config.json`` beside the weights."""

    model_config = ConfigDict(extra="forbid")
    vision: str = "packaged:efficientnet-lite0"
    projector: str = "mlp2x_gelu"
    lm: str = "packaged:smollm2-135m-instruct"
    vision_kwargs: dict[str, Any] = Field(default_factory=dict)
    projector_kwargs: dict[str, Any] = Field(default_factory=dict)
    lm_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_length: int = Field(2048, ge=16)


@dataclass
class VLMOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor  # with labels: [n_loss_tokens, V]; without: [B, T, V]
    num_loss_tokens: int = 0


class VisionLanguageModel(nn.Module):
    def __init__(self, config: VLMConfig, vision: nn.Module, projector: nn.Module,
                 lm: nn.Module, tokenizer: Any):
        super().__init__()
        self.config = config
        self.vision, self.projector, self.lm = vision, projector, lm
        self.tokenizer = tokenizer
        self.processor = VLMProcessor(tokenizer, vision.preprocess, projector.num_tokens,
                                      config.max_length)
        self.image_token_id = self.processor.image_token_id

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, config: VLMConfig | None = None, **overrides: Any) -> VisionLanguageModel:
        """Load the named tower and LM (pretrained where they are) and a fresh projector."""
        config = (config or VLMConfig()).model_copy(update=overrides)
        vision = VISION.build(config.vision, **config.vision_kwargs)
        loaded = LM.build(config.lm, **config.lm_kwargs)
        loaded.ensure_tokens([IMAGE_TOKEN])
        projector = PROJECTOR.build(config.projector, vision_hidden=vision.hidden_size,
                                    lm_hidden=loaded.hidden_size,
                                    vision_tokens=vision.num_tokens, **config.projector_kwargs)
        return cls(config, vision, projector, loaded.model, loaded.tokenizer)

    @property
    def tokens_per_image(self) -> int:
        return self.projector.num_tokens

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part, for per-part learning rates and freezing."""
        return {"vision": list(self.vision.parameters()),
                "projector": list(self.projector.parameters()),
                "lm": list(self.lm.parameters())}

    # -- forward ------------------------------------------------------------------------
    def encode_vision(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] -> tower features [N, t, d] (what ``image_features=`` takes)."""
        dtype = next(self.vision.parameters()).dtype
        return self.vision(pixel_values.to(self.device, dtype))

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
              image_features: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings [B, T, D] with image placeholders replaced by projected features."""
        embeds = self.lm.get_input_embeddings()(input_ids)
        slots = input_ids == self.image_token_id  # [B, T]
        n_slots = int(slots.sum())
        if image_features is None and pixel_values is not None:
            image_features = self.encode_vision(pixel_values)
        if image_features is None:
            if n_slots:
                raise ValueError(f"{n_slots} image positions but no images were given")
            return embeds
        projected = self.projector(image_features.to(self.device))  # [N, k, D]
        if projected.shape[0] * projected.shape[1] != n_slots:
            raise ValueError(f"{projected.shape[0]} images x {projected.shape[1]} tokens do not "
                             f"fill {n_slots} image positions")
        return embeds.masked_scatter(slots.unsqueeze(-1), projected.to(embeds.dtype))

    def _decoder(self) -> nn.Module:
        lm = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
        return lm.get_decoder()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                image_features: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> VLMOutput:
        embeds = self.embed(input_ids, pixel_values, image_features)
        hidden = self._decoder()(inputs_embeds=embeds, attention_mask=attention_mask,
                                 position_ids=position_ids, use_cache=False).last_hidden_state
        head = self.lm.get_output_embeddings()
        if labels is None:
            return VLMOutput(loss=None, logits=head(hidden))
        targets = labels[:, 1:]  # position t predicts token t + 1
        keep = targets != IGNORE  # [B, T-1]
        logits = head(hidden[:, :-1][keep])  # [n, V]: only where loss is taken
        n = int(keep.sum())
        loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum") / max(n, 1)
        return VLMOutput(loss=loss, logits=logits, num_loss_tokens=n)

    # -- generation ---------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, conversations: list[list[dict[str, Any]]],
                 images: list[list[Any]] | None = None, max_new_tokens: int = 64,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 use_cache: bool = True, seed: int | None = None) -> list[str]:
        """Answer each conversation (batched, left-padded); greedy unless ``do_sample``."""
        from .generate import generate_batch

        images = images or [[] for _ in conversations]
        encoded = [self.processor.encode_prompt(c, imgs) for c, imgs in zip(conversations, images)]
        batch = self.processor.collate(encoded, padding_side="left")
        tokens = generate_batch(self, batch, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                temperature=temperature, top_p=top_p, use_cache=use_cache,
                                seed=seed)
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in tokens]

    # -- persistence --------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """config.json + model.safetensors + tokenizer/ (+ lm/ and vision/ configs)."""
        from .persist import save_vlm

        return save_vlm(self, Path(directory))

    @classmethod
    def from_pretrained(cls, directory: str | Path, dtype: torch.dtype | None = None,
                        device: str | torch.device | None = None) -> VisionLanguageModel:
        from .persist import load_vlm

        model = load_vlm(cls, Path(directory))
        if dtype is not None or device is not None:
            model = model.to_dtype(dtype, device)
        return model.eval()

    def to_dtype(self, dtype: torch.dtype | None = None,
                 device: str | torch.device | None = None) -> VisionLanguageModel:
        """Cast weights, keeping rotary frequencies in fp32 as transformers does (a bf16
        ``inv_freq`` moves logits by whole units on long sequences)."""
        rotary = {name: buf.detach().clone() for name, buf in self.named_buffers()
                  if name.endswith("inv_freq")}
        self.to(device=device, dtype=dtype)
        for name, original in rotary.items():
            module_name, _, attr = name.rpartition(".")
            module = self.get_submodule(module_name)
            setattr(module, attr, original.to(getattr(module, attr).device))
        return self


def read_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ecomvlm model (format {data.get('format')!r})")
    return data
