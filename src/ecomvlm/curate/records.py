"""What the curation stages hand each other: clean -> perceive -> verify -> instruct.

Plain pydantic models, so a stage's output can be written to a shard, cached, or sent to a
Ray worker and read back unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ImageRole = Literal["product", "label", "packaging", "other"]
ClaimStatus = Literal["supported", "contradicted", "unverifiable"]


class CleanListing(BaseModel):
    """A listing after cleaning: readable text, canonical aspect keys and values."""

    id: str
    title: str  # de-stuffed: no emoji, shouting or repeated keywords
    description: str  # plain text, boilerplate removed
    category: str  # the listed category (a taxonomy name when it is one)
    aspects: dict[str, str]  # canonical key -> canonical value (the seller's claims)
    listed_keys: dict[str, str] = Field(default_factory=dict)  # canonical key -> key as listed
    unmapped_aspects: dict[str, str] = Field(default_factory=dict)  # keys we could not place
    images: list[str]  # absolute local paths or http(s) URLs, in listing order
    image_sha256: list[str] = Field(default_factory=list)  # filled when images are read


class OcrBox(BaseModel):
    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels
    score: float


class MarkBox(BaseModel):
    mark: str  # a key of catalog.taxonomy.MARKS
    box: tuple[int, int, int, int]
    score: float


class ImagePerception(BaseModel):
    """What a captioner saw in one image. ``caption`` is text; the rest is structure."""

    sha256: str
    role: ImageRole
    role_confidence: float = 0.0
    colours: list[tuple[str, float]] = Field(default_factory=list)  # (colour name, share)
    ocr: list[OcrBox] = Field(default_factory=list)
    marks: list[MarkBox] = Field(default_factory=list)
    imagenet: list[tuple[str, float]] = Field(default_factory=list)  # (class name, prob)
    categories: list[tuple[str, float]] = Field(default_factory=list)  # (our category, score)
    pattern: tuple[str, float] | None = None  # (taxonomy pattern, confidence) on product shots
    caption: str = ""
    backend: str = "perception"


class ClaimVerdict(BaseModel):
    key: str  # canonical aspect key, or "Category"
    value: str  # the seller's claim, canonical spelling
    status: ClaimStatus
    confidence: float
    evidence: str = ""
    corrected: str | None = None  # a value perception is confident of, when contradicted
    source: str = "perception"


class VerifiedListing(BaseModel):
    """A listing with its photos perceived and every claim judged; the input of ``instruct``."""

    listing: CleanListing
    images: list[ImagePerception]
    verdicts: list[ClaimVerdict]
    facts: dict[str, str]  # what survived: supported claims, plus confident corrections
    category: str  # the category we believe, after verification
    compliance: list[str] = Field(default_factory=list)  # marks seen across the photos
    battery: bool | None = None  # None when nothing in the photos or text settles it
    label_image: int | None = None  # index of the photo that shows the label, if any
