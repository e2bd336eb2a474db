"""The curation quality report: ``quality/quality.json``, ``quality/quality.md`` and plots.

Counts per stage, task and category; why records were dropped; how claims fared per
aspect; balance before and after capping; diversity of prompts and answers; and, when an
answer key is given (``--ground-truth``), precision and recall of catching wrong claims.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from ecomvlm.curate.config import CurateConfig
from ecomvlm.curate.instruct import diversity_stats
from ecomvlm.curate.records import VerifiedListing
from ecomvlm.samples import Sample


def _claim_table(verified: list[VerifiedListing]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter] = defaultdict(Counter)
    for record in verified:
        for verdict in record.verdicts:
            table[verdict.key][verdict.status] += 1
            if verdict.corrected is not None:
                table[verdict.key]["corrected"] += 1
    return {key: dict(counts) for key, counts in sorted(table.items())}


def _per(samples: list[Sample], field: str) -> dict[str, int]:
    return dict(sorted(Counter(str(s.meta.get(field)) for s in samples).items()))


def _grid(samples: list[Sample]) -> dict[str, dict[str, int]]:
    grid: dict[str, Counter] = defaultdict(Counter)
    for s in samples:
        grid[str(s.meta.get("task"))][str(s.meta.get("category"))] += 1
    return {task: dict(sorted(c.items())) for task, c in sorted(grid.items())}


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pr = report.get("wrong_claim_detection")
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    grid = report["stage3_task_by_category"]
    tasks = sorted(grid)
    cats = sorted({c for row in grid.values() for c in row})
    matrix = np.array([[grid[t].get(c, 0) for c in cats] for t in tasks])
    ax = axes[0]
    im = ax.imshow(matrix, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(cats)), cats, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_title("stage-3 samples per task and category (after balancing)")
    fig.colorbar(im, ax=ax)
    ax = axes[1]
    if pr:
        keys = [k for k, v in pr.items() if v["n_wrong"] > 0]
        x = np.arange(len(keys))
        # an aspect with nothing flagged has no precision: drawn as 0, shown as n/a in the table
        ax.bar(x - 0.2, [pr[k]["precision"] or 0 for k in keys], 0.4, label="precision")
        ax.bar(x + 0.2, [pr[k]["recall"] or 0 for k in keys], 0.4, label="recall")
        ax.axhline(0.9, color="tab:blue", ls=":", lw=1)
        ax.axhline(0.8, color="tab:orange", ls=":", lw=1)
        ax.set_xticks(x, keys, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title("catching wrong claims, per aspect (dotted: targets)")
        ax.legend()
    else:
        claims = report["claims_per_aspect"]
        keys = list(claims)
        bottom = np.zeros(len(keys))
        for status in ("supported", "contradicted", "unverifiable"):
            values = np.array([claims[k].get(status, 0) for k in keys])
            ax.bar(keys, values, bottom=bottom, label=status)
            bottom += values
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.set_title("claims per aspect")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _markdown(report: dict) -> str:
    s = report["summary"]
    reconciled = "reconciled" if s["reconciled"] else "MISMATCH"
    lines = ["# Curation quality report", "",
             (f"Listings seen: {s['seen']} = kept {s['kept']} + duplicates {s['duplicates']} "
              f"+ quarantined {s['quarantined']} ({reconciled})"),
             "", "## Samples", "", "| stage | samples |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in s["samples"].items()]
    lines += ["", "Stage 3 per task: " + ", ".join(f"{k} {v}" for k, v in
                                                    report["stage3_per_task"].items()), "",
              "## Dropped", "", "| reason | records |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["drop_reasons"].items()]
    lines += ["", "## Claims per aspect", "",
              "| aspect | supported | contradicted | unverifiable | corrected |", "|---|---|---|---|---|"]
    for key, c in report["claims_per_aspect"].items():
        lines.append(f"| {key} | {c.get('supported', 0)} | {c.get('contradicted', 0)} | "
                     f"{c.get('unverifiable', 0)} | {c.get('corrected', 0)} |")
    pr = report.get("wrong_claim_detection")
    if pr:
        lines += ["", "## Catching wrong claims (against the answer key)", "",
                  ("Recall is bounded by how often the true value shows in some photo "
                   "(`bound`): a wrong size on a listing without a label photo cannot be caught."),
                  "", "| aspect | wrong claims | caught | false alarms | precision | recall | bound |",
                  "|---|---|---|---|---|---|---|"]
        for key, r in pr.items():
            lines.append(f"| {key} | {r['n_wrong']} | {r['tp']} | {r['fp']} | "
                         f"{_ratio(r['precision'])} | {_ratio(r['recall'])} | "
                         f"{_ratio(r.get('evidence_bound'))} |")
    lines += ["", "## Balance (stage 3)", "", "```", json.dumps(report["balance"], indent=1)[:3000],
              "```", "", "## Diversity", "", "```",
              json.dumps(report["diversity"], indent=1)[:3000], "```", "",
              "![plots](quality.png)", ""]
    return "\n".join(lines)


def write_quality_report(out: Path, config: CurateConfig, summary: dict,
                         verified: list[VerifiedListing], before_balance: list[Sample],
                         samples: dict[int, list[Sample]], balance_report: dict,
                         rejects: list[dict]) -> dict:
    folder = out / "quality"
    folder.mkdir(exist_ok=True)
    drops = Counter(summary.get("quarantine_reasons", {}))
    drops.update(f"duplicate_{k}" for k, n in summary.get("duplicate_kinds", {}).items()
                 for _ in range(n))
    drops.update(r["reason"] for r in rejects)
    report = {
        "summary": summary,
        "stage_samples_per_category": {f"stage{k}": _per(v, "category")
                                       for k, v in samples.items()},
        "stage3_per_task": _per(samples[3], "task"),
        "stage3_per_task_before_balance": _per(before_balance, "task"),
        "stage3_task_by_category": _grid(samples[3]),
        "drop_reasons": dict(sorted(drops.items())),
        "claims_per_aspect": _claim_table(verified),
        "balance": balance_report,
        "diversity": {f"stage{k}": diversity_stats(v) for k, v in samples.items() if v},
    }
    if config.ground_truth is not None:
        from ecomvlm.curate.verify import score_against_ground_truth

        report["wrong_claim_detection"] = score_against_ground_truth(verified,
                                                                     config.ground_truth)
    (folder / "quality.json").write_text(json.dumps(report, indent=2, default=str))
    _plot(report, folder / "quality.png")
    (folder / "quality.md").write_text(_markdown(report))
    return report
