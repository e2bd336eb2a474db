"""Label close-ups and packaging backs: the images that carry OCR-checkable text and small marks.

``draw_label`` photographs the item's label (a woven neck label, a printed care label, a
cardboard swing tag or a rating sticker) lying on the item's fabric or casing, and returns the
exact lines it printed: those are the ground-truth "label texts" the OCR verifier must read.
``draw_packaging`` draws the back of the box with the compliance marks of ``taxonomy.MARKS``
printed small, and returns each mark's pixel box: at 224 px a whole-image view cannot resolve
them, which is the point. Both are deterministic given the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .marks import ICON_ASPECT, draw_care_symbols, draw_mark, is_text_block, load_font, mark_size
from .taxonomy import COLOURS
from .taxonomy import category as get_category

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]
SIDE_MIN, SIDE_MAX = 256, 384
SUPERSAMPLE = 4  # marks are drawn 4x and box-reduced, so 15 px marks stay anti-aliased

# (background, ink) pairs per label kind, all with a large luminance gap for OCR.
_LABEL_COLOURS: dict[str, list[tuple[RGB, RGB]]] = {
    "woven": [((20, 20, 22), (245, 245, 240)), ((22, 22, 24), (214, 178, 96)),
              ((28, 38, 90), (240, 240, 235)), ((246, 246, 242), (20, 20, 20)),
              ((222, 204, 170), (70, 42, 22)), ((178, 24, 32), (250, 246, 240)),
              ((86, 88, 94), (250, 250, 250)), ((240, 232, 212), (28, 40, 90))],
    "care": [((250, 250, 248), (35, 35, 38)), ((242, 234, 216), (45, 42, 40)),
             ((226, 228, 232), (20, 20, 24))],
    "tag": [((198, 166, 122), (25, 22, 20)), ((250, 250, 246), (20, 20, 20)),
            ((24, 24, 26), (245, 245, 245)), ((210, 225, 215), (20, 50, 30))],
    "sticker": [((250, 250, 250), (15, 15, 15)), ((206, 208, 212), (10, 10, 12)),
                ((18, 18, 20), (245, 245, 245)), ((246, 214, 66), (15, 15, 15))],
}
_ORIGINS = ["Portugal", "Turkey", "Bangladesh", "India", "China", "Vietnam", "Italy"]
_CARE = ["Machine wash 30°C", "Do not tumble dry", "Wash inside out", "Cool iron",
         "Hand wash only", "Do not bleach"]
_MODEL_PREFIX = {"Power Bank": "PB", "Kettle": "EK", "Desk Lamp": "DL", "Headphones": "HP",
                 "Mug": "MG", "Water Bottle": "WB", "Phone Case": "PC", "Toy": "TY"}
_EXTRAS = {"Power Bank": ["Input: 5V 2A", "Output: 5V 3A", "Li-ion 3.7V"],
           "Kettle": ["220-240V~ 50/60Hz"], "Desk Lamp": ["220-240V~ 50Hz", "Class II"],
           "Headphones": ["Bluetooth 5.3", "DC 5V 0.5A"], "Mug": ["Dishwasher safe"],
           "Water Bottle": ["BPA free", "Hand wash"], "Toy": ["Keep packaging"],
           "Phone Case": ["Shockproof"]}


# ---------------------------------------------------------------- texture and finishing
@lru_cache(maxsize=4)
def _noise_tile(seed: int) -> np.ndarray:
    """A fixed 512x512 Gaussian noise field; crops of it are far cheaper than fresh noise."""
    return np.random.default_rng(seed).standard_normal((512, 512)).astype(np.float32)


def _noise(rng: random.Random, w: int, h: int) -> np.ndarray:
    tile = _noise_tile(rng.randrange(4))
    x, y = rng.randrange(512 - w + 1), rng.randrange(512 - h + 1)
    return tile[y:y + h, x:x + w]


def _backdrop(rng: random.Random, w: int, h: int, fabric: bool) -> np.ndarray:
    """Float HxWx3 surface: knitted fabric for garments, matte or brushed casing for goods."""
    base = np.array(rng.choice(list(COLOURS.values())), np.float32)
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    n = _noise(rng, w, h)
    if fabric:  # rib columns, weft rows and a soft fold
        tex = 9 * np.sin(xs * 2 * np.pi / rng.uniform(3.0, 5.5))[None, :]
        tex = tex + 5 * np.sin(ys * 2 * np.pi / rng.uniform(2.5, 4.0))[:, None] + 7 * n
        fold = np.sin((xs[None, :] * rng.uniform(-1, 1) + ys[:, None]) / rng.uniform(40, 90))
        tex = tex + 14 * fold
    else:  # brushed streaks: noise smeared along rows
        streak = np.cumsum(n, axis=1) / np.sqrt(np.arange(1, w + 1, dtype=np.float32))
        tex = 6 * streak + 3 * n + ys[:, None] * rng.uniform(-0.08, 0.08)
    return base[None, None, :] + tex[..., None]


def _finish(arr: np.ndarray, rng: random.Random, blur_p: float) -> Image.Image:
    """Light falloff, sensor noise and sometimes a touch of defocus."""
    h, w = arr.shape[:2]
    gx, gy = rng.uniform(-0.18, 0.18), rng.uniform(-0.18, 0.18)
    light = 1 + gx * np.linspace(-0.5, 0.5, w)[None, :] + gy * np.linspace(-0.5, 0.5, h)[:, None]
    arr = arr * light[..., None].astype(np.float32)
    arr = arr + rng.uniform(1.5, 5.0) * _noise(rng, w, h)[..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < blur_p:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 0.8)))
    return img


# ---------------------------------------------------------------- label text
def _fashion_lines(category: str, fields: dict[str, str], kind: str,
                   rng: random.Random) -> list[tuple[str, str]]:
    """(text, role) pairs; roles: brand, key (an aspect value), small (boilerplate)."""
    brand = fields.get("Brand", "")
    lines = [(brand.upper() if rng.random() < 0.5 else brand, "brand")] if brand else []
    if v := fields.get("Size"):
        lines.append((rng.choice([f"SIZE {v}", f"Size {v}", f"Size: {v}", v]), "key"))
    if v := fields.get("Waist Size"):
        lines.append((rng.choice([f"{v} L{rng.choice([30, 32, 34])}", f"SIZE {v}", v]), "key"))
    if v := fields.get("Shoe Size"):
        uk = int(v.split()[-1])
        lines.append((rng.choice([f"{v}  EUR {uk + 33}  US {uk + 1}", v, f"SIZE {v}"]), "key"))
    if v := fields.get("Material"):
        pct = "100% " if "%" not in v and rng.random() < 0.4 and "Blend" not in v else ""
        lines.append((rng.choice(["", "Shell: ", "Outer: ", "Material: "]) + pct + v, "key"))
    if v := fields.get("Upper Material"):
        lines.append((rng.choice([f"Upper: {v}", f"Upper Material: {v}", v]), "key"))
    if kind in ("care", "tag") or rng.random() < 0.3:
        lines.append((f"Made in {rng.choice(_ORIGINS)}", "small"))
    if kind == "care":
        lines += [(c, "small") for c in rng.sample(_CARE, rng.randint(1, 2))]
    return lines


def _goods_lines(category: str, fields: dict[str, str],
                 rng: random.Random) -> list[tuple[str, str]]:
    brand = fields.get("Brand", "")
    lines = [(brand.upper() if rng.random() < 0.3 else brand, "brand")] if brand else []
    model = f"{_MODEL_PREFIX.get(category, 'XR')}-{rng.randint(100, 9899)}"
    lines.append((rng.choice(["Model: ", "Model No. ", "MOD. "]) + model, "small"))
    fmt = {"Capacity": ["Capacity: {}", "{}", "Rated Capacity: {}"],
           "Power": ["Power: {}", "{}", "Rated Power: {}"],
           "Battery Type": ["Battery: {}", "{}"], "Material": ["Material: {}", "{}"],
           "Age Range": ["Age: {}", "Suitable for {}"],
           "Compatible Model": ["For {}", "Compatible: {}"]}
    for key, value in fields.items():
        if key != "Brand":
            lines.append((rng.choice(fmt.get(key, ["{}"])).format(value), "key"))
    extras = [*_EXTRAS.get(category, []), "Made in China", f"S/N {rng.randint(10**7, 10**8 - 1)}"]
    lines += [(e, "small") for e in rng.sample(extras, min(len(extras), rng.randint(1, 3)))]
    return lines


# ---------------------------------------------------------------- label drawing
def _shade(colour: RGB, by: int) -> tuple[int, int, int, int]:
    return (*(max(0, c - by) for c in colour), 255)


def _label_card(lines: list[tuple[str, str]], kind: str, rng: random.Random,
                garment: bool) -> Image.Image:
    """The label itself as an RGBA card sized to its text; garments may carry care symbols."""
    bg, ink = rng.choice(_LABEL_COLOURS[kind])
    brand_face = rng.choice(["sans_bold", "serif_bold", "condensed_bold"])
    key_face = rng.choice(["sans_bold", "sans", "condensed_bold"])
    faces = {"brand": brand_face, "key": key_face, "small": rng.choice(["sans", "condensed"])}
    sizes = {"brand": rng.randint(24, 32), "key": rng.randint(17, 22), "small": rng.randint(12, 14)}
    care = kind == "care" or (garment and kind == "woven" and rng.random() < 0.3)
    for _ in range(12):  # shrink until the card fits a 384 px photo with room to rotate
        fonts = {r: load_font(sizes[r], faces[r]) for r in sizes}
        widths = [fonts[r].getlength(t) for t, r in lines]
        pad = int(sizes["key"] * 0.9)
        cw = int(max([*widths, 6.4 * sizes["small"] if care else 0]) + 2 * pad)
        ch = sum(sizes[r] * 1.32 for _, r in lines) + 2 * pad
        ch = int(ch + (sizes["small"] * 1.6 if care else 0))
        if cw <= 330 and ch <= 300:
            break
        sizes = {r: max(11 if r == "small" else 15, int(s * 0.92)) for r, s in sizes.items()}
    card = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    d = ImageDraw.Draw(card)
    radius = {"woven": 2, "care": 4, "tag": 10, "sticker": rng.choice([3, 10])}[kind]
    d.rounded_rectangle((0, 0, cw - 1, ch - 1), radius=radius, fill=(*bg, 255))
    if kind == "woven":  # weave ribs, folded ends and stitching
        for yy in range(0, ch, 3):
            d.line([(0, yy), (cw, yy)], fill=_shade(bg, 14))
        d.rectangle((0, 0, 6, ch), fill=_shade(bg, 35))
        d.rectangle((cw - 7, 0, cw, ch), fill=_shade(bg, 35))
        for yy in range(4, ch - 4, 7):
            d.line([(10, yy), (10, yy + 3)], fill=(*ink, 255), width=1)
    elif kind == "tag":  # punched hole near the top edge
        d.ellipse((cw / 2 - 5, 5, cw / 2 + 5, 15), fill=(0, 0, 0, 0), outline=(*ink, 255))
    elif kind == "sticker" and rng.random() < 0.6:
        d.rounded_rectangle((3, 3, cw - 4, ch - 4), radius=max(1, radius - 2), outline=(*ink, 255))
    centred = kind in ("woven", "tag")
    y = pad + (8 if kind == "tag" else 0) - 2
    for (text, role), tw in zip(lines, widths):
        x = (cw - tw) / 2 if centred else pad
        d.text((x, y), text, fill=(*ink, 255), font=fonts[role])
        y += sizes[role] * 1.32
    if care:
        s = sizes["small"]
        draw_care_symbols(d, (cw - 6.4 * s) / 2 if centred else pad, y + 0.2 * s, s, ink)
    return card


def draw_label(category: str, fields: dict[str, str],
               rng: random.Random) -> tuple[Image.Image, list[str]]:
    """A close-up photo of the item's label with ``fields`` printed; returns (RGB, lines)."""
    cat = get_category(category)
    garment = cat.is_fashion and category not in ("Sneakers", "Handbag")  # no care labels
    if cat.is_fashion:
        kind = rng.choice(["woven", "woven", "care", "tag"] if garment else ["woven", "tag"])
        lines = _fashion_lines(category, fields, kind, rng)
    else:
        kind = "sticker"
        lines = _goods_lines(category, fields, rng)
    card = _label_card(lines, kind, rng, bool(garment))
    card = card.rotate(rng.uniform(-8, 8), resample=Image.BICUBIC, expand=True)
    w = min(SIDE_MAX, max(SIDE_MIN, card.width + rng.randint(24, 90)))
    h = min(SIDE_MAX, max(SIDE_MIN, card.height + rng.randint(24, 90)))
    back = Image.fromarray(np.clip(_backdrop(rng, w, h, cat.is_fashion), 0, 255).astype(np.uint8))
    x, y = rng.randint(0, max(0, w - card.width)), rng.randint(0, max(0, h - card.height))
    alpha = card.getchannel("A")
    shadow = Image.new("RGB", card.size, (0, 0, 0))
    back.paste(shadow, (x + 3, y + 4), alpha.point(lambda a: a * 45 // 255))
    back.paste(card, (x, y), alpha)
    return _finish(np.asarray(back, np.float32), rng, blur_p=0.25), [t for t, _ in lines]


# ---------------------------------------------------------------- packaging
_BLURBS = {
    "Power Bank": "Slim power bank that charges phones, tablets and earbuds on the go.",
    "Headphones": "Deep bass and crisp highs with soft memory foam cushions. Folds flat.",
    "Desk Lamp": "Flicker-free LED light with adjustable arm and touch dimmer.",
    "Kettle": "Rapid boil kettle with concealed element and automatic shut-off.",
    "Toy": "Hours of imaginative play! Encourages creativity. Collect the range.",
    "Mug": "Everyday mug with a smooth glaze. Perfect for tea, coffee and cocoa.",
    "Water Bottle": "Leak-proof bottle that keeps drinks cold for 24 hours.",
    "Phone Case": "Precision cut-outs and raised edges protect screen and camera.",
}
_FEATURES = {
    "Power Bank": ["USB-C fast charging", "LED power indicator", "Charges 2 devices at once"],
    "Headphones": ["Up to 30 hours playback", "Built-in microphone", "Foldable design"],
    "Desk Lamp": ["3 colour modes", "Stepless dimming", "Eye-care LED"],
    "Kettle": ["Rapid boil", "Auto shut-off", "360° swivel base"],
    "Toy": ["Develops creativity", "Safe rounded edges", "Great gift idea"],
    "Mug": ["Microwave safe", "Dishwasher safe", "Gift boxed"],
    "Water Bottle": ["Leak-proof lid", "Keeps cold 24h", "BPA free"],
    "Phone Case": ["Drop tested", "Wireless charging compatible", "Raised bezel"],
}
_PANELS: list[tuple[RGB, RGB]] = [((246, 245, 240), (25, 25, 28)), ((205, 172, 128), (30, 24, 20)),
                                  ((232, 240, 248), (18, 34, 80)), ((28, 30, 36), (240, 240, 240)),
                                  ((250, 238, 220), (90, 20, 20))]


def _wrap(text: str, font, width: float) -> list[str]:
    out, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if font.getlength(trial) <= width or not line:
            line = trial
        else:
            out.append(line)
            line = word
    return out + ([line] if line else [])


def _barcode(rng: random.Random, w: int, h: int, font_px: int) -> Image.Image:
    """EAN-13-like stripes with longer guard bars and the digits under them, on a white patch."""
    bits = [1, 0, 1] + [rng.randint(0, 1) for _ in range(42)] + [0, 1, 0, 1, 0]
    bits += [rng.randint(0, 1) for _ in range(42)] + [1, 0, 1]
    guard = np.zeros(95, bool)
    guard[[0, 1, 2, 45, 46, 47, 48, 49, 92, 93, 94]] = True
    bar_h = h - font_px - 2
    rows = np.full((h, 95), 255, np.uint8)
    on = np.array(bits, bool)
    rows[:bar_h - font_px // 2, on] = 0
    rows[bar_h - font_px // 2:bar_h, on & guard] = 0
    img = Image.fromarray(np.repeat(rows, 4, axis=1)).resize((w - 8, h), Image.BOX)
    patch = Image.new("L", (w, h + 4), 255)
    patch.paste(img, (4, 2))
    digits = "".join(str(rng.randint(0, 9)) for _ in range(13))
    ImageDraw.Draw(patch).text((w / 2, h + 1), f"{digits[0]} {digits[1:7]} {digits[7:]}", fill=0,
                               font=load_font(font_px, "mono"), anchor="md")
    return patch.convert("RGB")


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], gap: float) -> bool:
    apart_x = a[2] + gap <= b[0] or b[2] + gap <= a[0]
    return not (apart_x or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _place(size: tuple[int, int], region: Box, taken: list, rng: random.Random, scatter: bool,
           from_right: bool) -> tuple[int, int] | None:
    """Top-left for a w x h rect in region clear of ``taken``: random tries when scattering,
    else first fit along shelves that start at the bottom edge and stack upwards."""
    w, h = size
    x0, y0, x1, y1 = region
    if x1 - x0 < w or y1 - y0 < h:
        return None
    for _ in range(40 if scatter else 0):
        x, y = rng.randint(x0, x1 - w), rng.randint(y0, y1 - h)
        if not any(_overlaps((x, y, x + w, y + h), t, 3) for t in taken):
            return x, y
    for bottom in range(y1, y0 + h - 1, -4):
        x = x1 - w if from_right else x0
        while x0 <= x <= x1 - w:
            rect = (x, bottom - h, x + w, bottom)
            hit = [t for t in taken if _overlaps(rect, t, 3)]
            if not hit:
                return x, bottom - h
            x = min(t[0] for t in hit) - w - 3 if from_right else max(t[2] for t in hit) + 3
    return None


def draw_packaging(category: str, brand: str, marks: list[str],
                   rng: random.Random) -> tuple[Image.Image, dict[str, Box]]:
    """Back of the box with brand, blurb, barcode, small print and each of ``marks`` drawn
    small; returns (RGB image, mark -> tight (x0, y0, x1, y1) box)."""
    # Separate streams: the layout and the noise never depend on which marks are drawn, so
    # dropping a mark leaves every other pixel of the image unchanged.
    lay = random.Random(rng.getrandbits(64))
    mark_rng = random.Random(rng.getrandbits(64))
    finish_rng = random.Random(rng.getrandbits(64))
    w, h = lay.randint(SIDE_MIN, SIDE_MAX), lay.randint(SIDE_MIN, SIDE_MAX)
    panel, ink = lay.choice(_PANELS)
    img = Image.new("RGB", (w, h), panel)
    d = ImageDraw.Draw(img)
    m = int(0.05 * w)
    taken: list[tuple[int, int, int, int]] = []
    # header: brand, on a colour band half the time
    bf = load_font(int(w * lay.uniform(0.08, 0.11)), lay.choice(["sans_bold", "serif_bold"]))
    head_h = int(bf.size * 1.7)
    if lay.random() < 0.5:
        band = lay.choice([c for c in COLOURS.values() if abs(sum(c) - sum(panel)) > 200]
                          or [(30, 30, 30)])
        d.rectangle((0, 0, w, head_h), fill=band)
        d.text((m, head_h // 2), brand, fill=(250, 250, 250) if sum(band) < 400 else (15, 15, 15),
               font=bf, anchor="lm")
    else:
        d.text((m, head_h // 2), brand, fill=ink, font=bf, anchor="lm")
    # blurb, capped so the lower ~45% stays free for barcode, small print and marks
    tf = load_font(max(10, int(w * 0.034)), "sans")
    y = head_h + int(0.4 * tf.size) + 4
    blurb = _BLURBS.get(category, f"Quality {category.lower()} from {brand}. Designed to last.")
    for line in _wrap(blurb, tf, w - 2 * m)[: max(1, int((0.52 * h - y) / (tf.size * 1.3)))]:
        d.text((m, y), line, fill=ink, font=tf)
        y += int(tf.size * 1.3)
    feats = _FEATURES.get(category, [])[: lay.randint(0, 3)]
    for feat in feats:  # bullet list, stopped early on short packs
        if y + tf.size * 1.3 > 0.6 * h:
            break
        r = tf.size * 0.18
        d.ellipse((m + 2, y + tf.size * 0.5 - r, m + 2 + 2 * r, y + tf.size * 0.5 + r), fill=ink)
        d.text((m + 4 * r + 4, y), feat, fill=ink, font=tf)
        y += int(tf.size * 1.3)
    region_top = y + 6
    if lay.random() < 0.6 and 0.66 * h - region_top > 0.18 * h:  # product shot in a window
        px0, py0 = int(w * lay.uniform(0.35, 0.5)), region_top
        px1, py1 = w - m, int(0.66 * h)
        tint = tuple(int(c * 0.8 + 50) for c in lay.choice(list(COLOURS.values())))
        d.rounded_rectangle((px0, py0, px1, py1), radius=8, fill=tint)
        obj = lay.choice(list(COLOURS.values()))
        cx, cy, r = (px0 + px1) / 2, (py0 + py1) / 2, min(px1 - px0, py1 - py0) * 0.32
        d.ellipse((cx - r * 1.2, cy + r * 0.8, cx + r * 1.2, cy + r * 1.1), fill=_shade(tint, 40))
        d.rounded_rectangle((cx - r * 0.8, cy - r, cx + r * 0.8, cy + r * 0.95), radius=int(r / 3),
                            fill=obj, outline=_shade(obj, 50), width=2)
        taken.append((px0, py0, px1, py1))
    # barcode in a bottom corner, small print above the other corner
    bw, bh = int(w * lay.uniform(0.26, 0.32)), int(h * lay.uniform(0.11, 0.14))
    code_right = lay.random() < 0.6
    bx = w - m - bw if code_right else m
    code = _barcode(lay, bw, bh, max(7, bh // 5))
    img.paste(code, (bx, h - m - code.height))
    taken.append((bx, h - m - code.height, bx + bw, h - m))
    sf = load_font(max(7, int(w * 0.022)), "condensed")
    slug = "".join(c for c in brand.lower() if c.isalnum())
    small = [f"Distributed by {brand} Ltd, Leeds LS1 4AB, UK", "Made in China",
             f"www.{slug}.co.uk"][: lay.randint(1, 3)]
    sy = h - m - len(small) * int(sf.size * 1.25)
    sx = m if code_right else bx + bw + 8
    for i, line in enumerate(small):
        d.text((sx, sy + i * int(sf.size * 1.25)), line, fill=ink, font=sf)
    taken.append((sx, sy, sx + int(max(sf.getlength(s) for s in small)), h - m))
    # marks: one base height per pack, drawn 4x on a mask and reduced for anti-aliasing
    scatter, from_right = lay.random() < 0.4, lay.random() < 0.3
    # scattered marks stay near the small print in the lower part, rows run along the bottom
    region = (m, max(region_top, int(0.55 * h)) if scatter else region_top, w - m, h - m)
    base = mark_rng.uniform(0.045, 0.08) * min(w, h)
    boxes: dict[str, Box] = {}
    for mark in marks:
        height = base * mark_rng.uniform(0.9, 1.1)
        if is_text_block(mark):
            height = max(6.0, min(w, h) * mark_rng.uniform(0.019, 0.024))
        mw, mh = mark_size(mark, height)
        if mark in ICON_ASPECT:  # keep every icon within ~12% of the image side
            k = min(1.0, 0.12 * min(w, h) / max(mw, mh))
            mw, mh = mw * k, mh * k
        size = (int(mw) + 3, int(mh) + 3)
        pos = _place(size, region, taken, mark_rng, scatter, from_right)
        if pos is None:  # no free room left: fall back to anywhere under the header
            pos = _place(size, (m, head_h + 2, w - m, h - m), taken, mark_rng, True, from_right)
        if pos is None:
            raise ValueError(f"no room for mark {mark!r} on a {w}x{h} pack")
        tile = Image.new("L", (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), 0)
        s = SUPERSAMPLE
        draw_mark(ImageDraw.Draw(tile), mark, (s, s, (mw + 1) * s, (mh + 1) * s), 255,
                  variant=mark_rng.randrange(2))
        tile = tile.reduce(SUPERSAMPLE)
        img.paste(ink, pos, tile)
        tx0, ty0, tx1, ty1 = tile.getbbox() or (0, 0, size[0], size[1])
        boxes[mark] = (pos[0] + tx0, pos[1] + ty0, pos[0] + tx1, pos[1] + ty1)
        taken.append((pos[0], pos[1], pos[0] + size[0], pos[1] + size[1]))
    return _finish(np.asarray(img, np.float32), finish_rng, blur_p=0.15), boxes
