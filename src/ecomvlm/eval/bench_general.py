"""General: what the e-commerce adaptation must not lose.

Two parts, both shipped in ``eval/data``: 43 general text questions (facts, arithmetic,
following an instruction), scored by normalised match, number match, regex, word presence or
JSON equality; and the perplexity of ~4.5 KB of held-out plain English, reported per token
and, tokenizer-independently, in bits per byte. Runs on any model that answers text; the
perplexity needs a backend that can score text (ours and transformers, not an HTTP endpoint).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from functools import cache
from importlib import resources
from typing import Any, ClassVar

from ecomvlm.registry import BENCHMARK

from .base import Benchmark, EvalSample, Scored, mean, stderr
from .parsing import clip, first_line, norm, parse_json_object

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@cache
def load_data(name: str) -> dict[str, Any]:
    return json.loads(resources.files("ecomvlm.eval").joinpath("data", name).read_text("utf-8"))


def check_reply(question: dict[str, Any], output: str) -> bool:
    """Whether ``output`` answers ``question`` (see the ``check`` field of general_qa.json)."""
    kind, text = question["check"], clip(output).strip()
    if kind == "match":  # the reply, or its first line, states one of the answers
        line = norm(first_line(text))
        return any(line == norm(a) or re.search(rf"(?<![0-9a-z]){re.escape(norm(a))}"
                                                rf"(?![0-9a-z])", line)
                   for a in question["answers"])
    if kind == "number":  # the first number in the reply
        found = _NUMBER.search(first_line(text).replace(",", ""))
        return found is not None and any(float(found.group()) == float(a)
                                         for a in question["answers"])
    if kind == "regex":
        flags = sum(getattr(re, f.upper()) for f in question.get("flags", ""))
        return re.search(question["pattern"], text, flags) is not None
    if kind == "all_of":
        low = norm(text)
        return all(re.search(rf"\b{re.escape(a)}\b", low) for a in question["answers"])
    if kind == "json":
        reply = parse_json_object(text)
        return reply is not None and all(reply.get(k) == v
                                         for k, v in question["expected"].items())
    raise ValueError(f"general question {question['id']!r}: unknown check {kind!r}")


@BENCHMARK.register("general")
class GeneralBenchmark(Benchmark):
    name = "general"
    version = 1
    main_metric = "accuracy"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "accuracy": True, "accuracy_fact": True, "accuracy_arithmetic": True,
        "accuracy_instruction": True, "perplexity": False, "bits_per_byte": False}

    def build(self, items: list, limit: int | None = None) -> list[EvalSample]:
        questions = sorted(load_data("general_qa.json")["questions"],
                           key=lambda q: self.order(q["id"]))
        samples = [EvalSample(f"general:{q['id']}", self.name, q["question"], [], q, 32,
                              {"kind": q["kind"], "check": q["check"]}) for q in questions]
        return self.take(samples, limit)

    def score(self, sample: EvalSample, output: str) -> tuple[Any, float, dict[str, Any]]:
        ok = check_reply(sample.target, output)
        return first_line(output)[:200], float(ok), {}

    def aggregate(self, records: list[Scored]) -> tuple[dict[str, float], dict[str, Any]]:
        by_kind: dict[str, list[float]] = defaultdict(list)
        for r in records:
            by_kind[r.meta["kind"]].append(r.score)
        scores = [r.score for r in records]
        metrics = {"accuracy": round(mean(scores), 4), "accuracy_stderr": round(stderr(scores), 4)}
        metrics.update({f"accuracy_{k}": round(mean(v), 4) for k, v in sorted(by_kind.items())})
        return metrics, {"per_kind": {k: {"accuracy": round(mean(v), 4), "n": len(v)}
                                      for k, v in sorted(by_kind.items())}}

    def model_metrics(self, adapter: Any) -> tuple[dict[str, float], dict[str, Any]]:
        """Perplexity of the held-out text, when the backend can score text."""
        paragraphs = load_data("general_text.json")["paragraphs"]
        scored = adapter.text_nll(paragraphs)
        if scored is None:
            return {}, {"perplexity": "not available for this backend"}
        nll = sum(s for s, _ in scored)
        tokens = sum(n for _, n in scored)
        n_bytes = sum(len(p.encode("utf-8")) for p in paragraphs)
        return ({"perplexity": round(math.exp(nll / tokens), 4),
                 "bits_per_byte": round(nll / math.log(2) / n_bytes, 4)},
                {"heldout_text": {"paragraphs": len(paragraphs), "tokens": tokens,
                                  "bytes": n_bytes, "nll_sum": round(nll, 4)}})
