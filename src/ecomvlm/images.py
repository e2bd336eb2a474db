"""Hardened image loading: one entry point that turns untrusted bytes into a sane RGB image.

Marketplace images are user-supplied, so every decode goes through the same gate: a format
allowlist, a pixel cap read from the header before any pixel is decoded, strict truncation and
CRC checks, EXIF orientation, and a single RGB output mode. Failures raise a typed
:class:`ImageError` whose ``reason`` code can be written straight into a quarantine file.
URL sources are opt-in and delegated to :mod:`ecomvlm.fetch`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
WHITE = (255, 255, 255)

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Magic numbers of allowed formats: lets us call a failed open "corrupt" rather than "unsupported".
_ALLOWED_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
# Common refused formats, only used to make the error message specific.
_OTHER_MAGIC = {
    b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"\x00\x00\x01\x00": "ICO", b"8BPS": "PSD",
    b"%PDF": "PDF", b"\x00\x00\x00\x0cjP  ": "JPEG2000", b"<svg": "SVG", b"<?xml": "XML/SVG",
}


class ImageError(ValueError):
    """Base of every image loading/fetching failure; ``reason`` is a stable short code."""

    reason = "image_error"

    def __init__(self, source: str, detail: str) -> None:
        self.source = source
        self.detail = detail
        super().__init__(f"{source}: {detail} [{self.reason}]")


class UnsupportedFormat(ImageError):
    reason = "unsupported_format"


class ImageTooLarge(ImageError):
    reason = "too_large"


class CorruptImage(ImageError):
    reason = "corrupt"


class UnreadableSource(ImageError):
    reason = "unreadable"


class FetchError(ImageError):
    reason = "fetch_failed"


class FetchTooLarge(FetchError):
    reason = "fetch_too_large"


class FetchTimeout(FetchError):
    reason = "fetch_timeout"


class BlockedURL(FetchError):
    reason = "blocked_url"


class URLFetchDisabled(BlockedURL):
    reason = "url_fetch_disabled"


def image_sha256(data: bytes | bytearray | memoryview) -> str:
    """Hex sha256 of the raw encoded bytes (the content address used by caches and manifests)."""
    return hashlib.sha256(data).hexdigest()


def is_url(source: object) -> bool:
    return isinstance(source, str) and bool(_URL_RE.match(source))


def source_name(source: ImageSource) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes len={len(source)}>"
    return os.fspath(source)


def read_image_bytes(
    source: ImageSource,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    allow_url_fetch: bool = False,
    **fetch_kwargs: Any,
) -> bytes:
    """Raw encoded bytes of a path, a bytes-like object, or (only if opted in) a URL."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if is_url(source):
        if not allow_url_fetch:
            raise URLFetchDisabled(str(source), "URL sources need allow_url_fetch=True")
        from ecomvlm.fetch import fetch_url  # lazy: fetch imports this module's errors

        return fetch_url(str(source), **fetch_kwargs)
    path = Path(os.fspath(source))
    try:
        with path.open("rb") as fh:
            # Read one byte past the cap so an oversized file is detected without stat races.
            data = fh.read(max_file_bytes + 1)
    except OSError as exc:
        raise UnreadableSource(str(path), f"cannot read file ({exc.strerror or exc})") from exc
    if len(data) > max_file_bytes:
        raise ImageTooLarge(str(path), f"file exceeds {max_file_bytes} bytes")
    return data


def _sniff_refused(data: bytes) -> str:
    head = data[:16].lstrip()
    for magic, name in _OTHER_MAGIC.items():
        if head.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] != b"WEBP":
        return "RIFF"
    return "unknown"


