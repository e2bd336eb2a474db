"""Atomic, resumable training checkpoints.

A checkpoint is a folder ``step-00000120/`` holding the trainable weights (safetensors), the
optimiser and scheduler state (``torch.save`` of plain tensors and containers, read back
with ``weights_only=True``), the RNG states and the data position (JSON). It is written into
a hidden temp folder, every file fsynced, the ``COMPLETE`` marker written last, and only
then renamed into place, so a crash at any point leaves either the previous checkpoint or a
folder that :func:`latest_checkpoint` ignores (no marker).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MARKER = "COMPLETE"
WEIGHTS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{8})$")


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_marker(folder: Path, step: int) -> None:
    (folder / MARKER).write_text(json.dumps({"step": step}) + "\n")
    _fsync_file(folder / MARKER)


# -- RNG ---------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (and CUDA) generator states as JSON-safe lists."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# -- save / load ---------------------------------------------------------------------------

def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that train (requires_grad) by name; frozen ones are rebuilt from the init."""
    return {name: p.detach().cpu().contiguous()
            for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(root: str | Path, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any,
                    trainer_state: dict[str, Any], keep_last: int = 2) -> Path:
    """Write ``root/step-XXXXXXXX`` atomically; prune all but the newest ``keep_last``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / WEIGHTS), metadata={"step": str(step)})
    torch.save({"optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None},
               tmp / OPTIMIZER)
    (tmp / STATE).write_text(json.dumps({"step": step, **trainer_state}) + "\n")
    for path in tmp.iterdir():
        _fsync_file(path)
    _write_marker(tmp, step)  # last: its presence means every file above is on disk
    _fsync_dir(tmp)
    if final.exists():  # the same step saved again after a resume
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    prune_checkpoints(root, keep_last)
    return final


def is_complete(folder: Path) -> bool:
    return bool(_NAME.match(folder.name)) and (folder / MARKER).is_file()


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and is_complete(p)),
                  key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint; folders without the marker are ignored."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def prune_checkpoints(root: str | Path, keep_last: int) -> None:
    """Delete complete checkpoints beyond the newest ``keep_last`` and leftover temp folders."""
    root = Path(root)
    complete = list_checkpoints(root)
    for old in complete[:-keep_last] if keep_last > 0 else complete:
        shutil.rmtree(old, ignore_errors=True)
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith(".tmp-step-") and \
                not path.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(folder: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None) -> dict[str, Any]:
    """Restore weights (and optimiser, scheduler); returns the trainer state dict.

    The trainer state carries what the loop saved with it (data position, RNG states per
    rank); restoring those is the loop's job, since it knows its rank.
    """
    folder = Path(folder)
    if not is_complete(folder):
        raise ValueError(f"{folder} is not a complete checkpoint (no {MARKER} marker)")
    weights = load_file(str(folder / WEIGHTS))
    params = dict(model.named_parameters())
    unknown = sorted(set(weights) - set(params))
    missing = sorted(n for n, p in params.items() if p.requires_grad and n not in weights)
    if unknown or missing:
        raise ValueError(f"{folder}: checkpoint does not match the model's trainable parts "
                         f"(unknown {unknown[:3]}, missing {missing[:3]})")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    blob = torch.load(folder / OPTIMIZER, weights_only=True, map_location="cpu")
    if optimizer is not None:
        optimizer.load_state_dict(blob["optimizer"])
    if scheduler is not None and blob["scheduler"] is not None:
        scheduler.load_state_dict(blob["scheduler"])
    return json.loads((folder / STATE).read_text())
