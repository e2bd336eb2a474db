"""One training loop for every stage, on ``accelerate`` (1 CPU, N GPUs, DeepSpeed/FSDP configs).

A stage only changes what the loop is given: which parts train and at what learning rate
(0 freezes a part), LoRA on the LM or not, the data mixture and the budget. Per step: draw
``batch_size`` items per process for each of ``grad_accum`` micro-batches, forward under bf16
autocast when asked, backward, clip, AdamW step, cosine-with-warm-up schedule step. A frozen
tower's features come from a cache (each image encoded once). Every ``eval_every`` steps the
val loss, every ``save_every`` steps an atomic checkpoint; a resumed stage restores weights,
optimiser, scheduler, RNG and data position and continues with the same losses.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .data import FeatureCache, Item, StageData, stable_key
from .spec import PARTS, StageSpec


@dataclass
class StageResult:
    name: str
    steps: int  # optimiser steps the stage has done in total
    steps_this_run: int
    resumed_from: int | None
    wall_s: float  # training time summed over every run of the stage
    samples: int
    tokens: int
    quarantined: int
    train_loss: float | None  # mean of the last (up to) 10 logged step losses
    val_loss: float | None
    samples_per_s: float
    start_val_loss: float | None = None  # before the first step, with eval_at_start
    losses: list[float] = field(default_factory=list)  # this run's step losses, in order
    cache: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("losses")
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_with_warmup(total: int, warmup: int, floor: float = 0.0):
    """lr multiplier for step s (0-based): linear up to 1 over ``warmup`` steps, then cosine.

    Offsets by one so that no step runs at lr 0 and the peak is used once: step w-1 has the
    peak, the last step a small positive rate above ``floor``.
    """
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup + 1) / (total - warmup + 1))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def configure_parts(model: Any, stage: StageSpec) -> list[dict[str, Any]]:
    """Freeze parts with lr 0, wrap the LM in LoRA when asked; AdamW param groups.

    Biases and norm weights (1-D) get no weight decay. Frozen parts go to eval mode so that
    dropout and batch-norm statistics stay as loaded.
    """
    for part, params in model.param_groups().items():
        for p in params:
            p.requires_grad_(getattr(stage.lr, part) > 0)
    if stage.lora is not None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=stage.lora.r, lora_alpha=stage.lora.alpha,
                            lora_dropout=stage.lora.dropout, task_type="CAUSAL_LM",
                            target_modules=stage.lora.target_modules)
        model.lm = get_peft_model(model.lm, config)  # freezes the base LM, adds adapters
    model.train()
    for part in PARTS:
        if getattr(stage.lr, part) <= 0:
            getattr(model, part).eval()
    groups = []
    for part, params in model.param_groups().items():
        lr = getattr(stage.lr, part)
        trainable = [p for p in params if p.requires_grad]
        if lr <= 0 or not trainable:
            continue
        decay = [p for p in trainable if p.ndim >= 2]
        plain = [p for p in trainable if p.ndim < 2]
        for suffix, ps, wd in (("", decay, stage.weight_decay), ("_nodecay", plain, 0.0)):
            if ps:
                groups.append({"params": ps, "lr": lr, "weight_decay": wd,
                               "name": part + suffix})
    return groups


def finish_parts(model: Any) -> None:
    """Merge LoRA adapters into the LM so later stages and save_pretrained see plain weights."""
    if hasattr(model.lm, "merge_and_unload"):
        model.lm = model.lm.merge_and_unload()
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()


def _bf16(stage: StageSpec) -> bool:
    from accelerate.utils import is_bf16_available

    return stage.bf16 and is_bf16_available()


def use_cpu() -> bool:
    """Train on CPU: asked for (ACCELERATE_USE_CPU) or no GPU here.

    accelerate only forms a multi-process CPU group (gloo) when told ``cpu=True``; without it
    each process of ``torchrun``/``accelerate launch`` on a CPU machine would train alone.
    """
    from accelerate.utils import parse_flag_from_env

    return parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()


def process_state():
    """accelerate's per-process state (rank, world), initialised the same way everywhere."""
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


