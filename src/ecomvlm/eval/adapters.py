"""Model adapters: one interface over every model the benchmarks can run.

    load_adapter("runs/demo/stage3")            our checkpoint (VisionLanguageModel folder)
    load_adapter("base:")                       the embedded default, untrained projector
    load_adapter("base:vision=tiny:siglip,lm=tiny:llama")   any VLMConfig, untrained projector
    load_adapter("hf:/path/to/llava")           any transformers image-text-to-text model
    load_adapter("openai:http://127.0.0.1:8000/v1?model=M")  an OpenAI-compatible endpoint
    load_adapter("text-only" | "perception" | "majority" | "untrained")   baselines

An adapter answers ``EvalSample``s with ``Generation``s and, where it can, scores plain text
(``text_nll``, for perplexity). Our own models run on CPU (fp32 weights by default, see
``load_adapter``), greedy, batched after sorting by prompt length, with each distinct image
(or crop) through the tower once per run: questions about one listing share its photos, and
their common prompt prefix is decoded once (``engine.py``).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .base import EvalSample, Generation

Progress = Callable[[int], None] | None
ALL_BENCHMARKS = ("aspect", "fashion", "extract", "multi_image", "multi_image_crops", "general")


class ModelAdapter:
    """Base: ``generate`` answers samples in order; ``text_nll`` may return None."""

    name: str = "model"
    spec: str = ""
    tokens_per_image: int | None = None
    supported: tuple[str, ...] = ALL_BENCHMARKS

    def bind(self, items: Sequence[Any], catalog_dir: str | Path) -> None:
        """Baselines read the listings behind the samples; models ignore this."""

    def shown(self, sample: EvalSample) -> EvalSample:
        """The sample as this model sees it (a text-only baseline swaps photos for text)."""
        return sample

    def generate(self, samples: list[EvalSample], batch_size: int = 16,
                 progress: Progress = None) -> list[Generation]:
        raise NotImplementedError

    def text_nll(self, texts: list[str]) -> list[tuple[float, int]] | None:
        """Per text: (summed negative log-likelihood in nats, tokens scored); None if the
        backend cannot score text."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec, "tokens_per_image": self.tokens_per_image}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-.")[:80] or "model"


