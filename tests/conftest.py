"""Shared test set-up: strictly offline, plus session-wide fixtures for expensive backbones."""

from __future__ import annotations

import os

# before transformers is imported anywhere: never reach for the hub
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def coffee_image() -> Image.Image:
    """A cup of espresso on a saucer (skimage sample photo, 600x400)."""
    import skimage.data

    return Image.fromarray(skimage.data.coffee()).convert("RGB")


@pytest.fixture(scope="session")
def smollm2():
    """The packaged SmolLM2 chat model from the real cache ($ECOMVLM_CACHE or ~/.cache/ecomvlm).

    The first run on a machine converts the GGUF (~25 s); later runs read the cache (<1 s).
    """
    from ecomvlm.model import load_lm

    return load_lm("packaged:smollm2-135m-instruct")


@pytest.fixture
def openai_server(tmp_path):
    """Start tests/openai_server.py as a real process on loopback.

    Call it with the replies (a list of strings); it returns (base_url, log_path). The base URL
    ends in /v1, as OpenAI clients expect. The process is stopped at teardown.
    """
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path

    procs = []

    def start(replies: list[str]) -> tuple[str, Path]:
        n = len(procs)
        replies_path, log = tmp_path / f"replies{n}.json", tmp_path / f"requests{n}.jsonl"
        port_file = tmp_path / f"port{n}"
        replies_path.write_text(json.dumps(replies))
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("openai_server.py")),
                                 "--replies", str(replies_path), "--log", str(log),
                                 "--port-file", str(port_file)])
        procs.append(proc)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("test OpenAI server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port_file.read_text()}/v1", log

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
