"""What every benchmark shares: the sample a model answers, the scored record, the base class.

A benchmark (nanochat's Task idea) is one class that builds its samples from the catalog,
words the prompt, parses a reply and scores it, then aggregates the scored records into
metrics. Models never see a benchmark class: they get ``EvalSample``s (a chat conversation
with ``<image>`` placeholders and the images in order) and return ``Generation``s.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ecomvlm.samples import IMAGE_TOKEN

# An image reference: an absolute path, or {"path": ..., "box": [x0, y0, x1, y1]} for a crop.
ImageRef = str | dict[str, Any]


@dataclass
class EvalSample:
    id: str
    benchmark: str
    prompt: str  # the user turn; images come first as "<image>\n" each, as in training
    images: list[ImageRef]
    target: Any  # the canonical answer (str, list of marks, dict, bool...)
    max_new_tokens: int = 16
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prompt.count(IMAGE_TOKEN) != len(self.images):
            raise ValueError(f"eval sample {self.id!r}: {self.prompt.count(IMAGE_TOKEN)} "
                             f"{IMAGE_TOKEN} placeholders but {len(self.images)} images")

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}]


@dataclass
class Generation:
    """A model's reply with what it cost: seconds (a batch's wall time shared by its rows) and
    image tokens the model consumed (None where the backend does not say)."""

    text: str
    latency_s: float = 0.0
    image_tokens: int | None = None
    error: str | None = None


@dataclass
class Scored:
    """One line of ``samples_<benchmark>.jsonl``."""

    id: str
    benchmark: str
    prompt: str
    images: list[ImageRef]
    output: str
    parsed: Any
    target: Any
    score: float
    latency_s: float
    image_tokens: int | None
    meta: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stable_hash(*parts: object) -> int:
    """The same 64-bit value in every process (``hash`` is salted per process)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def options_for(correct: str, pool: list[str], seed: int, key: str,
                n: int = 4) -> list[str]:
    """``correct`` plus up to n-1 distractors from ``pool``, in a seeded order."""
    others = sorted(set(pool) - {correct}, key=lambda v: stable_hash(seed, key, "d", v))
    return sorted(others[:n - 1] + [correct], key=lambda v: stable_hash(seed, key, "o", v))


def options_block(options: list[str]) -> str:
    return "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def stderr(xs: list[float]) -> float:
    """Standard error of the mean (lmms-eval reports one beside each mean metric)."""
    n = len(xs)
    if n < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n)


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """(precision, recall, F1); an empty prediction of an empty truth scores 1."""
    if tp + fp + fn == 0:
        return 1.0, 1.0, 1.0
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def cost_metrics(records: list[Scored]) -> dict[str, float]:
    """Mean latency and image tokens per sample."""
    out = {"latency_s": round(mean([r.latency_s for r in records]), 4)}
    tokens = [r.image_tokens for r in records if r.image_tokens is not None]
    if tokens:
        out["image_tokens"] = round(mean([float(t) for t in tokens]), 2)
    return out


class Benchmark(ABC):
    """Subclasses set ``name``, ``version``, ``higher_is_better`` and implement the three steps."""

    name: str = "benchmark"
    version: int = 1
    main_metric: str = "accuracy"
    higher_is_better: ClassVar[dict[str, bool]] = {}

    def __init__(self, seed: int = 0, **options: Any):
        self.seed = seed
        self.options = options

    @abstractmethod
    def build(self, items: list, limit: int | None = None) -> list[EvalSample]:
        """The samples, in a seeded order (so ``limit`` takes a fair, fixed subset)."""

    @abstractmethod
    def score(self, sample: EvalSample, output: str) -> tuple[Any, float, dict[str, Any]]:
        """(parsed answer, score in [0, 1], details) for one reply; never raises."""

    @abstractmethod
    def aggregate(self, records: list[Scored]) -> tuple[dict[str, float], dict[str, Any]]:
        """(scalar metrics, breakdowns such as per-aspect accuracy or a confusion matrix)."""

    def config(self) -> dict[str, Any]:
        return {"task": self.name, "version": self.version, "seed": self.seed,
                "main_metric": self.main_metric, **self.options}

    def order(self, group: str) -> int:
        """Sort key of a group of samples (a listing): seeded, stable across runs."""
        return stable_hash(self.seed, self.name, group)

    def ordered(self, items: list) -> list:
        return sorted(items, key=lambda item: self.order(item.id))

    @staticmethod
    def take(samples: list[EvalSample], limit: int | None) -> list[EvalSample]:
        return samples if limit is None else samples[:limit]
