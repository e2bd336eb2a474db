"""``ecomvlm serve``: load a model, start the engine, run the API under uvicorn.

Binds 127.0.0.1 unless told otherwise: the API is meant to sit behind a gateway, and with
no ``--api-key`` anyone who can reach the port can use it. The socket is bound here (port 0
picks a free one) and the real port is printed and, with ``port_file``, written atomically,
so a test or a supervisor can find the server without racing for a port.

    python -m ecomvlm.serve.server --model runs/demo/stage3 --port 8000
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

import torch

from .api import JSON_OBJECT, ApiConfig, build_app
from .engine import Engine, load_model

log = logging.getLogger(__name__)
API_KEY_ENV = "ECOMVLM_API_KEY"  # keeps the key out of the process list


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000,
          api_key: str | None = None, allow_url_fetch: bool = False, *,
          model_name: str | None = None, max_batch: int = 8, max_queue: int = 64,
          batch_wait_ms: float = 5.0, max_tokens: int = 512, timeout_s: float = 60.0,
          max_body_bytes: int = 20 * 2**20, max_images: int = 8, dtype: str = "bfloat16",
          threads: int | None = None, port_file: str | Path | None = None,
          log_level: str = "info") -> None:
    """Serve ``model`` (a saved model folder, or ``default``) until interrupted."""
    import uvicorn

    if threads:
        torch.set_num_threads(threads)
    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        log.warning("serving on %s without an API key: anyone who reaches the port can use it",
                    host)
    vlm = load_model(model, getattr(torch, dtype))
    name = model_name or ("ecomvlm-default" if str(model) == "default" else Path(model).name)
    engine = Engine(vlm, max_batch=max_batch, max_queue=max_queue, batch_wait_ms=batch_wait_ms,
                    max_tokens_cap=max_tokens)
    config = ApiConfig(model_name=name, api_key=api_key, allow_url_fetch=allow_url_fetch,
                       max_body_bytes=max_body_bytes, max_images=max_images,
                       timeout_s=timeout_s)
    app = build_app(engine, config)
    service = getattr(app, "app", app).state.service
    # the generic JSON-object grammar takes seconds to index over a large vocabulary: build it
    # off the request path
    import threading

    threading.Thread(target=service.compiler.compile, args=(JSON_OBJECT,), daemon=True).start()

    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    print(f"ecomvlm serve: model {name!r} on http://{host}:{bound}/v1", flush=True)
    if port_file is not None:
        tmp = Path(port_file).with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)
    # uvicorn's own cap on concurrent connections: past it, 503 before any work is done
    limit = max_queue + max_batch + 64
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, limit_concurrency=limit,
                                           timeout_keep_alive=15))
    try:
        server.run(sockets=[sock])
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ecomvlm.serve.server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help=f"or ${API_KEY_ENV}")
    p.add_argument("--allow-url-fetch", action="store_true")
    p.add_argument("--model-name", default=None)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--max-body-mb", type=float, default=20.0)
    p.add_argument("--max-images", type=int, default=8)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--port-file", default=None)
    p.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper())
    serve(a.model, a.host, a.port, a.api_key, a.allow_url_fetch, model_name=a.model_name,
          max_batch=a.max_batch, max_queue=a.max_queue, batch_wait_ms=a.batch_wait_ms,
          max_tokens=a.max_tokens, timeout_s=a.timeout,
          max_body_bytes=int(a.max_body_mb * 2**20), max_images=a.max_images, dtype=a.dtype,
          threads=a.threads, port_file=a.port_file, log_level=a.log_level)


if __name__ == "__main__":
    sys.exit(main())
