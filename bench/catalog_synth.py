"""Catalog synthesis throughput: listings/s on this machine, against the 20 listings/s target.

    .venv/bin/python bench/catalog_synth.py [--listings 400]

Runs one process and then one per core over the same seed, so the scaling ratio and the
target ratio come from one run. Output files go to a temp folder and are removed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ecomvlm.catalog.synth import synthesize

TARGET = 20.0


def run(n: int, workers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = synthesize(Path(tmp) / "c", n, seed=1, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        images = sum(manifest["counts"]["role"].values())
    return n / seconds, images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=400)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    one, one_img = run(args.listings, 1)
    many, many_img = run(args.listings, cores)
    print(f"listings={args.listings} cores={cores}")
    print(f"1 process : {one:6.1f} listings/s  {one_img:6.1f} images/s")
    print(f"{cores} processes: {many:6.1f} listings/s  {many_img:6.1f} images/s")
    print(f"scaling {many / one:.2f}x; target {TARGET:.0f} listings/s -> {many / TARGET:.2f}x of target")


if __name__ == "__main__":
    main()
