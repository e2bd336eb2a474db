"""The OpenAI chat-completions wire format: request validation, image parts, response bodies.

Only what the server honours is typed; other OpenAI fields (``frequency_penalty``, ``user``,
...) are accepted and ignored, as most OpenAI-compatible servers do, except those whose
silent dropping would change the answer's meaning (``n`` > 1, tools), which are refused.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ecomvlm.images import ImageError, decode_image
from ecomvlm.samples import IMAGE_TOKEN

MAX_STOP = 4


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = "response"
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    n: int = Field(1, ge=1, le=1)
    tools: list[Any] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > MAX_STOP or not all(stops)):
            raise ValueError(f"stop takes 1 to {MAX_STOP} non-empty strings")
        return stops

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError("tools are not supported by this server")
        return value

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def parse_request(data: Any) -> ChatRequest:
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise ApiError(400, f"{param}: {first['msg']}" if param else first["msg"],
                       param=param) from None


def image_refs(request: ChatRequest) -> list[str]:
    """Every image URL in the conversation, in order of appearance."""
    refs = []
    for message in request.messages:
        if isinstance(message.content, list):
            refs += [p.image_url.url for p in message.content
                     if p.type == "image_url" and p.image_url is not None]
    return refs


def engine_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Messages for the processor: text as text, each image part as an image slot."""
    out = []
    for i, message in enumerate(request.messages):
        role = "system" if message.role == "developer" else message.role
        parts = ([ContentPart(type="text", text=message.content)]
                 if isinstance(message.content, str) else message.content or [])
        content: list[dict[str, Any]] = []
        for part in parts:
            if part.type == "image_url":
                if part.image_url is None:
                    raise ApiError(400, "an image_url part needs an image_url",
                                   param=f"messages.{i}.content")
                content.append({"type": "image"})
            else:
                text = part.text or ""
                if IMAGE_TOKEN in text:
                    raise ApiError(400, f"text may not contain {IMAGE_TOKEN}; send images as "
                                        "image_url parts", param=f"messages.{i}.content")
                content.append({"type": "text", "text": text})
        out.append({"role": role, "content": content})
    return out


def decode_data_url(url: str, index: int) -> Any:
    """``data:image/...;base64,...`` -> a decoded RGB image (hardened decoder)."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ApiError(400, f"image {index}: data URLs must be data:image/<type>;base64,...",
                       param="messages")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"image {index}: invalid base64", param="messages") from None
    return decode_bytes(data, index)


def decode_bytes(data: bytes, index: int) -> Any:
    try:
        return decode_image(data, f"image {index}")
    except ImageError as error:
        raise ApiError(400, f"image {index}: {error.detail}", param="messages",
                       code=error.reason) from None


# ---------------------------------------------------------------- responses
def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def completion_body(cid: str, model: str, text: str, finish: str, prompt: int,
                    completion: int) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish, "logprobs": None}],
            "usage": usage(prompt, completion)}


def chunk_body(cid: str, model: str, created: int, delta: dict[str, Any],
               finish: str | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                         "logprobs": None}]}


def models_body(model: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": created,
                                        "owned_by": "ecomvlm"}]}
