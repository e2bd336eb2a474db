"""VLM captioners: an OpenAI-compatible endpoint (``openai:URL``) or a local transformers model
(``hf:ID``).

Both ask the model, per photo, for a JSON description (role, colours, visible text, category,
marks, caption) and parse the reply defensively: anything that is not the JSON asked for keeps
its text as the caption, with role "other" and zero confidence, and never raises. Only the
photo is sent, never the listing's text, so a seller's description cannot instruct the model.
With ``local=1`` (a URL query flag, or ``local=True``) the cheap local perceiver runs too and
fills what the VLM left out: real OCR boxes, measured colour shares, template-matched marks.

    openai:http://127.0.0.1:8000/v1?model=OpenGVLab/InternVL2_5-26B&local=1&timeout=60
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from PIL import Image

from ecomvlm.catalog.taxonomy import CATEGORIES, COLOURS, MARKS

from .perceive import Captioner, Photo
from .records import ImagePerception, MarkBox, OcrBox

ROLES = ("product", "label", "packaging", "other")
PROMPT = (
    "You are cataloguing one photo from an online marketplace listing. Describe only what is "
    "visible in the photo. Reply with a JSON object with these fields: "
    "role: 'product' (the item itself), 'label' (a close-up of a label, tag or rating sticker), "
    "'packaging' (the box or its back), or 'other' (no product in view); "
    f"colours: the item's colours, dominant first, from {', '.join(COLOURS)}; "
    "visible_text: each line of legible printed text, verbatim; "
    f"category: one of {', '.join(CATEGORIES)}, or 'unknown'; "
    f"marks: compliance marks printed on it, from {', '.join(MARKS)}; "
    "caption: one short sentence describing the photo."
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": list(ROLES)},
        "colours": {"type": "array", "items": {"type": "string", "enum": list(COLOURS)}},
        "visible_text": {"type": "array", "items": {"type": "string"}},
        "category": {"type": "string", "enum": [*CATEGORIES, "unknown"]},
        "marks": {"type": "array", "items": {"type": "string", "enum": list(MARKS)}},
        "caption": {"type": "string"},
    },
    "required": ["role", "colours", "visible_text", "category", "marks", "caption"],
    "additionalProperties": False,
}
MAX_SIDE = 1024  # photos are sent at most this large: enough for small print
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)
_CANON = {k.lower(): k for k in [*COLOURS, *CATEGORIES, *MARKS]}


def _canon(value: object, allowed) -> str | None:
    """The allowed spelling of ``value`` (case-insensitive), or None."""
    if not isinstance(value, str):
        return None
    hit = _CANON.get(value.strip().lower())
    return hit if hit in allowed else None


def parse_reply(text: str, sha256: str, size: tuple[int, int], backend: str) -> ImagePerception:
    """A VLM's reply -> ImagePerception. Bad or partial JSON degrades, it never raises: the
    reply's text becomes the caption, unknown values are dropped, role falls back to other."""
    text = (text or "").strip()
    data: Any = None
    try:
        data = json.loads(_FENCE.sub("", text))
    except ValueError:
        pass
    if not isinstance(data, dict):
        return ImagePerception(sha256=sha256, role="other", caption=text[:500], backend=backend)
    whole = (0, 0, size[0], size[1])  # a VLM gives no boxes: claims cover the whole photo
    role = data.get("role") if data.get("role") in ROLES else "other"
    colours = [c for c in (_canon(v, COLOURS) for v in _as_list(data.get("colours"))) if c]
    colours = list(dict.fromkeys(colours))[:4]
    weights = [1 / (i + 1) for i in range(len(colours))]  # dominant first: rank-weighted shares
    category = _canon(data.get("category"), CATEGORIES)
    marks = list(dict.fromkeys(m for m in (_canon(v, MARKS) for v in _as_list(data.get("marks")))
                               if m))
    lines = [str(t).strip()[:200] for t in _as_list(data.get("visible_text"))
             if isinstance(t, (str, int, float)) and str(t).strip()][:40]
    caption = data.get("caption") if isinstance(data.get("caption"), str) else ""
    return ImagePerception(
        sha256=sha256, role=role, role_confidence=0.8 if data.get("role") in ROLES else 0.0,
        colours=[(c, round(w / sum(weights), 3)) for c, w in zip(colours, weights)],
        ocr=[OcrBox(text=t, box=whole, score=0.5) for t in lines],
        marks=[MarkBox(mark=m, box=whole, score=0.6) for m in marks],
        categories=[(category, 0.8)] if category else [],
        caption=caption.strip()[:500], backend=backend)


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else []


