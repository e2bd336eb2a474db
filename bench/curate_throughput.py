"""Curation throughput and peak memory, end to end, default perception backends.

    .venv/bin/python bench/curate_throughput.py [--listings 200] [--engine local] [--catalog DIR]

Synthesises a catalog (unless --catalog is given), curates its listings with every core,
and prints listings/s against the 2 listings/s target and the peak resident memory of the
driver and its workers against the 4 GB budget. Output goes to a temp folder.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from ecomvlm.catalog.synth import synthesize
from ecomvlm.curate.config import CurateConfig
from ecomvlm.curate.run import run_curate

TARGET_LISTINGS_PER_S = 2.0
MEMORY_BUDGET_GB = 4.0


def _peak_gb() -> tuple[float, float]:
    """Peak RSS of this process and of the largest finished child (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return own, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=200)
    parser.add_argument("--engine", default="local")
    parser.add_argument("--catalog", type=Path, help="an existing catalog folder")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = args.catalog
        if catalog is None:
            catalog = Path(tmp) / "catalog"
            synthesize(catalog, args.listings, seed=123, progress=False)
        listings = catalog / f"{args.split}.jsonl"
        start = time.perf_counter()
        summary = run_curate(CurateConfig(listings=listings, out=Path(tmp) / "out",
                                          engine=args.engine, limit=args.listings))
        seconds = time.perf_counter() - start
        own, child = _peak_gb()
    rate = summary["seen"] / seconds
    print(json.dumps({k: summary[k] for k in ("seen", "kept", "duplicates", "quarantined",
                                              "samples")}))
    print(f"{summary['seen']} listings in {seconds:.1f}s -> {rate:.2f} listings/s "
          f"({rate / TARGET_LISTINGS_PER_S:.2f}x the {TARGET_LISTINGS_PER_S:.0f}/s target)")
    print(f"peak RSS: driver {own:.2f} GB, largest worker {child:.2f} GB; "
          f"driver + 2 workers <= {own + 2 * child:.2f} GB "
          f"({(own + 2 * child) / MEMORY_BUDGET_GB:.2f}x the {MEMORY_BUDGET_GB:.0f} GB budget)")


if __name__ == "__main__":
    main()
