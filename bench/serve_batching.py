"""Serving throughput: the engine's dynamic batching against a naive per-request loop.

    .venv/bin/python bench/serve_batching.py [--model default] [--clients 8] [--per-client 1]
                                             [--max-tokens 64] [--threads N]

Eight client threads (a closed loop: each sends its next request when the last is answered)
ask for attribute extraction on one listing photo each, greedy, on the demo model in bf16.
Three servers answer them, one after the other, in one run:
- naive: one request at a time, transformers ``generate`` on our LM with the prompt's
  embeddings (``inputs_embeds``: text tokens with the projected image features spliced in,
  exactly what our model feeds its decoder), KV cache on. This is what a server without
  batching does; it pays the vision tower per request, as the engine does.
- engine, max_batch=1: our decoding loop, no batching (separates batching from loop cost).
- engine, max_batch=8: dynamic batching.
Both greedy paths give the same tokens (checked and printed), so the work is the same.
Prints requests/s, generated tokens/s, p50/p95 latency and the speed-ups; the CPU load
average at the start and end, since the machine may be shared.
On a shared CPU pass ``--threads 1``: two OpenMP threads spinning against other processes
ran the tiny model 50x slower here; on a quiet machine leave torch's default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from extraction_items import extraction_items

from ecomvlm.catalog.taxonomy import CATEGORIES
from ecomvlm.model.generate import stop_token_ids
from ecomvlm.serve.engine import Engine, Request, load_model
from ecomvlm.serve.extract import extraction_prompt


def listing_requests(n: int, max_tokens: int) -> list[Request]:
    """Extraction requests with one photo each, from the dev catalog or a fresh small one."""
    return [Request([{"role": "user", "content": extraction_prompt(
        category, CATEGORIES[category].keys, title, 1)}], images, max_tokens=max_tokens)
        for category, title, images in extraction_items(n, max_images=1, seed=5)]


class NaiveServer:
    """One request at a time through transformers ``generate`` (what no batching costs)."""

    def __init__(self, model):
        self.model, self.lock = model, threading.Lock()
        self.stops = sorted(stop_token_ids(model))

    @torch.no_grad()
    def __call__(self, request: Request) -> list[int]:
        with self.lock:
            enc = self.model.processor.encode_prompt(request.messages, list(request.images))
            ids = enc.input_ids[None]  # [1, T]
            embeds = self.model.embed(ids, enc.pixel_values)  # [1, T, D]
            out = self.model.lm.generate(
                inputs_embeds=embeds, attention_mask=torch.ones_like(ids),
                max_new_tokens=request.max_tokens, do_sample=False, temperature=None,
                top_p=None, top_k=None, eos_token_id=self.stops,
                pad_token_id=self.model.tokenizer.pad_token_id)
            tokens = out[0].tolist()  # with inputs_embeds only the new tokens come back
            return tokens[:next((i for i, t in enumerate(tokens) if t in self.stops),
                                len(tokens))]


def run_clients(handle, requests: list[Request], clients: int) -> dict:
    """Closed loop: client c sends requests c, c+clients, ...; latency includes queueing."""
    latencies: list[float] = []
    outputs: dict[int, list[int]] = {}

    def client(c: int) -> None:
        for i in range(c, len(requests), clients):
            start = time.perf_counter()
            outputs[i] = handle(requests[i])
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    tokens = sum(len(o) for o in outputs.values())
    q = statistics.quantiles(latencies, n=20)
    return {"wall": wall, "rps": len(requests) / wall, "tps": tokens / wall, "tokens": tokens,
            "p50": statistics.median(latencies), "p95": q[18],
            "outputs": [outputs[i] for i in range(len(requests))]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-client", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    load_start = os.getloadavg()
    torch.manual_seed(0)
    model = load_model(a.model, torch.bfloat16)
    requests = listing_requests(a.clients * a.per_client, a.max_tokens)
    warm = Engine(model, max_batch=1)
    warm.run_batch([warm.prepare(requests[0])])  # first-call allocations off the clock

    naive = NaiveServer(model)
    results = {"naive generate": run_clients(naive, requests, a.clients)}
    for batch in (1, a.clients):
        engine = Engine(model, max_batch=batch, batch_wait_ms=5)
        results[f"engine batch {batch}"] = run_clients(
            lambda r, e=engine: e.generate(r).token_ids, requests, a.clients)
        engine.close()
    load_end = os.getloadavg()

    print(f"{len(requests)} requests, {a.clients} concurrent clients, max_tokens "
          f"{a.max_tokens}, model {a.model}, bf16, torch threads {torch.get_num_threads()}")
    print(f"load average at start {load_start[0]:.1f}, at end {load_end[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'server':<18}{'req/s':>8}{'tok/s':>8}{'tokens':>8}{'p50 s':>8}{'p95 s':>8}")
    for name, r in results.items():
        print(f"{name:<18}{r['rps']:>8.2f}{r['tps']:>8.1f}{r['tokens']:>8}{r['p50']:>8.2f}"
              f"{r['p95']:>8.2f}")
    base = results["naive generate"]
    same = sum(x == y for x, y in zip(base["outputs"], results[f"engine batch {a.clients}"]
                                      ["outputs"]))
    print(f"greedy outputs equal to naive generate's: {same}/{len(requests)} (bf16 batches "
          "may flip near-ties)")
    for name in list(results)[1:]:
        print(f"{name} vs naive generate: {results[name]['rps'] / base['rps']:.2f}x requests/s")


if __name__ == "__main__":
    main()
