"""The training loop: freeze maps per stage, label masks, exact resume, metrics, precision."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch.nn import functional as F

from ecomvlm.model.processor import IGNORE
from ecomvlm.train.data import StageData
from ecomvlm.train.loop import make_batch, seed_everything, train_stage
from ecomvlm.train.spec import StageSpec
from ecomvlm.train.toy import write_toy_dataset


def build():
    from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig

    seed_everything(0)
    return VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama",
                                               max_length=512))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy_dataset(root, listings=10)
    return root


def stage(**kw) -> StageSpec:
    base = {"name": "s", "data": [{"path": "stage3.jsonl"}], "steps": 1, "batch_size": 2,
            "bf16": False, "warmup_ratio": 0.0}
    return StageSpec(**{**base, **kw})


def snapshot(model) -> dict[str, dict[str, torch.Tensor]]:
    return {part: {n: p.detach().clone() for n, p in getattr(model, part).named_parameters()}
            for part in ("vision", "projector", "lm")}


def changed(before, model, part) -> bool:
    return any(not torch.equal(before[part][n], p)
               for n, p in getattr(model, part).named_parameters())


@pytest.mark.parametrize("lr, moves", [
    ({"projector": 1e-3}, {"projector"}),                      # alignment
    ({"projector": 1e-3, "lm": 1e-3}, {"projector", "lm"}),   # mid / instruct
    ({"vision": 1e-3, "projector": 1e-3, "lm": 1e-3}, {"vision", "projector", "lm"}),
])
def test_only_parts_with_a_learning_rate_change(toy, tmp_path, lr, moves):
    model = build()
    before = snapshot(model)
    train_stage(model, stage(lr=lr), toy, tmp_path, progress=False)
    for part in ("vision", "projector", "lm"):
        assert changed(before, model, part) == (part in moves), part


def test_lora_trains_adapters_then_merges_into_plain_lm_weights(toy, tmp_path):
    model = build()
    before = snapshot(model)
    spec = stage(lr={"projector": 1e-3, "lm": 1e-2}, lora={"r": 4, "target_modules": ["q_proj"]},
                 steps=2)
    result = train_stage(model, spec, toy, tmp_path, progress=False, stop_after=1)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("projector.") for n in names)
    assert not changed(before, model, "vision")
    model = build()  # a new process would start from the same init and resume
    result = train_stage(model, spec, toy, tmp_path, progress=False)  # finishes and merges
    assert result.steps == 2
    assert type(model.lm).__name__ == "LlamaForCausalLM"  # no peft wrapper left
    assert not any("lora" in n for n, _ in model.named_parameters())
    for name, value in model.lm.named_parameters():
        assert torch.equal(before["lm"][name], value) != ("q_proj" in name), name


def test_labels_cover_only_assistant_text_and_the_loss_is_theirs(toy):
    model = build()
    spec = stage(lr={"projector": 1e-3})
    data = StageData(spec, toy, model.processor, 0, toy / "q.jsonl")
    data.start()
    items = data.next_batch(3)
    batch = make_batch(model, items, None, model.encode_vision)
    tokenizer = model.tokenizer
    for row, item in zip(batch["labels"], items):
        sample = data.sources[0].sample(item.index)
        kept = tokenizer.decode(row[row != IGNORE])
        assert kept == sample.messages[-1].content + tokenizer.eos_token
    with torch.no_grad():
        out = model(**batch)
        embeds = model.embed(batch["input_ids"], batch["pixel_values"])
        logits = model.lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
    manual = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                             batch["labels"][:, 1:].reshape(-1), ignore_index=IGNORE)
    assert torch.allclose(out.loss, manual, atol=1e-5)


@pytest.mark.parametrize("lora", [None, {"r": 4, "dropout": 0.1}])
def test_an_interrupted_run_resumes_with_the_same_losses(toy, tmp_path, lora):
    spec = stage(lr={"projector": 1e-3, "lm": 1e-3}, lora=lora, steps=7, grad_accum=2,
                 data=[{"path": "stage3.jsonl", "weight": 2}, {"path": "stage2.jsonl"}],
                 val_fraction=0.2, eval_every=2, save_every=3, warmup_ratio=0.3)
    full_model = build()
    full = train_stage(full_model, spec, toy, tmp_path / "full", progress=False)
    cut = train_stage(build(), spec, toy, tmp_path / "cut", progress=False, stop_after=4)
    resumed_model = build()
    rest = train_stage(resumed_model, spec, toy, tmp_path / "cut", progress=False)
    assert rest.resumed_from == 4 and len(cut.losses) == 4 and len(rest.losses) == 3
    assert cut.losses + rest.losses == full.losses  # exact, not approximately
    assert rest.val_loss == full.val_loss
    for (name, a), b in zip(full_model.named_parameters(), resumed_model.parameters()):
        assert torch.equal(a, b), name

    def metrics(run):
        return [(r["step"], r["loss"], r.get("val_loss")) for r in map(
            json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())]

    assert metrics("cut") == metrics("full")


def test_metrics_record_losses_rates_throughput_and_val(toy, tmp_path):
    spec = stage(lr={"projector": 1e-3, "lm": 5e-4}, steps=8, warmup_ratio=0.25,
                 val_fraction=0.2, eval_every=4)
    train_stage(build(), spec, toy, tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text()
               .splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9))
    assert [r["step"] for r in records if "val_loss" in r] == [4, 8]
    for r in records:
        assert r["samples_per_s"] > 0 and r["tokens_per_s"] > 0 and r["grad_norm"] > 0
        assert set(r["lr"]) == {"projector", "lm"}
    lm = [r["lr"]["lm"] for r in records]
    assert lm[0] < lm[1] == pytest.approx(5e-4)  # two warm-up steps, then the peak
    assert all(a > b for a, b in itertools.pairwise(lm[1:]))  # cosine decay afterwards


def test_stages_in_one_process_may_switch_precision(toy, tmp_path):
    model = build()
    first = train_stage(model, stage(lr={"projector": 1e-3}, bf16=True, steps=2), toy,
                        tmp_path / "a", progress=False)
    assert "forward" not in model.__dict__  # accelerate's autocast wrapper was removed
    second = train_stage(model, stage(lr={"projector": 1e-3, "lm": 1e-3}, steps=2), toy,
                         tmp_path / "b", progress=False)
    third = train_stage(model, stage(lr={"projector": 1e-3}, bf16=True, steps=2), toy,
                        tmp_path / "c", progress=False)
    for result in (first, second, third):
        assert all(torch.isfinite(torch.tensor(result.losses)))
    assert first.cache["misses"] > 0  # frozen tower: features came from the cache
