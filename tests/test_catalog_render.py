"""Behaviour of the product renderer: the catalog's images are its ground truth, so these tests
check that every category draws, that colour, pattern and the visible aspects can really be
seen in the pixels (by simple statistics), that scenes keep the colour and report the right
box, and that everything is deterministic."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from PIL import Image

from ecomvlm.catalog.draw_products import DRAWERS, draw_design, draw_product
from ecomvlm.catalog.patterns import pattern_fill
from ecomvlm.catalog.scene import compose_scene, compose_scene_with_mask, draw_lifestyle
from ecomvlm.catalog.taxonomy import CATEGORIES, COLOURS, PATTERNS

NAMES = list(COLOURS)


def _lab(rgb) -> np.ndarray:
    """sRGB (0..255) -> CIE Lab (D65), for perceptual nearest-colour checks."""
    c = np.asarray(rgb, float) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


PALETTE_LAB = _lab([COLOURS[n] for n in NAMES])


def nearest_colour(rgb) -> str:
    return NAMES[int(((PALETTE_LAB - _lab(rgb)) ** 2).sum(-1).argmin())]


def object_pixels(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img)
    return arr[..., :3][arr[..., 3] > 128].astype(float)


def render(category: str, aspects: dict[str, str], view: str, seed: int) -> Image.Image:
    """A product whose design comes from ``seed`` (not from its aspects), so that two values
    of one aspect can be compared on otherwise identical designs."""
    return draw_design(category, aspects, view, random.Random(seed), random.Random(-seed))


def random_aspects(category: str, rng: random.Random) -> dict[str, str]:
    return {a.key: rng.choice(a.values) for a in CATEGORIES[category].aspects}


def alpha(img: Image.Image) -> np.ndarray:
    return np.asarray(img)[..., 3] > 128


def spans(mask: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Per-row width of the silhouette (first to last opaque pixel) and its row range."""
    rows = np.flatnonzero(mask.any(axis=1))
    widths = np.zeros(mask.shape[0])
    for y in rows:
        xs = np.flatnonzero(mask[y])
        widths[y] = xs[-1] - xs[0] + 1
    return widths, int(rows[0]), int(rows[-1])


# ---- every category draws -------------------------------------------------------------------


@pytest.mark.parametrize("category", sorted(DRAWERS))
@pytest.mark.parametrize("view", ["main", "alternate"])
def test_every_category_and_view_renders(category: str, view: str) -> None:
    assert set(DRAWERS) == set(CATEGORIES)
    for seed in range(3):
        rng = random.Random(seed)
        img = draw_product(category, random_aspects(category, rng), view, rng)
        assert img.mode == "RGBA" and img.size == (300, 300)
        m = alpha(img)
        assert 0.1 < m.mean() < 0.95, f"{category}/{view} covers {m.mean():.2f}"
        ys, xs = np.nonzero(m)
        assert max(np.ptp(xs), np.ptp(ys)) > 240  # the object fills the frame


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_every_visible_aspect_value_changes_the_drawing(category: str) -> None:
    """Same seed, different value of a product-visible aspect -> a different picture; this
    catches drawers that ignore an aspect."""
    cat = CATEGORIES[category]
    for aspect in cat.aspects:
        if aspect.visible != "product" or aspect.key == "Color" or len(aspect.values) < 2:
            continue
        pictures = [
            np.asarray(render(category, {"Color": "Orange", aspect.key: v}, "main", 7))
            for v in aspect.values
        ]
        for i in range(len(pictures)):
            for j in range(i + 1, len(pictures)):
                diff = np.abs(pictures[i].astype(int) - pictures[j].astype(int)).mean()
                assert diff > 0.08, (
                    f"{category}: {aspect.key} {aspect.values[i]} vs {aspect.values[j]}"
                )


def test_missing_and_unknown_aspects_fall_back() -> None:
    img = draw_product("T-Shirt", {"Brand": "Nordvik", "Weird": "x"}, "main", random.Random(0))
    assert alpha(img).mean() > 0.2
    with pytest.raises(KeyError):
        draw_product("Spaceship", {}, "main", random.Random(0))


