"""Checkpoints: atomic, last K kept, crash before the marker falls back to the previous one."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from ecomvlm.train import checkpoint as ckpt
from ecomvlm.train.loop import seed_everything, train_stage
from ecomvlm.train.spec import StageSpec
from ecomvlm.train.toy import write_toy_dataset


def small_setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    model[0].requires_grad_(False)  # frozen: not saved
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    return model, optimizer, scheduler


def train_a_bit(model, optimizer, scheduler, steps=3):
    for _ in range(steps):
        loss = model(torch.randn(5, 4)).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()


def test_round_trip_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    model, optimizer, scheduler = small_setup()
    train_a_bit(model, optimizer, scheduler)
    seed_everything(5)
    path = ckpt.save_checkpoint(tmp_path, 3, model, optimizer, scheduler,
                                {"rng": ckpt.rng_state(), "data": {"draws": 7}})
    assert path.name == "step-00000003" and (path / ckpt.MARKER).is_file()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    train_a_bit(model, optimizer, scheduler)  # drift away

    fresh, fresh_opt, fresh_sched = small_setup()
    state = ckpt.load_checkpoint(path, fresh, fresh_opt, fresh_sched)
    ckpt.set_rng_state(state["rng"])
    assert state["data"] == {"draws": 7} and state["step"] == 3
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert fresh_sched.last_epoch == 3
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1),
                                                                             expected[2])
    # the optimiser state is the saved one: the next step matches a model that never left
    torch.manual_seed(1)
    train_a_bit(fresh, fresh_opt, fresh_sched, 1)
    model.load_state_dict(weights)
    again, again_opt, again_sched = small_setup()
    ckpt.load_checkpoint(path, again, again_opt, again_sched)
    torch.manual_seed(1)
    train_a_bit(again, again_opt, again_sched, 1)
    for a, b in zip(fresh.parameters(), again.parameters()):
        assert torch.equal(a, b)
    # only trainable parameters are stored
    from safetensors.torch import load_file
    assert set(load_file(path / ckpt.WEIGHTS)) == {"2.weight", "2.bias"}


def test_keeps_the_last_k_and_ignores_folders_without_marker(tmp_path):
    model, optimizer, scheduler = small_setup()
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, step, model, optimizer, scheduler, {}, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000003",
                                                                 "step-00000004"]
    (tmp_path / "step-00000004" / ckpt.MARKER).unlink()  # weights there, marker not
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000003"
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        ckpt.load_checkpoint(tmp_path / "step-00000004", model)


def test_a_crash_before_the_marker_leaves_the_previous_checkpoint_latest(tmp_path, monkeypatch):
    model, optimizer, scheduler = small_setup()
    ckpt.save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {})

    def crash(folder, step):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(ckpt, "_write_marker", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 2, model, optimizer, scheduler, {})
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-step-00000002")]
    assert leftovers and (leftovers[0] / ckpt.WEIGHTS).is_file()  # weights were written
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000001"


def test_a_mismatched_checkpoint_is_refused(tmp_path):
    model, optimizer, scheduler = small_setup()
    path = ckpt.save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {})
    model[0].requires_grad_(True)  # now expects weights the checkpoint does not have
    with pytest.raises(ValueError, match="missing"):
        ckpt.load_checkpoint(path, model)


def test_training_resumes_from_the_previous_complete_checkpoint(tmp_path):
    """Simulated crash: step-4's marker is gone, so the resumed run restarts from step 2."""
    from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig

    write_toy_dataset(tmp_path / "toy", listings=8)

    def build():
        seed_everything(0)
        return VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama",
                                                   max_length=512))

    stage = StageSpec(name="mid", lr={"projector": 1e-3, "lm": 1e-3}, bf16=False,
                      data=[{"path": "stage2.jsonl"}], steps=6, batch_size=2, save_every=2,
                      keep_last=5)
    full = train_stage(build(), stage, tmp_path / "toy", tmp_path / "a", progress=False)
    cut = train_stage(build(), stage, tmp_path / "toy", tmp_path / "b", progress=False,
                      stop_after=4)
    assert ckpt.latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step-00000004"
    (tmp_path / "b" / "checkpoints" / "step-00000004" / ckpt.MARKER).unlink()
    resumed = train_stage(build(), stage, tmp_path / "toy", tmp_path / "b", progress=False)
    assert resumed.resumed_from == 2
    assert cut.losses[:2] + resumed.losses == full.losses
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl")
             .read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # metrics after the checkpoint were rewritten