# ---------------------------------------------------------------- our VLM
class VLMAdapter(ModelAdapter):
    """A ``VisionLanguageModel`` (checkpoint or freshly built)."""

    def __init__(self, model: Any, spec: str, name: str, share_prefix: bool = True,
                 cache_images: int = 2048):
        self.model = model.eval()
        self.share_prefix = share_prefix  # off: every sample is its own group (for benches)
        self.spec, self.name = spec, name
        self.tokens_per_image = model.tokens_per_image
        # image ref -> tower output [t, d], least recently used dropped first (49 x 1280 fp32
        # is 250 KB: the default holds ~500 MB, a few benchmarks' worth of listings)
        self._features: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.cache_images = cache_images

    # prompts ------------------------------------------------------------------------
    def prompt_ids(self, sample: EvalSample) -> list[int]:
        """The prompt as the processor encodes it (chat template, each ``<image>`` expanded to
        ``tokens_per_image`` slots), without touching pixels."""
        tok, proc = self.model.tokenizer, self.model.processor
        text = tok.apply_chat_template(sample.messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if ids.count(proc.image_token_id) != len(sample.images):
            raise ValueError(f"eval sample {sample.id!r}: {ids.count(proc.image_token_id)} image "
                             f"tokens after templating, {len(sample.images)} images")
        out: list[int] = []
        for token in ids:
            out += [token] * self.tokens_per_image if token == proc.image_token_id else [token]
        return out

    # images -------------------------------------------------------------------------
    @staticmethod
    def ref_key(ref: Any) -> str:
        return ref if isinstance(ref, str) else f"{ref['path']}#{','.join(map(str, ref['box']))}"

    def _encode_images(self, refs: list[Any], chunk: int = 32) -> None:
        from .crops import open_ref

        todo = list(dict.fromkeys(self.ref_key(r) for r in refs
                                  if self.ref_key(r) not in self._features))
        by_key = {self.ref_key(r): r for r in refs}
        for start in range(0, len(todo), chunk):
            keys = todo[start:start + chunk]
            pixels = self.model.vision.preprocess([open_ref(by_key[k]) for k in keys])
            feats = self.model.encode_vision(pixels)  # [n, t, d]
            for key, feat in zip(keys, feats):
                self._features[key] = feat

    def features(self, refs: list[Any]) -> torch.Tensor | None:
        """Tower features of ``refs`` in order [N, t, d] (each distinct one encoded once)."""
        if not refs:
            return None
        self._encode_images(refs)
        keys = [self.ref_key(r) for r in refs]
        out = torch.stack([self._features[k] for k in keys])
        for key in keys:
            self._features.move_to_end(key)
        while len(self._features) > self.cache_images:
            self._features.popitem(last=False)
        return out

    # generation ---------------------------------------------------------------------
    def batches(self, samples: list[EvalSample], ids: list[list[int]],
                batch_size: int) -> list[list[list[int]]]:
        """Batches of groups of sample indices; a group shares its images (one listing's
        questions), groups are sorted by answer budget and prompt length."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, s in enumerate(samples):
            key = tuple(self.ref_key(r) for r in s.images) if self.share_prefix else (str(i),)
            groups.setdefault(key, []).append(i)
        chunks = []
        for members in groups.values():
            members.sort(key=lambda i: (samples[i].max_new_tokens, len(ids[i]), i))
            chunks += [members[k:k + batch_size] for k in range(0, len(members), batch_size)]
        chunks.sort(key=lambda g: (max(samples[i].max_new_tokens for i in g),
                                   max(len(ids[i]) for i in g), g[0]))
        batches: list[list[list[int]]] = [[]]
        for chunk in chunks:
            if batches[-1] and sum(map(len, batches[-1])) + len(chunk) > batch_size:
                batches.append([])
            batches[-1].append(chunk)
        return [b for b in batches if b]

    @torch.no_grad()
    def generate(self, samples: list[EvalSample], batch_size: int = 16,
                 progress: Progress = None) -> list[Generation]:
        from .engine import generate_grouped

        ids = [self.prompt_ids(s) for s in samples]
        out: list[Generation | None] = [None] * len(samples)
        for batch in self.batches(samples, ids, batch_size):
            began = time.perf_counter()
            groups = [([ids[i] for i in g], self.features(samples[g[0]].images)) for g in batch]
            budget = max(samples[i].max_new_tokens for g in batch for i in g)
            tokens = generate_grouped(self.model, groups, budget)
            rows = [i for g in batch for i in g]
            share = (time.perf_counter() - began) / len(rows)
            for i, row in zip(rows, tokens):
                text = self.model.tokenizer.decode(row[:samples[i].max_new_tokens],
                                                   skip_special_tokens=True).strip()
                out[i] = Generation(text, round(share, 5),
                                    len(samples[i].images) * self.tokens_per_image)
            if progress:
                progress(len(rows))
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def text_nll(self, texts: list[str]) -> list[tuple[float, int]]:
        tok, limit = self.model.tokenizer, self.model.config.max_length
        out = []
        for text in texts:
            ids = torch.tensor(tok(text, add_special_tokens=False)["input_ids"][:limit])[None]
            result = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
            out.append((float(result.loss) * result.num_loss_tokens, result.num_loss_tokens))
        return out

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {**super().describe(), "backend": "ecomvlm", "vision": cfg.vision,
                "projector": cfg.projector, "lm": cfg.lm,
                "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
                "threads": torch.get_num_threads()}


def parse_base_spec(rest: str) -> dict[str, Any]:
    """'vision=tiny:siglip,lm=tiny:llama' or a JSON object -> VLMConfig fields."""
    rest = rest.strip()
    if not rest:
        return {}
    if rest.startswith("{"):
        import json

        return json.loads(rest)
    fields = {}
    for part in rest.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"base: spec part {part!r} is not key=value")
        fields[key.strip()] = value.strip()
    return fields


def build_base(rest: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> Any:
    """A freshly built VLM (pretrained tower and LM where they are, projector random with
    ``seed``): the un-adapted model."""
    from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VisionLanguageModel.build(VLMConfig(**parse_base_spec(rest)))
    return model.to(dtype).eval()


def load_adapter(spec: str, seed: int = 0,
                 dtype: torch.dtype | str = torch.float32) -> ModelAdapter:
    """The adapter for a model spec (see the module docstring). ``dtype`` of the weights:
    float32 by default, measured faster than bfloat16 on this project's CPUs (no AMX: bf16
    matmuls ran at ~40 GFLOPS a core against ~65 for fp32); bfloat16 halves the memory."""
    spec = spec.strip()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if spec in ("untrained", "base", "base:"):
        return VLMAdapter(build_base("", seed, dtype), "base:", spec.rstrip(":") or "base")
    if spec.startswith("base:"):
        rest = spec[5:]
        return VLMAdapter(build_base(rest, seed, dtype), spec, "base-" + slug(rest))
    if spec == "text-only" or spec.startswith("text-only:"):
        from .baselines import TextOnlyAdapter

        inner = load_adapter(spec.partition(":")[2] or "base:", seed, dtype)
        return TextOnlyAdapter(inner)
    if spec == "perception":
        from .baselines import PerceptionAdapter

        return PerceptionAdapter()
    if spec == "majority":
        from .baselines import MajorityAdapter

        return MajorityAdapter()
    if spec.startswith("hf:"):
        from .adapters_hf import HFAdapter

        return HFAdapter(spec[3:], dtype=dtype)
    if spec.startswith("openai:"):
        from .adapters_openai import OpenAIAdapter

        return OpenAIAdapter(spec[7:])
    path = Path(spec.removeprefix("ckpt:"))
    if not (path / "config.json").is_file() and (path / "final" / "config.json").is_file():
        path = path / "final"  # a training stage folder: its finished model
    if (path / "config.json").is_file():
        from ecomvlm.model.vlm import VisionLanguageModel

        model = VisionLanguageModel.from_pretrained(path, dtype=dtype)
        parts = [p for p in path.resolve().parts if p != "final"]
        return VLMAdapter(model, str(path), slug("-".join(parts[-3:])))
    raise ValueError(f"unknown model spec {spec!r}: give a checkpoint folder, base:[fields], "
                     f"hf:<path>, openai:<url>?model=M, text-only[:SPEC], perception, majority "
                     f"or untrained")
