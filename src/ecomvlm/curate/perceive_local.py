"""The default ``perception`` captioner: cheap CPU perception of listing photos.

Per listing, all new photos go through EfficientNet-Lite0 in one batch (bf16 autocast). The
ImageNet posterior gives two things: a "printed matter" mass (envelope, website, dust jacket,
packet, menu...: what labels and packs look like to an ImageNet model) for the role guess, and
our 17 categories through a text bridge (MiniLM similarity of ImageNet class names to category
names, a [1000 x 17] matrix built once and cached on disk). Cheap pixel cues at ~128-192 px
(edge and text-block density, barcode-like blocks, border texture, object mask from
``colours``) complete the role guess. OCR, the expensive part, runs only on photos guessed to
be labels or packaging, or that look text-heavy; its lines then settle label vs packaging
(text printed on the frame's own colour, an EAN number, small print). Marks are detected on
packaging; colours and the pattern (``pattern_detect``) on product photos. Models load lazily,
once per process; the OCR sessions get torch's thread count (1 in a pool worker) instead of
every core.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ecomvlm.catalog.taxonomy import CATEGORIES

from . import colours as col
from .marks_detect import detect_marks
from .pattern_detect import detect_pattern
from .perceive import Captioner, Photo, caption_from_structure
from .records import ImagePerception, OcrBox

# ImageNet classes that are printed matter: ring binder, brass plaque, carton, doormat,
# envelope, packet, ruler, scoreboard, slide rule, website, comic book, crossword, street
# sign, dust jacket, menu.
PRINTED_CLASSES = (446, 458, 478, 539, 549, 692, 769, 781, 798, 916, 917, 918, 919, 921, 922)
BRIDGE_TAU = 0.1  # softmax temperature over categories per ImageNet class
MARKS_MAX_SIDE = 400  # packs are matched at about the scale the templates were made for
_EAN = re.compile(r"^\D{0,2}(\d[\d ]{10,16}\d)\D{0,2}$")


@dataclass
class Cues:
    """Cheap evidence for the role guess (see module docstring)."""

    printed: float  # ImageNet probability mass on printed-matter classes
    edge: float  # share of strong-gradient pixels at 192 px
    textness: float  # share of 12 px blocks with high gradient energy
    barcode: int  # blocks of strong vertical bars with little horizontal structure
    border_texture: float  # mean |Laplacian| along the frame (a label's fabric backdrop)
    touch: float  # share of the frame the object mask covers (scenes fill the frame)
    sharp: float  # gradient at the object's outline (scenes are soft)
    border_sat: float  # mean saturation along the frame
    noise: float  # spread of the frame around a smooth backdrop surface (scenes are busy)
    backdrop: str  # colour name of the frame


def pixel_cues(image: Image.Image, rgb: np.ndarray, om: col.ObjectMask,
               printed: float) -> Cues:
    grey = image.convert("L")
    grey.thumbnail((192, 192))
    a = np.asarray(grey, np.float32)
    gx, gy = np.abs(np.diff(a, axis=1))[:-1], np.abs(np.diff(a, axis=0))[:, :-1]
    edge = float((gx + gy > 40).mean())
    lap = np.abs(4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:])
    frame = np.concatenate([lap[:4].ravel(), lap[-4:].ravel(), lap[:, :4].ravel(),
                            lap[:, -4:].ravel()])
    bs = 12
    H, W = gx.shape[0] // bs, gx.shape[1] // bs
    bx = gx[:H * bs, :W * bs].reshape(H, bs, W, bs).mean((1, 3))
    by = gy[:H * bs, :W * bs].reshape(H, bs, W, bs).mean((1, 3))

    h, w = om.mask.shape
    b = max(2, round(col.BORDER_FRAC * min(h, w)))
    ring = np.zeros((h, w), bool)
    ring[:b], ring[-b:], ring[:, :b], ring[:, -b:] = True, True, True, True
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    outline = om.mask ^ cv2.erode(om.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    frame_lab = col.to_lab(rgb)[ring]
    return Cues(
        printed=printed, edge=edge, textness=float(((bx + by) > 25).mean()) if H and W else 0.0,
        barcode=int(((bx > 35) & (by < 0.3 * bx)).sum()),
        border_texture=float(frame.mean()) if frame.size else 0.0,
        touch=float(om.mask[ring].mean()),
        sharp=float(np.percentile(mag[outline], 75)) if outline.any() else 0.0,
        border_sat=float(hsv[..., 1][ring].mean()), noise=om.noise,
        backdrop=col.COLOUR_NAMES[int(col.name_pixels(np.median(frame_lab, 0)[None])[0])])


def guess_role(c: Cues) -> tuple[str, float]:
    """Before OCR: (role, confidence). Thresholds were read off per-role quantiles of each cue
    on a dev catalog; each branch's confidence is the share of its cues that agree."""
    doc = ((c.printed >= 0.15 and c.edge >= 0.05) or (c.printed >= 0.45 and c.edge >= 0.03)
           or (c.edge >= 0.06 and c.textness >= 0.12 and c.printed >= 0.08))
    if doc:
        agree = np.mean([c.printed >= 0.15, c.edge >= 0.05, c.textness >= 0.12,
                         c.printed >= 0.45])
        if c.border_texture >= 7:
            return "label", 0.5 + 0.4 * agree
        if c.barcode >= 1 or c.border_texture < 5:
            return "packaging", 0.45 + 0.35 * agree
        return "label", 0.4 + 0.2 * agree
    # a scene, not a product shot: the mask spills over the frame, the frame is not a smooth
    # backdrop, the outlines are soft (no cut-out object), the frame is colourful
    soft, busy, spills = c.sharp < 110, c.noise > 3.0, c.touch > 0.09
    others = sum([soft, c.border_sat > 45, c.edge < 0.02])
    if c.touch > 0.15 or (busy and (soft or spills)) or (spills and others >= 2):
        return "other", 0.55 + 0.1 * others
    return "product", 0.95 - 0.1 * (others + spills + busy)


