"""An OpenAI-compatible chat endpoint (vLLM, our own ``ecomvlm serve``, a hosted API) as an
eval adapter: ``openai:http://HOST:PORT/v1?model=M[&concurrency=4][&timeout=60]``.

Images go as base64 JPEG data URLs in the place of their ``<image>`` placeholder; greedy
(temperature 0). Requests run ``concurrency`` at a time and keep the samples' order. A failed
request becomes an empty reply with its error recorded (scored as a miss); only a run in
which every request fails stops with an error. The API key, if the server wants one, comes
from $OPENAI_API_KEY, never from the spec. No perplexity: chat endpoints do not score text.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ecomvlm.samples import IMAGE_TOKEN

from .adapters import ModelAdapter, Progress, slug
from .base import EvalSample, Generation


def openai_content(sample: EvalSample) -> list[dict[str, Any]]:
    from ecomvlm.curate.perceive_remote import data_url

    from .crops import open_ref

    parts: list[dict[str, Any]] = []
    pieces = sample.prompt.split(IMAGE_TOKEN)
    for i, piece in enumerate(pieces):
        if i > 0:
            parts.append({"type": "image_url",
                          "image_url": {"url": data_url(open_ref(sample.images[i - 1]))}})
            piece = piece.removeprefix("\n")
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


class OpenAIAdapter(ModelAdapter):
    def __init__(self, url: str, timeout: float = 60.0, concurrency: int = 4):
        from openai import OpenAI

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"openai adapter needs an http(s) base URL, got {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.base_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.client = OpenAI(base_url=self.base_url,
                             api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
                             timeout=float(query.get("timeout", timeout)), max_retries=1)
        self.model = query.get("model") or self.client.models.list().data[0].id
        self.concurrency = max(1, int(query.get("concurrency", concurrency)))
        self.spec = f"openai:{url}"
        self.name = "openai-" + slug(self.model)

    def _ask(self, sample: EvalSample) -> Generation:
        began = time.perf_counter()
        try:
            reply = self.client.chat.completions.create(
                model=self.model, temperature=0.0, max_tokens=sample.max_new_tokens,
                messages=[{"role": "user", "content": openai_content(sample)}])
            choice = reply.choices[0] if reply.choices else None
            text = (choice.message.content or "") if choice is not None else ""
            return Generation(text.strip(), round(time.perf_counter() - began, 5), None)
        except Exception as error:  # noqa: BLE001 - one bad request must not sink the run
            return Generation("", round(time.perf_counter() - began, 5), None,
                              error=f"{type(error).__name__}: {str(error)[:300]}")

    def generate(self, samples: list[EvalSample], batch_size: int = 16,
                 progress: Progress = None) -> list[Generation]:
        out: list[Generation] = []
        with ThreadPoolExecutor(self.concurrency) as pool:
            for gen in pool.map(self._ask, samples):  # map keeps the samples' order
                out.append(gen)
                if progress:
                    progress(1)
        if samples and all(g.error for g in out):
            raise RuntimeError(f"every request to {self.base_url} failed; first error: "
                               f"{out[0].error}")
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": "openai", "base_url": self.base_url,
                "model": self.model, "concurrency": self.concurrency}
