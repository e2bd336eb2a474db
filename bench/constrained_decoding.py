"""JSON-constrained extraction: how often replies are valid, and what the constraint costs.

    .venv/bin/python bench/constrained_decoding.py [--model default] [--n 16] [--batch 8]
                                                   [--max-tokens 160]
                                                   [--threads N]

The same extraction prompts (the trained phrasing, the listing's photos, the category's keys)
are answered greedily twice in one run, through the engine in bf16: without a constraint and
with the extraction schema (exactly the keys, taxonomy enums, bounded free text). Reports
- valid JSON (the whole reply parses) and exact keys (an object with exactly the asked keys),
  plus "lenient": a JSON object found anywhere in the reply, as the benchmark's parser reads it;
- the decode step's time with and without the constraint (a one-token pass over the same
  prompts measures the prefill, which is taken out), so the constraint's cost per token is
  the difference per row; and the time spent inside outlines-core's automaton, measured
  directly where the engine calls it;
- the one-off cost of compiling a category's schema against the vocabulary (cached after).
With the demo model (untrained projector) the unconstrained rate says little about a trained
model; pass ``--model`` with a trained checkpoint for that.
On a shared CPU pass ``--threads 1``: two OpenMP threads spinning against other processes
ran the tiny model 50x slower here; on a quiet machine leave torch's default.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from extraction_items import extraction_items

from ecomvlm.catalog.taxonomy import CATEGORIES
from ecomvlm.serve import constrained as cons
from ecomvlm.serve.engine import Engine, Request, load_model
from ecomvlm.serve.extract import extraction_prompt

MAX_IMAGES = 2


def lenient_object(text: str) -> dict | None:
    """The first JSON object anywhere in the reply (prose and code fences around it allowed)."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch == "{":
            try:
                value, _ = decoder.raw_decode(text[i:])
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def listings(n: int) -> list[tuple[str, str, list]]:
    return extraction_items(n, MAX_IMAGES, seed=7)


def run(engine: Engine, items, compiler, mode: str, batch: int, budget: int) -> dict:
    """mode: "free", "guided", or "prefill" (one token: the prompt's cost, to subtract)."""
    replies, tokens, seconds, steps = [], 0, [], []
    for start in range(0, len(items), batch):
        jobs = []
        for category, title, images in items[start:start + batch]:
            constraint = cons.extraction_constraint(compiler, category)
            prompt = extraction_prompt(category, CATEGORIES[category].keys, title, len(images))
            limit = {"free": budget, "guided": constraint.max_tokens, "prefill": 1}[mode]
            jobs.append(engine.prepare(Request(
                [{"role": "user", "content": prompt}], images, max_tokens=limit,
                constraint=constraint if mode == "guided" else None)))
        begin = time.perf_counter()
        results = engine.run_batch(jobs)
        seconds.append(time.perf_counter() - begin)
        # the batch runs until its longest row ends (plus the step that picks the last stop)
        steps.append(max(len(r.token_ids) for r in results) + 1)
        tokens += sum(len(r.token_ids) for r in results)
        replies += [r.text for r in results]
    valid = exact = lenient = 0
    for (category, _, _), text in zip(items, replies):
        keys = CATEGORIES[category].keys
        try:
            value = json.loads(text)
            valid += 1
            exact += isinstance(value, dict) and list(value) == keys
        except ValueError:
            pass
        found = lenient_object(text)
        lenient += found is not None and set(found) == set(keys)
    n = len(items)
    return {"valid": valid / n, "exact": exact / n, "lenient": lenient / n, "tokens": tokens,
            "seconds": seconds, "steps": steps, "example": replies[0]}


def step_ms(result: dict, prefill: dict) -> float:
    """Milliseconds per decode step of a batch, the prompt's cost taken out."""
    decode = sum(s - p for s, p in zip(result["seconds"], prefill["seconds"]))
    return 1000 * decode / max(sum(n - 1 for n in result["steps"]), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=160,
                   help="budget without the constraint (with it: the schema's bound)")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    load_start = os.getloadavg()
    torch.manual_seed(0)
    model = load_model(a.model, torch.bfloat16)
    engine = Engine(model, max_batch=a.batch, max_tokens_cap=4096)
    items = listings(a.n)

    start = time.perf_counter()
    compiler = cons.ConstraintCompiler(model.tokenizer)
    vocab_s = time.perf_counter() - start
    categories = sorted({c for c, _, _ in items})
    start = time.perf_counter()
    for category in categories:
        cons.extraction_constraint(compiler, category)
    compile_s = (time.perf_counter() - start) / len(categories)

    # time spent inside the constraint, measured where the engine calls it
    inside = {"s": 0.0}
    original = cons.GuidedRow.allowed_ids

    def timed(self, generated):
        begin = time.perf_counter()
        try:
            return original(self, generated)
        finally:
            inside["s"] += time.perf_counter() - begin

    cons.GuidedRow.allowed_ids = timed
    prefill = run(engine, items, compiler, "prefill", a.batch, a.max_tokens)
    free = run(engine, items, compiler, "free", a.batch, a.max_tokens)
    inside["s"] = 0.0
    guided = run(engine, items, compiler, "guided", a.batch, a.max_tokens)
    load_end = os.getloadavg()

    print(f"{len(items)} extraction prompts ({len(categories)} categories, <= {MAX_IMAGES} "
          f"photos), model {a.model}, bf16, batch {a.batch}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"load average at start {load_start[0]:.1f}, at end {load_end[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"{'':<14}{'valid JSON':>11}{'exact keys':>11}{'lenient':>9}{'tokens':>8}"
          f"{'ms/step':>9}")
    for name, r in (("unconstrained", free), ("constrained", guided)):
        print(f"{name:<14}{r['valid']:>11.0%}{r['exact']:>11.0%}{r['lenient']:>9.0%}"
              f"{r['tokens']:>8}{step_ms(r, prefill):>9.1f}")
    free_ms, guided_ms = step_ms(free, prefill), step_ms(guided, prefill)
    extra = (guided_ms - free_ms) / a.batch
    inside_ms = 1000 * inside["s"] / max(guided["tokens"], 1)
    print(f"constraint cost per generated token: {extra:+.2f} ms from decode steps "
          f"({guided_ms / free_ms:.2f}x a step's time, batch {a.batch}); "
          f"{inside_ms:.2f} ms measured inside the automaton")
    print(f"one-off: vocabulary {vocab_s:.2f} s, schema compile {compile_s:.2f} s per category")
    print(f"example unconstrained reply: {free['example'][:160]!r}")
    print(f"example constrained reply:   {guided['example'][:160]!r}")


if __name__ == "__main__":
    main()