# ---- colour ---------------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["T-Shirt", "Mug"])
def test_every_colour_is_the_median_colour(category: str) -> None:
    for name in NAMES:
        for seed in range(2):
            asp = {"Color": name, "Pattern": "Solid"}
            img = render(category, asp, ("main", "alternate")[seed], seed)
            med = np.median(object_pixels(img), axis=0)
            assert nearest_colour(med) == name, f"{category} {name}: median {med}"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_patterned_items_keep_one_colour(pattern: str) -> None:
    """The base colour dominates a patterned swatch (>= 60% of pixels) and a patterned
    garment's median colour is still the base colour."""
    for i, name in enumerate(NAMES):
        c = np.array(COLOURS[name], float)
        swatch = np.asarray(pattern_fill((300, 300), COLOURS[name], pattern, random.Random(i)))
        near = (np.abs(swatch.astype(float) - c).sum(-1) < 30).mean()
        assert near >= 0.6, f"{pattern} {name}: base covers {near:.2f}"
        for category in ("T-Shirt", "Dress", "Handbag", "Phone Case"):
            img = render(category, {"Color": name, "Pattern": pattern}, "main", i)
            med = np.median(object_pixels(img), axis=0)
            assert nearest_colour(med) == name, f"{category} {pattern} {name}: median {med}"


def test_colour_survives_the_scene() -> None:
    """After placement, lighting, blur and noise, the object's pixels still name its colour."""
    hits, total = 0, 0
    categories = sorted(DRAWERS)
    for seed in range(60):
        rng = random.Random(1000 + seed)
        category = ("T-Shirt", "Mug")[seed % 2] if seed < 30 else categories[seed % 17]
        asp = random_aspects(category, rng)
        photo, box, mask = compose_scene_with_mask(
            draw_product(category, asp, rng.choice(["main", "alternate"]), rng), rng
        )
        x0, y0, x1, y1 = box
        inside = np.asarray(mask)[y0:y1, x0:x1] > 200
        pixels = np.asarray(photo)[y0:y1, x0:x1][inside].astype(float)
        hits += nearest_colour(np.median(pixels, axis=0)) == asp["Color"]
        total += 1
    assert hits / total >= 0.9, f"colour right in {hits}/{total} scenes"


# ---- pattern --------------------------------------------------------------------------------


def _autocorr_peak(grey: np.ndarray) -> float:
    """Strongest normalised autocorrelation at a shift of 8-45 px: high for regular repeats."""
    y = grey - grey.mean()
    ac = np.fft.irfft2(np.abs(np.fft.rfft2(y)) ** 2, s=y.shape)
    ac /= ac[0, 0]
    h, w = y.shape
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(np.minimum(xx, w - xx), np.minimum(yy, h - yy))
    return float(ac[(d >= 8) & (d <= 45)].max())


def classify_pattern(rgb: np.ndarray) -> str:
    """A simple statistics-only classifier: if it can tell the patterns apart, so can a VLM."""
    grey = rgb.astype(float).mean(-1)
    v = grey.var()
    if v < 60:
        return "Solid"
    cols, rows = grey.mean(0).var() / v, grey.mean(1).var() / v
    hi, lo = max(cols, rows), min(cols, rows)
    if hi > 0.6 and lo < 0.08:
        return "Striped"
    if lo > 0.35:
        return "Checked"
    return "Polka Dot" if _autocorr_peak(grey) > 0.7 else "Floral"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_swatches_are_distinguishable(pattern: str) -> None:
    for i, name in enumerate(NAMES):
        swatch = np.asarray(pattern_fill((256, 256), COLOURS[name], pattern, random.Random(i)))
        assert classify_pattern(swatch) == pattern, name


def test_patterns_show_on_the_garment() -> None:
    """On a drawn T-shirt's chest: Solid is flat, every other pattern varies, and stripes
    vary along one axis only."""

    def chest(pattern: str, seed: int) -> np.ndarray:
        asp = {"Color": NAMES[seed % 13], "Pattern": pattern, "Neckline": "Crew Neck"}
        img = render("T-Shirt", asp, "main", seed)
        return np.asarray(img)[140:230, 105:195, :3].astype(float)

    for seed in range(8):
        solid = chest("Solid", seed).mean(-1).var()
        for pattern in PATTERNS[1:]:
            assert chest(pattern, seed).mean(-1).var() > 3 * solid + 50, (pattern, seed)
        grey = chest("Striped", seed).mean(-1)
        v = grey.var()
        ratio = max(grey.mean(0).var(), grey.mean(1).var()) / max(
            1e-9, min(grey.mean(0).var(), grey.mean(1).var())
        )
        assert ratio > 8 and max(grey.mean(0).var(), grey.mean(1).var()) > 0.4 * v, seed


# ---- garment attributes -----------------------------------------------------------------------


