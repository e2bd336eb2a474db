"""``ecomvlm extract``: JSON attribute extraction over a listings file, streaming and resumable.

Each listing becomes the prompt a trained model knows (the curation stage's ``EXTRACT``
phrasing with the category's keys, its photos and its fenced title) and one constrained
reply: a JSON object with exactly those keys, closed aspects limited to taxonomy values.
Output lines are ``{"id", "category", "attributes"}`` in input order.

Resuming after a kill: a record is done once its line is in the output (by id) or in the
quarantine (by id, or by source line for records that failed the schema). On start, a torn
last line of either file is cut off, done records are skipped, and everything else is
appended, so the files end with every record exactly once. Counts reconcile:
records in the file = written + quarantined.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ecomvlm.catalog.taxonomy import CATEGORIES
from ecomvlm.curate.clean import canonical_category, clean_title, resolve_image
from ecomvlm.curate.phrasings import EXTRACT, title_block
from ecomvlm.eval.bench_multi_image import CROPS_NOTE
from ecomvlm.eval.crops import propose
from ecomvlm.images import ImageError, load_image
from ecomvlm.samples import IMAGE_TOKEN
from ecomvlm.schema import Listing, ListingReader

from .constrained import OPEN_KEYS, ConstraintCompiler, extraction_constraint
from .engine import Engine, Job, PromptTooLong, Request, load_model

log = logging.getLogger(__name__)
_END = object()


def extraction_prompt(category: str, keys: Sequence[str], title: str, n_images: int,
                      phrasing: int = 0, n_crops: int = 0) -> str:
    """The user turn, worded as the stage-3 ``extract`` training samples are; ``n_crops``
    extra images (after the photos) are announced as the multi-image benchmark does."""
    fill = {"title_block": title_block(title), "keys": ", ".join(keys),
            "keys_json": json.dumps(list(keys), ensure_ascii=False), "category": category}
    note = CROPS_NOTE.format(first=n_images + 1, last=n_images + n_crops) if n_crops else ""
    return (f"{IMAGE_TOKEN}\n" * (n_images + n_crops) + note
            + EXTRACT[phrasing % len(EXTRACT)].format(**fill))


# ---------------------------------------------------------------- resumable output files
def _cut_torn_line(path: Path) -> None:
    """Drop a last line without its newline: the write a kill interrupted."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = pos = f.tell()
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            if (cut := chunk.rfind(b"\n")) >= 0:
                f.truncate(pos - step + cut + 1)
                return
            pos -= step
        if size:
            f.truncate(0)


def _done(out: Path, quarantine: Path) -> tuple[set[str], set[int]]:
    """Ids already written or quarantined, and source lines quarantined by the schema."""
    ids: set[str] = set()
    lines: set[int] = set()
    for path in (out, quarantine):
        _cut_torn_line(path)
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as f:
            for text in f:
                entry = json.loads(text)
                if entry.get("stage") == "schema":
                    lines.add(entry["line"])
                else:
                    ids.add(entry["id"])
    return ids, lines


class _Forwarder:
    """Moves ListingReader's quarantine entries (written to a scratch file as the reader
    goes) into our quarantine, skipping records an earlier run already quarantined."""

    def __init__(self, scratch: Path, sink: Any, done_lines: set[int]):
        scratch.write_text("")
        self.scratch, self.sink, self.done_lines = scratch, sink, done_lines
        self.handle = scratch.open(encoding="utf-8")
        self.forwarded = 0

    def pump(self) -> None:
        while True:
            start = self.handle.tell()
            text = self.handle.readline()
            if not text.endswith("\n"):
                self.handle.seek(start)  # nothing, or a line still being written
                return
            entry = json.loads(text)
            if entry["line"] not in self.done_lines:
                self.sink.write(json.dumps({**entry, "stage": "schema"}, ensure_ascii=False)
                                + "\n")
                self.forwarded += 1

    def close(self) -> None:
        self.handle.close()
        self.scratch.unlink(missing_ok=True)


