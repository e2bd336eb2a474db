"""Eval throughput of the demo model: 500 benchmark samples against the 3-minute target.

    .venv/bin/python bench/eval_throughput.py [--model base:] [--catalog DIR] [--samples 500]
                                              [--threads N] [--batch-size 32] [--no-share]
                                              [--dtype float32|bfloat16]

The model is the demo construction (packaged:efficientnet-lite0 -> mlp2x_gelu ->
packaged:smollm2-135m-instruct, 49 tokens an image); an untrained ``base:`` projector costs
the same as a trained one, and babbles to its answer budget, so it is the worst case. The
samples are the standard mix: all 43 general questions and the rest split evenly over aspect,
fashion, extract and multi_image (crops off), from the catalog's test split (default
runs/dev/cat2k, else a fresh 2000-listing catalog). It prints wall and process CPU seconds,
samples/s and the ratio to the 180 s target, with the machine's load average before and
after (the CPU is shared: compare figures measured in one run). ``--no-share`` turns off the
shared-prefix decoding, to measure what it buys.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from ecomvlm.eval.adapters import load_adapter
from ecomvlm.eval.bench_general import load_data
from ecomvlm.eval.runner import run_eval

TARGET_SECONDS = 180.0
DEFAULT_CATALOG = Path(__file__).resolve().parents[1] / "runs" / "dev" / "cat2k"


def cpu_pressure() -> str:
    """Linux PSI: the share of time some runnable task waited for a CPU (other tenants)."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "n/a"


def limits(total: int) -> dict[str, int]:
    general = len(load_data("general_qa.json")["questions"])
    rest = total - general
    each, extra = divmod(rest, 4)
    out = {b: each + (i < extra) for i, b in enumerate(("aspect", "fashion", "extract",
                                                        "multi_image"))}
    return {**out, "general": general}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base:")
    parser.add_argument("--catalog", type=Path)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--threads", type=int, help="default: the free cores")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--no-share", action="store_true", help="one group per sample")
    args = parser.parse_args()
    from ecomvlm.eval.runner import auto_threads

    torch.set_num_threads(args.threads or auto_threads())
    with tempfile.TemporaryDirectory() as tmp:
        catalog = args.catalog or (DEFAULT_CATALOG if DEFAULT_CATALOG.is_dir() else None)
        if catalog is None:
            from ecomvlm.catalog.synth import synthesize

            catalog = Path(tmp) / "catalog"
            synthesize(catalog, 2000, seed=7, progress=False)
        began = time.perf_counter()
        adapter = load_adapter(args.model, dtype=args.dtype)
        adapter.share_prefix = not args.no_share
        load_s = time.perf_counter() - began
        load_before = os.getloadavg()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = run_eval(adapter, "aspect,fashion,extract,multi_image,general", catalog,
                           Path(tmp) / "out", limit=limits(args.samples),
                           batch_size=args.batch_size, progress=False, threads=None)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        load_after = os.getloadavg()
    n = sum(v["effective"] for v in results["n-samples"].values())
    print(f"model {args.model} ({results['model_info'].get('dtype')}), loaded in {load_s:.1f}s; "
          f"{torch.get_num_threads()} torch threads on {os.cpu_count()} cores, "
          f"batch {args.batch_size}, shared prefixes {'off' if args.no_share else 'on'}")
    print("per benchmark (s):", {k: round(v, 1) for k, v in results["timing"].items()},
          "samples:", {k: v["effective"] for k, v in results["n-samples"].items()})
    print(f"{n} samples in {wall:.1f}s wall ({cpu:.1f}s process CPU) -> {n / wall:.2f} "
          f"samples/s; {wall / TARGET_SECONDS:.2f}x the {TARGET_SECONDS:.0f}s budget "
          f"(scaled to 500 samples: {wall * 500 / n:.1f}s)")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
          f"CPU pressure {cpu_pressure()}")


if __name__ == "__main__":
    main()
