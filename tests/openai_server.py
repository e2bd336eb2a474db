"""A small OpenAI-compatible chat-completions server for tests, run as a real process.

It answers every POST /v1/chat/completions with the next reply from a JSON file (a list of
strings, used in turn and then repeated from the last), and appends each request body to a
JSONL log, so a test can check exactly what our client sent. GET /v1/models lists one model.

    python tests/openai_server.py --replies replies.json --log requests.jsonl --port-file port

Use ``openai_server`` from conftest-style fixtures: start it, read the port, stop it.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODEL = "test-vlm"


def make_handler(replies: list[str], log: Path):
    lock = threading.Lock()
    state = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [
                    {"id": MODEL, "object": "model", "created": 0, "owned_by": "tests"}]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": "not found"}})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with lock:
                reply = replies[min(state["n"], len(replies) - 1)]
                state["n"] += 1
                with log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(body) + "\n")
            self._send(200, {
                "id": f"chatcmpl-{state['n']}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model", MODEL),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            })

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replies", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    replies = json.loads(args.replies.read_text())
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(replies, args.log))
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)  # the port appears whole, or not at all
    server.serve_forever()


if __name__ == "__main__":
    main()
