"""Llava export: plain transformers loads the folder and computes what our model computes.

Tiny SigLIP + Llama (untied head) and CLIP + Qwen2 (tied head) models get random projector
and embedding weights (so nothing passes because of an initialisation), are exported, and then
compared with ``LlavaForConditionalGeneration`` / ``AutoProcessor`` loaded from the folder:
logits, processor outputs, greedy generations. Unsupported parts must be refused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoProcessor, AutoTokenizer, LlavaForConditionalGeneration

from ecomvlm.model import load_vision_tower
from ecomvlm.model.export_llava import ExportError, export_llava, image_processor_for
from ecomvlm.model.generate import generate_batch
from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig

PAIRS = {"siglip-llama": ("tiny:siglip", "tiny:llama", -1),
         "clip-qwen2": ("tiny:clip", "tiny:qwen2", -2)}
ONE = [{"role": "user", "content": "<image>What colour is it?"}]
TWO = [{"role": "system", "content": "You are a catalog assistant."},
       {"role": "user", "content": "First <image> then <image> - same item?"}]


def images(seed: int, sizes=((47, 61), (30, 20))) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def perturb(model: VisionLanguageModel, seed: int) -> None:
    """Random projector and LM matrices, large enough that greedy tokens depend on the image."""
    gen = torch.Generator().manual_seed(seed)
    vocab = model.lm.get_input_embeddings().num_embeddings
    matrices = [p for p in model.lm.parameters() if p.dim() == 2]
    with torch.no_grad():
        for p in [*model.projector.parameters(), *matrices]:
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 if vocab in p.shape else 0.3))


def build(vision: str, lm: str, seed: int = 0, **vision_kwargs) -> VisionLanguageModel:
    model = VisionLanguageModel.build(VLMConfig(vision=vision, lm=lm, vision_kwargs=vision_kwargs))
    perturb(model, seed)
    return model.eval()


@pytest.fixture(scope="module", params=list(PAIRS))
def exported(request, tmp_path_factory):
    vision, lm, layer = PAIRS[request.param]
    model = build(vision, lm, feature_layer=layer)
    out = export_llava(model, tmp_path_factory.mktemp(request.param) / "llava")
    llava, info = LlavaForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info  # nothing missing, so nothing silently random
    return model, llava.eval(), AutoProcessor.from_pretrained(out), out


def our_batch(model, convs, imgs):
    encoded = [model.processor.encode_prompt(c, i) for c, i in zip(convs, imgs)]
    return model.processor.collate(encoded)  # right padded


@torch.no_grad()
def test_logits_equal_with_one_and_two_images(exported):
    model, llava, _, _ = exported
    batch = our_batch(model, [ONE, TWO], [images(1)[:1], images(2)])
    assert batch["pixel_values"].shape[0] == 3
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    ours = model(**inputs).logits  # [B, T, V]
    theirs = llava(**inputs).logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(theirs[real], ours[real], atol=1e-5, rtol=1e-5)
    # the images matter: other pixels move the logits after them
    other = llava(**{**inputs, "pixel_values": inputs["pixel_values"].flip(-1)}).logits
    assert (other[real] - theirs[real]).abs().max() > 1e-2


def test_processor_matches_ours(exported):
    model, _, processor, _ = exported
    imgs = images(3)
    parts = [{"role": "system", "content": [{"type": "text", "text": "You are a catalog assistant."}]},
             {"role": "user", "content": [{"type": "text", "text": "First "},
                                          {"type": "image", "image": imgs[0]},
                                          {"type": "text", "text": " then "},
                                          {"type": "image", "image": imgs[1]},
                                          {"type": "text", "text": " - same item?"}]}]
    theirs = processor.apply_chat_template(parts, add_generation_prompt=True, tokenize=True,
                                           return_dict=True, return_tensors="pt")
    ours = model.processor.encode_prompt(TWO, imgs)
    assert theirs["input_ids"][0].tolist() == ours.input_ids.tolist()
    assert (ours.input_ids == model.image_token_id).sum() == 2 * model.tokens_per_image
    torch.testing.assert_close(theirs["pixel_values"], ours.pixel_values, atol=1e-6, rtol=0)
    # string content (what vLLM sends for string-only templates) renders the same text
    text = processor.apply_chat_template(TWO, add_generation_prompt=True, tokenize=False)
    assert text == model.tokenizer.apply_chat_template(TWO, add_generation_prompt=True,
                                                       tokenize=False)


@torch.no_grad()
def test_greedy_generation_equal(exported):
    model, llava, processor, _ = exported
    runs = []
    for seed in (4, 5):
        imgs = images(seed)
        batch = model.processor.collate([model.processor.encode_prompt(TWO, imgs)], "left")
        ours = generate_batch(model, batch, max_new_tokens=6)[0]
        text = processor.apply_chat_template(TWO, add_generation_prompt=True)
        enc = processor(text=text, images=imgs, return_tensors="pt")
        out = llava.generate(**enc, max_new_tokens=6, do_sample=False)
        theirs = out[0, enc["input_ids"].shape[1]:].tolist()
        stops = {model.tokenizer.eos_token_id}
        theirs = theirs[:next((i for i, t in enumerate(theirs) if t in stops), len(theirs))]
        assert theirs == ours
        runs.append(ours)
    assert runs[0] != runs[1]  # generations depend on the image, so the comparison has teeth


def test_folder_layout(exported):
    model, llava, _, out = exported
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "preprocessor_config.json", "processor_config.json", "chat_template.jinja"} <= set(names)
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {k.split(".")[0] for k in keys} == {"vision_tower", "multi_modal_projector",
                                               "language_model"}
    assert all(k.startswith("vision_tower.vision_model.") for k in keys
               if k.startswith("vision_tower."))
    tied = model.lm.config.tie_word_embeddings
    assert ("language_model.lm_head.weight" in keys) is not tied
    head, embed = llava.lm_head.weight, llava.get_input_embeddings().weight
    assert (head.data_ptr() == embed.data_ptr()) is tied
    config = json.loads((out / "config.json").read_text())
    assert config["image_token_index"] == model.image_token_id
    assert config["image_seq_length"] == model.tokens_per_image
    processor_config = json.loads((out / "processor_config.json").read_text())
    assert "image_processor" not in processor_config  # flat, hub-style layout
    # the exported template is the LM's behind a content-parts prelude; the model's is untouched
    template = AutoTokenizer.from_pretrained(out).chat_template
    assert template.endswith(model.tokenizer.chat_template) and template != model.tokenizer.chat_template
    modes = {p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert len(modes) == 1  # weights as readable as the rest (safetensors alone writes 0600)


def test_bfloat16_export(exported, tmp_path):
    model = exported[0]
    out = export_llava(model, tmp_path / "bf16", dtype="bfloat16")
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # noqa: SIM118
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert next(model.parameters()).dtype == torch.float32  # the model itself is not cast
    llava = LlavaForConditionalGeneration.from_pretrained(out)
    assert llava.dtype == torch.bfloat16


@torch.no_grad()
def test_checkpoint_dir_lora_and_shards(tmp_path):
    """From a saved checkpoint with LoRA on the LM, written in shards: still the same logits."""
    from peft import LoraConfig, get_peft_model

    model = build("tiny:clip", "tiny:llama", seed=7, feature_layer=-1)
    model.lm = get_peft_model(model.lm, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(8)
    for name, p in model.lm.named_parameters():
        if "lora_B" in name:  # B starts at zero: make the adapters do something
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    model.save_pretrained(tmp_path / "ckpt")
    out = export_llava(tmp_path / "ckpt", tmp_path / "llava", max_shard_size=100_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    llava = LlavaForConditionalGeneration.from_pretrained(out).eval()
    batch = our_batch(model, [TWO], [images(9)])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    ours, theirs = model.eval()(**inputs).logits, llava(**inputs).logits
    scale = float(ours.abs().max())  # ~30: merging W + BA rounds differently at ~1e-6 of that
    torch.testing.assert_close(theirs, ours, atol=2e-5 * scale, rtol=0)
    with model.lm.disable_adapter():  # the adapters were exported, not dropped
        assert (model(**inputs).logits - theirs).abs().max() > 1e-2 * scale
    # a second export replaces the first; an unrelated folder is never overwritten
    export_llava(model, out)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        export_llava(model, tmp_path / "notes")
    with pytest.raises(FileNotFoundError, match="save_pretrained"):  # e.g. a training checkpoint
        export_llava(tmp_path / "notes", tmp_path / "llava2")


@pytest.mark.parametrize("vision,kwargs,projector,match", [
    ("tiny:siglip", {}, "mlp2x_gelu", "feature_layer': -1"),  # final output = post_layernorm
    ("tiny:clip", {"feature_layer": -2}, "pool", "only 'mlp2x_gelu'"),
    ("tiny:siglip", {"feature_layer": -1}, "resampler", "no Llava equivalent"),
    ("tiny:siglip2", {"feature_layer": -1}, "mlp2x_gelu", "siglip2_vision_model"),
    ("tiny:siglip", {"feature_layer": -1, "resize_mode": "letterbox"}, "mlp2x_gelu", "letterbox"),
])
def test_unsupported_models_are_refused(tmp_path, vision, kwargs, projector, match):
    model = VisionLanguageModel.build(VLMConfig(vision=vision, lm="tiny:llama",
                                                projector=projector, vision_kwargs=kwargs))
    with pytest.raises(ExportError, match=match):
        export_llava(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_packaged_efficientnet_tower_is_refused(tmp_path):
    model = VisionLanguageModel.build(VLMConfig(vision="packaged:efficientnet-lite0",
                                                lm="tiny:llama"))
    with pytest.raises(ExportError, match="not a transformers model"):
        export_llava(model, tmp_path / "out")


def center_crop_pixels(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    tower = load_vision_tower("tiny:clip", resize_mode="center_crop", crop_pct=0.875)
    img = images(10, sizes=[size])
    theirs = image_processor_for(tower)(img, return_tensors="pt")["pixel_values"]
    return theirs, tower.preprocess(img)


def test_center_crop_processor_matches():
    theirs, ours = center_crop_pixels((48, 64))  # long side 64 * 37 / 48 = 49.33
    torch.testing.assert_close(theirs, ours, atol=1e-6, rtol=0)


def test_center_crop_processor_matches_when_rounding_differs():
    theirs, ours = center_crop_pixels((48, 80))  # long side 80 * 37 / 48 = 61.67
    torch.testing.assert_close(theirs, ours, atol=1e-6, rtol=0)


@torch.no_grad()
def test_hf_specs_from_local_folders(tmp_path):
    """The intended path: ``hf:`` tower and LM (here tiny ones saved locally, as a hub id would be)."""
    from ecomvlm.model.tiny import tiny_lm, tiny_vision

    tiny_vision("siglip").model.save_pretrained(tmp_path / "tower")
    lm = tiny_lm("qwen2")
    lm.model.save_pretrained(tmp_path / "lm")
    lm.tokenizer.save_pretrained(tmp_path / "lm")
    model = build(f"hf:{tmp_path / 'tower'}", f"hf:{tmp_path / 'lm'}", seed=11, feature_layer=-1)
    out = export_llava(model, tmp_path / "llava")
    llava = LlavaForConditionalGeneration.from_pretrained(out).eval()
    batch = our_batch(model, [ONE], [images(12)[:1]])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    torch.testing.assert_close(llava(**inputs).logits, model(**inputs).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@torch.no_grad()
def test_packaged_smollm2_lm_with_its_own_template(tmp_path):
    """A real LM whose template only takes string content and adds a default system prompt."""
    model = VisionLanguageModel.build(VLMConfig(vision="tiny:siglip",
                                                lm="packaged:smollm2-135m-instruct",
                                                vision_kwargs={"feature_layer": -1})).eval()
    out = export_llava(model, tmp_path / "llava")
    processor = AutoProcessor.from_pretrained(out)
    imgs = images(13)
    parts = [{"role": "user", "content": [{"type": "image", "image": imgs[0]},
                                          {"type": "text", "text": "and"},
                                          {"type": "image", "image": imgs[1]}]}]
    theirs = processor.apply_chat_template(parts, add_generation_prompt=True, tokenize=True,
                                           return_dict=True, return_tensors="pt")
    ours = model.processor.encode_prompt([{"role": "user", "content": "<image>and<image>"}], imgs)
    assert theirs["input_ids"][0].tolist() == ours.input_ids.tolist()
    llava = LlavaForConditionalGeneration.from_pretrained(out).eval()
    torch.testing.assert_close(llava(**theirs).logits,
                               model(input_ids=ours.input_ids[None],
                                     pixel_values=ours.pixel_values).logits, atol=1e-4, rtol=1e-5)