def make_accelerator(stage: StageSpec):
    """An Accelerator for the stage; resets accelerate's singleton if precision changes."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    process_state()
    precision = "bf16" if _bf16(stage) else "no"
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != precision:
        # stages in one process may differ in precision; accelerate keeps one global state
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=precision, gradient_accumulation_steps=stage.grad_accum,
                       cpu=use_cpu())


class MetricsLog:
    """metrics.jsonl (+ TensorBoard when it imports); truncated to the step of a resume."""

    def __init__(self, path: Path, resume_step: int | None, tensorboard: bool, enabled: bool):
        self.path, self.enabled = path, enabled
        self.writer = None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines(True)
                    if json.loads(line).get("step", 0) <= resume_step]
        path.write_text("".join(kept))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.writer = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(key, value, record["step"])
                elif isinstance(value, dict):
                    for sub, v in value.items():
                        self.writer.add_scalar(f"{key}/{sub}", v, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_batch(model: Any, items: list[Item], cache: FeatureCache | None, encode) -> dict:
    """Collate items; with a cache, tower features replace pixels (``image_features`` [N, t, d])."""
    if cache is None:
        return model.processor.collate([item.encoded for item in items])
    features = cache.batch_features(items, encode)  # before pixels are dropped below
    from dataclasses import replace

    batch = model.processor.collate([replace(it.encoded, pixel_values=None) for it in items])
    batch["pixel_values"] = None
    batch["image_features"] = features
    return batch


@torch.no_grad()
def evaluate(model: Any, data: StageData, cache: FeatureCache | None, encode, autocast,
             batch_size: int, device: torch.device) -> float | None:
    """Token-weighted mean loss over the stage's val set (every rank computes all of it)."""
    if not data.val:
        return None
    modes = {m: m.training for m in model.modules()}
    model.eval()
    total, count = 0.0, 0
    try:
        for items in data.val_batches(batch_size):
            batch = _to_device(make_batch(model, items, cache, encode), device)
            with autocast():
                out = model(**batch)
            total += float(out.loss) * out.num_loss_tokens
            count += out.num_loss_tokens
    finally:
        for module, mode in modes.items():
            module.train(mode)
    return total / count if count else None


