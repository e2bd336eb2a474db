"""JSON-schema constrained decoding: extraction schemas from the taxonomy, the vocabulary as
bytes, and replies that are always valid JSON with exactly the asked keys, from a random
tiny model (which left alone writes garbage) and from the real SmolLM2."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from ecomvlm.catalog.taxonomy import CATEGORIES, COLOURS, PATTERNS
from ecomvlm.model.tiny import byte_level_tokenizer
from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig
from ecomvlm.serve.constrained import (
    ConstraintCompiler,
    SchemaError,
    extraction_constraint,
    extraction_schema,
    token_bytes,
)
from ecomvlm.serve.engine import Engine, Request
from ecomvlm.serve.extract import extraction_prompt


def _check_reply(text: str, category: str, max_chars: int = 48) -> dict:
    reply = json.loads(text)
    cat = CATEGORIES[category]
    assert list(reply) == cat.keys  # exactly the keys, in taxonomy order
    for key, value in reply.items():
        if value is None or key == "Brand":
            assert value is None or (isinstance(value, str) and len(value) <= max_chars)
        else:
            assert value in cat.aspect(key).values, (key, value)
    return reply


def test_extraction_schema_is_closed_where_the_taxonomy_is():
    schema, max_bytes = extraction_schema("T-Shirt")
    assert schema["required"] == CATEGORIES["T-Shirt"].keys
    assert schema["additionalProperties"] is False
    colour = schema["properties"]["Color"]["anyOf"]
    assert colour == [{"enum": list(COLOURS)}, {"type": "null"}]
    assert schema["properties"]["Pattern"]["anyOf"][0]["enum"] == PATTERNS
    assert schema["properties"]["Brand"]["anyOf"][0] == {"type": "string", "maxLength": 48}
    # the bound really is an upper bound: the longest document fits in it
    longest = {k: max(CATEGORIES["T-Shirt"].aspect(k).values, key=len) for k in schema["required"]}
    longest["Brand"] = "\u20ac" * 48
    assert len(json.dumps(longest, ensure_ascii=False, separators=(",", ":")).encode()) <= max_bytes

    custom, _ = extraction_schema("Mug", keys=["Color", "Handle"])
    assert custom["properties"]["Handle"]["anyOf"][0]["type"] == "string"
    with pytest.raises(KeyError, match="unknown category"):
        extraction_schema("Spaceship")
    with pytest.raises(ValueError, match="distinct"):
        extraction_schema("Mug", keys=["Color", "Color"])


def test_byte_level_vocabulary_covers_every_byte_and_leaves_out_special_tokens():
    tok = byte_level_tokenizer()
    table = token_bytes(tok)
    assert {bytes([b]) for b in range(256)} <= set(table)
    ids = {i for group in table.values() for i in group}
    assert not ids & set(tok.all_special_ids)
    assert tok.convert_tokens_to_ids("<image>") not in ids
    _check_round_trip(tok, table)


def _check_round_trip(tok, table: dict[bytes, list[int]]) -> None:
    """Token bytes joined up give back the text's UTF-8, multi-byte characters included."""
    by_id = {i: data for data, ids in table.items() for i in ids}
    for text in ("Colour: Navy", "Größe 10€ ✓ naïve", '{"Brand":"Zephyrine"}'):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert b"".join(by_id[i] for i in ids) == text.encode()


def test_unsupported_schema_is_a_clear_error():
    compiler = ConstraintCompiler(byte_level_tokenizer())
    with pytest.raises(SchemaError):
        compiler.compile({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}})
    with pytest.raises(SchemaError, match="chars"):
        compiler.compile({"enum": ["x" * 20_000]})


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(3)
    model = VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama")).eval()
    yield Engine(model, max_batch=8)
    torch.set_num_threads(threads)


def _extraction_requests(engine: Engine, compiler: ConstraintCompiler, categories: list[str],
                         constrained: bool, **kw) -> list[Request]:
    requests = []
    for i, name in enumerate(categories):
        constraint = extraction_constraint(compiler, name) if constrained else None
        prompt = extraction_prompt(name, CATEGORIES[name].keys, f"listing {i}", 1, phrasing=i)
        image = Image.new("RGB", (40, 40), (20 * i, 120, 90))
        budget = extraction_constraint(compiler, name).max_tokens
        requests.append(Request([{"role": "user", "content": prompt}], [image],
                                max_tokens=budget, constraint=constraint, **kw))
    return requests


def test_random_tiny_model_always_returns_valid_json_with_exactly_the_keys(tiny):
    compiler = ConstraintCompiler(tiny.tokenizer)
    categories = ["T-Shirt", "Mug", "Power Bank", "Jeans", "Kettle", "Cap", "Toy", "Handbag"]
    free = tiny.run_batch([tiny.prepare(r) for r in
                           _extraction_requests(tiny, compiler, categories[:4], False)])
    assert not any(_is_json(r.text) for r in free)  # left alone it writes garbage
    brands = []
    for settings in ({}, {"temperature": 1.0, "seed": 1}, {"temperature": 2.0, "top_p": 1.0}):
        jobs = [tiny.prepare(r) for r in _extraction_requests(tiny, compiler, categories, True,
                                                              **settings)]
        for name, result in zip(categories, tiny.run_batch(jobs)):
            assert result.finish_reason == "stop"
            brands.append(_check_reply(result.text, name)["Brand"])
    assert any(b for b in brands)  # hot sampling reached the free-text branch too


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.slow
def test_smollm2_constrained_extraction_is_valid_json():
    torch.manual_seed(0)
    model = VisionLanguageModel.build().to_dtype(torch.bfloat16).eval()  # untrained projector
    _check_round_trip(model.tokenizer, token_bytes(model.tokenizer))
    engine = Engine(model, max_batch=4)
    compiler = ConstraintCompiler(model.tokenizer)
    categories = ["T-Shirt", "Power Bank", "Mug"]
    for settings in ({}, {"temperature": 1.0, "seed": 5}):
        requests = _extraction_requests(engine, compiler, categories, True, **settings)
        results = engine.run_batch([engine.prepare(r) for r in requests])
        for name, result in zip(categories, results):
            assert result.finish_reason == "stop"
            _check_reply(result.text, name)
