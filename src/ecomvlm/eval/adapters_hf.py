"""Any transformers image-text-to-text model (Llava, and what ``export_llava`` writes) as an
eval adapter: ``AutoModelForImageTextToText`` + ``AutoProcessor`` from a local folder or the
hub cache, greedy and batched with left padding.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ecomvlm.samples import IMAGE_TOKEN

from .adapters import ModelAdapter, Progress, slug
from .base import EvalSample, Generation


def content_parts(prompt: str) -> list[dict[str, str]]:
    """'<image>\\n<image>\\nWhat...' -> [{"type": "image"}, {"type": "image"}, {"type": "text"...}]
    (each placeholder keeps its place; the newline after it belongs to the placeholder)."""
    parts: list[dict[str, str]] = []
    pieces = prompt.split(IMAGE_TOKEN)
    for i, piece in enumerate(pieces):
        if i > 0:
            parts.append({"type": "image"})
            piece = piece.removeprefix("\n")
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


class HFAdapter(ModelAdapter):
    def __init__(self, name_or_path: str, dtype: torch.dtype | None = torch.float32,
                 **load_kwargs: Any):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.spec = f"hf:{name_or_path}"
        self.name = "hf-" + slug(Path(name_or_path).name or name_or_path)
        self.processor = AutoProcessor.from_pretrained(name_or_path)
        kwargs = dict(load_kwargs)
        if dtype is not None:
            kwargs["dtype"] = dtype
        self.model = AutoModelForImageTextToText.from_pretrained(name_or_path, **kwargs).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.image_token = getattr(self.processor, "image_token", IMAGE_TOKEN)
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        self.tokens_per_image = self._tokens_per_image()

    def _tokens_per_image(self) -> int | None:
        """Image tokens one picture costs, measured on a blank image (processors that tile
        by resolution cost more on large photos; samples report their real count)."""
        from PIL import Image

        try:
            probe = self.processor(text=[self.image_token], images=[Image.new("RGB", (64, 64))],
                                   return_tensors="pt")
            return int((probe["input_ids"] == self.image_token_id).sum())
        except Exception:  # noqa: BLE001 - a processor that cannot say; costs stay per sample
            return None

    def render(self, sample: EvalSample) -> str:
        conversation = [{"role": "user", "content": content_parts(sample.prompt)}]
        if getattr(self.processor, "chat_template", None) or \
                getattr(self.tokenizer, "chat_template", None):
            template = self.processor if getattr(self.processor, "chat_template", None) \
                else self.tokenizer
            return template.apply_chat_template(conversation, add_generation_prompt=True,
                                                tokenize=False)
        return sample.prompt.replace(IMAGE_TOKEN, self.image_token)  # a bare processor

    @torch.no_grad()
    def generate(self, samples: list[EvalSample], batch_size: int = 8,
                 progress: Progress = None) -> list[Generation]:
        from .crops import open_ref

        texts = [self.render(s) for s in samples]
        order = sorted(range(len(samples)), key=lambda i: (samples[i].max_new_tokens,
                                                           len(texts[i]), i))
        out: list[Generation | None] = [None] * len(samples)
        self.tokenizer.padding_side = "left"
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            began = time.perf_counter()
            images = [open_ref(r) for i in rows for r in samples[i].images]
            inputs = self.processor(text=[texts[i] for i in rows], images=images or None,
                                    padding=True, return_tensors="pt")
            budget = max(samples[i].max_new_tokens for i in rows)
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
                else self.tokenizer.eos_token_id
            tokens = self.model.generate(**inputs, max_new_tokens=budget, do_sample=False,
                                         pad_token_id=pad)
            new = tokens[:, inputs["input_ids"].shape[1]:]
            share = (time.perf_counter() - began) / len(rows)
            for k, i in enumerate(rows):
                text = self.tokenizer.decode(new[k, :samples[i].max_new_tokens],
                                             skip_special_tokens=True).strip()
                image_tokens = int((inputs["input_ids"][k] == self.image_token_id).sum())
                out[i] = Generation(text, round(share, 5), image_tokens)
            if progress:
                progress(len(rows))
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def text_nll(self, texts: list[str]) -> list[tuple[float, int]]:
        out = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            result = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
            n = ids.shape[1] - 1
            out.append((float(result.loss) * n, n))
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": "transformers",
                "architecture": type(self.model).__name__,
                "dtype": str(self.model.dtype).replace("torch.", "")}
