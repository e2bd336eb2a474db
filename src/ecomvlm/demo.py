"""The main job: raw listings -> verified data -> three-stage training -> evaluation -> report.

Each step writes into its own folder under ``out`` and leaves a completion marker; a re-run
skips finished steps (``fresh`` redoes them). A failing step raises :class:`StepFailed`,
which names the step and the file to look at; the steps before it stay finished.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # 2 CPU cores, <= 30 minutes: a small catalog, the demo recipe, capped benchmarks.
    # minutes: the expected length of each step there, for the overall ETA.
    "cpu": {"listings": 1200, "recipe": "demo.yaml", "eval_limit": 60, "eval_batch": 16,
            "minutes": {"catalog": 1, "curate": 6, "train": 9, "eval": 10, "report": 0.5}},
    # a real run: a large catalog (or your listings), the LLaVA-OneVision recipe, full suite
    "gpu": {"listings": 20000, "recipe": "gpu.yaml", "eval_limit": None, "eval_batch": 64,
            "minutes": {"catalog": 10, "curate": 60, "train": 600, "eval": 60, "report": 1}},
}
# every baseline the suite knows, beside the adapted model: the un-adapted model (untrained
# projector), the LM reading only text, curation's perception rules, the majority class
BASELINES = ("base:", "text-only", "perception", "majority")


class StepFailed(RuntimeError):
    def __init__(self, step: str, look_at: Path, error: BaseException):
        super().__init__(f"demo step '{step}' failed: {type(error).__name__}: {error}\n"
                         f"  look at: {look_at}\n"
                         f"  finished steps are kept; fix the cause and run the demo again")
        self.step, self.look_at = step, look_at


@dataclass
class Step:
    name: str
    marker: Path  # exists once the step finished
    look_at: Path  # where a failure's evidence is
    run: Callable[[], Any]
    folder: Path | None = None  # what --fresh removes before running the step again


def recipe_path(name: str) -> Path:
    """A recipe by file name: ./recipes/ in a checkout, else the copy shipped in the package."""
    local = Path("recipes") / name
    if local.is_file():
        return local
    shipped = Path(str(resources.files("ecomvlm") / "recipes" / name))
    if not shipped.is_file():
        raise FileNotFoundError(f"recipe {name} is in neither ./recipes nor the package: run "
                                f"from a checkout of ecomvlm or pass --recipe PATH")
    return shipped


def plan(out: Path, preset: str, listings: int | None, seed: int,
         recipe: str | Path | None = None, eval_limit: int | None = None) -> list[Step]:
    settings = PRESETS[preset]
    limit = eval_limit or settings["eval_limit"]
    n = listings or settings["listings"]
    catalog, curated, trained = out / "catalog", out / "curated", out / "train"
    evals, report = out / "eval", out / "report.html"

    def make_catalog() -> None:
        from ecomvlm.catalog.gallery import draw_gallery
        from ecomvlm.catalog.synth import synthesize

        synthesize(catalog, n, seed, overwrite=True)
        draw_gallery(catalog, out / "gallery_train.png", split="train", n=12)

    def curate() -> None:
        from ecomvlm.curate.config import CurateConfig
        from ecomvlm.curate.run import run_curate

        run_curate(CurateConfig(listings=catalog / "train.jsonl", out=curated, seed=seed,
                                ground_truth=catalog / "ground_truth" / "train.jsonl"))

    def train() -> None:
        from ecomvlm.train.run import run_recipe

        run_recipe(recipe or recipe_path(settings["recipe"]), curated, trained)

    def evaluate() -> None:
        from ecomvlm.eval import run_eval
        from ecomvlm.eval.adapters import slug

        evals.mkdir(parents=True, exist_ok=True)
        models = (str(final_model(trained)), *BASELINES)
        for spec in models:
            marker = evals / f".done-{slug(spec)}"  # per model: a re-run resumes mid-step
            if marker.exists():
                continue
            model = unadapted(trained, seed) if spec == "base:" else spec
            run_eval(model, "all", catalog, evals, limit=limit, crops="both", seed=seed,
                     batch_size=settings["eval_batch"])
            marker.touch()
        (evals / "done.json").write_text(json.dumps({"models": list(models)}))

    def write_report() -> None:
        from ecomvlm.eval.report import write_report as render

        render([evals], report, curation=curated, training=trained,
               title="ecomvlm demo: what adaptation bought and what it cost")

    return [
        Step("catalog", catalog / "catalog.json", catalog, make_catalog, catalog),
        Step("curate", curated / "curate.done.json", curated / "quality", curate, curated),
        Step("train", trained / "summary.json", trained, train, trained),
        Step("eval", evals / "done.json", evals, evaluate, evals),
        Step("report", report, evals, write_report),
    ]


def unadapted(trained: Path, seed: int) -> Any:
    """The recipe's own architecture with a fresh (untrained) projector: what adaptation
    started from, so the comparison changes nothing but the training."""
    from ecomvlm.eval.adapters import VLMAdapter, build_base
    from ecomvlm.train.spec import load_recipe

    fields = load_recipe(trained / "recipe.yaml").model.model_dump(mode="json")
    spec = "base:" + json.dumps(fields, sort_keys=True)
    return VLMAdapter(build_base(spec[5:], seed), spec, "untrained")


def final_model(trained: Path) -> Path:
    """The last finished stage's saved model, from the training summary."""
    summary = json.loads((trained / "summary.json").read_text())
    return Path(summary["final_model"])


