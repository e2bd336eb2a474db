"""The Ray engine for phase 2: the same ``ListingProcessor`` as the local engine, run by
Ray Data actors, so curation scales from a laptop to a cluster without a second code path.

On a cluster set ``RAY_ADDRESS`` (``ray.init`` reads it); otherwise a local Ray instance
with one CPU per worker is started. Results come back in any order; they are put back in
input order inside each shard before the shard is committed, so the output equals the local
engine's for the same input.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm import tqdm

from ecomvlm.curate.config import CurateConfig
from ecomvlm.curate.pipeline import commit_shard
from ecomvlm.curate.process import ListingProcessor, pending_shards, shard_items
from ecomvlm.curate.records import CleanListing


class _RayWorker:
    """A Ray Data callable class: one processor (and its models) per actor."""

    def __init__(self, config_json: str):
        import torch

        torch.set_num_threads(1)
        self.processor = ListingProcessor(CurateConfig.model_validate_json(config_json))

    def __call__(self, batch: dict) -> dict:
        results = [json.dumps(self.processor(CleanListing.model_validate_json(text)))
                   for text in batch["listing"]]
        return {"shard": batch["shard"], "pos": batch["pos"], "result": results}


def run_ray(config: CurateConfig, listings: list[CleanListing], progress: bool = True) -> None:
    import ray

    todo = pending_shards(config, listings)
    if not todo:
        return
    workers = config.workers or os.cpu_count() or 1
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        items = [{"shard": index, "pos": pos, "listing": clean.model_dump_json()}
                 for index in todo
                 for pos, clean in enumerate(shard_items(config, listings, index))]
        sizes = {index: len(shard_items(config, listings, index)) for index in todo}
        dataset = ray.data.from_items(items).map_batches(
            _RayWorker, fn_constructor_args=(config.model_dump_json(),), batch_size=2,
            concurrency=workers, num_cpus=1)
        pending: dict[int, dict[int, dict]] = {index: {} for index in todo}
        with tqdm(total=len(items), desc="perceive+verify+instruct (ray)", unit="listing",
                  disable=not progress) as bar:
            for row in dataset.iter_rows():
                index = int(row["shard"])
                pending[index][int(row["pos"])] = json.loads(row["result"])
                bar.update(1)
                if len(pending[index]) == sizes[index]:
                    done = pending.pop(index)
                    commit_shard(Path(config.out), index, [done[p] for p in sorted(done)])
    finally:
        if started_here:
            ray.shutdown()
