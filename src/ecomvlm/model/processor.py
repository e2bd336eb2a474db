"""Canonical samples -> model inputs: chat template, ``<image>`` expansion, loss mask, batching.

The LM's own chat template renders the conversation, so every backbone sees its native format.
Assistant spans are found by rendering growing prefixes of the conversation (the text added
by an assistant turn after its generation prompt is exactly what the model must produce);
tokens whose characters fall in those spans get labels, every other token gets -100. Each
``<image>`` token then becomes ``tokens_per_image`` copies that the model overwrites with
projected image features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ecomvlm.images import ImageError, load_image
from ecomvlm.samples import IMAGE_TOKEN, Sample

IGNORE = -100


class SampleError(ValueError):
    """A sample that cannot become model inputs; the message names the sample."""

    def __init__(self, sample_id: str, reason: str, detail: str):
        super().__init__(f"sample {sample_id!r}: {detail}")
        self.sample_id, self.reason = sample_id, reason


@dataclass
class Encoded:
    """One sample as tensors: ``input_ids``/``labels`` [T], ``pixel_values`` [N, 3, S, S] or None."""

    input_ids: torch.Tensor
    labels: torch.Tensor | None
    pixel_values: torch.Tensor | None
    image_keys: list[str] = field(default_factory=list)
    sample_id: str = ""

    @property
    def num_images(self) -> int:
        return len(self.image_keys) if self.pixel_values is None else self.pixel_values.shape[0]


class VLMProcessor:
    """Tokenises conversations for one (tokenizer, vision tower, projector) combination."""

    def __init__(self, tokenizer: Any, preprocess, tokens_per_image: int, max_length: int = 2048):
        self.tokenizer = tokenizer
        self.preprocess = preprocess  # the tower's PIL -> [B, 3, S, S]
        self.tokens_per_image = tokens_per_image
        self.max_length = max_length
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {IMAGE_TOKEN} token; add it first")
        self.pad_token_id = tokenizer.pad_token_id

    # -- text ---------------------------------------------------------------------------
    def _render(self, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt)

    def _assistant_spans(self, messages: list[dict[str, str]]) -> list[tuple[int, int]]:
        """Character spans of assistant replies (content plus the end-of-turn token)."""
        spans = []
        eos = self.tokenizer.eos_token or ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(self._render(messages[:i], generation_prompt=True))
            end = len(self._render(messages[:i + 1]))
            # stop after the end-of-turn token: trailing newlines are the template's, not the
            # model's, and generation stops at that token anyway
            turn = self._render(messages[:i + 1])[start:end]
            cut = turn.find(eos, len(message["content"].rstrip())) if eos else -1
            spans.append((start, start + cut + len(eos) if cut >= 0 else end))
        return spans

    def _tokenise(self, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, labels = [], []
        for token, (lo, _hi) in zip(enc["input_ids"], enc["offset_mapping"]):
            ids.append(token)
            inside = any(a <= lo < b for a, b in spans)
            labels.append(token if inside and token != self.image_token_id else IGNORE)
        return ids, labels

    def _expand_images(self, ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
        out_ids, out_labels = [], []
        for token, label in zip(ids, labels):
            if token == self.image_token_id:
                out_ids += [token] * self.tokens_per_image
                out_labels += [IGNORE] * self.tokens_per_image
            else:
                out_ids.append(token)
                out_labels.append(label)
        return out_ids, out_labels

    # -- images -------------------------------------------------------------------------
    def _load_images(self, sample_id: str, paths: Sequence[str],
                     image_root: Path | None) -> tuple[list[Image.Image], list[str]]:
        images, keys = [], []
        for rel in paths:
            path = Path(rel) if image_root is None else Path(image_root) / rel
            try:
                images.append(load_image(path))
            except (ImageError, OSError) as error:
                reason = getattr(error, "reason", "unreadable_image")
                raise SampleError(sample_id, reason, f"image {rel}: {error}") from None
            keys.append(str(path.resolve()))
        return images, keys

    # -- public -------------------------------------------------------------------------
    def encode(self, sample: Sample | dict[str, Any], image_root: str | Path | None = None,
               images: Sequence[Image.Image] | None = None, load_pixels: bool = True) -> Encoded:
        """A training sample -> ids, labels (-100 off assistant text) and pixels.

        ``load_pixels=False`` skips decoding the images (a caller with cached tower features
        only needs ``image_keys``). Raises :class:`SampleError` naming the sample.
        """
        if not isinstance(sample, Sample):
            try:
                sample = Sample.model_validate(sample)
            except ValueError as error:
                raise SampleError(str(sample.get("id", "?")), "invalid_sample", str(error)) from None
        messages = [m.model_dump() for m in sample.messages]
        text = self._render(messages)
        ids, labels = self._tokenise(text, self._assistant_spans(messages))
        found = ids.count(self.image_token_id)
        if found != len(sample.images):
            raise SampleError(sample.id, "image_token_mismatch",
                              f"{found} {IMAGE_TOKEN} tokens after templating, "
                              f"{len(sample.images)} images")
        ids, labels = self._expand_images(ids, labels)
        ids, labels = self._truncate(sample.id, ids, labels)
        pixels, keys = None, []
        if images is not None:
            pixels = self.preprocess(list(images)) if images else None
        elif sample.images:
            root = Path(image_root) if image_root is not None else None
            if load_pixels:
                loaded, keys = self._load_images(sample.id, sample.images, root)
                pixels = self.preprocess(loaded)
            else:
                keys = [str((root / p if root else Path(p)).resolve()) for p in sample.images]
        return Encoded(torch.tensor(ids), torch.tensor(labels), pixels, keys, sample.id)

    def _truncate(self, sample_id: str, ids: list[int],
                  labels: list[int]) -> tuple[list[int], list[int]]:
        """Cut text past ``max_length``; never cut through images or drop every label."""
        if len(ids) <= self.max_length:
            return ids, labels
        last_image = max((i for i, t in enumerate(ids) if t == self.image_token_id), default=-1)
        if last_image >= self.max_length or all(x == IGNORE for x in labels[:self.max_length]):
            raise SampleError(sample_id, "too_long",
                              f"{len(ids)} tokens with images exceed max_length "
                              f"{self.max_length}")
        return ids[:self.max_length], labels[:self.max_length]

    def encode_prompt(self, messages: list[dict[str, Any]],
                      images: Sequence[Image.Image] = ()) -> Encoded:
        """A conversation to be answered: generation prompt appended, no labels."""
        text = self._render([_text_message(m) for m in messages], generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if ids.count(self.image_token_id) != len(images):
            raise ValueError(f"{ids.count(self.image_token_id)} {IMAGE_TOKEN} placeholders "
                             f"but {len(images)} images")
        ids, _ = self._expand_images(ids, [IGNORE] * len(ids))
        pixels = self.preprocess(list(images)) if images else None
        return Encoded(torch.tensor(ids), None, pixels)

    def collate(self, items: Sequence[Encoded], padding_side: str = "right") -> dict[str, Any]:
        """Pad to the longest item: input_ids/attention_mask/labels [B, T], pixels [N, 3, S, S]."""
        width = max(len(item.input_ids) for item in items)
        ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item.input_ids)
            cols = slice(0, n) if padding_side == "right" else slice(width - n, width)
            ids[row, cols] = item.input_ids
            mask[row, cols] = 1
            if item.labels is not None:
                labels[row, cols] = item.labels
        pixels = [item.pixel_values for item in items if item.pixel_values is not None]
        batch: dict[str, Any] = {"input_ids": ids, "attention_mask": mask,
                                 "pixel_values": torch.cat(pixels) if pixels else None}
        if any(item.labels is not None for item in items):
            batch["labels"] = labels
        return batch


def _text_message(message: dict[str, Any]) -> dict[str, Any]:
    """OpenAI-style content parts -> one string with ``<image>`` where each image was."""
    content = message.get("content", "")
    if isinstance(content, str):
        return {"role": message["role"], "content": content}
    text = "".join(IMAGE_TOKEN if part.get("type") in ("image", "image_url")
                   else part.get("text", "") for part in content)
    return {"role": message["role"], "content": text}