def _sleeve_profile(category: str, sleeve: str, seed: int) -> tuple[float, float]:
    """(width at 25% height, width at 70% height), both relative to the width at the hem."""
    img = render(category, {"Sleeve Length": sleeve, "Dress Length": "Maxi"}, "main", seed)
    widths, top, bottom = spans(alpha(img))
    h = bottom - top
    hem = widths[top + int(0.95 * h)] if category == "T-Shirt" else widths[top + int(0.45 * h)]
    return widths[top + int(0.25 * h)] / hem, widths[top + int(0.7 * h)] / hem


@pytest.mark.parametrize("seed", range(6))
def test_sleeve_length_changes_the_silhouette(seed: int) -> None:
    short_up, short_low = _sleeve_profile("T-Shirt", "Short Sleeve", seed)
    _, long_low = _sleeve_profile("T-Shirt", "Long Sleeve", seed)
    bare_up, _ = _sleeve_profile("T-Shirt", "Sleeveless", seed)
    assert long_low > 1.3 and short_low < 1.12  # long sleeves hang down past the hip
    assert short_up > 1.25 and bare_up < 1.1  # short sleeves stick out at the shoulders


def _neck_depth(neckline: str, seed: int) -> int:
    """Rows from the top of the garment to the first body-coloured pixel on the centre line."""
    img = render("T-Shirt", {"Color": "Red", "Neckline": neckline}, "main", seed)
    arr = np.asarray(img).astype(float)
    col = arr[:, 148:153].mean(axis=1)
    opaque = col[:, 3] > 128
    body = opaque & (np.abs(col[:, :3] - COLOURS["Red"]).sum(-1) < 90)
    top = int(np.flatnonzero(opaque)[0])
    hole = top + int(np.flatnonzero(~body[top:])[0])  # the neck opening (after any band)
    run = body[hole:-2] & body[hole + 1 : -1] & body[hole + 2 :]  # 3 body rows, not an AA edge
    return int(np.flatnonzero(run)[0]) + hole - top


@pytest.mark.parametrize("seed", range(6))
def test_v_neck_dips_deeper_than_crew(seed: int) -> None:
    assert _neck_depth("V-Neck", seed) > 1.8 * _neck_depth("Crew Neck", seed)


def _waist_fraction(length: str, seed: int) -> float:
    """Height of the narrowest row (the waist) as a fraction of the dress's height."""
    img = render("Dress", {"Dress Length": length, "Sleeve Length": "Short Sleeve"}, "main", seed)
    widths, top, bottom = spans(alpha(img))
    h = bottom - top
    band = widths[top + int(0.1 * h) : top + int(0.9 * h)]
    return (int(band.argmin()) + int(0.1 * h)) / h


@pytest.mark.parametrize("seed", range(6))
def test_dress_length_moves_the_hem(seed: int) -> None:
    mini, midi, maxi = (_waist_fraction(v, seed) for v in ("Mini", "Midi", "Maxi"))
    assert mini > midi + 0.08 and midi > maxi + 0.05, (mini, midi, maxi)


@pytest.mark.parametrize("seed", range(6))
def test_skirt_length_changes_the_proportions(seed: int) -> None:
    def aspect(length: str) -> float:
        ys, xs = np.nonzero(alpha(render("Skirt", {"Skirt Length": length}, "main", seed)))
        return np.ptp(ys) / np.ptp(xs)

    assert aspect("Mini") + 0.08 < aspect("Midi") < aspect("Maxi") - 0.08


@pytest.mark.parametrize("seed", range(6))
def test_jeans_fit_sets_the_leg_width(seed: int) -> None:
    def hem_cover(fit: str) -> float:
        m = alpha(render("Jeans", {"Fit": fit}, "main", seed))
        rows = np.flatnonzero(m.any(axis=1))
        return m[rows[-1] - 12].sum() / m[rows[0] + int(0.25 * (rows[-1] - rows[0]))].sum()

    skinny, straight, wide = (hem_cover(f) for f in ("Skinny", "Straight", "Wide Leg"))
    assert skinny + 0.1 < straight < wide - 0.15, (skinny, straight, wide)


# ---- goods attributes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ports,count", [("USB-C", 1), ("USB-A + USB-C", 2), ("2x USB-A + USB-C", 3)]
)
def test_power_bank_shows_its_ports(ports: str, count: int) -> None:
    img = render("Power Bank", {"Color": "White", "Ports": ports}, "alternate", 3)
    arr = np.asarray(img).astype(int)
    dark = (arr[..., 3] > 128) & (arr[..., :3].max(-1) < 50)
    cols = dark.any(axis=0).astype(int)
    runs = int((np.diff(np.concatenate([[0], cols, [0]])) == 1).sum())
    assert runs == count