# ---------------------------------------------------------------- the run
@dataclass
class _Item:
    listing: Listing
    category: str
    job: Job | None = None
    reason: str = ""
    detail: str = ""
    crops: int = 0


class Extractor:
    """Prepares listings (images, prompt, constraint) and runs them through an engine."""

    def __init__(self, engine: Engine, base_dir: Path, *, phrasing: int = 0,
                 constrained: bool = True, open_keys: Sequence[str] = OPEN_KEYS,
                 max_new_tokens: int | None = None, allow_url_fetch: bool = False,
                 crops: int = 0):
        self.engine, self.base_dir, self.phrasing = engine, base_dir, phrasing
        self.crops = crops  # at most this many targeted crops of small print, as extra images
        self.compiler = ConstraintCompiler(engine.tokenizer) if constrained else None
        self.open_keys, self.max_new_tokens = tuple(open_keys), max_new_tokens
        self.allow_url_fetch = allow_url_fetch

    def prepare(self, listing: Listing) -> _Item:
        category = canonical_category(listing.category)
        item = _Item(listing, category)
        if category not in CATEGORIES:
            item.reason = "unknown_category"
            item.detail = (f"category {listing.category!r} is not in the taxonomy "
                           f"({', '.join(sorted(CATEGORIES))})")
            return item
        keys = CATEGORIES[category].keys
        images = []
        for ref in listing.images:
            try:
                images.append(load_image(resolve_image(ref, self.base_dir),
                                         allow_url_fetch=self.allow_url_fetch))
            except ImageError as error:
                item.reason, item.detail = error.reason, f"image {ref!r}: {error}"
                return item
        constraint, budget = None, self.max_new_tokens or 256
        if self.compiler is not None:
            constraint = extraction_constraint(self.compiler, category,
                                               open_keys=self.open_keys)
            budget = self.max_new_tokens or constraint.max_tokens
        crops = [images[r.image].crop(r.box) for r in propose(images, max_crops=self.crops)] \
            if self.crops else []
        item.crops = len(crops)
        prompt = extraction_prompt(category, keys, clean_title(listing.title), len(images),
                                   self.phrasing, len(crops))
        request = Request([{"role": "user", "content": prompt}], images + crops,
                          max_tokens=budget,
                          constraint=constraint)
        try:
            item.job = self.engine.prepare(request)
        except PromptTooLong as error:
            item.reason, item.detail = "too_long", str(error)
        except ValueError as error:
            item.reason, item.detail = "bad_prompt", str(error)
        return item

    def record(self, item: _Item, text: str, finish: str) -> tuple[dict | None, str]:
        """The output line, or None and why the reply is unusable."""
        keys = CATEGORIES[item.category].keys
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None, f"reply is not JSON (finish {finish}): {text[:200]!r}"
        if not isinstance(value, dict) or list(value) != keys:
            return None, f"reply does not have exactly the keys {keys}: {text[:200]!r}"
        line = {"id": item.listing.id, "category": item.category, "attributes": value}
        if self.crops:
            line["crops"] = item.crops
        return line, ""


def _prepared(reader: ListingReader, extractor: Extractor, done_ids: set[str],
              forwarder: _Forwarder, lock: threading.Lock) -> Iterator[_Item]:
    for listing in reader:
        with lock:
            forwarder.pump()
        if listing.id not in done_ids:
            yield extractor.prepare(listing)
    with lock:
        forwarder.pump()


