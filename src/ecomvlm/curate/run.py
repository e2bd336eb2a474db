"""One call that runs a whole curation: ``run_curate(CurateConfig(...))``.

Safe to call again on the same output folder: finished phases are skipped, finished shards
are kept, and a folder made with another configuration is refused.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ecomvlm.curate.config import CurateConfig
from ecomvlm.curate.pipeline import claim_output_dir, prepare, prepared_listings

ENGINES = ("local", "ray")
DONE = "curate.done.json"


def run_curate(config: CurateConfig, progress: bool = True) -> dict:
    if config.engine not in ENGINES:
        raise ValueError(f"unknown engine {config.engine!r}; known: {', '.join(ENGINES)}")
    if not Path(config.listings).exists():
        raise FileNotFoundError(f"listings file {config.listings} does not exist")
    out = Path(config.out)
    claim_output_dir(config)
    if (out / DONE).exists():
        return json.loads((out / DONE).read_text())
    started = time.perf_counter()
    counts = prepare(config, progress=progress)
    listings = prepared_listings(out)
    if config.engine == "ray":
        from ecomvlm.curate.engine_ray import run_ray as run_engine
    else:
        from ecomvlm.curate.process import run_local as run_engine
    run_engine(config, listings, progress=progress)

    from ecomvlm.curate.finalize import finalize

    n_shards = -(-len(listings) // config.shard_size)
    summary = finalize(config, n_shards, counts)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    tmp = out / (DONE + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, out / DONE)
    return summary
