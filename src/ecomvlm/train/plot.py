"""Loss curves of every stage of a run on one figure (matplotlib, PNG)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_loss_curves(out_dir: str | Path, stages: Sequence[str], path: str | Path) -> Path | None:
    """Train loss (raw and smoothed) and val loss per stage, stages laid end to end."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in a headless run
    import matplotlib.pyplot as plt

    out_dir, path = Path(out_dir), Path(path)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    offset, drawn = 0, 0
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(stages):
        records = read_metrics(out_dir / name / "metrics.jsonl")
        if not records:
            continue
        colour = colours[i % len(colours)]
        train = [r for r in records if "loss" in r]
        if not train:
            continue
        steps = [offset + r["step"] for r in train]
        losses = [r["loss"] for r in train]
        ax.plot(steps, losses, color=colour, alpha=0.25, linewidth=0.8)
        window = max(1, len(losses) // 20)
        ax.plot(steps, _smooth(losses, window), color=colour, label=f"{name} train")
        val = [(offset + r["step"], r["val_loss"]) for r in records if "val_loss" in r]
        if val:
            ax.plot(*zip(*val), "o--", color=colour, markersize=4, label=f"{name} val")
        if drawn:
            ax.axvline(offset, color="grey", linestyle=":", linewidth=0.8)
        offset = steps[-1]
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("optimiser step (stages end to end)")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(f"training loss: {out_dir.name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