def train_stage(model: Any, stage: StageSpec, data_root: str | Path, out_dir: str | Path,
                seed: int = 0, resume: bool = True, tensorboard: bool = True,
                stop_after: int | None = None, progress: bool = True) -> StageResult:
    """Train ``model`` in place for one stage, writing checkpoints and metrics under ``out_dir``.

    ``stop_after`` ends this run after that many steps (checkpointed), as a pre-emption would;
    calling again with ``resume=True`` continues exactly where it stopped. LoRA adapters, if
    any, are merged into the LM before returning.
    """
    import shutil

    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    seed_everything(seed * 1_000_003 + stable_key(stage.name))
    acc = make_accelerator(stage)
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    saved_max_length = model.processor.max_length
    if stage.max_length:
        model.processor.max_length = stage.max_length
    groups = configure_parts(model, stage)
    model.to(acc.device)
    cache = FeatureCache(stage.cache_bytes) if stage.cache_vision and stage.lr.vision <= 0 \
        else None
    qname = "quarantine.jsonl" if rank == 0 else f"quarantine.rank{rank}.jsonl"
    data = StageData(stage, data_root, model.processor, seed, out_dir / qname, cache, rank, world)
    total = stage.total_steps(data.train_size, world)
    optimizer = torch.optim.AdamW(groups)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(
        total, round(stage.warmup_ratio * total), stage.min_lr_ratio))
    ckpt_root = out_dir / "checkpoints"
    if not resume and main:
        shutil.rmtree(ckpt_root, ignore_errors=True)
    acc.wait_for_everyone()
    latest = latest_checkpoint(ckpt_root) if resume else None
    state = load_checkpoint(latest, model, optimizer, scheduler) if latest else None
    if state is not None and len(state["ranks"]) != world:
        raise ValueError(f"{latest} was written by {len(state['ranks'])} processes, "
                         f"this run has {world}")
    data.start(state["ranks"][rank]["data"] if state else None)
    if state is not None:
        set_rng_state(state["ranks"][rank]["rng"])
    step = state["step"] if state else 0
    elapsed = state["elapsed_s"] if state else 0.0
    samples, tokens = (state["samples"], state["tokens"]) if state else (0, 0)
    recent: list[float] = state["recent_losses"] if state else []
    val_loss = state.get("val_loss") if state else None

    pmodel, poptimizer = acc.prepare(model, optimizer)
    params = [p for g in groups for p in g["params"]]
    metrics = MetricsLog(out_dir / "metrics.jsonl", step if state else None, tensorboard, main)

    def encode(pixels: torch.Tensor) -> torch.Tensor:  # [n, 3, S, S] -> [n, t, d]
        with torch.no_grad(), acc.autocast():
            return model.encode_vision(pixels.to(acc.device))

    start_val = state.get("start_val_loss") if state else None
    if state is None and stage.eval_at_start and step < total:
        start_val = evaluate(model, data, cache, encode, acc.autocast, stage.batch_size,
                             acc.device)
        if start_val is not None:
            metrics.write({"stage": stage.name, "step": 0, "val_loss": start_val})
    bar = tqdm(total=total, initial=step, desc=stage.name, disable=not (progress and main),
               dynamic_ncols=True, mininterval=1.0)
    losses: list[float] = []
    start_step, run_start = step, time.perf_counter()
    per_step = stage.batch_size * stage.grad_accum * world
    try:
        while step < total and (stop_after is None or step - start_step < stop_after):
            t0 = time.perf_counter()
            micro, step_tokens, grad_norm = [], 0, None
            for _ in range(stage.grad_accum):
                items = data.next_batch(stage.batch_size)
                batch = _to_device(make_batch(model, items, cache, encode), acc.device)
                step_tokens += int(batch["attention_mask"].sum())
                with acc.accumulate(pmodel):
                    with acc.autocast():
                        out = pmodel(**batch)
                    acc.backward(out.loss)
                    if acc.sync_gradients and stage.max_grad_norm:
                        grad_norm = float(acc.clip_grad_norm_(params, stage.max_grad_norm))
                    poptimizer.step()
                    poptimizer.zero_grad(set_to_none=True)
                micro.append(out.loss.detach().float())
            lrs = {g["name"].removesuffix("_nodecay"): g["lr"] for g in optimizer.param_groups}
            scheduler.step()
            step += 1
            loss = float(acc.reduce(torch.stack(micro).mean(), reduction="mean"))
            step_tokens = int(acc.reduce(torch.tensor(step_tokens, device=acc.device),
                                         reduction="sum"))
            seconds = time.perf_counter() - t0
            losses.append(loss)
            recent = (recent + [loss])[-10:]
            samples += per_step
            tokens += step_tokens
            record = {"stage": stage.name, "step": step, "loss": loss, "lr": lrs,
                      "grad_norm": grad_norm, "samples_per_s": per_step / seconds,
                      "tokens_per_s": step_tokens / seconds}
            if (stage.eval_every and step % stage.eval_every == 0) or step == total:
                val_loss = evaluate(model, data, cache, encode, acc.autocast, stage.batch_size,
                                    acc.device)
                if val_loss is not None:
                    record["val_loss"] = val_loss
            elapsed_now = elapsed + time.perf_counter() - run_start
            record["elapsed_s"] = elapsed_now
            if step % stage.log_every == 0 or "val_loss" in record or step == total:
                metrics.write(record)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", sps=f"{per_step / seconds:.2f}", refresh=False)
            stopping = stop_after is not None and step - start_step >= stop_after
            if (stage.save_every and step % stage.save_every == 0) or step == total or stopping:
                mine = {"data": data.state_dict(), "rng": rng_state()}
                ranks = gather_object([mine]) if world > 1 else [mine]
                if main:
                    save_checkpoint(ckpt_root, step, model, optimizer, scheduler, {
                        "ranks": ranks, "elapsed_s": elapsed_now, "samples": samples,
                        "tokens": tokens, "recent_losses": recent, "val_loss": val_loss,
                        "start_val_loss": start_val, "total_steps": total}, keep_last=stage.keep_last)
                acc.wait_for_everyone()
    finally:
        bar.close()
        metrics.close()
        data.close()
        model.processor.max_length = saved_max_length
        acc.unwrap_model(pmodel, keep_fp32_wrapper=False)
        acc.free_memory()
        # let a later stage's Accelerator prepare (and autocast) this model again
        for attr in ("_is_accelerate_prepared", "forward", "_original_forward"):
            model.__dict__.pop(attr, None)
    finished = step >= total
    if finished:
        finish_parts(model)
    run_seconds = time.perf_counter() - run_start
    return StageResult(
        name=stage.name, steps=step, steps_this_run=step - start_step,
        resumed_from=start_step if state else None, wall_s=elapsed + run_seconds,
        samples=samples, tokens=tokens, quarantined=data.quarantine.count,
        train_loss=sum(recent) / len(recent) if recent else None, val_loss=val_loss,
        samples_per_s=(step - start_step) * per_step / run_seconds if run_seconds else 0.0,
        start_val_loss=start_val,
        losses=losses, cache={"hits": cache.hits, "misses": cache.misses, "images": len(cache),
                              "bytes": cache.bytes} if cache else {})
