"""A tiny synthetic dataset in the canonical format, for smoke runs and tests of training.

Each "listing" is a coloured shape on a plain background; stage 1 captions one image,
stage 2 describes it densely, stage 3 asks about colour and shape over two images. The
answers are a function of the pixels, so a model that learns lowers its loss. Writes
``stage1.jsonl``, ``stage2.jsonl``, ``stage3.jsonl`` and ``images/`` under ``root``.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from ecomvlm.samples import Sample, write_samples

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220),
           "yellow": (235, 210, 40)}
SHAPES = ("square", "circle", "triangle")
BACKGROUNDS = {"white": (250, 250, 250), "black": (15, 15, 15)}


def draw_shape(colour: str, shape: str, background: str, size: int = 32,
               jitter: int = 0) -> Image.Image:
    image = Image.new("RGB", (size, size), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    lo, hi = size // 5 + jitter, size - size // 5 + jitter
    fill = COLOURS[colour]
    if shape == "square":
        draw.rectangle([lo, lo, hi, hi], fill=fill)
    elif shape == "circle":
        draw.ellipse([lo, lo, hi, hi], fill=fill)
    else:
        draw.polygon([(size // 2 + jitter, lo), (lo, hi), (hi, hi)], fill=fill)
    return image


def write_toy_dataset(root: str | Path, listings: int = 24, seed: int = 0,
                      size: int = 32) -> dict[str, int]:
    """Write the three stage files; returns the number of samples per file."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    s1, s2, s3 = [], [], []
    for n in range(listings):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        background = rng.choice(list(BACKGROUNDS))
        paths = []
        for k in range(2):
            rel = f"images/l{n:04d}_{k}.png"
            draw_shape(colour, shape, background, size, jitter=k).save(root / rel)
            paths.append(rel)
        lid = f"L{n:04d}"
        s1 += [Sample.chat(f"{lid}:s1:{k}", [p], "Caption this photo.",
                           f"A {colour} {shape}.", stage=1) for k, p in enumerate(paths)]
        s2.append(Sample.chat(f"{lid}:s2", [paths[0]], "Describe the item in detail.",
                              f"A {colour} {shape} shown on a {background} background, "
                              f"centred in the frame.", stage=2))
        s3 += [Sample.chat(f"{lid}:s3:colour", paths, "What colour is the item?",
                           colour.capitalize(), stage=3),
               Sample.chat(f"{lid}:s3:shape", paths, "What shape is the item?",
                           shape.capitalize(), stage=3)]
    return {"stage1.jsonl": write_samples(s1, root / "stage1.jsonl"),
            "stage2.jsonl": write_samples(s2, root / "stage2.jsonl"),
            "stage3.jsonl": write_samples(s3, root / "stage3.jsonl")}
