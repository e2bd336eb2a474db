"""The OpenAI-compatible server as a real process on loopback, driven by the official
``openai`` client: text, an image data URL, json_schema, streaming, the API key, the body and
image limits, 16 concurrent requests answered as if each ran alone, 429 and 504."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import torch
from PIL import Image

from ecomvlm.images import decode_image
from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig
from ecomvlm.serve.engine import Engine, Request

KEY = "sk-test-serve"
NAME = "tiny-vlm"


def _start(tmp: Path, tag: str, model: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    port_file = tmp / f"{tag}.port"
    log = (tmp / f"{tag}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "ecomvlm.serve.server", "--model", str(model),
                             "--port", "0", "--port-file", str(port_file), "--threads", "1",
                             "--dtype", "float32", "--model-name", NAME, "--log-level",
                             "warning", *args], stdout=log, stderr=subprocess.STDOUT)
    return proc, port_file


def _wait(proc: subprocess.Popen, port_file: Path, tmp: Path, tag: str) -> str:
    deadline = time.monotonic() + 50
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server {tag} did not start:\n{(tmp / f'{tag}.log').read_text()}")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port_file.read_text()}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama")).save_pretrained(
        tmp / "model")
    main = _start(tmp, "main", tmp / "model", "--api-key", KEY, "--max-body-mb", "0.25",
                  "--max-images", "2", "--max-tokens", "64", "--batch-wait-ms", "20")
    # one row at a time, one waiting, half a second each: 429s and 504s on demand
    small = _start(tmp, "small", tmp / "model", "--max-batch", "1", "--max-queue", "1",
                   "--batch-wait-ms", "0", "--timeout", "0.5", "--max-tokens", "2000")
    try:
        urls = (_wait(*main, tmp, "main"), _wait(*small, tmp, "small"))
        yield {"main": urls[0], "small": urls[1], "model": tmp / "model"}
    finally:
        for proc, _ in (main, small):
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def reference(servers):
    """The engine in this process, answering each request alone (greedy, fp32, 1 thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = Engine(VisionLanguageModel.from_pretrained(servers["model"]), max_tokens_cap=64)

    def answer(messages, images=(), max_tokens=16):
        return engine.run_batch([engine.prepare(Request(messages, list(images),
                                                        max_tokens=max_tokens))])[0]
    yield answer
    torch.set_num_threads(threads)


def _client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def _data_url(colour) -> tuple[str, bytes]:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), buf.getvalue()


def _ask(client, text: str, **kw):
    return client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": text}],
                                          **{"max_tokens": 16, "temperature": 0, **kw})


def test_models_text_and_image(servers, reference):
    client = _client(servers["main"])
    assert [m.id for m in client.models.list().data] == [NAME]
    reply = _ask(client, "Describe the item.")
    expected = reference([{"role": "user", "content": "Describe the item."}])
    assert reply.choices[0].message.content == expected.text
    assert reply.usage.completion_tokens == len(expected.token_ids)
    assert reply.choices[0].finish_reason == "length"

    url, png = _data_url((200, 30, 30))
    content = [{"type": "image_url", "image_url": {"url": url}},
               {"type": "text", "text": "What colour is it?"}]
    reply = client.chat.completions.create(model=NAME, messages=[{"role": "user",
                                                                  "content": content}],
                                           max_tokens=16, temperature=0)
    expected = reference([{"role": "user", "content": "<image>What colour is it?"}],
                         [decode_image(png)])
    assert reply.choices[0].message.content == expected.text
    assert reply.usage.prompt_tokens == expected.prompt_tokens  # image tokens included


