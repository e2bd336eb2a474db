"""The `ecomvlm` command line. Each command is a thin shell over one stage's module.

Heavy imports (torch, transformers, Pillow drawing code) happen inside the commands so that
`ecomvlm --help` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Adapt vision-language models to e-commerce understanding.")
catalog_app = typer.Typer(no_args_is_help=True, help="The synthetic marketplace.")
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("synth")
def catalog_synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the catalog into."),
    listings: int = typer.Option(2000, "--listings", min=1, help="Number of listings."),
    seed: int = typer.Option(0, "--seed", help="Same seed, byte-identical catalog."),
    workers: int | None = typer.Option(None, "--workers", min=1,
                                          help="Processes (default: one per core)."),
    wrong_rate: float = typer.Option(0.15, "--wrong-rate", min=0.0, max=1.0,
                                     help="Share of listed aspects given a wrong value."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing catalog."),
) -> None:
    """Synthesise listings, photos and ground truth (train/val/test split by product)."""
    from ecomvlm.catalog.synth import synthesize

    manifest = synthesize(out, listings, seed, workers=workers, wrong_rate=wrong_rate,
                          overwrite=overwrite)
    split = manifest["counts"]["split"]
    typer.echo(f"wrote {manifest['listings']} listings of {manifest['products']} products to "
               f"{out} in {manifest['seconds']:.1f}s "
               f"({manifest['listings'] / manifest['seconds']:.1f} listings/s); "
               f"train/val/test = {split.get('train', 0)}/{split.get('val', 0)}/"
               f"{split.get('test', 0)}; wrong claims {manifest['wrong_claim_share']:.1%}")


@catalog_app.command("gallery")
def catalog_gallery(
    catalog: Path = typer.Argument(..., help="A folder written by `catalog synth`."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    split: str = typer.Option("train", "--split"),
    n: int = typer.Option(24, "--n", min=1, help="How many listings to draw."),
    columns: int = typer.Option(3, "--columns", min=1),
) -> None:
    """Draw a contact sheet of listings with their titles (and ground truth when present)."""
    from ecomvlm.catalog.gallery import draw_gallery

    path = draw_gallery(catalog, out, split=split, n=n, columns=columns)
    typer.echo(f"gallery: {path}")


@app.command("curate")
def curate(
    listings: Path = typer.Option(..., "--listings", help="Listings: .jsonl, .csv or .parquet."),
    out: Path = typer.Option(..., "--out", help="Output folder (re-run to resume)."),
    engine: str = typer.Option("local", "--engine", help="local (process pool) or ray."),
    captioner: str = typer.Option("perception", "--captioner",
                                  help="perception | openai:URL?model=M | hf:ID"),
    verifier: str = typer.Option("perception", "--verifier",
                                 help="perception | openai:URL?model=M | hf:ID"),
    ground_truth: Path | None = typer.Option(
        None, "--ground-truth", help="Answer key: adds wrong-claim precision/recall."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N."),
    workers: int | None = typer.Option(None, "--workers", min=1),
    seed: int = typer.Option(0, "--seed"),
    shard_size: int = typer.Option(32, "--shard-size", min=1,
                                   help="Listings per committed shard (resume granularity)."),
    replay: Path | None = typer.Option(None, "--replay",
                                          help="General samples to mix into stage 3."),
    replay_fraction: float = typer.Option(0.1, "--replay-fraction", min=0.0, max=0.9),
    allow_url_fetch: bool = typer.Option(False, "--allow-url-fetch",
                                         help="Fetch http(s) images (SSRF-guarded)."),
) -> None:
    """Visual Verification Pipeline: noisy listings -> verified instruction data."""
    from ecomvlm.curate.config import CurateConfig
    from ecomvlm.curate.run import run_curate

    config = CurateConfig(listings=listings, out=out, engine=engine, captioner=captioner,
                          verifier=verifier, ground_truth=ground_truth, limit=limit,
                          workers=workers, seed=seed, shard_size=shard_size, replay=replay,
                          replay_fraction=replay_fraction, allow_url_fetch=allow_url_fetch)
    summary = run_curate(config)
    typer.echo(f"curated {summary['seen']} listings in {summary['seconds']}s: "
               f"kept {summary['kept']}, duplicates {summary['duplicates']}, "
               f"quarantined {summary['quarantined']}; samples "
               + ", ".join(f"{k} {v}" for k, v in summary["samples"].items()))
    typer.echo(f"quality report: {out / 'quality' / 'quality.md'}")


@app.command("train")
def train(
    recipe: Path = typer.Option(..., "--recipe", help="Recipe YAML (recipes/demo.yaml, ...)."),
    data: Path = typer.Option(..., "--data", help="Curated data folder ({data} in the recipe)."),
    out: Path = typer.Option(..., "--out", help="Run folder (re-run to resume)."),
    stages: str | None = typer.Option(None, "--stages",
                                      help="Comma-separated stage names; default all."),
    overrides: list[str] = typer.Option([], "--set",
                                        help="Dotted override, e.g. stages.instruct.steps=50."),
    no_resume: bool = typer.Option(False, "--no-resume",
                                   help="Ignore checkpoints of an interrupted stage."),
) -> None:
    """Run a recipe's stages (align -> mid -> instruct) on curated samples; resumable."""
    from ecomvlm.train.run import format_summary, run_recipe

    names = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    summary = run_recipe(recipe, data, out, overrides=overrides, stages=names,
                         resume=not no_resume)
    typer.echo(format_summary(summary))


