"""Projectors: vision-tower tokens -> language-model embeddings, registered by name.

- ``mlp2x_gelu``: Linear -> GELU -> Linear per token (LLaVA-1.5); keeps every token.
- ``pool``: average-pool the square token grid to ``k x k`` first, then the same MLP; fewer
  image tokens means shorter sequences, which is what costs time on a CPU.
- ``resampler``: ``k`` learned queries cross-attend to the tokens (one block, as in BLIP-2's
  Q-Former and Flamingo's Perceiver resampler, much smaller), then a linear map.

Every builder takes ``(vision_hidden, lm_hidden, vision_tokens, **options)`` and the module
states ``num_tokens``: how many embeddings one image becomes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..registry import PROJECTOR


class MLP2xGelu(nn.Module):
    """[N, t, d_vision] -> [N, t, d_lm]; layer names match transformers' Llava projector."""

    def __init__(self, vision_hidden: int, lm_hidden: int, vision_tokens: int):
        super().__init__()
        self.linear_1 = nn.Linear(vision_hidden, lm_hidden)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(lm_hidden, lm_hidden)
        self.num_tokens = vision_tokens

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class PooledMLP(nn.Module):
    """Average-pool the g x g grid to k x k (k <= g), then MLP2xGelu: [N, g*g, d] -> [N, k*k, D]."""

    def __init__(self, vision_hidden: int, lm_hidden: int, vision_tokens: int, grid: int = 3):
        super().__init__()
        side = math.isqrt(vision_tokens)
        if side * side != vision_tokens:
            raise ValueError(f"pool projector needs a square token grid, got {vision_tokens} tokens")
        if not 1 <= grid <= side:
            raise ValueError(f"pool grid {grid} must be between 1 and the tower's grid {side}")
        self.side, self.grid = side, grid
        self.mlp = MLP2xGelu(vision_hidden, lm_hidden, grid * grid)
        self.num_tokens = grid * grid

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, _, d = features.shape
        grid = features.transpose(1, 2).reshape(n, d, self.side, self.side)  # [N, d, g, g]
        pooled = F.adaptive_avg_pool2d(grid, self.grid)  # [N, d, k, k]
        return self.mlp(pooled.flatten(2).transpose(1, 2))  # [N, k*k, D]


class Resampler(nn.Module):
    """k learned queries attend over the image tokens: [N, t, d] -> [N, k, D]."""

    def __init__(self, vision_hidden: int, lm_hidden: int, vision_tokens: int,
                 queries: int = 16, width: int = 256, heads: int = 4):
        super().__init__()
        self.num_tokens = queries
        self.queries = nn.Parameter(torch.randn(queries, width) * width ** -0.5)
        self.kv_proj = nn.Linear(vision_hidden, width)
        self.pos = nn.Parameter(torch.zeros(vision_tokens, width))  # where each token sat
        self.norm_q, self.norm_kv = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))
        self.out = nn.Linear(width, lm_hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(self.kv_proj(features) + self.pos)  # [N, t, w]
        q = self.norm_q(self.queries).expand(features.shape[0], -1, -1)  # [N, k, w]
        x = q + self.attn(q, kv, kv, need_weights=False)[0]
        x = x + self.ffn(x)
        return self.out(x)  # [N, k, D]


# specs.py registers these by name, so importing the registry does not import torch
PROJECTORS = {"mlp2x_gelu": MLP2xGelu, "pool": PooledMLP, "resampler": Resampler}


def build_projector(spec: str, vision_hidden: int, lm_hidden: int, vision_tokens: int,
                    **options) -> nn.Module:
    return PROJECTOR.build(spec, vision_hidden=vision_hidden, lm_hidden=lm_hidden,
                           vision_tokens=vision_tokens, **options)
