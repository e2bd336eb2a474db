"""`ecomvlm curate`: the run, in three resumable phases.

1. prepare (one process, streaming): read -> quarantine bad records -> clean -> dedup.
   Writes ``work/prepared.jsonl`` (kept listings, in input order), ``duplicates.jsonl`` and
   ``work/quarantine_prepare.jsonl``, each published by rename, then ``work/prepare.done.json``.
2. process (the engine: a local process pool, or Ray): perceive -> verify -> instruct per
   listing, in fixed shards of ``shard_size`` prepared listings. A shard is written to a temp
   file and renamed; only then is its line appended to ``work/manifest.jsonl``. A run killed at
   any point redoes at most the shards it had not recorded, and shards are deterministic, so
   the result equals an uninterrupted run.
3. finalize: stage files, balance, replay, exports, quality report, ``curate.done.json``.

``in = kept + duplicates + quarantined`` is checked at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from ecomvlm.curate.clean import KeyMapper, clean_listing
from ecomvlm.curate.config import CurateConfig
from ecomvlm.curate.dedup import Deduplicator
from ecomvlm.curate.records import CleanListing
from ecomvlm.images import ImageError, read_image_bytes
from ecomvlm.schema import ListingReader

CONFIG_FILE = "config.json"
WORK = "work"  # intermediate files; everything else in the output folder is for users
MANIFEST = "manifest.jsonl"


class ConfigMismatch(RuntimeError):
    """The output folder holds a run made with other settings."""


def _write_jsonl_atomic(path: Path, records: list[dict] | Iterator[dict]) -> int:
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def claim_output_dir(config: CurateConfig) -> None:
    """Create the output folder, or check that it holds a run of the same configuration."""
    out = Path(config.out)
    saved = out / CONFIG_FILE
    fingerprint = config.fingerprint()
    if saved.exists():
        previous = json.loads(saved.read_text())
        if previous.get("fingerprint") != fingerprint:
            raise ConfigMismatch(
                f"{out} holds a curation run with another configuration "
                f"(fingerprint {previous.get('fingerprint')} != {fingerprint}); "
                "use a new --out folder or delete this one")
        return
    if out.exists() and any(out.iterdir()):
        raise ConfigMismatch(f"{out} is not empty and holds no curation run")
    out.mkdir(parents=True, exist_ok=True)
    payload = {"fingerprint": fingerprint, "config": config.model_dump(mode="json")}
    tmp = saved.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, saved)


# ----------------------------------------------------------------------------- prepare
def prepare(config: CurateConfig, progress: bool = True) -> dict:
    """Phase 1. Returns its counts (also saved in ``prepare.done.json``)."""
    out = Path(config.out)
    work = out / WORK
    work.mkdir(exist_ok=True)
    done = work / "prepare.done.json"
    if done.exists():
        return json.loads(done.read_text())
    quarantine_tmp = work / "quarantine_prepare.jsonl.tmp"
    quarantine_tmp.unlink(missing_ok=True)
    reader = ListingReader(config.listings, quarantine_tmp)
    base_dir = Path(config.listings).resolve().parent
    mapper, dedup = KeyMapper(), Deduplicator(allow_url_fetch=config.allow_url_fetch)
    kept, duplicates, image_rejects = [], [], []
    # islice stops before pulling record limit+1, so the reader's counts stay exact
    listings = itertools.islice(reader, config.limit)
    for listing in tqdm(listings, desc="prepare", unit="listing", disable=not progress):
        try:
            clean = clean_listing(listing, base_dir, mapper)
            decision = dedup.check(clean)  # reads every photo once and fills image_sha256
        except ImageError as error:
            image_rejects.append({"source": str(config.listings), "id": listing.id,
                                  "reason": error.reason, "detail": str(error)})
            continue
        if decision.kept:
            kept.append(clean.model_dump(mode="json"))
        else:
            duplicates.append({"id": clean.id, "duplicate_of": decision.duplicate_of,
                               "kind": decision.kind, "score": round(decision.score, 4)})
    with quarantine_tmp.open("a", encoding="utf-8") as f:
        for record in image_rejects:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(quarantine_tmp, work / "quarantine_prepare.jsonl")
    _write_jsonl_atomic(out / "duplicates.jsonl", duplicates)
    _write_jsonl_atomic(work / "prepared.jsonl", kept)
    counts = {
        "seen": reader.seen,
        "prepared": len(kept),
        "duplicates": len(duplicates),
        "quarantined_records": reader.quarantined,
        "quarantined_images": len(image_rejects),
        "quarantine_reasons": dict(reader.reasons + Counter(r["reason"] for r in image_rejects)),
        "duplicate_kinds": {k: sum(d["kind"] == k for d in duplicates)
                            for k in sorted({d["kind"] for d in duplicates})},
    }
    done.write_text(json.dumps(counts, indent=2))
    return counts


def prepared_listings(out: Path) -> list[CleanListing]:
    return [CleanListing.model_validate(r) for r in read_jsonl(out / WORK / "prepared.jsonl")]


# ----------------------------------------------------------------------------- shards
def shard_path(out: Path, index: int) -> Path:
    return out / WORK / "shards" / f"shard-{index:05d}.jsonl"


def finished_shards(out: Path) -> set[int]:
    path = out / WORK / MANIFEST
    if not path.exists():
        return set()
    done = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill: its shard is simply redone
        if shard_path(out, record["shard"]).exists():
            done.add(record["shard"])
    return done


def commit_shard(out: Path, index: int, results: list[dict]) -> None:
    """Publish a shard, then record it. The order makes a kill at any instant safe."""
    path = shard_path(out, index)
    path.parent.mkdir(exist_ok=True)
    _write_jsonl_atomic(path, results)
    with (out / WORK / MANIFEST).open("a", encoding="utf-8") as f:
        f.write(json.dumps({"shard": index, "ids": [r["id"] for r in results]}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def stage_image(out: Path, source: str, sha: str, allow_url_fetch: bool) -> str:
    """Copy (or hard-link) an image into the run's content-addressed store; return its
    path relative to ``out``, as the samples refer to it."""
    suffix = Path(source).suffix.lower() if not source.startswith("http") else ""
    suffix = suffix if suffix in (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp") else ".img"
    rel = Path("images") / sha[:2] / f"{sha}{suffix}"
    target = out / rel
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        if source.startswith(("http://", "https://")):
            tmp.write_bytes(read_image_bytes(source, allow_url_fetch=allow_url_fetch))
        else:
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return rel.as_posix()
