"""Stage 2 of curation, perceive: one ImagePerception (structure + a caption) per listing photo.

Every backend is a :class:`Captioner` built from the ``CAPTIONER`` registry:

    perception                       the default; runs on CPU (perceive_local.py)
    openai:http://host:8000/v1?model=M   any OpenAI-compatible VLM endpoint (perceive_remote.py)
    hf:<model id or path>            a local transformers image-text-to-text model

``Captioner.perceive(listing)`` reads each photo once, fills ``listing.image_sha256``, serves
photos it has seen before (same bytes, any listing) from an on-disk cache keyed by sha256, and
hands only the new ones to the backend's ``_perceive_new`` in one batch. Unreadable photos
raise a typed ``ImageError`` naming the listing, so the pipeline can quarantine it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ecomvlm.images import ImageError, decode_image, image_sha256, read_image_bytes
from ecomvlm.registry import CAPTIONER

from .perception_cache import PerceptionCache
from .records import CleanListing, ImagePerception


@dataclass
class Photo:
    """One decoded photo of a listing and where it came from."""

    index: int  # position in the listing
    source: str
    sha256: str
    image: Image.Image


class Captioner:
    """Base of every perceive backend: loading, sha256, caching; subclasses perceive."""

    backend = "base"

    def __init__(self, cache_dir: str | Path | None = None, *, allow_url_fetch: bool = False,
                 cache_namespace: str | None = None):
        self.cache = PerceptionCache(cache_dir, cache_namespace or self.backend)
        self.allow_url_fetch = allow_url_fetch

    def perceive(self, listing: CleanListing) -> list[ImagePerception]:
        """One record per photo of ``listing``, in listing order."""
        shas, todo, out = [], [], {}
        for k, source in enumerate(listing.images):
            data = self._read(listing.id, k, source)
            sha = image_sha256(data)
            shas.append(sha)
            if sha in out or any(p.sha256 == sha for p in todo):
                continue  # the same photo twice in one listing: perceive it once
            cached = self.cache.get(sha)
            if cached is not None:
                out[sha] = cached
                continue
            image = decode_image(data, f"{listing.id} image {k} ({source})")
            todo.append(Photo(k, str(source), sha, image))
        listing.image_sha256 = shas
        if todo:
            for photo, record in zip(todo, self.perceive_photos(todo), strict=True):
                out[photo.sha256] = record
                self.cache.put(record)
        return [out[sha] for sha in shas]

    def _read(self, listing_id: str, k: int, source: str) -> bytes:
        try:
            return read_image_bytes(source, allow_url_fetch=self.allow_url_fetch)
        except ImageError as error:  # say which listing and photo, keep the typed reason
            raise type(error)(f"{listing_id} image {k} ({error.source})", error.detail) \
                from error

    def perceive_photos(self, photos: list[Photo]) -> list[ImagePerception]:
        """Perceive photos not in the cache, all of one listing (a backend may batch them)."""
        raise NotImplementedError


# ---------------------------------------------------------------- captions from structure
def _colour_words(colours: list[tuple[str, float]]) -> str:
    if not colours:
        return ""
    main = colours[0][0].lower()
    second = [n.lower() for n, s in colours[1:2] if s >= 0.2]
    return f"{main} and {second[0]}" if second else main


def _quote(lines: list[str], limit: int = 160) -> str:
    text = " | ".join(s.strip() for s in lines if s.strip())
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text.replace("'", "\u2019")


def caption_from_structure(p: ImagePerception, *, thing: str = "product",
                           backdrop: str = "") -> str:
    """A short caption that says only what the structure shows.

    "a red product on a white background"; "a label reading 'Nordvik | Size M | 100% Cotton'";
    "product packaging reading 'Voltera | ...' with marks: CE, UKCA"."""
    from ecomvlm.catalog.taxonomy import MARKS

    if p.role == "product":
        colour = _colour_words(p.colours)
        where = f" on a {backdrop} background" if backdrop else ""
        article = "an" if (colour or thing)[:1] in "aeiou" else "a"
        return f"{article} {colour + ' ' if colour else ''}{thing}{where}".strip()
    if p.role in ("label", "packaging"):
        head = "a label" if p.role == "label" else "product packaging"
        text = _quote([b.text for b in p.ocr])
        out = f"{head} reading '{text}'" if text else f"{head} with no legible text"
        if p.marks:
            names = ", ".join(MARKS.get(m.mark, m.mark) for m in p.marks)
            out += f", with marks: {names}"
        return out
    return "a photo with no product in view"


# ---------------------------------------------------------------- registry
@CAPTIONER.register("perception")
def _build_perception(**kwargs: Any) -> Captioner:
    from .perceive_local import PerceptionCaptioner

    return PerceptionCaptioner(**kwargs)


@CAPTIONER.register("openai:")
def _build_openai(url: str, **kwargs: Any) -> Captioner:
    from .perceive_remote import OpenAICaptioner

    return OpenAICaptioner(url, **kwargs)


@CAPTIONER.register("hf:")
def _build_hf(model: str, **kwargs: Any) -> Captioner:
    from .perceive_remote import HFCaptioner

    return HFCaptioner(model, **kwargs)
