"""Hardened image loading: every hostile or unusual file is built here from real bytes."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib

import pytest
from PIL import Image

from ecomvlm.images import (
    CorruptImage,
    ImageError,
    ImageTooLarge,
    UnreadableSource,
    UnsupportedFormat,
    URLFetchDisabled,
    decode_image,
    fit_image,
    image_sha256,
    letterbox,
    load_image,
    read_image_bytes,
    to_rgb,
)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG (valid CRCs) whose IHDR claims ``width`` x ``height``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def close(px, want, tol=12) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, want, strict=True))


# --- size caps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("w", "h"),
    [(100_000, 100_000), (10_000, 10_000), (8_000, 6_000)],
    ids=["pillow-bomb-error", "pillow-bomb-warning", "our-40MP-cap"],
)
def test_bomb_header_refused_before_decode(w, h):
    filters_before, cap_before = list(warnings.filters), Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLarge) as info:
        decode_image(bomb_png(w, h), "bomb.png")
    assert info.value.reason == "too_large" and "bomb.png" in str(info.value)
    # No global state leaked: warning filters and Pillow's own cap are untouched.
    assert warnings.filters == filters_before and Image.MAX_IMAGE_PIXELS == cap_before


def test_custom_max_pixels_and_file_cap(tmp_path):
    path = tmp_path / "small.png"
    path.write_bytes(encode(Image.new("RGB", (100, 100), "red"), "PNG"))
    with pytest.raises(ImageTooLarge, match="small.png"):
        load_image(path, max_pixels=5_000)
    assert load_image(path, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageTooLarge):
        load_image(path, max_file_bytes=10)


# --- corrupt input ------------------------------------------------------------------------------


def test_truncated_jpeg_and_png_raise():
    jpeg = encode(Image.linear_gradient("L").convert("RGB"), "JPEG")
    for cut in (len(jpeg) // 2, len(jpeg) - 8):
        with pytest.raises(CorruptImage) as info:
            decode_image(jpeg[:cut], "cut.jpg")
        assert info.value.reason == "corrupt"
    png = encode(Image.linear_gradient("L"), "PNG")
    with pytest.raises(CorruptImage):
        decode_image(png[:-10], "no-iend.png")  # Pillow alone would decode this silently


@pytest.mark.parametrize("where", ["idat-data", "idat-crc", "ihdr-data"])
def test_bad_png_crc_raises(where):
    data = bytearray(encode(Image.new("RGB", (64, 64), (10, 200, 30)), "PNG"))
    idat = data.find(b"IDAT")
    if where == "idat-data":
        data[idat + 6] ^= 0xFF
    elif where == "idat-crc":  # pixels intact, only the checksum is wrong
        length = struct.unpack(">I", data[idat - 4: idat])[0]
        data[idat + 4 + length] ^= 0x01
    else:
        data[data.find(b"IHDR") + 5] ^= 0x01
    with pytest.raises(CorruptImage):
        decode_image(bytes(data), "crc.png")


@pytest.mark.parametrize(
    ("fmt", "name"), [("TIFF", "TIFF"), ("ICO", "ICO"), ("PDF", "PDF")]
)
def test_disallowed_formats_refused(fmt, name):
    data = encode(Image.new("RGB", (16, 16), "red"), fmt)
    with pytest.raises(UnsupportedFormat, match=name) as info:
        decode_image(data, f"x.{fmt.lower()}")
    assert info.value.reason == "unsupported_format"


def test_garbage_and_empty():
    with pytest.raises(UnsupportedFormat):
        decode_image(b"definitely not an image", "junk")
    with pytest.raises(CorruptImage):
        decode_image(b"", "empty")


# --- modes --------------------------------------------------------------------------------------


def test_cmyk_jpeg_to_rgb():
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    img = decode_image(data)
    assert img.mode == "RGB" and close(img.getpixel((16, 16)), (255, 0, 0), tol=20)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_over_white(fmt):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (4, 0, 8, 8))
    out = decode_image(encode(img, fmt, transparency=0))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent red -> white
    assert out.getpixel((6, 6)) == (0, 0, 255)


def test_rgba_la_pa_over_white():
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    out = decode_image(encode(rgba, "PNG"))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (0, 0, 255)
    assert close(out.getpixel((2, 0)), (127, 127, 127), tol=2)
    la = Image.new("LA", (2, 1))
    la.putdata([(0, 0), (0, 255)])
    out = decode_image(encode(la, "PNG"))
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (0, 0, 0)
    pa = Image.new("PA", (1, 1), (0, 0))
    pa.putpalette([0, 0, 0] * 256)
    assert to_rgb(pa).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_png():
    src = Image.new("I;16", (4, 2))
    src.putdata([65535, 65535, 32768, 32768] * 2)
    data = encode(src, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = decode_image(data)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)
    assert close(out.getpixel((3, 1)), (128, 128, 128), tol=1)


@pytest.mark.parametrize(
    ("img", "want"),
    [
        (Image.new("I", (2, 2), 1_000_000), (0, 0, 0)),  # constant out-of-range: min-max -> 0
        (Image.new("I", (2, 2), 200), (200, 200, 200)),  # already 8-bit range
        (Image.new("F", (2, 2), 0.5), (128, 128, 128)),  # float in [0, 1]
        (Image.new("1", (2, 2), 1), (255, 255, 255)),
        (Image.new("L", (2, 2), 77), (77, 77, 77)),
        (Image.new("YCbCr", (2, 2), (76, 85, 255)), (254, 0, 0)),
    ],
    ids=["I-wide", "I-8bit", "F", "1", "L", "YCbCr"],
)
def test_every_mode_becomes_rgb(img, want):
    out = to_rgb(img)
    assert out.mode == "RGB" and close(out.getpixel((0, 0)), want, tol=2)


def test_mode_1_file_roundtrip():
    for fmt in ("PNG", "BMP"):
        out = decode_image(encode(Image.new("1", (8, 8), 1), fmt))
        assert out.mode == "RGB" and out.getpixel((3, 3)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("fmt", "kw"), [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})]
)
def test_animated_first_frame(fmt, kw):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, **kw)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    assert close(decode_image(data).getpixel((8, 8)), (255, 0, 0), tol=4)


# --- geometry -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 20_000), (20_000, 1)])
def test_extreme_strip_loads_and_letterboxes(size):
    img = decode_image(encode(Image.new("RGB", size, (0, 0, 0)), "PNG"))
    assert img.size == size
    fitted = fit_image(img, 224)
    assert min(fitted.size) >= 1 and max(fitted.size) == 224
    boxed = letterbox(img, 224)
    assert boxed.size == (224, 224) and boxed.mode == "RGB"
    assert boxed.getpixel((111, 111)) == (0, 0, 0)  # the strip survives as a visible line
    assert boxed.getpixel((0, 0) if size[0] == 1 else (112, 0)) == (255, 255, 255)


def test_letterbox_rectangular_box_and_fill():
    out = letterbox(Image.new("RGB", (100, 50), "red"), (64, 64), fill=(0, 0, 0))
    assert out.size == (64, 64) and out.getpixel((32, 2)) == (0, 0, 0)
    assert out.getpixel((32, 32))[0] > 200
    with pytest.raises(ValueError):
        letterbox(out, 0)


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate 90 deg clockwise
    out = decode_image(encode(img, "JPEG", exif=exif, quality=95))
    assert out.size == (20, 40)
    assert close(out.getpixel((10, 5)), (255, 0, 0), tol=30)  # left edge became the top
    assert close(out.getpixel((10, 35)), (0, 0, 255), tol=30)


# --- sources ------------------------------------------------------------------------------------


def test_sources_and_digest(tmp_path):
    data = encode(Image.new("RGB", (8, 8), "green"), "PNG")
    path = tmp_path / "ok.png"
    path.write_bytes(data)
    assert load_image(path).size == load_image(str(path)).size == load_image(data).size
    assert read_image_bytes(path) == data
    assert image_sha256(data) == hashlib.sha256(data).hexdigest()
    with pytest.raises(UnreadableSource, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(URLFetchDisabled, match="allow_url_fetch") as info:
        load_image("https://example.com/a.jpg")
    assert isinstance(info.value, ImageError) and isinstance(info.value, ValueError)


def test_reason_codes_are_distinct():
    classes = [UnsupportedFormat, ImageTooLarge, CorruptImage, UnreadableSource, URLFetchDisabled]
    assert len({c.reason for c in classes}) == len(classes)
    assert all(issubclass(c, ImageError) for c in classes)