def test_over_ear_cups_are_bigger_than_on_ear() -> None:
    for seed in range(4):
        over = alpha(render("Headphones", {"Type": "Over-Ear"}, "main", seed))
        on = alpha(render("Headphones", {"Type": "On-Ear"}, "main", seed))
        assert over.mean() > on.mean() * 1.1


# ---- scene ------------------------------------------------------------------------------------


def test_scene_box_and_size() -> None:
    for seed in range(25):
        rng = random.Random(seed)
        category = sorted(DRAWERS)[seed % 17]
        obj = draw_product(category, random_aspects(category, rng), "main", rng)
        state = rng.getstate()
        photo, box, mask = compose_scene_with_mask(obj, rng)
        rng.setstate(state)
        photo2, box2 = compose_scene(obj, rng)
        assert box == box2 and photo.tobytes() == photo2.tobytes()
        w, h = photo.size
        assert photo.mode == "RGB" and 256 <= w <= 384 and 256 <= h <= 384
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        m = np.asarray(mask) > 24
        ys, xs = np.nonzero(m)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == box  # tight on the mask
        span = max((x1 - x0) / w, (y1 - y0) / h)
        assert 0.4 <= span <= 0.95, span
    photo, box = compose_scene(obj, random.Random(1), size=(300, 260))
    assert photo.size == (300, 260)


def test_lifestyle_photo() -> None:
    for seed in range(6):
        img = draw_lifestyle(random.Random(seed))
        assert img.mode == "RGB" and 256 <= min(img.size) and max(img.size) <= 384
        assert np.asarray(img).astype(float).std() > 5
    assert draw_lifestyle(random.Random(0), (320, 240)).size == (320, 240)


# ---- one product, many photos ---------------------------------------------------------------


def test_views_and_listings_of_one_product_agree() -> None:
    """The design follows the product (category + aspects): two photos of it differ only by
    framing and light, its back view keeps the stripe direction, and another product differs."""
    asp = {
        "Color": "Navy",
        "Pattern": "Striped",
        "Sleeve Length": "Long Sleeve",
        "Neckline": "V-Neck",
        "Size": "M",
        "Material": "Linen",
        "Brand": "Sollen",
    }
    for seed in range(5):
        asp["Size"] = ("XS", "S", "M", "L", "XL")[seed]
        one = alpha(draw_product("T-Shirt", asp, "main", random.Random(1)))
        two = alpha(draw_product("T-Shirt", asp, "main", random.Random(2)))
        iou = (one & two).sum() / (one | two).sum()
        assert iou > 0.85, iou
        front = np.asarray(draw_product("T-Shirt", asp, "main", random.Random(3)))
        back = np.asarray(draw_product("T-Shirt", asp, "alternate", random.Random(4)))

        def axis(arr: np.ndarray) -> int:
            grey = arr[140:230, 105:195, :3].astype(float).mean(-1)
            return int(grey.mean(1).var() > grey.mean(0).var())  # 1 = horizontal stripes

        assert axis(front) == axis(back)
    other = alpha(draw_product("T-Shirt", {**asp, "Brand": "Aubrin"}, "main", random.Random(1)))
    assert (other != one).mean() > 0.005


# ---- determinism and speed ----------------------------------------------------------------------


def test_same_seed_same_pixels_different_seed_different() -> None:
    def photo_bytes(seed: int) -> bytes:
        rng = random.Random(seed)
        obj = draw_product("Dress", {"Color": "Green", "Pattern": "Floral"}, "main", rng)
        photo, box = compose_scene(obj, rng)
        return obj.tobytes() + photo.tobytes() + bytes(str(box), "ascii")

    assert photo_bytes(11) == photo_bytes(11)
    assert photo_bytes(11) != photo_bytes(12)
    assert draw_lifestyle(random.Random(4)).tobytes() == draw_lifestyle(random.Random(4)).tobytes()


def test_report_time_per_main_image() -> None:
    """Not a timing assert: prints the cost of one main photo (draw + scene at 384 px)."""
    categories = sorted(DRAWERS)
    n, start = 68, time.perf_counter()
    for i in range(n):
        rng = random.Random(i)
        category = categories[i % 17]
        compose_scene(
            draw_product(category, random_aspects(category, rng), "main", rng), rng, size=(384, 384)
        )
    per = (time.perf_counter() - start) / n * 1000
    print(f"\nrender: {per:.1f} ms per main photo (draw_product + compose_scene, 384 px)")
    assert per < 1000