def _looks_allowed(data: bytes) -> bool:
    return data.startswith(_ALLOWED_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _open(data: bytes, name: str) -> Image.Image:
    """Header-only open restricted to the allowlist, with bomb signals mapped to our errors."""
    try:
        return Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(name, str(exc)) from exc
    except Image.DecompressionBombWarning as exc:  # promoted to an error by the caller's filter
        raise ImageTooLarge(name, str(exc)) from exc
    except UnidentifiedImageError as exc:
        if _looks_allowed(data):  # right magic but the header did not parse (e.g. bad IHDR CRC)
            raise CorruptImage(name, "header could not be parsed") from exc
        raise UnsupportedFormat(name, f"format {_sniff_refused(data)} is not allowed") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise CorruptImage(name, f"header error: {exc}") from exc


def decode_image(
    data: bytes, source_name: str = "<bytes>", *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode untrusted encoded bytes into an RGB image, or raise a typed :class:`ImageError`."""
    if not data:
        raise CorruptImage(source_name, "empty input")
    # Pillow's bomb warning becomes an error only inside this block. catch_warnings is not
    # thread-isolated (it saves/restores the process-wide filter list), which is tolerable
    # because our own max_pixels check below is the primary guard; we never touch
    # Image.MAX_IMAGE_PIXELS, so Pillow's hard limit (2x that, ~179 MP) still caps max_pixels.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = _open(data, source_name)
        try:
            if im.format not in ALLOWED_FORMATS:  # defensive: formats= should guarantee it
                raise UnsupportedFormat(source_name, f"format {im.format} is not allowed")
            width, height = im.size
            if width <= 0 or height <= 0:
                raise CorruptImage(source_name, f"degenerate size {width}x{height}")
            if width * height > max_pixels:
                raise ImageTooLarge(
                    source_name, f"{width}x{height} exceeds the {max_pixels} pixel cap"
                )
            if im.format == "PNG":
                # Pillow skips CRCs of image-data chunks while decoding; verify() checks every
                # chunk CRC up to IEND (also catching a missing tail) without decoding pixels.
                try:
                    with _open(data, source_name) as probe:
                        probe.verify()
                except ImageError:
                    raise
                except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
                    raise CorruptImage(source_name, f"PNG check failed: {exc}") from exc
            im.seek(0)  # animated GIF/WEBP/APNG: first frame only
            im.load()
            rgb = to_rgb(_apply_exif(im), source_name)
            # `im` is closed below, which invalidates its pixel storage: never hand it out.
            return rgb.copy() if rgb is im else rgb
        except ImageError:
            raise
        except Image.DecompressionBombWarning as exc:
            raise ImageTooLarge(source_name, str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
            raise CorruptImage(source_name, f"decode failed: {exc}") from exc
        finally:
            im.close()


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    allow_url_fetch: bool = False,
    **fetch_kwargs: Any,
) -> Image.Image:
    """Load a path, bytes, or (with ``allow_url_fetch=True``) an http(s) URL as an RGB image.

    ``fetch_kwargs`` go to :func:`ecomvlm.fetch.fetch_url` (max_bytes, timeout, cache, ...).
    """
    data = read_image_bytes(
        source, max_file_bytes=max_file_bytes, allow_url_fetch=allow_url_fetch, **fetch_kwargs
    )
    return decode_image(data, source_name(source), max_pixels=max_pixels)


def _apply_exif(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - malformed EXIF is metadata damage; keep the pixels
        return im


def _composite_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    out = Image.new("RGB", rgba.size, WHITE)
    out.paste(rgba, mask=rgba.getchannel("A"))
    return out


def _scale_to_u8(arr: np.ndarray, *, full_scale: float | None) -> np.ndarray:
    """Map integer/float pixel data to uint8: fixed full scale when known, else min-max."""
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if full_scale is None:
        lo, hi = float(arr.min()), float(arr.max())
        if 0.0 <= lo and hi <= 1.0:  # float images conventionally in [0, 1]
            lo, hi = 0.0, 1.0
        elif 0.0 <= lo and hi <= 255.0:
            lo, hi = 0.0, 255.0
        elif 0.0 <= lo and hi <= 65535.0:
            lo, hi = 0.0, 65535.0
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    else:
        arr = arr / full_scale
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)


def to_rgb(im: Image.Image, source_name: str = "<image>") -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited over white.

    An image that is already plain RGB is returned as-is (no copy).
    """
    mode = im.mode
    if mode == "RGB" and not im.has_transparency_data:
        return im
    if mode.startswith("I;16"):
        return Image.fromarray(_scale_to_u8(np.asarray(im), full_scale=65535.0)).convert("RGB")
    if mode in ("I", "F"):
        return Image.fromarray(_scale_to_u8(np.asarray(im), full_scale=None)).convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or im.has_transparency_data:
        return _composite_white(im)
    try:
        return im.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV, RGBX ...
    except (ValueError, OSError) as exc:
        raise UnsupportedFormat(source_name, f"cannot convert mode {mode} to RGB") from exc


def _fit_size(w: int, h: int, box_w: int, box_h: int) -> tuple[int, int]:
    scale = min(box_w / w, box_h / h)
    # max(1, ...) keeps extreme strips (1x20000) from collapsing to a zero-width image.
    return max(1, min(box_w, round(w * scale))), max(1, min(box_h, round(h * scale)))


def _box(size: int | tuple[int, int]) -> tuple[int, int]:
    box = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if box[0] <= 0 or box[1] <= 0:
        raise ValueError(f"target size must be positive, got {size!r}")
    return box


def fit_image(
    img: Image.Image, size: int | tuple[int, int], resample: int = Image.Resampling.BICUBIC
) -> Image.Image:
    """Resize keeping aspect ratio so the image fits inside ``size`` (no padding)."""
    box = _box(size)
    target = _fit_size(img.width, img.height, *box)
    return img if target == img.size else img.resize(target, resample=resample)


def letterbox(
    img: Image.Image,
    size: int | tuple[int, int],
    fill: tuple[int, int, int] = WHITE,
    resample: int = Image.Resampling.BICUBIC,
) -> Image.Image:
    """Fit inside ``size`` keeping aspect, then pad (centred) with ``fill`` to exactly ``size``."""
    box = _box(size)
    fitted = fit_image(img.convert("RGB") if img.mode != "RGB" else img, box, resample)
    canvas = Image.new("RGB", box, fill)
    canvas.paste(fitted, ((box[0] - fitted.width) // 2, (box[1] - fitted.height) // 2))
    return canvas
