"""Backbone loaders: pretrained ones must behave like their models, tiny ones must train.

Tests marked ``slow`` use the packaged pretrained weights (EfficientNet, SmolLM2, RapidOCR,
MiniLM); they still run in CI. SmolLM2's GGUF is converted at most twice per run: once into
the real cache (first run on a machine only) and once into a temporary cache to watch the
convert-once behaviour.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from ecomvlm.model import OcrEngine, TextEncoder, load_lm, load_vision_tower
from ecomvlm.registry import UnknownNameError

TINY_PAIRS = [("tiny:siglip", "tiny:llama"), ("tiny:clip", "tiny:qwen2")]


def random_images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


# ---------------------------------------------------------------- registry and imports


def test_unknown_spec_lists_known_names():
    with pytest.raises(UnknownNameError) as err:
        load_vision_tower("packaged:resnet-9000")
    assert "packaged:efficientnet-lite0" in str(err.value) and "tiny:siglip" in str(err.value)
    with pytest.raises(UnknownNameError) as err:
        load_lm("tiny:gpt-17")
    assert "packaged:smollm2-135m-instruct" in str(err.value) and "hf:<...>" in str(err.value)


def test_importing_the_package_defers_torch():
    code = "import sys, ecomvlm.model as m; m.load_lm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- tiny backbones


@pytest.mark.parametrize("vision_spec,lm_spec", TINY_PAIRS)
def test_tiny_vision_and_lm_train_together(vision_spec, lm_spec):
    tower, lm = load_vision_tower(vision_spec), load_lm(lm_spec)
    assert (tower.num_tokens, tower.image_size) == (16, 32)
    torch.manual_seed(0)
    projector = torch.nn.Linear(tower.hidden_size, lm.hidden_size)
    enc = lm.tokenizer(["A red cotton t-shirt.", "A steel kitchen knife."], return_tensors="pt",
                       padding=True)
    pixels = tower.preprocess(random_images(2))  # [2, 3, 32, 32]
    params = [*projector.parameters(), *lm.model.parameters(), *tower.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1)
    tower.train(), lm.model.train()

    def step(pixel_values: torch.Tensor):
        image_embeds = projector(tower(pixel_values))  # [2, 16, D]
        text_embeds = lm.model.get_input_embeddings()(enc["input_ids"])  # [2, T, D]
        image_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long)
        labels = torch.cat([torch.full(image_embeds.shape[:2], -100),
                            enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)], 1)
        return lm.model(inputs_embeds=torch.cat([image_embeds, text_embeds], 1),
                        attention_mask=torch.cat([image_mask, enc["attention_mask"]], 1),
                        labels=labels)

    losses = []
    for _ in range(5):
        out = step(pixels)
        assert torch.isfinite(out.logits).all()
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    # random init predicts ~uniformly over the vocabulary
    assert losses[0] == pytest.approx(math.log(lm.model.config.vocab_size), rel=0.1)
    assert all(b < a for a, b in itertools.pairwise(losses)) and losses[-1] < 0.85 * losses[0]
    # gradients reach the tower, and the image actually conditions the text logits
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.parameters())
    with torch.no_grad():
        other = step(tower.preprocess(random_images(2, seed=1))).logits
        assert not torch.allclose(out.logits, other)


def test_tiny_backbones_are_seeded():
    a, b, c = (load_lm("tiny:llama", seed=s).model for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    t0, t1 = load_vision_tower("tiny:siglip", seed=3), load_vision_tower("tiny:siglip", seed=3)
    x = t0.preprocess(random_images(1))
    assert torch.equal(t0(x), t1(x))


def test_tiny_tokenizer_chat_template_marks_images_and_answers():
    lm = load_lm("tiny:qwen2")
    tok = lm.tokenizer
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]},
        {"role": "assistant", "content": "Navy blue, 100% Baumwolle."},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == ("<|im_start|>user\n<image>Colour?<|im_end|>\n"
                    "<|im_start|>assistant\nNavy blue, 100% Baumwolle.<|im_end|>\n")
    enc = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    answer = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(answer) == "Navy blue, 100% Baumwolle.<|im_end|>"
    assert enc["input_ids"].count(tok.convert_tokens_to_ids("<image>")) == 1
    assert tok.decode(enc["input_ids"]) == text  # byte-level: lossless round trip


def test_ensure_tokens_grows_the_embeddings():
    lm = load_lm("tiny:llama")
    image_id, box_id = lm.ensure_tokens(["<image>", "<box>"])
    assert image_id == lm.tokenizer.convert_tokens_to_ids("<image>")
    assert box_id == len(lm.tokenizer) - 1
    assert lm.model.get_input_embeddings().num_embeddings >= len(lm.tokenizer)
    assert lm.tokenizer("a<box>b")["input_ids"].count(box_id) == 1


def test_letterbox_pads_with_zero_signal():
    tower = load_vision_tower("tiny:siglip", resize_mode="letterbox")
    wide = Image.new("RGB", (64, 16), (255, 0, 0))  # 4:1 -> 32x8 strip centred in 32x32
    pixels = tower.preprocess([wide])[0]  # [3, 32, 32]
    assert torch.count_nonzero(pixels[:, :10]) == 0 and torch.count_nonzero(pixels[:, 22:]) == 0
    assert torch.allclose(pixels[:, 16, 16], torch.tensor([1.0, -1.0, -1.0]))


# ---------------------------------------------------------------- hf: loaders


def test_hf_vision_loader_reproduces_saved_siglip_and_clip(tmp_path):
    import transformers as tf

    sizes = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    torch.manual_seed(0)
    siglip = tf.SiglipVisionModel(tf.SiglipVisionConfig(**sizes)).eval()
    siglip.save_pretrained(tmp_path / "siglip")
    mean, std = [0.48, 0.45, 0.40], [0.27, 0.26, 0.28]
    (tmp_path / "siglip" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": mean, "image_std": std, "size": {"height": 32, "width": 32},
         "resample": 2}))
    tower = load_vision_tower(f"hf:{tmp_path / 'siglip'}")
    assert (tower.num_tokens, tower.hidden_size, tower.image_size) == (16, 32, 32)
    solid = tower.preprocess([Image.new("RGB", (50, 70), (200, 100, 50))])
    expected = (np.array([200, 100, 50]) / 255 - mean) / std
    assert np.allclose(solid[0, :, 5, 5].numpy(), expected, atol=1e-5)
    pixels = tower.preprocess(random_images(2))
    with torch.no_grad():
        assert torch.allclose(tower(pixels), siglip(pixel_values=pixels).last_hidden_state)

    clip = tf.CLIPVisionModel(tf.CLIPVisionConfig(**sizes)).eval()
    clip.save_pretrained(tmp_path / "clip")
    tower = load_vision_tower(f"hf:{tmp_path / 'clip'}")
    with torch.no_grad():  # CLS dropped, penultimate block as in LLaVA
        reference = clip(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        assert torch.allclose(tower(pixels), reference[:, 1:])


def test_hf_lm_loader_reproduces_saved_llama(tmp_path):
    original = load_lm("tiny:llama", seed=7)
    original.model.save_pretrained(tmp_path / "llama")
    original.tokenizer.save_pretrained(tmp_path / "llama")
    loaded = load_lm(f"hf:{tmp_path / 'llama'}", dtype="float32")
    assert loaded.source == "pretrained" and loaded.tokenizer.chat_template
    ids = loaded.tokenizer.apply_chat_template([{"role": "user", "content": "Größe M?"}],
                                               add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)["input_ids"]
    with torch.no_grad():
        assert torch.allclose(loaded.model(ids).logits, original.model(ids).logits)


# ---------------------------------------------------------------- packaged pretrained weights


@pytest.mark.slow
def test_efficientnet_sees_coffee(coffee_image):
    from ecomvlm.config import cache_dir

    tower = load_vision_tower("packaged:efficientnet-lite0")
    assert (cache_dir() / "packaged" / "efficientnet-lite0" / "model.safetensors").is_file()
    labels = [name for name, _ in tower.top_k_labels([coffee_image], k=3)[0]]
    assert {"espresso", "coffee mug", "tea cup"} & set(labels), labels
    pixels = tower.preprocess([coffee_image])
    with torch.no_grad():
        assert tower(pixels).shape == (1, 49, 1280)
        # our pooled head equals the upstream network's own forward
        assert torch.allclose(tower.classify(pixels), tower.net(pixels), atol=1e-4)


@pytest.mark.slow
def test_smollm2_knows_paris(smollm2):
    assert "Paris" in smollm2.chat("What is the capital of France?", max_new_tokens=24)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty ECOMVLM_CACHE, deleted afterwards (the SmolLM2 copy alone is ~540 MB)."""
    monkeypatch.setenv("ECOMVLM_CACHE", str(tmp_path))
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.slow
def test_smollm2_converts_once_and_matches_the_gguf(tmp_cache):
    from transformers import AutoModelForCausalLM

    from ecomvlm.model._cache import MARKER
    from ecomvlm.model.smollm2 import packaged_gguf

    tmp_path = tmp_cache
    first = load_lm("packaged:smollm2-135m-instruct")
    entry = tmp_path / "packaged" / "smollm2-135m-instruct"
    assert first.source == "converted" and (entry / MARKER).is_file()
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no scratch left over
    # a second load must not need the GGUF at all
    second = load_lm("packaged:smollm2-135m-instruct", gguf_path=tmp_path / "missing.gguf")
    assert second.source == "cache"
    model = second.model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    gguf = packaged_gguf()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    ids = second.tokenizer("Fits true to size, machine washable cotton.", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**ids).logits, reference(**ids).logits, atol=1e-5)


@pytest.mark.slow
def test_ocr_reads_a_rendered_label():
    label = Image.new("RGB", (640, 240), "white")
    draw = ImageDraw.Draw(label)
    font = ImageFont.load_default(size=40)
    draw.text((30, 40), "100% COTTON", fill="black", font=font)
    draw.text((30, 140), "10000mAh", fill="black", font=font)
    lines = OcrEngine().read(label)
    # PP-OCR often drops the space between words, so compare without spaces
    texts = [line.text.replace(" ", "").upper() for line in lines]
    assert texts == ["100%COTTON", "10000MAH"]
    top, bottom = lines[0].box, lines[1].box
    assert 20 <= top[0] <= 40 and top[1] < top[3] < bottom[1] < bottom[3] <= 240
    assert all(line.score > 0.9 for line in lines)
    assert OcrEngine().read(Image.new("RGB", (200, 100), "white")) == []


@pytest.mark.slow
def test_minilm_similarity_follows_meaning():
    encoder = TextEncoder.shared()
    emb = encoder.encode(["t-shirt", "tee", "knife"])
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sims = encoder.similarity("t-shirt", ["tee", "knife"])
    assert sims[0, 0] > sims[0, 1]