def _prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run the image loading and encoding ahead of the model, in a thread."""
    channel: queue.Queue = queue.Queue(maxsize=depth)

    def produce() -> None:
        try:
            for item in items:
                channel.put(item)
        except Exception as error:  # noqa: BLE001 - re-raised in the consumer thread
            channel.put(error)
        channel.put(_END)

    threading.Thread(target=produce, daemon=True, name="extract-prefetch").start()
    while (item := channel.get()) is not _END:
        if isinstance(item, BaseException):
            raise item
        yield item


def extract(model: str | Path, listings: str | Path, out: str | Path,
            quarantine: str | Path | None = None, *, batch_size: int = 8,
            max_new_tokens: int | None = None, constrained: bool = True, phrasing: int = 0,
            dtype: str = "bfloat16", threads: int | None = None,
            allow_url_fetch: bool = False, progress: bool = True, crops: int = 0,
            engine: Engine | None = None) -> dict[str, Any]:
    """Extract attributes for every listing; resumes where an earlier run stopped.

    Returns counts: ``seen`` (records in the file) = ``written`` + ``quarantined`` (both
    over all runs), plus this run's ``new``, ``seconds`` and ``items_per_s``. ``crops``: add
    up to that many targeted crops of small print (marks, labels) to each listing's photos.
    """
    if threads:
        torch.set_num_threads(threads)
    listings, out = Path(listings), Path(out)
    quarantine = Path(quarantine) if quarantine else out.with_name(out.stem + ".quarantine.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    quarantine.parent.mkdir(parents=True, exist_ok=True)
    done_ids, done_lines = _done(out, quarantine)
    engine = engine or Engine(load_model(model, getattr(torch, dtype)), max_batch=batch_size)
    extractor = Extractor(engine, listings.resolve().parent, phrasing=phrasing,
                          constrained=constrained, max_new_tokens=max_new_tokens,
                          allow_url_fetch=allow_url_fetch, crops=crops)
    scratch = quarantine.with_name(quarantine.name + ".reader")
    reader = ListingReader(listings, scratch)
    lock = threading.Lock()
    started, new = time.monotonic(), 0
    with out.open("a", encoding="utf-8") as sink, \
            quarantine.open("a", encoding="utf-8") as qsink:
        forwarder = _Forwarder(scratch, qsink, done_lines)
        bar = tqdm(unit="item", disable=not progress, desc="extract", dynamic_ncols=True)

        def reject(item: _Item, reason: str, detail: str) -> None:
            entry = {"source": str(listings), "line": None, "id": item.listing.id,
                     "reason": reason, "detail": f"listing {item.listing.id!r}: {detail}",
                     "stage": "extract"}
            with lock:
                qsink.write(json.dumps(entry, ensure_ascii=False) + "\n")

        def flush(batch: list[_Item]) -> None:
            nonlocal new
            results = engine.run_batch([item.job for item in batch]) if batch else []
            for item, result in zip(batch, results):
                record, why = extractor.record(item, result.text, result.finish_reason)
                if record is None:
                    reject(item, "invalid_output", why)
                else:
                    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            with lock:  # output and quarantine reach the disk before the bar moves
                for handle in (sink, qsink):
                    handle.flush()
                    os.fsync(handle.fileno())
            new += len(batch)
            bar.update(len(batch))

        try:
            batch: list[_Item] = []
            for item in _prefetch(_prepared(reader, extractor, done_ids, forwarder, lock),
                                  depth=2 * batch_size):
                if item.job is None:
                    reject(item, item.reason, item.detail)
                    new += 1
                    bar.update(1)
                    continue
                batch.append(item)
                if len(batch) == batch_size:
                    flush(batch)
                    batch = []
            flush(batch)
        finally:
            bar.close()
            forwarder.close()
    seconds = time.monotonic() - started
    written = sum(1 for _ in out.open(encoding="utf-8"))
    quarantined = sum(1 for _ in quarantine.open(encoding="utf-8"))
    counts = {"seen": reader.seen, "written": written, "quarantined": quarantined,
              "new": new + forwarder.forwarded, "seconds": round(seconds, 2),
              "items_per_s": round(new / seconds, 2) if seconds else 0.0,
              "out": str(out), "quarantine": str(quarantine)}
    if written + quarantined != reader.seen:
        log.warning("counts do not reconcile: %s", counts)
    return counts
