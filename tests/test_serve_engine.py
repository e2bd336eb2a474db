"""The serving engine on a tiny random VLM: dynamic batching answers exactly what each request
gets alone, per-row budgets and stops, streaming, the bounded queue and cancellation."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from PIL import Image

from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig
from ecomvlm.serve.engine import Engine, PromptTooLong, QueueFull, Request


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide model only loses from threads on a shared CPU
    torch.manual_seed(0)
    yield VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama",
                                              max_length=256)).eval()
    torch.set_num_threads(threads)


def _request(i: int, **kw) -> Request:
    images = [Image.new("RGB", (40, 40), (37 * i % 255, 90, 200))] if i % 3 == 0 else []
    text = "<image>\n" * len(images) + f"question number {i}: " + "why? " * (i % 4)
    return Request([{"role": "user", "content": text}], images, **{"max_tokens": 12, **kw})


def _alone(engine: Engine, request: Request):
    return engine.run_batch([engine.prepare(request)])[0]


def test_concurrent_requests_batch_and_match_their_solo_answers(model):
    engine = Engine(model, max_batch=4, batch_wait_ms=50)
    budgets = [12, 5, 9, 12, 3, 12, 7, 12, 12, 4]
    solo = [_alone(engine, _request(i, max_tokens=b)) for i, b in enumerate(budgets)]
    before = engine.batches
    jobs = [engine.submit(_request(i, max_tokens=b)) for i, b in enumerate(budgets)]
    batched = [job.future.result(timeout=60) for job in jobs]
    assert engine.batches - before <= 5  # 10 requests rode in a few batches, not 10
    assert [r.token_ids for r in batched] == [r.token_ids for r in solo]
    assert [len(r.token_ids) for r in batched] == budgets  # a random model never says eos
    assert all(r.finish_reason == "length" for r in batched)
    assert len({r.text for r in batched}) > 5  # the prompts really differ
    engine.close()


def test_stop_strings_cut_the_reply_and_streaming_adds_up(model):
    engine = Engine(model)
    full = _alone(engine, _request(1, max_tokens=30)).text
    stop = full[10:12]
    pieces: list[str] = []
    result = _alone(engine, _request(1, max_tokens=30, stop=[stop], on_text=pieces.append))
    assert result.text == full[:full.find(stop)]
    assert result.finish_reason == "stop"
    assert "".join(pieces) == result.text

    pieces = []
    streamed = _alone(engine, _request(2, max_tokens=20, on_text=pieces.append))
    assert len(pieces) > 1 and "".join(pieces) == streamed.text


def test_greedy_and_seeded_sampling_are_reproducible(model):
    engine = Engine(model)
    a = _alone(engine, _request(4, temperature=1.0, seed=7, max_tokens=15))
    b = engine.generate(_request(4, temperature=1.0, seed=7, max_tokens=15), timeout=30)
    greedy = _alone(engine, _request(4, max_tokens=15))
    assert a.token_ids == b.token_ids
    assert a.token_ids != greedy.token_ids
    engine.close()


def test_max_tokens_is_clamped_to_the_cap_and_the_context(model):
    engine = Engine(model, max_tokens_cap=6)
    assert engine.prepare(_request(1, max_tokens=1000)).max_tokens == 6
    long = Request([{"role": "user", "content": "x " * 300}], max_tokens=5)
    with pytest.raises(PromptTooLong, match="256-token context"):
        engine.prepare(long)
    with pytest.raises(ValueError, match="placeholders"):
        engine.prepare(Request([{"role": "user", "content": "<image> <image>"}],
                               [Image.new("RGB", (8, 8))]))


def test_a_full_queue_rejects_with_retry_after_and_timeouts_cancel(model):
    engine = Engine(model, max_batch=1, max_queue=2, batch_wait_ms=0)
    gate = threading.Event()
    original = engine.run_batch

    def slow(jobs):  # hold the worker so the queue fills
        gate.wait(30)
        return original(jobs)

    engine.run_batch = slow
    running = engine.submit(_request(1))
    deadline = time.monotonic() + 10
    while engine._pending and time.monotonic() < deadline:  # the worker took the first one
        time.sleep(0.01)
    queued = [engine.submit(_request(i)) for i in (2, 3)]
    with pytest.raises(QueueFull) as full:
        engine.submit(_request(4))
    assert full.value.retry_after >= 1
    queued[0].cancel()
    gate.set()
    assert running.future.result(30).finish_reason == "length"
    with pytest.raises(TimeoutError):
        queued[0].future.result(30)  # cancelled while queued: dropped, never run
    assert len(queued[1].future.result(30).token_ids) == 12

    engine.run_batch = original
    job = engine.prepare(_request(5, max_tokens=200))
    job.cancel()
    result = engine.run_batch([job])[0]
    assert result.finish_reason == "cancelled" and result.token_ids == []
    engine.close()


def test_a_constraint_failure_ends_its_row_only(model):
    from outlines_core import Index, Vocabulary

    from ecomvlm.serve.constrained import Constraint

    # a vocabulary whose ids lie past the model's logits: the row can only take token 0,
    # which the automaton refuses
    eos = model.tokenizer.eos_token_id
    vocab = Vocabulary(eos, {bytes([b]): [1000 + b] for b in range(256)})
    broken = Constraint({}, Index(r'\{"a":"b"\}', vocab), None, eos)
    engine = Engine(model)
    healthy = _alone(engine, _request(2, max_tokens=10))
    results = engine.run_batch([engine.prepare(_request(1, max_tokens=10, constraint=broken)),
                                engine.prepare(_request(2, max_tokens=10))])
    assert results[0].finish_reason == "error"
    assert results[1].token_ids == healthy.token_ids
