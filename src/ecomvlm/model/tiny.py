"""Tiny random backbones for offline tests and smoke runs (``tiny:siglip``, ``tiny:llama``...).

They are real transformers architectures at toy size, built through the same wrappers as
pretrained checkpoints, so the whole VLM path runs in seconds with no download. Weights are
a deterministic function of ``seed``; the global RNG is left untouched.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PretrainedConfig

from .hf_vision import HFVisionTower, wrap_hf_vision
from .lm import CHATML_TEMPLATE, IMAGE_TOKEN, LoadedLM

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>", IMAGE_TOKEN]

# shared toy sizes: 32 px images in 8 px patches -> 4x4 = 16 tokens
_VISION_SIZES = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "patch_size": 8}
_LM_SIZES = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048}


def _seeded(build, seed: int):
    """Call ``build()`` with torch's RNG seeded, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _vision_config(kind: str) -> tuple[type, PretrainedConfig]:
    import transformers as tf

    if kind == "siglip":
        return tf.SiglipVisionModel, tf.SiglipVisionConfig(
            image_size=32, vision_use_head=False, **_VISION_SIZES)
    if kind == "clip":
        return tf.CLIPVisionModel, tf.CLIPVisionConfig(image_size=32, **_VISION_SIZES)
    if kind == "siglip2":
        return tf.Siglip2VisionModel, tf.Siglip2VisionConfig(
            num_patches=16, vision_use_head=False, **_VISION_SIZES)
    raise ValueError(f"no tiny vision tower {kind!r}; have siglip, clip, siglip2")


def tiny_vision(kind: str, seed: int = 0, **overrides: Any) -> HFVisionTower:
    """A random 2-layer, 64-wide tower on 32 px images -> [B, 16, 64]."""
    model_cls, config = _vision_config(kind)
    model = _seeded(lambda: model_cls(config), seed).eval()
    return wrap_hf_vision(model, f"tiny:{kind}", **overrides)


def byte_level_tokenizer():
    """An offline ChatML tokenizer: the 256 byte symbols plus the special tokens, no merges.

    One token per UTF-8 byte makes sequences long, which is irrelevant at toy scale, and it
    needs no training data. Ids 0..4 are the special tokens, 5..260 the bytes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)  # never split, skippable when decoding
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|pad|>",
        unk_token="<|endoftext|>", chat_template=CHATML_TEMPLATE, padding_side="right",
    )


def _lm_config(kind: str, vocab_size: int, tokenizer) -> tuple[type, PretrainedConfig]:
    import transformers as tf

    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
           "bos_token_id": None, "vocab_size": vocab_size}
    if kind == "llama":
        return tf.LlamaForCausalLM, tf.LlamaConfig(tie_word_embeddings=False, **ids, **_LM_SIZES)
    if kind == "qwen2":  # small Qwen2 models tie input and output embeddings
        return tf.Qwen2ForCausalLM, tf.Qwen2Config(tie_word_embeddings=True, **ids, **_LM_SIZES)
    raise ValueError(f"no tiny LM {kind!r}; have llama, qwen2")


def tiny_lm(kind: str, seed: int = 0) -> LoadedLM:
    """A random 2-layer, 64-wide causal LM with the byte-level ChatML tokenizer."""
    tokenizer = byte_level_tokenizer()
    vocab_size = -(-len(tokenizer) // 8) * 8  # rounded up to a multiple of 8
    model_cls, config = _lm_config(kind, vocab_size, tokenizer)
    model = _seeded(lambda: model_cls(config), seed).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return LoadedLM(model=model, tokenizer=tokenizer, spec=f"tiny:{kind}", source="random")
