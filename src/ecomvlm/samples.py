"""The canonical training sample: one JSON object per line, shared by curate, train and eval.

    {"id": "...", "images": ["images/ab/ab12....jpg", ...],
     "messages": [{"role": "user", "content": "<image>\\nWhat colour is it?"},
                  {"role": "assistant", "content": "Red"}],
     "meta": {"stage": 3, "task": "aspect", "category": "Mug", ...}}

Each image is one ``<image>`` placeholder in the text; the number of placeholders equals
``len(images)``, checked on write and on read. Image paths are relative to the file's folder
(or absolute). Only assistant turns carry loss.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IMAGE_TOKEN = "<image>"
Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    images: list[str] = Field(default_factory=list)
    messages: list[Message] = Field(min_length=2)
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Sample:
        placeholders = sum(m.content.count(IMAGE_TOKEN) for m in self.messages)
        if placeholders != len(self.images):
            raise ValueError(f"sample {self.id!r}: {placeholders} {IMAGE_TOKEN} placeholders "
                             f"but {len(self.images)} images")
        if any(IMAGE_TOKEN in m.content for m in self.messages if m.role == "assistant"):
            raise ValueError(f"sample {self.id!r}: images belong in user turns, not answers")
        if self.messages[-1].role != "assistant":
            raise ValueError(f"sample {self.id!r}: the last turn must be the assistant's")
        if not any(m.role == "assistant" and m.content.strip() for m in self.messages):
            raise ValueError(f"sample {self.id!r}: no assistant text to learn from")
        return self

    @classmethod
    def chat(cls, id: str, images: list[str], prompt: str, answer: str, **meta: Any) -> Sample:
        """A one-turn sample: images (as placeholders) then the prompt, then the answer."""
        content = "".join(f"{IMAGE_TOKEN}\n" for _ in images) + prompt
        return cls(id=id, images=list(images), meta=meta,
                   messages=[Message(role="user", content=content),
                             Message(role="assistant", content=answer)])


def dump_sample(sample: Sample) -> str:
    return json.dumps(sample.model_dump(), ensure_ascii=False) + "\n"


def write_samples(samples: Iterable[Sample], path: str | os.PathLike) -> int:
    """Write samples as JSONL atomically (temp file, then rename); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for sample in samples:
            f.write(dump_sample(sample))
            count += 1
    os.replace(tmp, path)
    return count


def read_samples(path: str | os.PathLike) -> Iterator[Sample]:
    """Stream samples; a malformed line raises an error naming the file and line."""
    with Path(path).open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Sample.model_validate_json(line)
            except ValueError as error:
                raise ValueError(f"{path}:{line_no}: not a valid sample: {error}") from None
