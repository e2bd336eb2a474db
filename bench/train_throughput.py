"""Training throughput of the demo model against the CPU's matmul ceiling and a naive step.

    .venv/bin/python bench/train_throughput.py [--steps 6] [--batch 4] [--data stage3.jsonl]

One run measures, in this order:
- the ceiling: a large matmul in bf16 and in fp32, the fastest thing these cores do
  (GFLOP/s); the faster of the two is the precision our step uses (bf16 autocast on AMX CPUs
  and GPUs; fp32 on CPUs without AMX, where bf16 matmuls are emulated and slower);
- our step, as the training loop runs it: that precision, a frozen tower whose features are
  computed once per image and reused, logits only where the loss is taken;
- a naive step: fp32, the tower run every step, logits at every position.
The model is the one ``recipes/demo.yaml`` builds (its pooled projector included).
Both steps train the LM and the projector with AdamW on the same batches (stage 3 of the
demo recipe). FLOPs per step come from torch's FlopCounterMode on one step of each kind.
Prints samples/s, achieved GFLOP/s, the fraction of the ceiling and our speed-up.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ecomvlm.catalog.synth import synthesize
from ecomvlm.model.processor import IGNORE
from ecomvlm.model.vlm import VisionLanguageModel
from ecomvlm.samples import Sample, read_samples
from ecomvlm.train.spec import load_recipe

TARGET_FRACTION = 0.30
TARGET_SPEEDUP = 2.0


def matmul_ceiling(dtype: torch.dtype, seconds: float = 3.0, n: int = 2048) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


def synthetic_samples(folder: Path, count: int) -> tuple[list[Sample], Path]:
    """Instruction-shaped samples over real catalog photos (all images of a listing)."""
    import json

    synthesize(folder, count, seed=11, progress=False)
    samples = []
    for line in (folder / "train.jsonl").read_text().splitlines():
        listing = json.loads(line)
        prompt = "Extract the item's attributes as JSON with keys Color, Brand, Material."
        answer = json.dumps({"Color": listing["aspects"].get("Color"), "Brand": None,
                             "Material": None})
        samples.append(Sample.chat(listing["id"], listing["images"], prompt, answer))
    return samples, folder


def naive_loss(model, batch) -> torch.Tensor:
    """fp32 reference: the whole [B, T, V] logits, then the masked loss."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   pixel_values=batch["pixel_values"]).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(),
        ignore_index=IGNORE)


def run_steps(model, batches, optimizer, fast: bool, cache: dict,
              dtype: torch.dtype) -> tuple[float, float]:
    """Seconds per step (after one warm-up step) and FLOPs of one step."""

    def step(batch, count_flops=False):
        mode = FlopCounterMode(display=False) if count_flops else None
        with mode or contextlib.nullcontext():
            if fast:
                key = id(batch)
                if key not in cache:  # the loop's feature cache: tower once per image
                    with torch.no_grad(), autocast(dtype):
                        cache[key] = model.encode_vision(batch["pixel_values"])
                with autocast(dtype):
                    loss = model(input_ids=batch["input_ids"],
                                 attention_mask=batch["attention_mask"],
                                 labels=batch["labels"], image_features=cache[key]).loss
            else:
                loss = naive_loss(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return mode.get_total_flops() if mode else 0

    flops = step(batches[0], count_flops=True)
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    return (time.perf_counter() - start) / (len(batches) - 1), flops


def autocast(dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--data", type=Path, help="canonical samples JSONL (e.g. curated stage3)")
    args = parser.parse_args()
    torch.manual_seed(0)
    ceilings = {dtype: matmul_ceiling(dtype) for dtype in (torch.bfloat16, torch.float32)}
    dtype = max(ceilings, key=ceilings.get)
    ceiling, precision = ceilings[dtype], str(dtype).removeprefix("torch.")
    print(f"matmul ceiling on {torch.get_num_threads()} threads: bf16 "
          f"{ceilings[torch.bfloat16]:.0f} GFLOP/s, fp32 {ceilings[torch.float32]:.0f} GFLOP/s; "
          f"our step runs in {precision}")

    recipe = load_recipe(Path(__file__).parents[1] / "recipes" / "demo.yaml")
    model = VisionLanguageModel.build(recipe.model)
    for p in model.vision.parameters():
        p.requires_grad_(False)  # stage 3 of the demo: the tower stays frozen
    with tempfile.TemporaryDirectory() as tmp:
        needed = args.steps * args.batch
        if args.data:
            samples = [s for _, s in zip(range(needed), read_samples(args.data))]
            root = args.data.parent
        else:
            samples, root = synthetic_samples(Path(tmp) / "cat", needed)
        encoded = [model.processor.encode(s, image_root=root) for s in samples[:needed]]
    batches = [model.processor.collate(encoded[i:i + args.batch])
               for i in range(0, len(encoded) - args.batch + 1, args.batch)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(batches)
    print(f"{len(batches)} batches of {args.batch}, {tokens:.0f} tokens per batch")

    results = {}
    for name, fast in (("ours", True), ("naive", False)):
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
        cache: dict = {}
        if fast:  # features computed up front, as the loop's cache has them after epoch 1
            with torch.no_grad(), autocast(dtype):
                cache.update({id(b): model.encode_vision(b["pixel_values"]) for b in batches})
        seconds, flops = run_steps(model, batches, optimizer, fast, cache, dtype)
        results[name] = (seconds, flops)
        print(f"{name:5s}: {seconds:.2f} s/step, {args.batch / seconds:.2f} samples/s, "
              f"{flops / 1e9:.0f} GFLOP/step, {flops / seconds / 1e9:.0f} GFLOP/s "
              f"= {flops / seconds / 1e9 / ceiling:.2f} of the {precision} ceiling")
    ours, naive = results["ours"], results["naive"]
    fraction = ours[1] / ours[0] / 1e9 / ceiling
    speedup = naive[0] / ours[0]
    print(f"ours reaches {fraction:.2f} of the ceiling (target {TARGET_FRACTION:.2f}) and "
          f"runs {speedup:.2f}x the naive step (target {TARGET_SPEEDUP:.1f}x)")


if __name__ == "__main__":
    main()