def wants_ocr(role: str, c: Cues) -> bool:
    """OCR is the hot spot: labels and packs, plus product guesses that look text-heavy."""
    return role in ("label", "packaging") or (c.edge >= 0.06 and c.textness >= 0.15
                                              and c.printed >= 0.05)


def on_panel(image: Image.Image, ocr: list[OcrBox]) -> float:
    """Share of text lines printed straight on the frame's colour. A pack's panel fills the
    photo, so its text sits on the frame colour; a label is a card lying on something else."""
    k = min(1.0, 512 / max(image.size))  # boxes are in the photo's pixels; work at <= 512 px
    if k < 1.0:
        image = image.resize((round(image.width * k), round(image.height * k)), Image.BILINEAR)
    lab = col.to_lab(np.asarray(image))
    h, w = lab.shape[:2]
    b = max(2, round(0.04 * min(h, w)))
    ring = np.zeros((h, w), bool)
    ring[:b], ring[-b:], ring[:, :b], ring[:, -b:] = True, True, True, True
    frame = np.median(lab[ring], 0)
    weight = np.array([col.L_WEIGHT, 1.0, 1.0], np.float32)
    boxes = [tuple(round(v * k) for v in o.box) for o in ocr]
    near = [np.linalg.norm((np.median(lab[y0:y1, x0:x1].reshape(-1, 3), 0) - frame) * weight) < 10
            for x0, y0, x1, y1 in boxes if x1 > x0 and y1 > y0]
    return float(np.mean(near)) if near else 0.0


def refine_role(role: str, conf: float, c: Cues, ocr: list[OcrBox],
                image: Image.Image) -> tuple[str, float]:
    """After OCR: legible lines make a document. Text on the frame's own colour, an EAN number
    or small print make it a pack; a card on a textured backdrop with few large lines, a label.
    A 'document' that read nothing falls back to the pixels."""
    lines = [o for o in ocr if sum(ch.isalnum() for ch in o.text) >= 3]
    if len(lines) < 2:
        if role in ("label", "packaging") and conf < 0.75:
            return ("other", 0.4) if c.touch > 0.09 else ("product", 0.5)
        return role, conf
    if role not in ("label", "packaging") and len(lines) < 3:
        return role, conf
    smallest = min(o.box[3] - o.box[1] for o in lines) / min(image.size)
    panel = on_panel(image, lines) >= 0.5
    pack = [panel, panel, any(_EAN.match(o.text) for o in ocr), smallest < 0.042,
            c.barcode >= 1, c.border_texture < 5]
    label = [not panel, not panel, c.border_texture >= 7, smallest >= 0.05, len(lines) <= 5]
    if sum(pack) > sum(label):
        return "packaging", min(0.99, 0.4 + 0.1 * sum(pack))
    return "label", min(0.99, 0.4 + 0.1 * sum(label))


# ---------------------------------------------------------------- models, once per process
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _tower():
    from ecomvlm.model import load_vision_tower

    return load_vision_tower("packaged:efficientnet-lite0")


@lru_cache(maxsize=1)
def _ocr():
    """The process's OCR engine, its ONNX sessions sized to torch's thread count (one per
    pool worker), measured 1.3 -> 1.9 listings/s on two cores against ONNX's default."""
    import torch

    from ecomvlm.model import OcrEngine

    return OcrEngine(threads=torch.get_num_threads())


