"""``run_eval``: one model (or baseline) over the chosen benchmarks, results on disk.

    results = run_eval("base:", ["aspect", "general"], "catalog/", "runs/eval", limit=100)

Per benchmark: build samples from the catalog's test split (seeded order; ``limit`` keeps the
first N), show them to the adapter in batches with a progress bar, score every reply, write
``samples_<bench>.jsonl``, aggregate. ``crops`` picks the multi-image setting: "off"
(``multi_image``), "on" (``multi_image_crops``) or "both". Benchmarks a baseline cannot run
(general questions for the model-free baselines) are listed under "skipped".
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ecomvlm.registry import BENCHMARK

from .adapters import ModelAdapter, load_adapter
from .base import Benchmark, Scored
from .catalog import load_items
from .results import metric_key, write_results, write_samples

BENCHMARKS = ("aspect", "fashion", "extract", "multi_image", "general")
CROP_BUDGET_TOKENS = 196  # extra image tokens crops may add: 4 crops of 49 tokens


def _register() -> None:
    """Importing the benchmark modules fills the BENCHMARK registry."""
    import importlib

    for module in ("aspect", "extract", "fashion", "general", "multi_image"):
        importlib.import_module(f"{__package__}.bench_{module}")


def auto_threads() -> int:
    """Cores not busy with other work (1-minute load average), at least one. On a shared
    machine more threads than free cores is far worse than fewer: each op waits for its
    slowest thread, and a descheduled one stalls it (measured 0.24 s against 2.9 s a decoding
    step with 2 threads on 2 cores while a trainer held one)."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


def expand(benchmarks: str | Sequence[str], crops: str) -> list[str]:
    """Benchmark names to run: 'all' or a list/comma string; multi_image split by ``crops``."""
    if crops not in ("off", "on", "both"):
        raise ValueError(f"crops must be off, on or both, got {crops!r}")
    names = [b.strip() for b in (benchmarks.split(",") if isinstance(benchmarks, str)
                                 else benchmarks) if b.strip()]
    if names in (["all"], []):
        names = list(BENCHMARKS)
    out: list[str] = []
    for name in names:
        if name == "multi_image":
            out += {"off": ["multi_image"], "on": ["multi_image_crops"],
                    "both": ["multi_image", "multi_image_crops"]}[crops]
        elif name not in out:
            out.append(name)
    _register()
    for name in out:
        BENCHMARK.resolve(name)  # an unknown name fails here, listing the known ones
    return out


def score_all(bench: Benchmark, samples: list, shown: list, gens: list) -> list[Scored]:
    records = []
    for sample, seen, gen in zip(samples, shown, gens, strict=True):
        parsed, score, details = bench.score(sample, gen.text)
        latency = gen.latency_s + float(sample.meta.get("preprocess_s", 0.0))
        records.append(Scored(sample.id, sample.benchmark, seen.prompt, seen.images, gen.text,
                              parsed, sample.target, score, round(latency, 5), gen.image_tokens,
                              sample.meta, details, gen.error))
    return records


def run_eval(model_spec: str | ModelAdapter, benchmarks: str | Sequence[str] = "all",
             catalog_dir: str | Path = "catalog", out_dir: str | Path = "runs/eval",
             limit: int | dict[str, int] | None = None, crops: str = "off", seed: int = 0,
             batch_size: int = 32, crop_source: str = "detector",
             crop_budget_tokens: int = CROP_BUDGET_TOKENS, progress: bool = True,
             split: str = "test", threads: int | str | None = "auto",
             dtype: str = "float32") -> dict[str, Any]:
    """Evaluate one model spec (or a ready adapter); returns the results dict it writes to
    ``out_dir/<model-name>/results.json``. ``limit`` caps samples per benchmark (one number,
    or {benchmark: number}; multi_image's entry also caps multi_image_crops). ``threads``: torch
    intra-op threads for the run; "auto" takes the cores other processes leave free (see
    ``auto_threads``), None keeps torch's setting."""
    previous = torch.get_num_threads()
    if threads == "auto":
        threads = auto_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _run(model_spec, benchmarks, catalog_dir, out_dir, limit, crops, seed,
                    batch_size, crop_source, crop_budget_tokens, progress, split, dtype)
    finally:
        torch.set_num_threads(previous)