def run_demo(out: str | Path, preset: str = "cpu", listings: int | None = None, seed: int = 0,
             fresh: bool = False, recipe: str | Path | None = None,
             eval_limit: int | None = None, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Run (or resume) every step; returns wall seconds per step run now (also written to
    ``out/timings.json``, merged with earlier runs')."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; have {', '.join(PRESETS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = plan(out, preset, listings, seed, recipe, eval_limit)
    expected = PRESETS[preset]["minutes"]
    timings_file = out / "timings.json"
    recorded: dict[str, float] = json.loads(timings_file.read_text()) \
        if timings_file.is_file() and not fresh else {}
    timings: dict[str, float] = {}
    began = time.perf_counter()
    for index, step in enumerate(steps, 1):
        label = f"[{index}/{len(steps)}] {step.name}"
        if step.marker.exists() and not fresh:
            echo(f"{label}: done already ({step.marker}); --fresh redoes it")
            continue
        left = sum(expected[s.name] for s in steps[index - 1:])
        echo(f"{label}: running (elapsed {(time.perf_counter() - began) / 60:.1f} min, "
             f"about {left:.0f} min left on the {preset} preset)")
        started = time.perf_counter()
        if fresh and step.folder is not None and step.folder.exists():
            shutil.rmtree(step.folder)
        try:
            step.run()
        except KeyboardInterrupt:
            raise
        except Exception as error:
            raise StepFailed(step.name, step.look_at, error) from error
        timings[step.name] = recorded[step.name] = round(time.perf_counter() - started, 1)
        timings_file.write_text(json.dumps(recorded, indent=2))
        echo(f"{label}: finished in {timings[step.name] / 60:.1f} min")
    return timings


def summary(out: str | Path) -> str:
    """The headline table of a finished demo and where its report is."""
    from ecomvlm.eval.report import find_runs, summary_table

    out = Path(out)
    lines = [summary_table(find_runs([out / "eval"]))]
    timings_file = out / "timings.json"
    if timings_file.is_file():
        timings = json.loads(timings_file.read_text())
        lines.append("wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in
                                               timings.items())
                     + f" (total {sum(timings.values()) / 60:.1f} min)")
    lines.append(f"report: {(out / 'report.html').resolve()}")
    return "\n".join(lines)
