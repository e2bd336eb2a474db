"""Square resizing for vision towers (no torch import); decoding and RGB live in ecomvlm.images."""

from __future__ import annotations

from PIL import Image

from ecomvlm.images import letterbox, to_rgb

RESIZE_MODES = ("squash", "center_crop", "letterbox")


def resize_image(
    image: Image.Image,
    size: int,
    mode: str = "squash",
    crop_pct: float = 1.0,
    resample: int = Image.BICUBIC,
    fill: tuple[int, int, int] = (128, 128, 128),
) -> Image.Image:
    """A ``size`` x ``size`` RGB image.

    squash: stretch to the square (SigLIP); center_crop: shortest side to ``size / crop_pct``
    then a central square (CLIP, ImageNet eval); letterbox: longest side to ``size`` and pad
    with ``fill`` so nothing of the product is cut off.
    """
    image = to_rgb(image)
    width, height = image.size
    if mode == "squash":
        return image.resize((size, size), resample)
    if mode == "center_crop":
        short = round(size / crop_pct)
        # the long side truncates, as transformers' and torchvision's resizers do
        if width <= height:
            new_w, new_h = short, max(size, int(short * height / width))
        else:
            new_w, new_h = max(size, int(short * width / height)), short
        image = image.resize((new_w, new_h), resample)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        return image.crop((left, top, left + size, top + size))
    if mode == "letterbox":
        return letterbox(image, size, fill, resample)
    raise ValueError(f"resize mode {mode!r} is not one of {RESIZE_MODES}")


def letterbox_offset(inner_size: tuple[int, int], size: int) -> tuple[int, int]:
    """(left, top) that centres an image of ``inner_size`` on a ``size`` square."""
    return (size - inner_size[0]) // 2, (size - inner_size[1]) // 2