def _run_benchmark(name: str, adapter: ModelAdapter, items: list, cap: int | None, out: Path,
                   bench_kwargs: dict[str, Any], progress: bool,
                   batch_size: int) -> dict[str, Any]:
    """One benchmark end to end; returns its entries for each section of results.json."""
    began = time.perf_counter()
    bench = BENCHMARK.build(name, **bench_kwargs)
    samples = bench.build(items, cap)
    shown = [adapter.shown(s) for s in samples]
    with tqdm(total=len(samples), desc=f"{adapter.name}: {name}", unit="sample",
              disable=not progress) as bar:
        gens = adapter.generate(shown, batch_size, bar.update)
    records = score_all(bench, samples, shown, gens)
    write_samples(out, name, records)
    metrics, breakdown = bench.aggregate(records) if records else ({}, {})
    if hasattr(bench, "model_metrics"):
        extra, detail = bench.model_metrics(adapter)
        metrics.update(extra)
        breakdown.update(detail)
    if errors := sum(r.error is not None for r in records):
        breakdown["errors"] = errors
    if cap is None:
        original = len(samples)
    elif name.startswith("multi_image"):
        original = 2 * len(items)  # two questions a listing; counted without cropping
    else:
        original = len(bench.build(items))
    return {"results": {"alias": name, **{metric_key(k): v for k, v in metrics.items()}},
            "configs": {**bench.config(), "limit": cap,
                        "generation_kwargs": {"do_sample": False, "temperature": 0.0,
                                              "max_new_tokens": "per sample (see meta)"}},
            "versions": bench.version,
            "n-samples": {"original": original, "effective": len(records)},
            "higher_is_better": dict(bench.higher_is_better), "breakdowns": breakdown,
            "timing": round(time.perf_counter() - began, 3)}


def _run(model_spec: str | ModelAdapter, benchmarks: str | Sequence[str],
         catalog_dir: str | Path, out_dir: str | Path, limit: int | dict[str, int] | None,
         crops: str, seed: int, batch_size: int, crop_source: str, crop_budget_tokens: int,
         progress: bool, split: str, dtype: str) -> dict[str, Any]:
    started = time.perf_counter()
    names = expand(benchmarks, crops)
    torch.manual_seed(seed)
    items = load_items(catalog_dir, split)
    if not items:
        raise ValueError(f"{catalog_dir}: the {split} split has no listings")
    adapter = model_spec if isinstance(model_spec, ModelAdapter) else \
        load_adapter(model_spec, seed=seed, dtype=dtype)
    adapter.bind(items, catalog_dir)
    out = Path(out_dir) / adapter.name
    out.mkdir(parents=True, exist_ok=True)
    max_crops = max(1, crop_budget_tokens // (adapter.tokens_per_image or 49))
    sections = ("results", "configs", "versions", "n-samples", "higher_is_better",
                "breakdowns", "timing")
    results: dict[str, Any] = {key: {} for key in (*sections, "skipped")}
    for name in names:
        if name not in adapter.supported:
            results["skipped"][name] = f"{adapter.name} does not apply to {name}"
            continue
        cap = limit.get(name, limit.get(name.removesuffix("_crops"))) \
            if isinstance(limit, dict) else limit
        kwargs: dict[str, Any] = {"seed": seed}
        if name.startswith("multi_image"):
            kwargs.update(crop_source=crop_source, max_crops=max_crops, progress=progress)
        entry = _run_benchmark(name, adapter, items, cap, out, kwargs, progress, batch_size)
        entry["configs"].update(dataset_path=str(Path(catalog_dir).resolve()), split=split)
        for key in sections:
            results[key][name] = entry[key]
    results.update({
        "model_name": adapter.name, "model_spec": adapter.spec, "model_info": adapter.describe(),
        "config": {"model": adapter.spec, "benchmarks": names, "limit": limit, "seed": seed,
                   "crops": crops, "crop_source": crop_source, "max_crops": max_crops,
                   "batch_size": batch_size, "dtype": dtype,
                   "catalog_dir": str(Path(catalog_dir).resolve()),
                   "split": split, "test_listings": len(items), "device": "cpu",
                   "threads": torch.get_num_threads()},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "total_evaluation_time_seconds": round(time.perf_counter() - started, 3),
    })
    write_results(out, results)
    return results
