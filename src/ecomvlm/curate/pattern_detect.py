"""The pattern of a product in a photo (the "Pattern" aspect): Solid, Striped, Checked,
Polka Dot or Floral, with a confidence.

A patterned fabric is a base colour (most of the surface) plus a contrasting ink. So the base
is modelled as a smooth colour surface over the object's interior (a quadratic per Lab channel,
fitted robustly: it absorbs lighting ramps and the soft shading of a rounded object), and the
pixels far from it form the *ink* image. The ink is then read three ways:

- how much of the object it covers (a solid product has almost none: only seams and trims);
- its periodicity: the 2D power spectrum of the ink image has one sharp direction for stripes
  and two for checks and dot lattices (the strongest peak, then the strongest one at least
  25 degrees away from it, so a stripe's own harmonics do not count twice);
- its pieces: dots are round blobs of one ink colour; check bands cross, so the ink is one
  connected grid; flowers are less round blobs with accent colours off the base-to-ink line.

Works at the photo's own resolution (capped at ``MAX_SIDE``), on the object's bounding box: at
128 px a dot or stripe can be two pixels wide. The object mask is the one ``colours`` already
computed; its pattern holes are filled and its cast shadows trimmed here. About 11 ms of CPU
a product photo (a shared 2-core box, one thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from . import colours as col

MAX_SIDE = 384  # photos are read at up to this many px on the longest side
MIN_AREA = 1500  # interior pixels below which the surface is too small to read
MIN_COVERAGE = 0.3  # interior share of the outline below which the object mask failed
SURE_COVERAGE = 0.45  # ... and above which it is trusted fully (confidence ramps between)
FLAT_GRADIENT = 20.0  # Sobel magnitude of L (0..100) above which a pixel is a blend
INK_DISTANCE = 14.0  # Lab distance from the base surface that makes a pixel ink (at least)
PATTERNS = ("Solid", "Striped", "Checked", "Polka Dot", "Floral")  # taxonomy.PATTERNS
UNKNOWN = ""  # the label when the surface cannot be read (too small, mask failed)


@dataclass
class PatternFeatures:
    """What the classifier reads off the ink image (see module docstring)."""

    area: int  # object interior pixels
    coverage: float  # interior / filled object outline (low: the mask failed, e.g. white on white)
    ink: float  # share of the interior far from the base surface
    peak1: float  # share of band power in the strongest spectral peak
    peak2: float  # ... in the strongest peak >= 25 degrees away from it
    period: float  # px, of the strongest peak
    blobs: int  # ink components of a plausible dot or flower size
    blob_fill: float  # median area / bounding-box area of those components (disc ~0.78)
    largest: float  # largest ink component's share of all ink (a check grid is one piece)
    off_line: float  # share of ink pixels off the base-to-ink colour line (flower accents)
    blob_off: float  # off_line over the dot-sized components only (trims and shadows left out)


@dataclass
class PatternGuess:
    label: str  # one of PATTERNS, or UNKNOWN
    confidence: float  # 0..1; low means "cannot tell"
    features: PatternFeatures


def object_region(mask: np.ndarray) -> np.ndarray:
    """The object mask with its pattern holes filled (uint8 [h, w], at the mask's size).

    A white dot or check line on a white backdrop looks like backdrop, so the object mask has
    a hole there. Holes are filled unless they are a real gap: large and thick, like the
    space inside a bag's handle (a pattern's holes are thin lines or small blobs)."""
    m = mask.astype(np.uint8)
    holes = col._fill_holes(m) & (1 - m)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4)
    if n <= 1:
        return m
    k5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    thick = cv2.morphologyEx(holes, cv2.MORPH_OPEN, k5)
    thick_area = np.bincount(labels.ravel(), weights=thick.ravel(), minlength=n)
    area = stats[:, cv2.CC_STAT_AREA]
    total = m.sum() + holes.sum()
    gap = (area >= 0.03 * total) & (thick_area >= 0.5 * area)
    gap[0] = True
    return (m | (holes & ~gap[labels]).astype(np.uint8)).astype(np.uint8)


def cast_shadow(small: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Pixels of ``region`` near its outline that look like the backdrop in shade: each RGB
    channel 8-50% below the backdrop model by about the same factor (bool, at the mask's
    size). A soft shadow along a solid product's edge would otherwise read as ink; dark ink
    is far darker, and coloured ink changes the channels unequally."""
    lab = col.to_lab(cv2.GaussianBlur(small, (3, 3), 0))
    model, _ = col.backdrop_model(lab)
    back = cv2.cvtColor(model, cv2.COLOR_Lab2RGB) * 255.0  # [h, w, 3] float
    ratio = small.astype(np.float32) / np.maximum(back, 8.0)
    mean = ratio.mean(axis=2)
    even = np.abs(ratio - mean[..., None]).max(axis=2) < 0.07
    shade = even & (mean > 0.5) & (mean < 0.92)
    near = region & ~cv2.erode(region.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    shadow = shade & near
    return shadow if shadow.sum() < 0.3 * region.sum() else np.zeros_like(shadow)


def _work_arrays(img: Image.Image, om: col.ObjectMask | None,
                 small: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
    """(RGB uint8 [H, W, 3], interior bool [H, W], coverage) at <= MAX_SIDE px; coverage is
    the share of the object's filled outline the interior keeps (low when the mask failed)."""
    arr = np.asarray(img.convert("RGB"))
    h, w = arr.shape[:2]
    k = MAX_SIDE / max(h, w)
    if k < 1:
        arr = cv2.resize(arr, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        h, w = arr.shape[:2]
    if om is None or small is None:
        small, om = col.object_mask(img)
    filled = col._fill_holes(om.mask.astype(np.uint8))
    # ``core`` (eroded, shadows out) also leaves out dark ink on a neutral backdrop, which
    # looks like shadow: a closing puts back those narrow bands, never a wide shadow
    k5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    k7 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    closed = cv2.morphologyEx(om.core.astype(np.uint8), cv2.MORPH_CLOSE, k7) & filled
    region = object_region(closed).astype(bool)
    region &= ~cast_shadow(small, region)
    # handles, straps and brims' thin rims are not the fabric
    region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_OPEN, k5).astype(bool)
    coverage = float(region.sum() / max(int(filled.sum()), 1))
    core = cv2.resize(region.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    # stay inside the outline: the upscaled mask edge is blocky and outlines are strokes
    e = max(1, round(max(h, w) / 256))
    core = cv2.erode(core.astype(np.uint8), np.ones((2 * e + 1, 2 * e + 1), np.uint8))
    # everything after this works on the object's bounding box only
    ys, xs = np.nonzero(core)
    if len(ys) == 0:
        return arr[:1, :1], np.zeros((1, 1), bool), coverage
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return arr[y0:y1, x0:x1], core[y0:y1, x0:x1].astype(bool), coverage


def _base_residual(lab: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit a smooth base surface to the interior; returns (residual Lab [H, W, 3], zero off
    the interior; noise scale).

    The fit and the noise scale use flat pixels only: at small scales most pixels of a fine
    check are blends of base and ink, which would pass for noise and hide the ink."""
    h, w = core.shape
    L = lab[..., 0]
    grad = cv2.Sobel(L, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(L, cv2.CV_32F, 0, 1) ** 2
    flat = core & (grad < FLAT_GRADIENT ** 2)
    if flat.sum() < 0.1 * core.sum():
        flat = core
    ys, xs = np.nonzero(flat)
    step = max(1, len(ys) // 2000)
    sy, sx = ys[::step], xs[::step]
    A = col._design(sx / w - 0.5, sy / h - 0.5).astype(np.float32)
    v = lab[sy, sx]
    # start from the median colour: the base covers most of the surface, the ink does not
    resid = np.sqrt(((v - np.median(v, 0)) ** 2).sum(1))
    keep = resid <= max(float(np.median(resid)), 3.0)
    for _ in range(3):
        coef = col._least_squares(A[keep], v[keep])
        resid = np.sqrt(((v - A @ coef) ** 2).sum(1))
        med = float(np.median(resid[keep]))
        keep = resid <= max(2.5 * med, 3.0)
    noise = 1.4826 * float(np.median(resid[keep]))
    # the surface on the whole grid: 1, x, y, x^2, xy, y^2 (colours._design's order)
    x = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :, None]
    y = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None, None]
    c = coef.astype(np.float32)
    model = c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * x * y + c[5] * y * y
    return np.where(core[..., None], lab - model, 0.0).astype(np.float32), noise


@lru_cache(maxsize=64)
def _frequency_grid(nh: int, nw: int) -> tuple[np.ndarray, np.ndarray]:
    """(radius, direction in [0, pi)) of each bin of an [nh, nw//2+1] half spectrum."""
    fy = np.fft.fftfreq(nh)[:, None].astype(np.float32)
    fx = np.fft.rfftfreq(nw)[None, :].astype(np.float32)
    r = np.hypot(fy, fx)
    theta = np.arctan2(fy, fx) % np.pi
    r[(fx == 0) & (fy < 0)] = 0.0  # the half plane holds those frequencies twice
    return r, theta


def _spectrum_peaks(ink: np.ndarray, core: np.ndarray) -> tuple[float, float, float]:
    """(peak1, peak2, period) of the ink image's power spectrum over the object."""
    f = np.where(core, ink.astype(np.float32) - float(ink[core].mean()), 0.0).astype(np.float32)
    h, w = f.shape
    # one square power-of-two size: the peak shares below depend on the bin size
    nh = nw = 1 << int(np.ceil(np.log2(max(h, w, 16))))
    pad = cv2.copyMakeBorder(f, 0, nh - h, 0, nw - w, cv2.BORDER_CONSTANT, value=0)
    spec = cv2.dft(pad, flags=cv2.DFT_COMPLEX_OUTPUT)[:, : nw // 2 + 1]  # [nh, nw//2+1, 2]
    P = spec[..., 0] ** 2 + spec[..., 1] ** 2
    r, theta = _frequency_grid(nh, nw)
    # periods from 3 px up to a third of the object's shorter side (>= 3 repeats seen)
    band = (r >= 3.0 / max(min(h, w), 12)) & (r <= 1 / 3.0)
    Pb = np.where(band, P, 0.0).astype(np.float32)
    total = float(Pb.sum())
    if total <= 0:
        return 0.0, 0.0, 0.0
    # a peak spreads over neighbouring bins (the object's outline windows it): sum 3x3
    S = cv2.boxFilter(Pb, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    S[~band] = 0.0
    iy, ix = np.unravel_index(int(np.argmax(S)), S.shape)
    peak1 = float(S[iy, ix]) / total
    d = np.abs(theta - theta[iy, ix])
    d = np.minimum(d, np.pi - d)
    peak2 = float(S[d >= np.radians(25)].max(initial=0.0)) / total
    period = 1.0 / float(r[iy, ix]) if r[iy, ix] > 0 else 0.0
    return peak1, peak2, period


def _pieces(ink: np.ndarray, core_area: int) -> tuple[int, float, float, np.ndarray]:
    """(blobs, blob_fill, largest, blob pixels) of the ink's connected components; blobs are
    those of a plausible dot or flower size: at least 4 px, at most 3% of the object."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0, 0.0, 0.0, np.zeros_like(ink)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float32)
    largest = float(areas.max() / areas.sum())
    ok = (areas >= 4) & (areas <= 0.03 * core_area)
    pixels = np.concatenate([[False], ok])[labels]
    if ok.sum() < 3:
        return int(ok.sum()), 0.0, largest, pixels
    box = stats[1:, cv2.CC_STAT_WIDTH][ok] * stats[1:, cv2.CC_STAT_HEIGHT][ok]
    return int(ok.sum()), float(np.median(areas[ok] / box)), largest, pixels


def _off_line(res: np.ndarray, ink: np.ndarray) -> float:
    """Share of ink pixels off the line from the base colour to the main ink colour: a
    two-colour print (with blends at its edges) lies on it, flower accents do not."""
    v = res[ink]  # [N, 3] offsets from the base surface
    if len(v) < 20:
        return 0.0
    strong = v[np.linalg.norm(v, axis=1) >= np.percentile(np.linalg.norm(v, axis=1), 50)]
    direction = np.median(strong, 0)
    norm = float(np.linalg.norm(direction))
    if norm < 1e-3:
        return 0.0
    u = direction / norm
    along = v @ u
    perp = np.linalg.norm(v - along[:, None] * u[None], axis=1)
    return float(((perp > 20) | (along < 0)).mean())


def pattern_features(img: Image.Image, om: col.ObjectMask | None = None,
                     small: np.ndarray | None = None) -> PatternFeatures:
    """Features of the product's surface; ``small`` and ``om`` are what
    :func:`colours.object_mask` returned for ``img`` (computed when not given)."""
    rgb, core, coverage = _work_arrays(img, om, small)
    area = int(core.sum())
    if area < MIN_AREA or coverage < MIN_COVERAGE:
        return PatternFeatures(area, coverage, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0, 0.0)
    lab = col.to_lab(rgb)
    res, noise = _base_residual(lab, core)
    dist = np.sqrt((res ** 2).sum(2))
    ink = core & (dist > max(INK_DISTANCE, 4.0 * noise))
    share = float(ink.sum() / area)
    peak1, peak2, period = _spectrum_peaks(ink, core)
    blobs, fill, largest, blob_px = _pieces(ink, area)
    return PatternFeatures(area, coverage, share, peak1, peak2, period, blobs, fill, largest,
                           _off_line(res, ink), _off_line(res, blob_px))


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at ``lo``, 1 at ``hi``, linear between (``lo`` > ``hi`` ramps down)."""
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def classify(f: PatternFeatures) -> PatternGuess:
    """Rules over the features. Thresholds sit between per-pattern quantiles of each feature
    on a dev catalog (seed 11, train split); a confidence is the weakest of "is it patterned",
    the share of the pattern's cues that agree and how much of the object the mask kept."""
    if f.area < MIN_AREA or f.coverage < MIN_COVERAGE:
        return PatternGuess(UNKNOWN, 0.0, f)
    # solid products keep under ~12% ink (seams, trims, buttons); prints cover 15-50%
    if f.ink < 0.13:
        conf = min(_ramp(f.ink, 0.13, 0.07), _ramp(f.coverage, MIN_COVERAGE, SURE_COVERAGE))
        return PatternGuess("Solid", round(0.95 * conf, 3), f)
    printed = _ramp(f.ink, 0.13, 0.17)
    ratio = f.peak2 / max(f.peak1, 1e-6)
    if ratio < 0.25 and f.peak1 >= 0.2:  # one sharp direction
        votes = [ratio < 0.12, f.peak1 >= 0.28, f.largest < 0.9 or f.ink > 0.3]
        label = "Striped"
    elif f.largest >= 0.75:  # the bands cross: one connected grid
        votes = [f.largest >= 0.88, ratio >= 0.45, f.peak1 >= 0.08, f.off_line < 0.2]
        label = "Checked"
    else:  # blobs: dots are one ink colour, round, on a lattice; flowers add accent colours,
        # petals make them less round, and their spacing is jittered
        dots = [f.blob_off < 0.08, f.blob_off < 0.12, f.off_line < 0.1, f.peak2 >= 0.09,
                f.peak1 >= 0.14, f.blob_fill >= 0.73, f.blob_fill >= 0.75]
        label, votes = ("Polka Dot", dots) if sum(dots) >= 4 else ("Floral", [not d for d in dots])
        if label == "Floral" and ratio < 0.3:  # flowers have no direction; lines of text do
            votes = votes + [False] * len(votes)
    conf = min(printed, float(np.mean(votes)), _ramp(f.coverage, MIN_COVERAGE, SURE_COVERAGE))
    return PatternGuess(label, round(0.95 * conf, 3), f)


def detect_pattern(img: Image.Image, om: col.ObjectMask | None = None,
                   small: np.ndarray | None = None) -> PatternGuess:
    """The pattern of the product in a product photo. ``small, om`` are what
    :func:`colours.object_mask` returned for ``img`` (computed when not given)."""
    return classify(pattern_features(img, om, small))
