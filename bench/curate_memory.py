"""Peak memory of curation's finalize phase at scale, from a finished run's shards.

    .venv/bin/python bench/curate_memory.py --run runs/dev/cur2k --times 5

Workers hold one shard at a time, so their memory does not grow with the catalog (the
throughput bench reports it). The driver's finalize phase reads every shard back, balances
the task mix and writes the samples and three exports: that is the part that grows with the
number of listings. This bench copies a finished run's shards ``--times`` times (ids made
unique), runs the real finalize on them in a fresh process, and prints its peak RSS against
the 4 GB budget. With a 2,000-listing run and ``--times 5`` that is 10,000 listings.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MEMORY_BUDGET_GB = 4.0


def replicate(run: Path, target: Path, times: int) -> tuple[int, dict]:
    """Copy ``run``'s shards ``times`` times with unique ids; (shard count, prepare counts)."""
    from ecomvlm.curate.pipeline import WORK, shard_path

    shards = sorted((run / WORK / "shards").glob("shard-*.jsonl"))
    (target / WORK / "shards").mkdir(parents=True)
    shutil.copy(run / WORK / "quarantine_prepare.jsonl", target / WORK)
    index = 0
    for copy in range(times):
        for shard in shards:
            text = shard.read_text(encoding="utf-8")
            if copy:  # listing ids are "L..."; a prefix keeps copies distinct
                text = text.replace('"L', f'"R{copy}L')
            shard_path(target, index).write_text(text, encoding="utf-8")
            index += 1
    counts = json.loads((run / WORK / "prepare.done.json").read_text())
    scaled = {k: v * times if isinstance(v, int) else v for k, v in counts.items()}
    return index, scaled


def finalize_in_child(target: Path, n_shards: int, counts: dict, config: dict) -> dict:
    code = (
        "import json, resource, sys, time\n"
        "from ecomvlm.curate.config import CurateConfig\n"
        "from ecomvlm.curate.finalize import finalize\n"
        "args = json.loads(sys.argv[1])\n"
        "start = time.perf_counter()\n"
        "summary = finalize(CurateConfig(**args['config']), args['n'], args['counts'])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20\n"
        "print(json.dumps({'summary': summary, 'peak_gb': peak,"
        " 'seconds': time.perf_counter() - start}))\n")
    payload = json.dumps({"config": config, "n": n_shards, "counts": counts})
    done = subprocess.run([sys.executable, "-c", code, payload], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished curate output folder")
    parser.add_argument("--times", type=int, default=5)
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())["config"]
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "out"
        n_shards, counts = replicate(args.run, target, args.times)
        config.update(out=str(target), ground_truth=None)
        result = finalize_in_child(target, n_shards, counts, config)
    summary = result["summary"]
    print(f"finalize over {summary['kept']} kept listings ({summary['seen']} seen), "
          f"{sum(summary['samples'].values())} samples, in {result['seconds']:.0f}s")
    print(f"peak RSS of the driver's finalize: {result['peak_gb']:.2f} GB "
          f"({result['peak_gb'] / MEMORY_BUDGET_GB:.2f}x the {MEMORY_BUDGET_GB:.0f} GB budget); "
          f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
