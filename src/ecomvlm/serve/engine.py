"""The generation engine: our VLM behind a bounded queue with dynamic batching.

Requests are encoded (chat template, image preprocessing) on the caller's thread, so a bad
request fails there and the worker only runs the model. One worker thread takes every queued
request that shares the first one's sampling settings, up to ``max_batch``; when fewer are
waiting it lingers ``batch_wait_ms`` for more. A batch is one call of ``generate_batch`` (left
padding, KV cache, per-row stop). Through its ``allowed_tokens`` hook, called for every live
row at every step, each row also gets its own token limit, its JSON constraint, its stop
strings, its streamed text and cancellation (a timed-out row is ended at the next step).

Greedy requests batch together; sampled ones batch with others of the same temperature and
top_p, and a seeded one runs alone so its seed reproduces it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ecomvlm.model.generate import generate_batch

from .constrained import Constraint, GuidedRow

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The engine's queue is full; ``retry_after`` is a guess in whole seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class PromptTooLong(ValueError):
    pass


class EngineClosed(RuntimeError):
    pass


@dataclass
class Request:
    """One chat completion to produce. ``temperature`` 0 means greedy."""

    messages: list[dict[str, Any]]
    images: Sequence[Image.Image] = ()
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()
    constraint: Constraint | None = None
    on_text: Callable[[str], None] | None = None  # streamed text pieces, from the worker


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: str  # "stop" | "length" | "cancelled" | "error" (the constraint failed)


@dataclass
class Job:
    """A request on its way through the engine: encoded prompt, future, cancellation."""

    request: Request
    encoded: Any  # processor Encoded: input_ids [T], pixel_values [N, 3, S, S] | None
    max_tokens: int
    future: Future = field(default_factory=Future)
    deadline: float = math.inf
    cancelled: bool = False
    guide: GuidedRow | None = None
    sent: str = ""  # text already streamed
    stopped_by: str = ""
    failure: str = ""

    def cancel(self) -> None:
        self.cancelled = True  # read by the worker at the next step; no lock needed

    @property
    def key(self) -> tuple:
        r = self.request
        if r.temperature <= 0:
            return ("greedy",)
        if r.seed is not None:
            return ("seeded", id(self))
        return ("sample", r.temperature, r.top_p)


def load_model(spec: str | Path, dtype: torch.dtype = torch.bfloat16):
    """A saved model directory, or ``default`` for the embedded default build (EfficientNet-
    Lite0 -> mlp2x_gelu -> SmolLM2-135M, projector untrained: for plumbing and speed)."""
    from ecomvlm.model.vlm import VisionLanguageModel

    if str(spec) == "default":
        return VisionLanguageModel.build().to_dtype(dtype).eval()
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a saved ecomvlm model (no config.json); pass a "
                                "folder written by save_pretrained, or 'default'")
    return VisionLanguageModel.from_pretrained(path, dtype=dtype)


class Engine:
    """A model behind a bounded queue and one batching worker thread.

    ``submit`` (async callers) or ``generate`` (blocking) queue requests for the worker;
    ``run_batch`` runs jobs from ``prepare`` in the calling thread (batch jobs, references).
    ``max_tokens_cap`` clamps every request's budget; ``max_queue`` bounds waiting requests.
    """

    def __init__(self, model: Any, max_batch: int = 8, max_queue: int = 64,
                 batch_wait_ms: float = 5.0, max_tokens_cap: int = 512):
        self.model, self.tokenizer = model, model.tokenizer
        self.max_batch, self.max_queue = max_batch, max_queue
        self.batch_wait = batch_wait_ms / 1000
        self.max_tokens_cap = max_tokens_cap
        self.context = model.config.max_length
        self.eos = self.tokenizer.eos_token_id
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._batch_seconds = 1.0  # running mean of a batch's duration, for Retry-After
        self.batches = self.rows = 0

    # -- requests ---------------------------------------------------------------------
    def prepare(self, request: Request, timeout: float | None = None) -> Job:
        """Encode a request (raises ValueError on a bad one) and clamp its token budget."""
        encoded = self.model.processor.encode_prompt(request.messages, list(request.images))
        prompt = len(encoded.input_ids)
        room = self.context - prompt
        if room < 1:
            raise PromptTooLong(f"prompt of {prompt} tokens (images included) leaves no room "
                                f"in the {self.context}-token context")
        max_tokens = max(1, min(request.max_tokens, self.max_tokens_cap, room))
        job = Job(request, encoded, max_tokens)
        if timeout is not None:
            job.deadline = time.monotonic() + timeout
        if request.constraint is not None:
            job.guide = request.constraint.guide()
        return job

    def submit(self, request: Request, timeout: float | None = None) -> Job:
        """Queue a request; ``job.future`` resolves to a :class:`Completion`. Raises
        :class:`QueueFull` instead of queueing without bound."""
        job = self.prepare(request, timeout)
        with self._cond:
            if self._closed:
                raise EngineClosed("the engine is shut down")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(self.retry_after())
            self._pending.append(job)
            self._cond.notify()
        self._ensure_worker()
        return job

    def generate(self, request: Request, timeout: float | None = None) -> Completion:
        """Submit and wait; on timeout the job is cancelled and TimeoutError raised."""
        job = self.submit(request, timeout)
        try:
            return job.future.result(timeout)
        except TimeoutError:
            job.cancel()
            raise

    def retry_after(self) -> int:
        waves = len(self._pending) / self.max_batch + 1
        return max(1, math.ceil(waves * self._batch_seconds))

    # -- worker -----------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="ecomvlm-engine",
                                                daemon=True)
                self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for job in self._pending:
            job.future.set_exception(EngineClosed("the engine shut down"))
        self._pending.clear()

    def _take(self) -> list[Job]:
        """Block for work; return up to max_batch queued jobs sharing the first one's key."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return []
            end = time.monotonic() + self.batch_wait
            while len(self._pending) < self.max_batch and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)
            now, jobs, kept = time.monotonic(), [], deque()
            key = None
            while self._pending:
                job = self._pending.popleft()
                if job.cancelled or job.deadline < now:
                    job.future.set_exception(TimeoutError("timed out in the queue"))
                elif len(jobs) < self.max_batch and (key is None or job.key == key):
                    key = job.key
                    jobs.append(job)
                else:
                    kept.append(job)
            self._pending = kept
            return jobs

    def _work(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                if self._closed:
                    return
                continue
            jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            if not jobs:
                continue
            started = time.monotonic()
            try:
                results = self.run_batch(jobs)
            except Exception as error:  # a model error fails this batch, not the server
                log.exception("batch of %d failed", len(jobs))
                for job in jobs:
                    job.future.set_exception(error)
                continue
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (time.monotonic() - started)
            for job, result in zip(jobs, results):
                job.future.set_result(result)

    # -- one batch --------------------------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _hook(self, jobs: list[Job]):
        def allowed(row: int, generated: list[int]) -> list[int] | torch.Tensor | None:
            job = jobs[row]
            request = job.request
            if request.on_text is not None or request.stop:
                text = self._decode(generated)
                hit = next((s for s in request.stop if s and s in text), None)
                if hit is not None:
                    job.stopped_by = hit
                    return [self.eos]
                self._stream(job, text, final=False)
            if job.cancelled or time.monotonic() > job.deadline:
                job.cancelled = True
                return [self.eos]
            if len(generated) >= job.max_tokens:
                return [self.eos]  # this row's budget is spent; others in the batch go on
            if job.guide is None:
                return None
            try:
                tokens = job.guide.allowed_ids(generated)
            except ValueError as error:  # a token the automaton cannot take: end this row only
                job.failure = f"constrained decoding failed: {error}"
                return [self.eos]
            if tokens.numel() == 0:  # the vocabulary cannot continue the document
                job.failure = "constrained decoding reached a state no token can continue"
                return [self.eos]
            return tokens
        return allowed

    def _stream(self, job: Job, text: str, final: bool) -> None:
        if job.request.on_text is None:
            return
        if not final:
            # hold back what a stop string may still claim, and half a UTF-8 character
            hold = max((len(s) - 1 for s in job.request.stop), default=0)
            text = text[:len(text) - hold] if hold else text
            text = text.rstrip("\ufffd")
        if len(text) > len(job.sent) and text.startswith(job.sent):
            job.request.on_text(text[len(job.sent):])
            job.sent = text

    def run_batch(self, jobs: list[Job]) -> list[Completion]:
        """Generate for jobs sharing sampling settings, in this thread."""
        batch = self.model.processor.collate([j.encoded for j in jobs], padding_side="left")
        first = jobs[0].request
        tokens = generate_batch(
            self.model, batch, max_new_tokens=max(j.max_tokens for j in jobs),
            do_sample=first.temperature > 0, temperature=max(first.temperature, 1e-5),
            top_p=first.top_p, seed=first.seed, allowed_tokens=self._hook(jobs))
        self.batches += 1
        self.rows += len(jobs)
        return [self._finish(job, ids) for job, ids in zip(jobs, tokens)]

    def _finish(self, job: Job, ids: list[int]) -> Completion:
        text = self._decode(ids)
        reason = "stop"
        if job.failure:
            reason = "error"
            log.warning("row failed: %s", job.failure)
        elif job.stopped_by:
            text = text[:text.find(job.stopped_by)] if job.stopped_by in text else text
        elif job.cancelled:
            reason = "cancelled"
        elif len(ids) >= job.max_tokens and not (job.guide and job.guide.finished_after(ids)):
            reason = "length"
        self._stream(job, text, final=True)
        return Completion(text, ids, len(job.encoded.input_ids), reason)