@lru_cache(maxsize=1)
def category_bridge() -> np.ndarray:
    """[1000, 17] row-stochastic: how each ImageNet class spreads over our categories, by
    MiniLM similarity of "a photo of a <name>" texts. Cached on disk, so pool workers load a
    small array instead of the text encoder."""
    import hashlib

    from ecomvlm.config import cache_dir
    from ecomvlm.model.efficientnet import imagenet_names

    names, cats = imagenet_names(), list(CATEGORIES)
    key = hashlib.sha256("|".join([*names, "#", *cats, str(BRIDGE_TAU)]).encode()).hexdigest()
    path = cache_dir() / "perception" / f"imagenet_bridge-{key[:16]}.npy"
    with _LOCK:
        if path.is_file():
            return np.load(path)
        from ecomvlm.model import TextEncoder

        enc = TextEncoder.shared()
        sim = enc.encode([f"a photo of a {n}" for n in names]) @ \
            enc.encode([f"a photo of a {c}" for c in cats]).T
        w = np.exp((sim - sim.max(1, keepdims=True)) / BRIDGE_TAU)
        w = (w / w.sum(1, keepdims=True)).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{threading.get_ident()}.npy")
        np.save(tmp, w)
        tmp.replace(path)
        return w


class PerceptionCaptioner(Captioner):
    """``CAPTIONER.build("perception", cache_dir=...)``; ``stats`` counts the work done."""

    backend = "perception"

    def __init__(self, cache_dir: str | Path | None = None, *, top_k: int = 5,
                 autocast: bool = True, allow_url_fetch: bool = False):
        super().__init__(cache_dir, allow_url_fetch=allow_url_fetch,
                         cache_namespace=f"perception-k{top_k}-p1")  # p1: pattern field
        self.top_k = top_k
        self.autocast = autocast
        self.stats: Counter = Counter()

    def _classify(self, images: list[Image.Image]) -> np.ndarray:
        """ImageNet posteriors [n, 1000] for a batch, in one forward pass."""
        import torch

        tower = _tower()
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16,
                                                    enabled=self.autocast):
            logits = tower.classify(tower.preprocess(images))
        self.stats["cnn_images"] += len(images)
        return logits.float().softmax(-1).numpy()

    def perceive_photos(self, photos: list[Photo]) -> list[ImagePerception]:
        from ecomvlm.model.efficientnet import imagenet_names

        probs = self._classify([p.image for p in photos])
        bridge = category_bridge()
        names, cats = imagenet_names(), list(CATEGORIES)
        out = []
        for photo, prob in zip(photos, probs):
            rgb, om = col.object_mask(photo.image)
            cues = pixel_cues(photo.image, rgb, om, float(prob[list(PRINTED_CLASSES)].sum()))
            role, conf = guess_role(cues)
            ocr: list[OcrBox] = []
            if wants_ocr(role, cues):
                ocr = self._read_text(photo.image)
                role, conf = refine_role(role, conf, cues, ocr, photo.image)
            top = np.argsort(-prob)[: self.top_k]
            cat_scores = prob @ bridge
            best = np.argsort(-cat_scores)[:3]
            p = ImagePerception(
                sha256=photo.sha256, role=role, role_confidence=round(float(conf), 3),
                ocr=ocr, imagenet=[(names[i], round(float(prob[i]), 4)) for i in top],
                categories=[(cats[i], round(float(cat_scores[i]), 4)) for i in best],
                backend=self.backend)
            if role == "product":
                p.colours = col.dominant_colours(photo.image, om)
                guess = detect_pattern(photo.image, om, rgb)
                p.pattern = (guess.label, guess.confidence) if guess.confidence > 0 else None
            if role == "packaging":
                p.marks = self._marks(photo.image, ocr)
            thing = p.categories[0][0].lower() if p.categories[0][1] >= 0.5 else "product"
            p.caption = caption_from_structure(p, thing=thing, backdrop=cues.backdrop.lower())
            out.append(p)
        return out

    def _read_text(self, image: Image.Image) -> list[OcrBox]:
        self.stats["ocr_calls"] += 1
        return [OcrBox(text=line.text, box=line.box, score=round(line.score, 4))
                for line in _ocr().read(image)]

    def _marks(self, image: Image.Image, ocr: list[OcrBox]):
        self.stats["mark_scans"] += 1
        k = min(1.0, MARKS_MAX_SIDE / max(image.size))
        if k >= 1.0:
            return detect_marks(image, ocr)
        small = image.resize((round(image.width * k), round(image.height * k)), Image.BICUBIC)
        scaled = [o.model_copy(update={"box": tuple(round(v * k) for v in o.box)}) for o in ocr]
        return [m.model_copy(update={"box": tuple(round(v / k) for v in m.box)})
                for m in detect_marks(small, scaled)]