def merge_local(vlm: ImagePerception, local: ImagePerception) -> ImagePerception:
    """The VLM's reading, with measured structure from the local perceiver where it is better
    grounded: OCR boxes, colour shares and mark boxes (the VLM's are whole-photo claims)."""
    update: dict[str, Any] = {
        "ocr": local.ocr or vlm.ocr,
        "marks": local.marks or vlm.marks,
        "colours": vlm.colours or local.colours,
        "imagenet": local.imagenet,
        "categories": vlm.categories or local.categories,
        "caption": vlm.caption or local.caption,
    }
    if vlm.role_confidence == 0.0:  # the VLM gave no usable role
        update.update(role=local.role, role_confidence=local.role_confidence)
    return vlm.model_copy(update=update)


def data_url(image: Image.Image) -> str:
    """The photo as a base64 JPEG data URL, no larger than MAX_SIDE."""
    image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _VLMCaptioner(Captioner):
    """Shared: one request per photo, optional merge with the local perceiver."""

    def __init__(self, cache_dir, *, local: bool, namespace: str, allow_url_fetch: bool):
        super().__init__(cache_dir, allow_url_fetch=allow_url_fetch, cache_namespace=namespace)
        self.local = None
        if local:
            from .perceive_local import PerceptionCaptioner

            self.local = PerceptionCaptioner(None)

    def describe(self, image: Image.Image) -> str:
        raise NotImplementedError

    def perceive_photos(self, photos: list[Photo]) -> list[ImagePerception]:
        out = [parse_reply(self.describe(p.image), p.sha256, p.image.size, self.backend)
               for p in photos]
        if self.local is not None:
            out = [merge_local(v, loc) for v, loc in zip(out, self.local.perceive_photos(photos))]
        return out


class OpenAICaptioner(_VLMCaptioner):
    """``openai:http://host:port/v1?model=M[&local=1][&timeout=S][&max_tokens=N]``; the API key,
    if the server wants one, comes from $OPENAI_API_KEY (never from the spec)."""

    def __init__(self, url: str, cache_dir: str | Path | None = None, *, local: bool = False,
                 timeout: float = 60.0, max_retries: int = 1, allow_url_fetch: bool = False):
        from openai import OpenAI

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"openai captioner needs an http(s) base URL, got {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.base_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.client = OpenAI(base_url=self.base_url,
                             api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
                             timeout=float(query.get("timeout", timeout)),
                             max_retries=max_retries)
        self.model = query.get("model") or self.client.models.list().data[0].id
        self.max_tokens = int(query.get("max_tokens", 512))
        self.backend = f"openai:{self.model}"
        local = local or query.get("local", "0").lower() in ("1", "true", "yes")
        super().__init__(cache_dir, local=local, allow_url_fetch=allow_url_fetch,
                         namespace=f"openai-{parts.netloc}-{self.model}-l{int(local)}")

    def describe(self, image: Image.Image) -> str:
        reply = self.client.chat.completions.create(
            model=self.model, temperature=0.0, max_tokens=self.max_tokens,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": PROMPT},
                {"type": "image_url", "image_url": {"url": data_url(image)}}]}],
            response_format={"type": "json_schema", "json_schema": {
                "name": "photo_description", "schema": SCHEMA, "strict": True}})
        choice = reply.choices[0] if reply.choices else None
        return (choice.message.content or "") if choice is not None else ""


class HFCaptioner(_VLMCaptioner):
    """``hf:<model id or local path>``: an image-text-to-text transformers model, loaded once
    (offline-friendly: ids resolve from the local HF cache)."""

    def __init__(self, model: str, cache_dir: str | Path | None = None, *, local: bool = False,
                 max_new_tokens: int = 96, allow_url_fetch: bool = False):
        self.model_id = model
        self.max_new_tokens = max_new_tokens
        self.backend = f"hf:{Path(model).name or model}"
        self._loaded: tuple[Any, Any] | None = None
        super().__init__(cache_dir, local=local, allow_url_fetch=allow_url_fetch,
                         namespace=f"hf-{model}-l{int(local)}")

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            processor = AutoProcessor.from_pretrained(self.model_id)
            model = AutoModelForImageTextToText.from_pretrained(self.model_id).eval()
            self._loaded = (processor, model)
        return self._loaded

    def describe(self, image: Image.Image) -> str:
        import torch

        processor, model = self._load()
        messages = [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": PROMPT}]}]
        if getattr(processor, "chat_template", None):
            prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        else:  # bare processors: the image placeholder, then the request
            prompt = f"{getattr(processor, 'image_token', '<image>')}\n{PROMPT}"
        inputs = processor(images=[image.convert("RGB")], text=[prompt], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        return processor.batch_decode(new, skip_special_tokens=True)[0]
