"""Batched decoding for the VLM: left padding, a KV cache, per-row stop, greedy or nucleus sampling.

The prompt (text with projected images) is encoded once; each later step feeds one new token
per row and reuses the cached keys and values. ``use_cache=False`` recomputes the whole
sequence every step: slow, but the reference the cached path must match token for token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# (row, tokens generated so far) -> the token ids allowed next, or None for any: the hook
# through which JSON-schema constrained decoding masks the logits
# (row, generated so far) -> the ids allowed next (a list or a long tensor), or None for all
AllowedTokens = Callable[[int, list[int]], "list[int] | torch.Tensor | None"]


def stop_token_ids(model: Any) -> set[int]:
    """End-of-turn ids: the tokenizer's eos and whatever the LM's generation config lists."""
    ids = {model.tokenizer.eos_token_id}
    configured = getattr(getattr(model.lm, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    return {i for i in ids if i is not None}


def pick_tokens(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """[B, V] logits -> [B] next tokens."""
    if not do_sample or temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _restrict(logits: torch.Tensor, allowed_tokens: AllowedTokens, out: list[list[int]],
              done: torch.Tensor) -> torch.Tensor:
    """-inf on every token the hook does not allow, row by row (finished rows untouched)."""
    for row in range(logits.shape[0]):
        if done[row]:
            continue
        allowed = allowed_tokens(row, out[row])
        if allowed is not None:
            keep = torch.full_like(logits[row], float("-inf"))
            if isinstance(allowed, torch.Tensor):  # ids as a tensor: no per-step list work
                index = allowed[allowed < logits.shape[1]].to(logits.device)
            else:
                index = torch.tensor([t for t in allowed if t < logits.shape[1]],
                                     dtype=torch.long, device=logits.device)
            keep[index] = 0.0
            logits[row] = logits[row] + keep
    return logits


@torch.no_grad()
def generate_batch(model: Any, batch: dict[str, Any], max_new_tokens: int = 64,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                   use_cache: bool = True, seed: int | None = None,
                   image_features: torch.Tensor | None = None,
                   allowed_tokens: AllowedTokens | None = None) -> list[list[int]]:
    """New token ids per row (stop token excluded) for a left-padded batch."""
    device = model.device
    ids = batch["input_ids"].to(device)
    mask = batch["attention_mask"].to(device)
    pixels = batch.get("pixel_values")
    embeds = model.embed(ids, None if pixels is None else pixels.to(device), image_features)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
    decoder, head = model._decoder(), model.lm.get_output_embeddings()
    embed_tokens = model.lm.get_input_embeddings()
    stops = torch.tensor(sorted(stop_token_ids(model)), device=device)
    pad = model.tokenizer.pad_token_id
    generator = None
    if do_sample and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)

    rows = ids.shape[0]
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    out: list[list[int]] = [[] for _ in range(rows)]
    step_embeds, step_positions, cache = embeds, positions, None
    for _ in range(max_new_tokens):
        if use_cache:
            result = decoder(inputs_embeds=step_embeds, attention_mask=mask,
                             position_ids=step_positions, past_key_values=cache, use_cache=True)
            cache = result.past_key_values
        else:
            result = decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                             use_cache=False)
        logits = head(result.last_hidden_state[:, -1]).float()  # [B, V]
        if allowed_tokens is not None:
            logits = _restrict(logits, allowed_tokens, out, done)
        tokens = pick_tokens(logits, do_sample, temperature, top_p, generator)
        tokens = torch.where(done, torch.full_like(tokens, pad), tokens)
        finished_now = torch.isin(tokens, stops) & ~done
        for row in (~done & ~finished_now).nonzero().flatten().tolist():
            out[row].append(int(tokens[row]))
        done |= finished_now
        if bool(done.all()):
            break
        new_embeds = embed_tokens(tokens)[:, None]  # [B, 1, D]
        new_positions = positions[:, -1:] + 1
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = torch.cat([positions, new_positions], dim=1)
        embeds = embeds if use_cache else torch.cat([embeds, new_embeds], dim=1)
        step_embeds, step_positions = new_embeds, new_positions
    return out
