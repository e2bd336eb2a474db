"""Training data: indexed JSONL, the resumable weighted mixture, the feature cache, quarantine."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from ecomvlm.model.processor import SampleError
from ecomvlm.samples import Sample, write_samples
from ecomvlm.train.data import FeatureCache, JsonlSource, MixtureSampler, StageData, split_indices
from ecomvlm.train.loop import make_batch, seed_everything
from ecomvlm.train.spec import StageSpec
from ecomvlm.train.toy import write_toy_dataset


@pytest.fixture(scope="module")
def model():
    from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig

    seed_everything(0)
    return VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama",
                                               max_length=512))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy_dataset(root, listings=12)
    return root


def test_source_reads_lines_by_offset_and_names_bad_lines(tmp_path):
    path = tmp_path / "s.jsonl"
    good = [Sample.chat(f"s{i}", [], f"question {i}", f"answer {i}") for i in range(3)]
    lines = [json.dumps(s.model_dump()) for s in good]
    path.write_text(lines[0] + "\n\n" + lines[1] + "\n{\"id\": \"broken\", \"images\": 3}\n"
                    + lines[2])  # a blank line, a bad record, no final newline
    source = JsonlSource(path)
    assert len(source) == 4
    assert [source.sample(i).id for i in (0, 1, 3)] == ["s0", "s1", "s2"]
    assert source.line_number(3) == 5
    with pytest.raises(SampleError, match=r"s\.jsonl:4") as info:
        source.sample(2)
    assert info.value.sample_id == "broken" and info.value.reason == "invalid_sample"


def test_mixture_honours_weights_and_walks_each_source_as_permutations():
    pools = [np.arange(50), np.arange(200)]
    sampler = MixtureSampler(pools, [3.0, 1.0], seed=0, stage="mid")
    draws = [sampler.next() for _ in range(4000)]
    share = Counter(s for s, _ in draws)[0] / len(draws)
    assert 0.72 < share < 0.78  # weight 3:1 -> 0.75
    first = [i for s, i in draws if s == 0]
    for epoch in range(4):  # each 50 draws of source 0 are one full permutation
        assert sorted(first[epoch * 50:(epoch + 1) * 50]) == list(range(50))
    assert first[:50] != first[50:100]  # reshuffled per epoch


def test_mixture_is_deterministic_per_seed_and_stage_and_restores_exactly():
    pools = [np.arange(7), np.arange(30)]

    def run(seed, stage, n=100):
        sampler = MixtureSampler(pools, [1, 1], seed=seed, stage=stage)
        return [sampler.next() for _ in range(n)]

    assert run(0, "mid") == run(0, "mid")
    assert run(0, "mid") != run(1, "mid") and run(0, "mid") != run(0, "instruct")
    sampler = MixtureSampler(pools, [1, 1], seed=0, stage="mid")
    head = [sampler.next() for _ in range(1500)]  # crosses a block of source choices
    state = json.loads(json.dumps(sampler.state_dict()))  # it must survive JSON
    tail = [sampler.next() for _ in range(600)]
    restored = MixtureSampler(pools, [1, 1], seed=0, stage="mid")
    restored.load_state_dict(state)
    assert [restored.next() for _ in range(600)] == tail
    assert head + tail == run(0, "mid", 2100)


def test_ranks_take_disjoint_shards_of_an_epoch():
    pools = [np.arange(40)]
    seen = []
    for rank in range(2):
        sampler = MixtureSampler(pools, [1], seed=3, stage="a", rank=rank, world=2)
        seen.append([sampler.next()[1] for _ in range(20)])
    assert set(seen[0]).isdisjoint(seen[1]) and set(seen[0]) | set(seen[1]) == set(range(40))


def test_val_split_is_deterministic_and_disjoint():
    train, val = split_indices(100, 0.1, seed=0, key=5)
    assert len(val) == 10 and set(train).isdisjoint(val) and len(train) + len(val) == 100
    assert np.array_equal(val, split_indices(100, 0.1, seed=0, key=5)[1])


def test_feature_cache_is_lru_bounded_by_bytes():
    cache = FeatureCache(max_bytes=3 * 400)  # three [10, 10] float32 tensors
    for k in "abc":
        cache.put(k, torch.zeros(10, 10))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", torch.zeros(10, 10))
    assert "b" not in cache and {"a", "c", "d"} <= set(cache._items) and cache.bytes == 1200
    cache.put("huge", torch.zeros(100, 100))  # larger than the budget: never stored
    assert "huge" not in cache and len(cache) == 3


def test_cached_features_equal_the_tower_and_repeat_images_hit(model, toy):
    stage = StageSpec(name="s", lr={"projector": 1e-3}, data=[{"path": "stage3.jsonl"}],
                      steps=1)
    cache = FeatureCache()
    data = StageData(stage, toy, model.processor, 0, toy / "q.jsonl", cache)
    data.start()
    encode = torch.no_grad()(model.encode_vision)
    items = data.next_batch(6)
    batch = make_batch(model, items, cache, encode)
    pixels = model.processor.collate(
        [model.processor.encode(Sample.model_validate_json(data.sources[0].raw(it.index)),
                                image_root=toy) for it in items])["pixel_values"]
    with torch.no_grad():
        assert torch.allclose(batch["image_features"], model.encode_vision(pixels), atol=1e-5)
    assert batch["pixel_values"] is None
    # every stage-3 sample shows both photos of its listing: misses <= distinct images
    keys = {k for it in items for k in it.encoded.image_keys}
    assert cache.misses == len(keys) and cache.hits == 2 * len(items) - len(keys)
    # a second draw of the same listings needs no pixels at all
    again = data.next_batch(24)
    assert any(it.encoded.pixel_values is None for it in again)


def test_bad_samples_are_quarantined_with_id_and_reason_and_replaced(model, toy, tmp_path):
    samples = [Sample.model_validate_json(line)
               for line in (toy / "stage1.jsonl").read_text().splitlines()[:6]]
    samples[1] = samples[1].model_copy(update={"images": ["images/missing.png"]})
    samples[4] = Sample.chat("too-long", [samples[4].images[0]], "x" * 900, "y")
    write_samples(samples, toy / "mixed.jsonl")
    stage = StageSpec(name="s", lr={"projector": 1e-3}, data=[{"path": "mixed.jsonl"}],
                      steps=1)
    data = StageData(stage, toy, model.processor, 0, tmp_path / "quarantine.jsonl")
    data.start()
    items = data.next_batch(8)  # more than the 4 good samples: wraps into a second epoch
    assert len(items) == 8
    assert {s.id for s in samples} - {"too-long", samples[1].id} == \
        {data.sources[0].sample(it.index).id for it in items}
    records = [json.loads(line) for line in (tmp_path / "quarantine.jsonl").read_text()
               .splitlines()]
    assert {(r["id"], r["reason"]) for r in records} == {(samples[1].id, "unreadable"),
                                                          ("too-long", "too_long")}
    assert all(r["source"].endswith("mixed.jsonl") and r["line"] in (2, 5) for r in records)
    assert data.used + data.quarantine.count == data.sampler.draws  # counts reconcile