@app.command("export")
def export(
    model: Path = typer.Argument(..., help="A saved model folder (a stage's final/)."),
    out: Path = typer.Argument(..., help="Folder for the transformers Llava model."),
    dtype: str | None = typer.Option(None, "--dtype", help="e.g. bfloat16; default: as saved."),
) -> None:
    """Write a transformers LlavaForConditionalGeneration folder (what vLLM serves)."""
    from ecomvlm.model.export_llava import export_llava

    typer.echo(f"wrote {export_llava(model, out, dtype=dtype)}")


@app.command("eval")
def evaluate(
    model: str = typer.Option(..., "--model", help="A saved model folder, base:, text-only, "
                              "perception, majority, hf:PATH or openai:URL?model=M."),
    catalog: Path = typer.Option(..., "--catalog", help="Catalog folder (its test split is used)."),
    benchmarks: str = typer.Option("all", "--benchmarks",
                                   help="all, or some of aspect,fashion,extract,multi_image,general."),
    out: Path = typer.Option(Path("runs/eval"), "--out", help="Results go to OUT/<model>/."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Samples per benchmark."),
    crops: str = typer.Option("off", "--crops", help="multi_image with crops: on, off or both."),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
) -> None:
    """Score a model (or a baseline) on the e-commerce benchmark suite."""
    from ecomvlm.eval import run_eval
    from ecomvlm.eval.results import plain_metrics

    results = run_eval(model, benchmarks, catalog, out, limit=limit, crops=crops, seed=seed,
                       batch_size=batch_size)
    for bench in results["results"]:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in plain_metrics(results, bench).items()
                          if isinstance(v, float))
        typer.echo(f"{bench:<18} {shown}")


