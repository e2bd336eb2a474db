"""Phase 3 of curation: from committed shards to the files users train on.

Writes ``stage1.jsonl`` ``stage2.jsonl`` ``stage3.jsonl`` (canonical samples; stage 3
balanced over categories and tasks, with general replay mixed in when asked),
``verified.jsonl`` (every kept listing with its verdicts), ``quarantine.jsonl`` (all
rejects, with reasons), the exports and the quality report. Everything here is recomputed
from the shards, so running it twice gives the same files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ecomvlm.curate.config import CurateConfig
from ecomvlm.curate.export import export_hf, export_llava, export_sharegpt
from ecomvlm.curate.instruct import balance, load_replay
from ecomvlm.curate.pipeline import WORK, read_jsonl, shard_path
from ecomvlm.curate.records import VerifiedListing
from ecomvlm.samples import Sample, write_samples

STAGES = (1, 2, 3)


def _collect(out: Path, n_shards: int):
    verified: list[VerifiedListing] = []
    samples: dict[int, list[Sample]] = {stage: [] for stage in STAGES}
    rejects: list[dict] = []
    for index in range(n_shards):
        for result in read_jsonl(shard_path(out, index)):
            if result["status"] != "kept":
                rejects.append({k: result[k] for k in ("id", "reason", "detail")})
                continue
            verified.append(VerifiedListing.model_validate(result["verified"]))
            for stage, group in result["samples"].items():
                samples[int(stage)].extend(Sample.model_validate(s) for s in group)
    return verified, samples, rejects


def _write_quarantine(out: Path, rejects: list[dict]) -> None:
    tmp = out / "quarantine.jsonl.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        f.write((out / WORK / "quarantine_prepare.jsonl").read_text(encoding="utf-8"))
        for record in rejects:
            f.write(json.dumps({"stage": "process", **record}, ensure_ascii=False) + "\n")
    os.replace(tmp, out / "quarantine.jsonl")


def finalize(config: CurateConfig, n_shards: int, prepare_counts: dict) -> dict:
    """Write the run's outputs; return the summary that also lands in ``curate.done.json``."""
    from ecomvlm.curate.quality import write_quality_report

    out = Path(config.out)
    verified, samples, rejects = _collect(out, n_shards)
    _write_quarantine(out, rejects)
    with (out / "verified.jsonl.tmp").open("w", encoding="utf-8") as f:
        for record in verified:
            f.write(record.model_dump_json() + "\n")
    os.replace(out / "verified.jsonl.tmp", out / "verified.jsonl")

    before_balance = list(samples[3])
    samples[3], balance_report = balance(samples[3], seed=config.seed)
    if config.replay is not None:
        wanted = round(config.replay_fraction * len(samples[3]) / (1 - config.replay_fraction)) \
            if config.replay_fraction < 1 else len(samples[3])
        samples[3] += load_replay(config.replay, limit=wanted, seed=config.seed)

    counts = {f"stage{stage}": write_samples(samples[stage], out / f"stage{stage}.jsonl")
              for stage in STAGES}
    for stage in STAGES:
        path = out / f"stage{stage}.jsonl"
        export_llava(path, out / "exports" / "llava" / f"stage{stage}")
        export_sharegpt(path, out / "exports" / "sharegpt" / f"stage{stage}",
                        dataset_name=f"ecomvlm_stage{stage}")
        export_hf(path, out / "exports" / "hf" / f"stage{stage}")

    summary = {
        **prepare_counts,
        "kept": len(verified),
        "quarantined_in_processing": len(rejects),
        "samples": counts,
    }
    quarantined = (prepare_counts["quarantined_records"] + prepare_counts["quarantined_images"]
                   + len(rejects))
    summary["quarantined"] = quarantined
    # every record we saw is accounted for exactly once
    summary["reconciled"] = (
        summary["seen"] == summary["kept"] + summary["duplicates"] + quarantined)
    write_quality_report(out, config, summary, verified, before_balance, samples,
                         balance_report, rejects)
    return summary