def test_json_schema_is_always_honoured(servers):
    client = _client(servers["main"])
    schema = {"type": "object", "additionalProperties": False, "required": ["colour", "label"],
              "properties": {"colour": {"enum": ["red", "green", "blue"]},
                             "label": {"anyOf": [{"type": "string", "maxLength": 8},
                                                 {"type": "null"}]}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "item", "schema": schema,
                                                  "strict": True}}
    for temperature in (0, 1.5):
        reply = _ask(client, "Give JSON.", max_tokens=100, temperature=temperature,
                     response_format=fmt)
        value = json.loads(reply.choices[0].message.content)
        assert list(value) == ["colour", "label"] and value["colour"] in ("red", "green", "blue")
        assert reply.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError, match="unsupported JSON schema"):
        _ask(client, "x", response_format={"type": "json_schema", "json_schema": {
            "name": "bad", "schema": {"type": "object", "properties": {"a": {"$ref": "#/no"}}}}})


def test_streaming_matches_the_plain_answer(servers):
    client = _client(servers["main"])
    plain = _ask(client, "Stream this.", max_tokens=24).choices[0].message.content
    chunks = list(_ask(client, "Stream this.", max_tokens=24, stream=True,
                       stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 24


def test_api_key_and_limits(servers):
    with pytest.raises(openai.AuthenticationError):
        _client(servers["main"], "sk-wrong").models.list()
    with pytest.raises(openai.AuthenticationError):
        _ask(_client(servers["main"], "sk-test-serv"), "hi")
    with urllib.request.urlopen(f"{servers['main']}/health", timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"  # /health needs no key
    client = _client(servers["main"])
    with pytest.raises(openai.APIStatusError) as big:
        _ask(client, "x" * 300_000)
    assert big.value.status_code == 413
    url, _ = _data_url((0, 0, 255))
    three = [{"type": "image_url", "image_url": {"url": url}}] * 3
    with pytest.raises(openai.BadRequestError, match="at most 2"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": three}])
    remote = [{"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/a.png"}}]
    with pytest.raises(openai.BadRequestError, match="allow-url-fetch"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": remote}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user",
                                                                  "content": "hi"}])


def test_sixteen_concurrent_requests_each_get_their_solo_answer(servers, reference):
    client = _client(servers["main"])
    jobs = []  # (messages for the server, messages for the engine, images, max_tokens)
    for i in range(16):
        text = f"Request {i}: " + "tell me more " * i
        budget = 6 + i % 8  # rows of one batch stop at different lengths
        if i % 4 == 0:
            url, png = _data_url((15 * i, 200 - 10 * i, 90))
            parts = [{"type": "image_url", "image_url": {"url": url}},
                     {"type": "text", "text": text}]
            jobs.append((parts, "<image>" + text, [decode_image(png)], budget))
        else:
            jobs.append((text, text, [], budget))

    def ask(job):
        reply = client.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": job[0]}], max_tokens=job[3],
            temperature=0)
        return reply.choices[0].message.content

    with urllib.request.urlopen(f"{servers['main']}/health", timeout=10) as response:
        before = json.loads(response.read())["batches"]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(ask, jobs))
    with urllib.request.urlopen(f"{servers['main']}/health", timeout=10) as response:
        batches = json.loads(response.read())["batches"] - before
    expected = [reference([{"role": "user", "content": job[1]}], job[2], job[3]).text
                for job in jobs]
    assert replies == expected
    assert len(set(replies)) > 8
    assert batches < 16  # requests shared batches


def test_full_queue_is_429_with_retry_after_and_slow_requests_504(servers):
    client = _client(servers["small"], "unused")

    # a schema that admits one 2002-byte document: no early stop, ever
    long = {"type": "json_schema", "json_schema": {"name": "long", "schema": {"enum": ["ab" * 1000]}}}

    def attempt(i: int):
        try:
            _ask(client, f"long answer {i}", max_tokens=2000, response_format=long)
        except openai.APIStatusError as error:
            return error.status_code, error.response.headers.get("retry-after")
        return 200, None

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    codes = [code for code, _ in outcomes]
    assert 429 in codes and 504 in codes and 200 not in codes, outcomes
    assert all(int(after) >= 1 for code, after in outcomes if code == 429)
