"""The vision-tower interface a VLM composes: PIL preprocessing + feature tokens.

Every tower turns PIL images into a pixel tensor with its own recipe (``preprocess``) and a
pixel tensor into a sequence of feature tokens (``forward``), and states ``hidden_size``,
``num_tokens`` and ``image_size`` so a projector can be sized without running it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ecomvlm.images import fit_image, to_rgb

from .images import RESIZE_MODES, letterbox_offset, resize_image


class VisionTower(nn.Module):
    """Base class: subclasses set the attributes below and implement ``forward``.

    ``preprocess(images) -> [B, 3, image_size, image_size]`` float32, normalised;
    ``forward(pixel_values) -> [B, num_tokens, hidden_size]``.
    """

    spec: str
    hidden_size: int
    num_tokens: int
    image_size: int

    def __init__(
        self,
        spec: str,
        image_size: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        resize_mode: str = "squash",
        crop_pct: float = 1.0,
        resample: int = Image.BICUBIC,
    ):
        super().__init__()
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize mode {resize_mode!r} is not one of {RESIZE_MODES}")
        self.spec = spec
        self.image_size = int(image_size)
        self.image_mean = tuple(float(m) for m in image_mean)
        self.image_std = tuple(float(s) for s in image_std)
        self.resize_mode = resize_mode
        self.crop_pct = crop_pct
        self.resample = resample

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> [B, 3, H, W] float32 with this tower's size, mean and std."""
        return torch.from_numpy(np.stack([self._normalised(img) for img in images]))

    def _normalised(self, image: Image.Image) -> np.ndarray:
        """One image -> [3, S, S] float32; letterbox padding is exactly 0 ("no signal")."""
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        size = self.image_size
        if self.resize_mode == "letterbox":
            inner = fit_image(to_rgb(image), size, self.resample)
            left, top = letterbox_offset(inner.size, size)
            out = np.zeros((size, size, 3), dtype=np.float32)
            values = (np.asarray(inner, dtype=np.float32) / 255.0 - mean) / std
            out[top:top + inner.height, left:left + inner.width] = values
        else:
            resized = resize_image(image, size, self.resize_mode, self.crop_pct, self.resample)
            out = (np.asarray(resized, dtype=np.float32) / 255.0 - mean) / std
        return np.ascontiguousarray(out.transpose(2, 0, 1))  # [H, W, 3] -> [3, H, W]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Convenience for inference: PIL images -> [B, num_tokens, hidden_size]."""
        pixels = self.preprocess(images).to(self.device, self.dtype)
        return self.forward(pixels)

    def extra_repr(self) -> str:
        return (f"spec={self.spec!r}, image_size={self.image_size}, "
                f"num_tokens={self.num_tokens}, hidden_size={self.hidden_size}")
