"""Phase 2 of curation: perceive -> verify -> instruct for each listing, over an engine.

``ListingProcessor`` is the per-listing work, identical under every engine: it holds the
captioner and verifier (built once per worker process or Ray actor) and turns a cleaned
listing into one result record. ``run_local`` drives it with a process pool; the Ray engine
(``engine_ray.py``) drives the same class with Ray Data.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from pathlib import Path

from tqdm import tqdm

from ecomvlm.curate.config import CurateConfig
from ecomvlm.curate.instruct import make_samples
from ecomvlm.curate.pipeline import commit_shard, finished_shards, stage_image
from ecomvlm.curate.records import CleanListing
from ecomvlm.images import ImageError
from ecomvlm.registry import CAPTIONER, VERIFIER


def _register_backends() -> None:
    # importing the modules fills the CAPTIONER and VERIFIER registries
    import ecomvlm.curate.perceive
    import ecomvlm.curate.verify  # noqa: F401


class ListingProcessor:
    def __init__(self, config: CurateConfig):
        _register_backends()
        self.config = config
        self.out = Path(config.out)
        self.captioner = CAPTIONER.build(config.captioner, cache_dir=self.out / "cache",
                                         allow_url_fetch=config.allow_url_fetch)
        self.verifier = VERIFIER.build(config.verifier)

    def __call__(self, clean: CleanListing) -> dict:
        """One listing -> {"id", "status": "kept" | "quarantined", ...}. Data problems become
        a quarantined record with a reason; they never stop the run."""
        try:
            perceptions = self.captioner.perceive(clean)
            verified = self.verifier.verify(clean, perceptions)
            paths = [stage_image(self.out, src, sha, self.config.allow_url_fetch)
                     for src, sha in zip(clean.images, clean.image_sha256)]
            samples = make_samples(verified, paths, seed=self.config.seed)
        except (ImageError, OSError) as error:
            reason = getattr(error, "reason", "unreadable_image")
            return {"id": clean.id, "status": "quarantined", "reason": reason,
                    "detail": str(error)}
        except Exception as error:  # noqa: BLE001 - a bug on one record must not sink the run
            return {"id": clean.id, "status": "quarantined", "reason": "processing_error",
                    "detail": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc(limit=4)}
        return {
            "id": clean.id,
            "status": "kept",
            "verified": verified.model_dump(mode="json"),
            "samples": {str(stage): [s.model_dump() for s in group]
                        for stage, group in samples.items()},
        }


def pending_shards(config: CurateConfig, listings: list[CleanListing]) -> list[int]:
    n_shards = -(-len(listings) // config.shard_size)
    done = finished_shards(Path(config.out))
    return [i for i in range(n_shards) if i not in done]


def shard_items(config: CurateConfig, listings: list[CleanListing], index: int):
    return listings[index * config.shard_size:(index + 1) * config.shard_size]


_WORKER: ListingProcessor | None = None


def _init_worker(config: CurateConfig) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)  # one process per core; intra-op threads would fight
    _WORKER = ListingProcessor(config)


def _work(clean: CleanListing) -> dict:
    assert _WORKER is not None
    return _WORKER(clean)


def run_local(config: CurateConfig, listings: list[CleanListing], progress: bool = True) -> None:
    todo = pending_shards(config, listings)
    if not todo:
        return
    workers = config.workers or os.cpu_count() or 1
    items = [(index, clean) for index in todo for clean in shard_items(config, listings, index)]
    sizes = {index: len(shard_items(config, listings, index)) for index in todo}
    results: dict[int, list[dict]] = {index: [] for index in todo}
    bar = tqdm(total=len(items), desc="perceive+verify+instruct", unit="listing",
               disable=not progress)
    if workers == 1:
        _init_worker(config)
        pool, mapper = None, map
    else:
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker,
                                            initargs=(config,))
        mapper = pool.imap
    # one ordered stream over every pending listing keeps all workers busy across shard
    # boundaries; a shard is committed the moment its last listing comes back
    try:
        for (index, _), result in zip(items, mapper(_work, [clean for _, clean in items])):
            results[index].append(result)
            bar.update(1)
            if len(results[index]) == sizes[index]:
                commit_shard(Path(config.out), index, results.pop(index))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
