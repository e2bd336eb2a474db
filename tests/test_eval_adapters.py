"""Eval adapters: our checkpoints (shared-prefix decoding equals plain decoding), a tiny
random Llava through transformers' Auto classes, and a real OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from ecomvlm.eval.adapters import VLMAdapter, load_adapter, parse_base_spec
from ecomvlm.eval.adapters_hf import HFAdapter, content_parts
from ecomvlm.eval.base import EvalSample
from ecomvlm.eval.crops import open_ref
from ecomvlm.eval.engine import split_prefix
from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    paths = []
    for i, rgb in enumerate([(200, 30, 35), (40, 110, 210), (240, 205, 40)]):
        image = Image.new("RGB", (80, 60), rgb)
        image.paste((255, 255, 255), (10 + 10 * i, 10, 40, 40))
        path = root / f"{i}.png"
        image.save(path)
        paths.append(str(path))
    return paths


def questions(photos):
    """One listing's questions (shared photos), another listing, a crop, and plain text."""
    two = photos[:2]
    crop = {"path": photos[2], "box": [5, 5, 45, 45]}
    return [
        EvalSample("a:colour", "t", "<image>\n<image>\nWhat colour is it?", two, None, 10),
        EvalSample("a:brand", "t", "<image>\n<image>\nWhich brand made this item, please?",
                   two, None, 6),
        EvalSample("a:mc", "t", "<image>\n<image>\nPick one:\nA. Red\nB. Blue", two, None, 10),
        EvalSample("b:marks", "t", "<image>\n<image>\nAny marks?", [photos[2], crop], None, 10),
        EvalSample("general:1", "t", "What is 7 + 5?", [], None, 10),
        EvalSample("general:2", "t", "Name a colour.", [], None, 10),
    ]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    model = VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama"))
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny-vlm")


def test_checkpoint_adapter_matches_plain_generation(tiny_dir, photos):
    adapter = load_adapter(str(tiny_dir), dtype=torch.float32)
    assert isinstance(adapter, VLMAdapter) and adapter.tokens_per_image == 16
    assert adapter.name.endswith("ckpt0-tiny-vlm")  # named after its folder
    samples = questions(photos)
    # the prompt encoding is the processor's, without decoding any pixels
    enc = adapter.model.processor.encode_prompt(samples[0].messages,
                                                [open_ref(r) for r in samples[0].images])
    assert adapter.prompt_ids(samples[0]) == enc.input_ids.tolist()
    got = adapter.generate(samples, batch_size=4)
    reference = adapter.model.generate([s.messages for s in samples],
                                       [[open_ref(r) for r in s.images] for s in samples],
                                       max_new_tokens=10)
    assert [g.text for g in got] == [r[: len(g.text)] if s.max_new_tokens < 10 else r
                                     for g, r, s in zip(got, reference, samples)]
    assert [g.image_tokens for g in got] == [32, 32, 32, 32, 0, 0]
    assert all(g.latency_s > 0 for g in got)
    # every distinct photo or crop went through the tower once
    assert len(adapter._features) == 4
    again = adapter.generate(samples[::-1], batch_size=2)  # another batching, same answers
    assert [g.text for g in again] == [g.text for g in got][::-1]
    # a small feature cache evicts old photos and re-encodes them: same answers
    adapter.cache_images, adapter._features = 2, type(adapter._features)()
    assert [g.text for g in adapter.generate(samples, batch_size=1)] == [g.text for g in got]
    assert len(adapter._features) == 2


def test_shared_prefix_split():
    assert split_prefix([[1, 9, 9, 5, 6], [1, 9, 9, 5, 7, 8]], image_token_id=9) == 4
    assert split_prefix([[1, 2, 3]], image_token_id=9) == 2  # one row keeps one suffix token
    with pytest.raises(ValueError, match="image slots"):
        split_prefix([[1, 9, 2], [1, 3, 9]], image_token_id=9)


