"""The OpenAI-compatible HTTP API (Starlette): ``GET /health``, ``GET /v1/models``,
``POST /v1/chat/completions`` (text and image parts, ``response_format`` json_schema /
json_object through constrained decoding, ``stream`` as server-sent events).

Guards, in the order a request meets them: the bearer token (every route but /health; a
constant-time compare), the body size (413, checked against Content-Length and again while
reading), request validation and the image count (400), the engine's bounded queue (429 with
Retry-After) and the per-request deadline (504; the engine drops the row at its next step).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ecomvlm.images import ImageError

from .constrained import Constraint, ConstraintCompiler, SchemaError
from .engine import Completion, Engine, EngineClosed, PromptTooLong, QueueFull, Request
from .protocol import (
    ApiError,
    ChatRequest,
    chunk_body,
    completion_body,
    completion_id,
    decode_bytes,
    decode_data_url,
    engine_messages,
    image_refs,
    models_body,
    parse_request,
    usage,
)

JSON_OBJECT = {"type": "object"}


@dataclass
class ApiConfig:
    model_name: str = "ecomvlm"
    api_key: str | None = None
    allow_url_fetch: bool = False
    max_body_bytes: int = 20 * 2**20
    max_images: int = 8
    timeout_s: float = 60.0


def _error(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class BearerAuth:
    """ASGI middleware: 401 on every HTTP route but /health without ``Bearer <key>``."""

    def __init__(self, app: Any, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                response = _error(ApiError(401, "invalid or missing API key",
                                           type="authentication_error", code="invalid_api_key"))
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _read_body(request: HttpRequest, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body over {limit} bytes", code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # chunked uploads carry no Content-Length
            raise ApiError(413, f"request body over {limit} bytes", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


class ChatService:
    """Turns a chat request into an engine request and the engine's answer into OpenAI's."""

    def __init__(self, engine: Engine, config: ApiConfig):
        self.engine, self.config = engine, config
        self.compiler = ConstraintCompiler(engine.tokenizer)
        self.created = int(time.time())

    def _images(self, chat: ChatRequest) -> list[Any]:
        refs = image_refs(chat)
        if len(refs) > self.config.max_images:
            raise ApiError(400, f"{len(refs)} images; at most {self.config.max_images} per "
                                "request", param="messages", code="too_many_images")
        images = []
        for i, url in enumerate(refs):
            if url.startswith("data:"):
                images.append(decode_data_url(url, i))
            elif url.startswith(("http://", "https://")):
                if not self.config.allow_url_fetch:
                    raise ApiError(400, f"image {i}: http(s) image URLs are disabled on this "
                                        "server (--allow-url-fetch); send a data: URL",
                                   param="messages", code="url_fetch_disabled")
                from ecomvlm.fetch import fetch_url

                try:
                    images.append(decode_bytes(fetch_url(url), i))
                except ImageError as error:  # blocked address, timeout, too large
                    raise ApiError(400, f"image {i}: {error.detail}", param="messages",
                                   code=error.reason) from None
            else:
                raise ApiError(400, f"image {i}: only data: and http(s) URLs are accepted",
                               param="messages")
        return images

    def _constraint(self, chat: ChatRequest) -> Constraint | None:
        fmt = chat.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_schema" and fmt.json_schema is None:
            raise ApiError(400, "response_format json_schema needs a json_schema",
                           param="response_format")
        schema = JSON_OBJECT if fmt.type == "json_object" else fmt.json_schema.json_schema
        try:
            return self.compiler.compile(schema)
        except SchemaError as error:
            raise ApiError(400, str(error), param="response_format") from None

    def build(self, chat: ChatRequest, on_text: Any = None) -> Request:
        """Validated chat -> engine request (blocking: decodes images, compiles schemas)."""
        if chat.model != self.config.model_name:
            raise ApiError(404, f"model {chat.model!r} is not served here; this server has "
                                f"{self.config.model_name!r}", code="model_not_found")
        images = self._images(chat)
        constraint = self._constraint(chat)
        limit = chat.token_limit or self.engine.max_tokens_cap
        return Request(engine_messages(chat), images, max_tokens=limit,
                       temperature=chat.temperature, top_p=chat.top_p, seed=chat.seed,
                       stop=chat.stop or (), constraint=constraint, on_text=on_text)

    def submit(self, request: Request):
        try:
            return self.engine.submit(request, timeout=self.config.timeout_s)
        except QueueFull as error:
            raise ApiError(429, str(error), type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(error.retry_after)}) from None
        except PromptTooLong as error:
            raise ApiError(400, str(error), param="messages",
                           code="context_length_exceeded") from None
        except EngineClosed as error:
            raise ApiError(503, str(error), type="server_error") from None
        except ValueError as error:  # the processor's placeholder/template complaints
            raise ApiError(400, str(error), param="messages") from None

    async def wait(self, job: Any) -> Completion:
        timeout = ApiError(504, f"no answer within {self.config.timeout_s:g} s",
                           type="timeout_error", code="timeout")
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(job.future),
                                            self.config.timeout_s)
        except TimeoutError:
            job.cancel()
            raise timeout from None
        if result.finish_reason == "cancelled":  # the engine saw the deadline first
            raise timeout
        return result


def build_app(engine: Engine, config: ApiConfig) -> Any:
    service = ChatService(engine, config)

    async def health(_: HttpRequest) -> Response:
        return JSONResponse({"status": "ok", "model": config.model_name,
                             "queued": len(engine._pending), "batches": engine.batches})

    async def models(_: HttpRequest) -> Response:
        return JSONResponse(models_body(config.model_name, service.created))

    async def chat_completions(http: HttpRequest) -> Response:
        try:
            body = await _read_body(http, config.max_body_bytes)
            try:
                data = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ApiError(400, "the body is not valid JSON") from None
            chat = parse_request(data)
            if chat.stream:
                return await _stream(service, chat)
            request = await run_in_threadpool(service.build, chat)
            job = await run_in_threadpool(service.submit, request)
            result = await service.wait(job)
            if result.finish_reason == "error":
                raise ApiError(500, "generation failed under the response_format constraint",
                               type="server_error")
        except ApiError as error:
            return _error(error)
        return JSONResponse(completion_body(completion_id(), config.model_name, result.text,
                                            result.finish_reason, result.prompt_tokens,
                                            len(result.token_ids)))

    async def not_found(http: HttpRequest, _exc: Exception) -> Response:
        return _error(ApiError(404, f"no route {http.url.path}", code="not_found"))

    app = Starlette(routes=[Route("/health", health, methods=["GET"]),
                            Route("/v1/models", models, methods=["GET"]),
                            Route("/v1/chat/completions", chat_completions, methods=["POST"])],
                    exception_handlers={404: not_found})
    app.state.engine, app.state.service = engine, service
    return BearerAuth(app, config.api_key) if config.api_key else app


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _stream(service: ChatService, chat: ChatRequest) -> Response:
    """Submit now (so 400/429 are real statuses), then stream the pieces as SSE chunks."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str] = asyncio.Queue()

    def on_text(piece: str) -> None:  # runs on the engine's thread
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    request = await run_in_threadpool(service.build, chat, on_text)
    job = await run_in_threadpool(service.submit, request)
    cid, created, model = completion_id(), int(time.time()), service.config.model_name
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)

    async def events() -> AsyncIterator[bytes]:
        done = asyncio.ensure_future(service.wait(job))
        try:
            yield _sse(chunk_body(cid, model, created, {"role": "assistant", "content": ""}))
            while True:
                getter = asyncio.ensure_future(pieces.get())
                await asyncio.wait({getter, done}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield _sse(chunk_body(cid, model, created, {"content": getter.result()}))
                    continue
                getter.cancel()
                break
            while not pieces.empty():  # pieces queued before the result was seen
                yield _sse(chunk_body(cid, model, created, {"content": pieces.get_nowait()}))
            try:
                result = done.result()
            except ApiError as error:  # the deadline passed mid-stream: no status left to set
                yield _sse(error.body())
                yield b"data: [DONE]\n\n"
                return
            yield _sse(chunk_body(cid, model, created, {}, result.finish_reason))
            if include_usage:
                yield _sse({**chunk_body(cid, model, created, {}), "choices": [],
                            "usage": usage(result.prompt_tokens, len(result.token_ids))})
            yield b"data: [DONE]\n\n"
        finally:
            job.cancel()  # a client that hung up frees its batch row
            done.cancel()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
