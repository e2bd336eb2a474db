"""Run a recipe: its stages in order, each into ``out_dir/<stage>/``, resumable at any point.

Per stage: ``checkpoints/`` (atomic, last K), ``metrics.jsonl``, ``quarantine.jsonl`` (when a
sample failed), ``final/`` (``save_pretrained``) and ``done.json`` (wall time, steps, final
train/val loss), written last. A stage with ``done.json`` is not run again; ``init:
previous`` starts from the ``final/`` of the last earlier stage that finished, so skipping a
stage (``skip: true`` or not listed in ``stages``) chains the others. At the end all
stages' losses go on one figure, ``out_dir/loss_curves.png``.

The CLI calls :func:`run_recipe`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .spec import Recipe, RecipeError, StageSpec, dump_recipe, load_recipe, override_recipe

DONE = "done.json"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _is_main() -> bool:
    from .loop import process_state

    return process_state().is_main_process


def _wait() -> None:
    from .loop import process_state

    process_state().wait_for_everyone()


def _check_same_spec(stage_dir: Path, recipe: Recipe, stage: StageSpec, init: str) -> None:
    """Refuse to resume a stage whose spec changed since its checkpoints were written."""
    now = {"model": recipe.model.model_dump(mode="json"), "seed": recipe.seed, "init": init,
           "stage": stage.model_dump(mode="json", exclude={"skip", "log_every"})}
    path = stage_dir / "stage.json"
    has_checkpoints = any((stage_dir / "checkpoints").glob("step-*"))
    if path.exists() and has_checkpoints:
        before = json.loads(path.read_text())
        if before != now:
            changed = sorted(k for k in set(before["stage"]) | set(now["stage"])
                             if before["stage"].get(k) != now["stage"].get(k))
            changed += [k for k in ("model", "seed", "init") if before[k] != now[k]]
            raise RecipeError(f"stage {stage.name!r} in {stage_dir} was started with a different "
                              f"spec (changed: {', '.join(changed)}); resume with the same "
                              "recipe, or pass resume=False / a new output folder")
    if _is_main():
        stage_dir.mkdir(parents=True, exist_ok=True)
        _write_json(path, now)


def _init_model(recipe: Recipe, stage: StageSpec, previous: Path | None) -> tuple[Any, str]:
    from ecomvlm.model.vlm import VisionLanguageModel

    if stage.init == "previous" and previous is not None:
        return VisionLanguageModel.from_pretrained(previous), str(previous)
    if stage.init in ("previous", "base"):
        return VisionLanguageModel.build(recipe.model), "base"
    path = Path(stage.init).expanduser()
    if not (path / "config.json").is_file():
        raise RecipeError(f"stage {stage.name!r}: init {stage.init!r} is neither 'previous', "
                          "'base' nor a saved model folder")
    return VisionLanguageModel.from_pretrained(path), str(path.resolve())


def run_recipe(recipe: Recipe | str | Path, data_root: str | Path, out_dir: str | Path,
               overrides: Sequence[str] = (), stages: Sequence[str] | None = None,
               resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run the recipe's stages (all, or those named in ``stages``) and return a summary.

    ``recipe`` is a Recipe or a YAML path; ``overrides`` are dotted ``key=value`` edits;
    ``data_root`` is what ``{data}`` and relative data paths resolve against.
    """
    from .loop import seed_everything, train_stage

    if isinstance(recipe, Recipe):
        recipe = override_recipe(recipe, overrides)
    else:
        recipe = load_recipe(recipe, overrides)
    names = [s.name for s in recipe.stages]
    unknown = [s for s in stages or () if s not in names]
    if unknown:
        raise RecipeError(f"unknown stage(s) {', '.join(unknown)}; recipe has {', '.join(names)}")
    data_root, out_dir = Path(data_root), Path(out_dir)
    if not data_root.is_dir():
        raise RecipeError(f"data folder {data_root} does not exist")
    if _is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "recipe.yaml").write_text(dump_recipe(recipe))
    started = time.perf_counter()
    previous: Path | None = None
    report: list[dict[str, Any]] = []
    for stage in recipe.stages:
        stage_dir = out_dir / stage.name
        if stage.skip or (stages is not None and stage.name not in stages):
            why = "skip: true" if stage.skip else "not selected"
            report.append({"stage": stage.name, "status": "skipped", "why": why})
            if not stage.skip and resume and (stage_dir / DONE).is_file():
                previous = stage_dir / "final"  # finished by an earlier call: still chain it
            continue
        if resume and (stage_dir / DONE).is_file() and (stage_dir / "final").is_dir():
            done = json.loads((stage_dir / DONE).read_text())
            report.append({**done, "status": "done"})
            previous = stage_dir / "final"
            continue
        stage_start = time.perf_counter()
        seed_everything(recipe.seed)  # a fresh projector's init depends on it
        model, init = _init_model(recipe, stage, previous)
        _check_same_spec(stage_dir, recipe, stage, init)
        result = train_stage(model, stage, data_root, stage_dir, seed=recipe.seed, resume=resume,
                             tensorboard=recipe.output.tensorboard, progress=progress)
        done = {"stage": stage.name, "init": init, **result.to_json(),
                "final": str(stage_dir / "final"), "finished_at": time.time()}
        if _is_main():
            model.save_pretrained(stage_dir / "final")
            # this call's whole stage: model load, val passes and saving included
            done["stage_wall_s"] = time.perf_counter() - stage_start
            _write_json(stage_dir / DONE, done)
        _wait()
        report.append({**done, "status": "trained"})
        previous = stage_dir / "final"
        del model
    plot = None
    if recipe.output.plot and _is_main():
        from .plot import plot_loss_curves

        plot = plot_loss_curves(out_dir, names, out_dir / "loss_curves.png")
    summary = {"out_dir": str(out_dir), "stages": report, "final_model": str(previous)
               if previous else None, "loss_curves": str(plot) if plot else None,
               "wall_s": time.perf_counter() - started}
    if _is_main():
        _write_json(out_dir / "summary.json", summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """One line per stage, for the CLI."""
    lines = []
    for s in summary["stages"]:
        if s["status"] == "skipped":
            lines.append(f"{s['stage']:<10} skipped ({s['why']})")
            continue
        val = f"{s['val_loss']:.4f}" if s.get("val_loss") is not None else "-"
        train = f"{s['train_loss']:.4f}" if s.get("train_loss") is not None else "-"
        lines.append(f"{s['stage']:<10} {s['status']:<8} steps {s['steps']:>5}  "
                     f"train loss {train}  val loss {val}  {s['wall_s']:.0f}s  "
                     f"{s['samples_per_s']:.2f} samples/s  quarantined {s['quarantined']}")
    lines.append(f"final model: {summary['final_model']}")
    if summary.get("loss_curves"):
        lines.append(f"loss curves: {summary['loss_curves']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ecomvlm.train.run``: the same as ``ecomvlm train``, for ``accelerate launch``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecomvlm.train.run",
                                     description="Run a training recipe.")
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--data", required=True, help="folder that {data} resolves to")
    parser.add_argument("--out", required=True)
    parser.add_argument("--stages", default=None, help="comma-separated stage names")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="dotted override, repeatable")
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s] if args.stages else None
    summary = run_recipe(args.recipe, args.data, args.out, overrides=args.overrides,
                         stages=stages, resume=not args.no_resume)
    if _is_main():
        print(format_summary(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
