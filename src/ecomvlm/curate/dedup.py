"""Stage 1b of curation: drop re-posts and near-identical copies, keep the first occurrence.

Two tests, both cheap per listing:

* exact: same normalised title, description and aspects AND the same image bytes (sha256 of
  every photo, as a multiset, so a re-post with its photos reordered still counts);
* near: MinHash over word 3-shingles of title + description, LSH banding to find candidates,
  estimated Jaccard >= ``jaccard`` AND a 64-bit DCT perceptual hash of the first photo within
  ``max_hamming`` bits. Text alone never merges: templated descriptions of different products
  share most shingles, while their photos differ. Two sellers listing one product (different
  text, different photos) are not duplicates either; only copies of one listing are.

State grows with kept listings only: per listing an id, a 16-byte exact key, 128 bytes of
signature (low 8 bits of each MinHash value, with the estimate corrected for chance equality),
a 64-bit image hash and one entry per LSH band. Given the same input order the decisions are
the same: every hash here is seeded or content-derived, never Python's salted ``hash``.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from ecomvlm.curate.records import CleanListing
from ecomvlm.images import decode_image, image_sha256, is_url, read_image_bytes

DupKind = Literal["exact", "near"]
_WORD = re.compile(r"\w+")
_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class DedupDecision:
    kept: bool
    duplicate_of: str | None = None  # id of the first (kept) occurrence
    kind: DupKind | None = None
    # exact: 1.0; near: estimated Jaccard of the match; kept: the best Jaccard among LSH
    # candidates that failed a test (0.0 when there were none), to show near misses.
    score: float = 0.0


def text_words(title: str, description: str) -> list[str]:
    return _WORD.findall(f"{title}\n{description}".casefold())


class MinHasher:
    """MinHash signatures of word shingles with multiply-shift hashing (uint64 arithmetic,
    wrapping on purpose), seeded so signatures are identical across processes and runs."""

    def __init__(self, num_perm: int = 128, shingle: int = 3, seed: int = 20260101) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm, self.shingle = num_perm, shingle
        self._a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)

    def shingle_hashes(self, words: list[str]) -> np.ndarray:
        n = self.shingle
        grams = [" ".join(words[i:i + n]) for i in range(max(len(words) - n + 1, 1))]
        grams = [g for g in grams if g]
        return np.unique(np.array([zlib.crc32(g.encode()) for g in grams], dtype=np.uint64))

    def signature(self, words: list[str]) -> np.ndarray | None:
        """uint32 [num_perm], or None when there are no words to shingle."""
        x = self.shingle_hashes(words)
        if x.size == 0:
            return None
        with np.errstate(over="ignore"):
            h = (self._a[:, None] * x[None, :] + self._b[:, None]) >> np.uint64(32)
        return (h & _MASK32).min(axis=1).astype(np.uint32)


_DCT_N = 32
_DCT = np.cos(np.pi * (2 * np.arange(_DCT_N)[None, :] + 1) * np.arange(_DCT_N)[:, None]
              / (2 * _DCT_N))  # DCT-II basis, [frequency, pixel]


def phash(image: Image.Image) -> int:
    """64-bit perceptual hash: the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail, each
    bit "above the median". Chosen over dHash because flat product-photo backgrounds make
    dHash's neighbour comparisons flip under JPEG noise: on the synthetic catalog a re-encode
    at quality 40 moves dHash up to 21 bits, pHash at most 6."""
    grey = image.convert("L").resize((_DCT_N, _DCT_N), Image.Resampling.BOX, reducing_gap=2.0)
    coef = (_DCT @ np.asarray(grey, dtype=np.float64) @ _DCT.T)[:8, :8].flatten()
    bits = coef > np.median(coef[1:])
    bits[0] = False  # the DC term is overall brightness: carries no shape
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _exact_key(clean: CleanListing, image_hashes: list[str]) -> bytes:
    """What makes two listings one: folded text, aspects and the multiset of photo bytes."""
    def fold(text: str) -> str:
        return " ".join(text.casefold().split())

    record = [fold(clean.title), fold(clean.description),
              sorted((k, fold(v)) for k, v in clean.aspects.items()),
              sorted((k.casefold(), fold(v)) for k, v in clean.unmapped_aspects.items()),
              sorted(image_hashes)]
    return hashlib.sha256(json.dumps(record, ensure_ascii=False).encode()).digest()[:16]


class Deduplicator:
    """Streaming duplicate filter; call ``check`` once per listing in input order.

    ``check`` reads every photo once (sha256, filled into ``clean.image_sha256`` when empty;
    when that list is already filled only the first photo is read) and decodes the first through the hardened ``decode_image``; a read or decode failure
    raises the typed ``ImageError`` and leaves the index untouched, so the caller can
    quarantine the listing and go on. URL photos are fetched only with ``allow_url_fetch``;
    otherwise the URL itself stands in for the bytes and the listing gets no image hash, so it
    can be an exact duplicate but never a near one.
    """

    def __init__(self, *, num_perm: int = 128, bands: int = 32, jaccard: float = 0.7,
                 max_hamming: int = 10, shingle: int = 3, allow_url_fetch: bool = False,
                 **fetch_kwargs) -> None:
        if num_perm % bands:
            raise ValueError(f"bands ({bands}) must divide num_perm ({num_perm})")
        self.hasher = MinHasher(num_perm, shingle)
        self.bands, self.rows = bands, num_perm // bands
        self.jaccard, self.max_hamming = jaccard, max_hamming
        self.allow_url_fetch, self.fetch_kwargs = allow_url_fetch, fetch_kwargs
        self._band_mult = np.random.default_rng(7).integers(1, 2**63, self.rows, dtype=np.uint64)
        self._ids: list[str] = []  # kept listings, by internal index
        self._exact: dict[bytes, int] = {}  # exact key -> index of the kept listing it copies
        self._buckets: list[dict[int, list[int]]] = [{} for _ in range(bands)]
        self._sigs = np.zeros((1024, num_perm), dtype=np.uint8)
        self._phash = np.zeros(1024, dtype=np.uint64)
        self._has_near = np.zeros(1024, dtype=bool)  # has both a signature and an image hash
        self.seen = self.exact = self.near = 0

    # ------------------------------------------------------------------ reading
    def _image_hashes(self, clean: CleanListing) -> tuple[list[str], int | None, bool]:
        """(sha256 per photo, perceptual hash of the first, whether every sha256 is of bytes).
        Hashes an earlier step already filled in are trusted: only the first photo, which the
        perceptual hash needs, is read again. An unfetched URL stands in for its bytes."""
        known = clean.image_sha256 if len(clean.image_sha256) == len(clean.images) else None
        shas: list[str] = []
        first: int | None = None
        all_bytes = True
        for k, src in enumerate(clean.images):
            if known and k > 0:
                shas.append(known[k])
            elif is_url(src) and not self.allow_url_fetch:
                shas.append(known[k] if known else image_sha256(f"url:{src}".encode()))
                all_bytes = all_bytes and bool(known)
            else:
                data = read_image_bytes(src, allow_url_fetch=self.allow_url_fetch,
                                        **self.fetch_kwargs)
                shas.append(image_sha256(data))
                if k == 0:
                    first = phash(decode_image(data, src))
        return shas, first, all_bytes

    def _band_keys(self, sig: np.ndarray) -> list[int]:
        with np.errstate(over="ignore"):
            rows = sig.reshape(self.bands, self.rows).astype(np.uint64) * self._band_mult
        return rows.sum(axis=1, dtype=np.uint64).tolist()

    def _estimate(self, sig8: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Jaccard from 8-bit signatures: equal low bytes happen by chance 1 time in 256."""
        equal = (self._sigs[idx] == sig8[None, :]).mean(axis=1)
        return np.clip((equal - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)

    # ------------------------------------------------------------------ deciding
    def check(self, clean: CleanListing) -> DedupDecision:
        # may raise ImageError; nothing is changed before this returns
        shas, image_hash, all_bytes = self._image_hashes(clean)
        if not clean.image_sha256 and all_bytes:
            clean.image_sha256 = shas
        self.seen += 1
        key = _exact_key(clean, shas)
        if (hit := self._exact.get(key)) is not None:
            self.exact += 1
            return DedupDecision(False, self._ids[hit], "exact", 1.0)

        sig = self.hasher.signature(text_words(clean.title, clean.description))
        band_keys = self._band_keys(sig) if sig is not None else []
        best: tuple[float, int] | None = None
        near_miss = 0.0
        if sig is not None and image_hash is not None:
            found = {i for b, bk in enumerate(band_keys) for i in self._buckets[b].get(bk, ())}
            cands = np.array(sorted(found), dtype=np.int64)
            if cands.size:
                est = self._estimate((sig & 0xFF).astype(np.uint8), cands)
                for i, j in zip(cands.tolist(), est.tolist(), strict=True):
                    close = (self._has_near[i]
                             and hamming(int(self._phash[i]), image_hash) <= self.max_hamming)
                    if j >= self.jaccard and close:
                        if best is None or j > best[0]:
                            best = (j, i)
                    else:
                        near_miss = max(near_miss, j)
        if best is not None:
            self.near += 1
            self._exact[key] = best[1]  # a later exact copy of this copy points to the original
            return DedupDecision(False, self._ids[best[1]], "near", round(best[0], 4))

        idx = len(self._ids)
        self._grow(idx + 1)
        self._ids.append(clean.id)
        self._exact[key] = idx
        if sig is not None:
            self._sigs[idx] = (sig & 0xFF).astype(np.uint8)
            for b, bk in enumerate(band_keys):
                self._buckets[b].setdefault(bk, []).append(idx)
        if sig is not None and image_hash is not None:
            self._phash[idx], self._has_near[idx] = np.uint64(image_hash), True
        return DedupDecision(True, None, None, round(near_miss, 4))

    def _grow(self, size: int) -> None:
        if size <= len(self._phash):
            return
        old, cap = len(self._phash), max(size, 2 * len(self._phash))
        self._sigs = np.resize(self._sigs, (cap, self._sigs.shape[1]))
        self._phash = np.resize(self._phash, cap)
        self._has_near = np.resize(self._has_near, cap)
        self._has_near[old:] = False  # np.resize repeats the old rows; they mean nothing