def test_base_specs_build_untrained_models(photos):
    assert parse_base_spec("vision=tiny:siglip, lm=tiny:llama") == \
        {"vision": "tiny:siglip", "lm": "tiny:llama"}
    assert parse_base_spec('{"lm": "tiny:qwen2"}') == {"lm": "tiny:qwen2"}
    a = load_adapter("base:vision=tiny:clip,lm=tiny:qwen2", seed=3)
    b = load_adapter("base:vision=tiny:clip,lm=tiny:qwen2", seed=3)
    assert a.name == "base-vision-tiny-clip-lm-tiny-qwen2"
    pa, pb = (next(x.model.projector.parameters()) for x in (a, b))
    assert torch.equal(pa, pb)  # the untrained projector is a function of the seed
    nll = a.text_nll(["A short sentence to score."])
    assert nll[0][1] > 0 and nll[0][0] > 0
    with pytest.raises(ValueError, match="unknown model spec"):
        load_adapter("no-such-model")


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    """A random Llava (SigLIP 32 px -> Llama, byte-level ChatML tokenizer) saved as a folder,
    the shape the Llava export writes."""
    import transformers as tf

    from ecomvlm.model.tiny import byte_level_tokenizer

    tok = byte_level_tokenizer()
    vision = tf.SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=32,
                                   intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2)
    text = tf.LlamaConfig(vocab_size=-(-len(tok) // 8) * 8, hidden_size=32, intermediate_size=64,
                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                          bos_token_id=None, max_position_embeddings=2048)
    config = tf.LlavaConfig(vision_config=vision, text_config=text,
                            image_token_index=tok.convert_tokens_to_ids("<image>"),
                            vision_feature_select_strategy="full", vision_feature_layer=-1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tf.LlavaForConditionalGeneration(config).eval()
    processor = tf.LlavaProcessor(
        image_processor=tf.SiglipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="full",
        num_additional_image_tokens=0, chat_template=tok.chat_template, image_token="<image>")
    out = tmp_path_factory.mktemp("hf") / "tiny-llava"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_hf_adapter_on_a_tiny_llava(tiny_llava, photos):
    adapter = HFAdapter(str(tiny_llava), dtype=torch.float32)
    assert adapter.name == "hf-tiny-llava" and adapter.tokens_per_image == 16
    samples = questions(photos)
    batched = adapter.generate(samples, batch_size=3)
    assert [g.image_tokens for g in batched] == [32, 32, 32, 32, 0, 0]
    # left-padded batches answer exactly as one sample at a time through transformers
    for sample, gen in zip(samples, batched):
        inputs = adapter.processor(text=[adapter.render(sample)],
                                   images=[open_ref(r) for r in sample.images] or None,
                                   return_tensors="pt")
        with torch.no_grad():
            out = adapter.model.generate(**inputs, max_new_tokens=sample.max_new_tokens,
                                         do_sample=False)
        alone = adapter.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:],
                                         skip_special_tokens=True).strip()
        assert gen.text == alone
    nll = adapter.text_nll(["Some plain English text."])
    assert nll[0][1] == len("Some plain English text.") - 1  # byte-level: one token a byte
    assert content_parts("<image>\n<image>\nQ?") == [{"type": "image"}, {"type": "image"},
                                                    {"type": "text", "text": "Q?"}]


def test_openai_adapter_against_a_real_server(openai_server, photos):
    url, log = openai_server(["Navy", "B", '{"Color": "Red"}'])
    adapter = load_adapter(f"openai:{url}?model=test-vlm&concurrency=1")
    assert adapter.name == "openai-test-vlm" and adapter.text_nll(["x"]) is None
    samples = questions(photos)[:4]
    gens = adapter.generate(samples)
    assert [g.text for g in gens] == ["Navy", "B", '{"Color": "Red"}', '{"Color": "Red"}']
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(requests) == 4
    first = requests[0]
    assert first["model"] == "test-vlm" and first["temperature"] == 0.0
    assert first["max_tokens"] == samples[0].max_new_tokens
    parts = first["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert parts[2]["text"] == "What colour is it?"
    crop_request = requests[3]["messages"][0]["content"]
    assert sum(p["type"] == "image_url" for p in crop_request) == 2


def test_openai_failures_are_misses_until_all_fail(photos):
    # nothing listens on this port: every request fails, which must stop the run loudly
    adapter = load_adapter("openai:http://127.0.0.1:9/v1?model=m&timeout=2")
    with pytest.raises(RuntimeError, match="every request"):
        adapter.generate(questions(photos)[:1])