@app.command("extract")
def extract(
    model: str = typer.Option(..., "--model", help="A saved model folder, or 'default'."),
    listings: Path = typer.Option(..., "--listings", help="Listings: .jsonl, .csv or .parquet."),
    out: Path = typer.Option(..., "--out", help="JSONL of {id, category, attributes}; resumes."),
    quarantine: Path | None = typer.Option(None, "--quarantine",
                                           help="Rejected records (default: beside --out)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    constrain: bool = typer.Option(True, "--constrain/--no-constrain",
                                   help="JSON-schema constrained decoding."),
    dtype: str = typer.Option("bfloat16", "--dtype"),
    threads: int | None = typer.Option(None, "--threads", min=1),
    allow_url_fetch: bool = typer.Option(False, "--allow-url-fetch"),
    crops: int = typer.Option(0, "--crops", min=0,
                              help="Add up to N targeted crops of small print per listing."),
) -> None:
    """Attribute extraction over listings: valid JSON with exactly each category's keys."""
    from ecomvlm.serve.extract import extract as run_extract

    counts = run_extract(model, listings, out, quarantine, batch_size=batch_size,
                         constrained=constrain, dtype=dtype, threads=threads,
                         allow_url_fetch=allow_url_fetch, crops=crops)
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@app.command("serve")
def serve(
    model: str = typer.Option(..., "--model", help="A saved model folder, or 'default'."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    api_key: str | None = typer.Option(None, "--api-key",
                                       help="Bearer token (or $ECOMVLM_API_KEY)."),
    allow_url_fetch: bool = typer.Option(False, "--allow-url-fetch",
                                         help="Fetch http(s) image URLs (SSRF-guarded)."),
    max_batch: int = typer.Option(8, "--max-batch", min=1),
    max_queue: int = typer.Option(64, "--max-queue", min=1),
    max_tokens: int = typer.Option(512, "--max-tokens", min=1),
    timeout: float = typer.Option(60.0, "--timeout"),
    threads: int | None = typer.Option(None, "--threads", min=1),
) -> None:
    """An OpenAI-compatible API (/v1/chat/completions, /v1/models, /health)."""
    from ecomvlm.serve.server import serve as run_server

    run_server(model, host, port, api_key, allow_url_fetch, max_batch=max_batch,
               max_queue=max_queue, max_tokens=max_tokens, timeout_s=timeout, threads=threads)


@app.command("check-listings")
def check_listings(
    path: Path = typer.Argument(..., help="Listings file: .jsonl, .csv or .parquet (.gz ok)."),
    quarantine: Path | None = typer.Option(None, "--quarantine",
                                              help="Write rejected records here (JSONL)."),
) -> None:
    """Validate a listings file against the schema; count good and quarantined records."""
    from ecomvlm.schema import ListingReader

    reader = ListingReader(path, quarantine)
    for _ in reader:
        pass
    typer.echo(f"{path}: {reader.seen} records, {reader.read} valid, "
               f"{reader.quarantined} quarantined"
               + (f" -> {quarantine}" if quarantine and reader.quarantined else ""))
    for reason, count in sorted(reader.reasons.items()):
        typer.echo(f"  {reason}: {count}")


@app.command("report")
def report(
    runs: list[Path] = typer.Argument(..., help="Eval folders: OUT of `ecomvlm eval`, or one "
                                      "model's folder in it."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML page to write."),
    curation: Path | None = typer.Option(None, "--curation",
                                         help="A curate --out folder: add its quality report."),
    training: Path | None = typer.Option(None, "--training",
                                         help="A train --out folder: add its loss curves."),
) -> None:
    """One self-contained HTML page comparing eval runs side by side, with plots."""
    from ecomvlm.eval.report import find_runs, summary_table, write_report

    typer.echo(summary_table(find_runs(runs)))
    typer.echo(f"report: {write_report(runs, out, curation=curation, training=training)}")


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for every step's output."),
    listings: int | None = typer.Option(None, "--listings", min=50,
                                        help="Catalog size (default: the preset's)."),
    preset: str = typer.Option("cpu", "--preset", help="cpu (2 cores, ~30 min) or gpu."),
    recipe: Path | None = typer.Option(None, "--recipe", help="Instead of the preset's recipe."),
    seed: int = typer.Option(0, "--seed"),
    fresh: bool = typer.Option(False, "--fresh", help="Redo finished steps."),
) -> None:
    """The main job: synthesise listings, curate them, train the three stages, evaluate the
    adapted model against every baseline and write report.html. A re-run resumes."""
    from ecomvlm.demo import run_demo, summary

    run_demo(out, preset=preset, listings=listings, seed=seed, fresh=fresh, recipe=recipe,
             echo=typer.echo)
    typer.echo(summary(out))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (tests call this); returns the exit code instead of exiting."""
    try:
        result = app(args=argv if argv is not None else sys.argv[1:], standalone_mode=False)
    except SystemExit as exit_:  # --help and friends
        return int(exit_.code or 0)
    except Exception as error:
        import os

        import click

        if os.environ.get("ECOMVLM_DEBUG"):
            raise

        if isinstance(error, click.ClickException):
            error.show()
            return error.exit_code
        if isinstance(error, click.exceptions.Abort):
            return 1
        typer.echo(f"error: {error}", err=True)
        return 1
    return int(result or 0)


def app_entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    app_entry()
