"""Training data for one stage: indexed JSONL sources, a resumable weighted mixture, quarantine.

- :class:`JsonlSource` keeps only the byte offset of each line and parses a sample when it is
  drawn, so a million-line file costs 8 MB of offsets, not a million objects.
- :class:`MixtureSampler` picks a source by weight, then the next item of that source's
  shuffled epoch. Every random choice is a pure function of (seed, stage, counters), so the
  whole position is a few integers that a checkpoint restores exactly.
- :class:`StageData` encodes drawn samples with the model's processor; a sample that fails
  (bad JSON, missing image, too long) is skipped, counted and written to a quarantine JSONL
  with its id and reason; the run goes on.
- :class:`FeatureCache` holds frozen-tower features per image path (LRU, bounded in bytes):
  curated listings reuse each photo in many samples, so most images are encoded once.
"""

from __future__ import annotations

import json
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecomvlm.model.processor import Encoded, SampleError
from ecomvlm.samples import Sample

_BLOCK = 1024  # source choices drawn per block; block b depends only on (seed, stage, rank, b)
MAX_CONSECUTIVE_FAILURES = 1000


def stable_key(text: str) -> int:
    """A process-independent integer for a name (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


class JsonlSource:
    """Random access to the non-blank lines of a JSONL file by line offset."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"data file not found: {self.path}")
        self.image_root = self.path.parent
        offsets, lines = array("q"), array("q")
        pos = 0
        with self.path.open("rb") as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    offsets.append(pos)
                    lines.append(line_no)
                pos += len(line)
        self._offsets = np.frombuffer(offsets, dtype=np.int64) if offsets else np.zeros(0, np.int64)
        self._lines = np.frombuffer(lines, dtype=np.int64) if lines else np.zeros(0, np.int64)
        self._handle = None

    def __len__(self) -> int:
        return len(self._offsets)

    def line_number(self, i: int) -> int:
        return int(self._lines[i])

    def raw(self, i: int) -> bytes:
        if self._handle is None:
            self._handle = self.path.open("rb")
        self._handle.seek(int(self._offsets[i]))
        return self._handle.readline()

    def sample(self, i: int) -> Sample:
        """The i-th sample; a malformed line raises SampleError naming file and line."""
        text = self.raw(i)
        try:
            return Sample.model_validate_json(text)
        except ValueError as error:
            try:
                sample_id = str(json.loads(text).get("id", "?"))
            except (ValueError, AttributeError):
                sample_id = "?"
            raise SampleError(sample_id, "invalid_sample",
                              f"{self.path}:{self.line_number(i)}: {error}") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def split_indices(n: int, fraction: float, seed: int, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, val) index arrays; val gets round(n * fraction) items, at least 1."""
    if fraction <= 0 or n == 0:
        return np.arange(n), np.zeros(0, np.int64)
    perm = np.random.default_rng([seed, key, 7]).permutation(n)
    n_val = min(n - 1, max(1, round(n * fraction)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class MixtureSampler:
    """Weighted draws over sources, each walked in a fresh permutation per epoch.

    With ``world`` processes, rank r walks positions r, r+world, ... of the shared epoch
    permutation (disjoint shards) and makes its own source choices.
    """

    def __init__(self, pools: Sequence[np.ndarray], weights: Sequence[float], seed: int,
                 stage: str, rank: int = 0, world: int = 1):
        if len(pools) != len(weights) or not pools:
            raise ValueError("one weight per source, at least one source")
        for i, pool in enumerate(pools):
            if len(pool) == 0:
                raise ValueError(f"source {i} has no training samples")
        self.pools = [np.asarray(p, dtype=np.int64) for p in pools]
        w = np.asarray(weights, dtype=np.float64)
        self.probs = w / w.sum()
        self.seed, self.key, self.rank, self.world = seed, stable_key(stage), rank, world
        self.draws = 0
        self.epochs = [0] * len(pools)
        self.offsets = [rank] * len(pools)
        self._block: tuple[int, np.ndarray] | None = None
        self._orders: dict[int, tuple[int, np.ndarray]] = {}

    def _choice(self, t: int) -> int:
        block = t // _BLOCK
        if self._block is None or self._block[0] != block:
            rng = np.random.default_rng([self.seed, self.key, 1, self.rank, block])
            self._block = (block, rng.choice(len(self.pools), size=_BLOCK, p=self.probs))
        return int(self._block[1][t % _BLOCK])

    def _order(self, source: int) -> np.ndarray:
        epoch = self.epochs[source]
        cached = self._orders.get(source)
        if cached is None or cached[0] != epoch:
            rng = np.random.default_rng([self.seed, self.key, 2, source, epoch])
            cached = (epoch, self.pools[source][rng.permutation(len(self.pools[source]))])
            self._orders[source] = cached
        return cached[1]

    def next(self) -> tuple[int, int]:
        """(source index, item index within the source file)."""
        source = self._choice(self.draws)
        self.draws += 1
        size = len(self.pools[source])
        # a shard smaller than the world still yields items: wrap into the next epoch
        while self.offsets[source] >= size:
            self.offsets[source] -= size
            self.epochs[source] += 1
        item = int(self._order(source)[self.offsets[source]])
        self.offsets[source] += self.world
        return source, item

    def state_dict(self) -> dict[str, Any]:
        return {"draws": self.draws, "epochs": list(self.epochs), "offsets": list(self.offsets)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["epochs"]) != len(self.pools):
            raise ValueError("data position has a different number of sources than the stage")
        self.draws = int(state["draws"])
        self.epochs = [int(e) for e in state["epochs"]]
        self.offsets = [int(o) for o in state["offsets"]]


class Quarantine:
    """Append-only JSONL of samples that could not be used, with why."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0
        self.reasons: dict[str, int] = {}

    def add(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1
        self.reasons[record["reason"]] = self.reasons.get(record["reason"], 0) + 1

    def restore(self, count: int) -> None:
        """Keep the first ``count`` records (those written before the checkpoint)."""
        lines = self.path.read_text(encoding="utf-8").splitlines(True) if self.path.exists() else []
        if len(lines) < count:
            raise ValueError(f"{self.path} has {len(lines)} records, checkpoint expects {count}")
        self.path.write_text("".join(lines[:count]), encoding="utf-8")
        self.count = count
        self.reasons = {}
        for line in lines[:count]:
            reason = json.loads(line)["reason"]
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


class FeatureCache:
    """Tower features per image path, least recently used dropped first past ``max_bytes``."""

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> torch.Tensor | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old.numel() * old.element_size()
        self._items[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= dropped.numel() * dropped.element_size()

    def batch_features(self, items: Sequence[Item],
                       encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
        """[N, t, d] for every image of ``items`` in order; the batch's misses encode together.

        Each distinct missing image is encoded once, in one call. A lone miss is encoded
        twice over (a batch of 2): some CPU kernels take another path at batch size 1, and
        then an image's features would depend on how many images were new in its batch,
        which a resumed run (empty cache) could not reproduce bit for bit.
        """
        found: dict[str, torch.Tensor] = {}
        missing: dict[str, torch.Tensor] = {}  # key -> pixels [3, S, S]
        for item in items:
            for k, key in enumerate(item.encoded.image_keys):
                if key in found or key in missing:
                    self.hits += 1
                    continue
                value = item.features[k] if item.features else None
                value = value if value is not None else self.get(key)
                if value is not None:
                    found[key] = value
                    self.hits += 1
                else:
                    missing[key] = item.encoded.pixel_values[k]
                    self.misses += 1
        if missing:
            pixels = torch.stack(list(missing.values()))  # [m, 3, S, S]
            if len(pixels) == 1:
                pixels = pixels.expand(2, *pixels.shape[1:])
            feats = encode(pixels).detach()  # [m, t, d]
            for key, value in zip(missing, feats):
                value = value.clone()  # own storage, so the cache can drop it alone
                self.put(key, value)
                found[key] = value
        keys = [key for item in items for key in item.encoded.image_keys]
        return torch.stack([found[key] for key in keys]) if keys else None


@dataclass
class Item:
    """An encoded sample and, when the tower is cached, features already found per image."""

    encoded: Encoded
    source: int
    index: int
    features: list[torch.Tensor | None] = field(default_factory=list)


class StageData:
    """The stage's mixture as encoded items, its val set, and the quarantine of failures."""

    def __init__(self, stage: Any, data_root: str | Path, processor: Any, seed: int,
                 quarantine_path: str | Path, cache: FeatureCache | None = None,
                 rank: int = 0, world: int = 1):
        from .spec import resolve_data_path

        self.stage, self.processor, self.cache = stage, processor, cache
        self.sources = [JsonlSource(entry.resolve(data_root)) for entry in stage.data]
        self.quarantine = Quarantine(quarantine_path)
        self.used = 0
        pools, val_pairs = [], []
        for s, src in enumerate(self.sources):
            key = stable_key(f"{stage.name}:{s}:{src.path.name}")
            train, val = split_indices(len(src), stage.val_fraction, seed, key)
            pools.append(train)
            val_pairs.append([(s, int(i)) for i in val])
        if stage.val_path:
            self.sources.append(JsonlSource(resolve_data_path(stage.val_path, data_root)))
            val_pairs = [[(len(self.sources) - 1, i) for i in range(len(self.sources[-1]))]]
        for s, pool in enumerate(pools):
            if len(pool) == 0:
                raise ValueError(f"stage {stage.name!r}: {self.sources[s].path} has no samples "
                                 "left for training")
        self.train_size = int(sum(len(p) for p in pools))
        self.sampler = MixtureSampler(pools, [e.weight for e in stage.data], seed, stage.name,
                                      rank=rank, world=world)
        self._val_candidates = _round_robin(val_pairs, stage.val_max_samples)
        self.val: list[tuple[int, int]] = []

    # -- position ---------------------------------------------------------------------------
    def start(self, state: dict[str, Any] | None = None) -> None:
        """Fresh start (quarantine emptied, val set checked) or the position of a checkpoint."""
        self.val = []
        if state is None:
            self.quarantine.path.unlink(missing_ok=True)
        for s, i in self._val_candidates:
            try:
                self._encode(s, i, split="val", load_pixels=True)
                self.val.append((s, i))
            except SampleError as error:
                if state is None:
                    self._quarantine(s, i, error, "val")
        if state is not None:
            self.sampler.load_state_dict(state["sampler"])
            self.quarantine.restore(int(state["quarantined"]))
            self.used = int(state["used"])

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "quarantined": self.quarantine.count,
                "used": self.used}

    # -- items ------------------------------------------------------------------------------
    def _encode(self, s: int, i: int, split: str, load_pixels: bool | None = None) -> Item:
        src = self.sources[s]
        sample = src.sample(i)
        features: list[torch.Tensor | None] = []
        if self.cache is not None and load_pixels is None:
            keys = [str((src.image_root / p).resolve()) for p in sample.images]
            features = [self.cache.get(k) for k in keys]
            load_pixels = any(f is None for f in features)
        encoded = self.processor.encode(sample, image_root=src.image_root,
                                        load_pixels=True if load_pixels is None else load_pixels)
        return Item(encoded, s, i, features)

    def _quarantine(self, s: int, i: int, error: SampleError, split: str) -> None:
        src = self.sources[s]
        self.quarantine.add({"id": error.sample_id, "reason": error.reason, "detail": str(error),
                             "source": str(src.path), "line": src.line_number(i),
                             "stage": self.stage.name, "split": split})

    def next_batch(self, size: int) -> list[Item]:
        """``size`` encodable items; failures go to the quarantine and are replaced."""
        batch: list[Item] = []
        failures = 0
        while len(batch) < size:
            s, i = self.sampler.next()
            try:
                batch.append(self._encode(s, i, split="train"))
                self.used += 1
                failures = 0
            except SampleError as error:
                self._quarantine(s, i, error, "train")
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise RuntimeError(
                        f"stage {self.stage.name!r}: {failures} samples in a row failed to "
                        f"encode; see {self.quarantine.path}") from error
        return batch

    def val_batches(self, size: int):
        """The fixed val set in batches of ``size`` items."""
        for start in range(0, len(self.val), size):
            yield [self._encode(s, i, split="val") for s, i in self.val[start:start + size]]

    def close(self) -> None:
        for src in self.sources:
            src.close()


def _round_robin(groups: list[list[tuple[int, int]]], limit: int) -> list[tuple[int, int]]:
    """Up to ``limit`` pairs taken in turn from each group, so every source is represented."""
    out: list[tuple[int, int]] = []
    iters = [iter(g) for g in groups]
    while iters and len(out) < limit:
        alive = []
        for it in iters:
            pair = next(it, None)
            if pair is not None and len(out) < limit:
                out.append(pair)
                alive.append(it)
        iters = alive
    return out
