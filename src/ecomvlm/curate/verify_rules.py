"""Perception rules of the verify stage: what the photos say about each of a seller's claims.

Rules read only the structured part of ``ImagePerception``: OCR lines on label and packaging
shots (brand, size, material, capacity, power, age range, compatible model), the colour shares
and pattern readings of product shots, and the ImageNet category bridge. RapidOCR drops spaces ("SIZEM",
"Material:100%StretchDenim"), so text is compared folded: lower case, letters and digits only.
A claim is *contradicted* only when a different valid value of the same aspect is read (or a
different colour dominates); a missing reading is never evidence against a claim.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache

from ecomvlm.catalog import taxonomy as tx
from ecomvlm.catalog.values import normalise_unit_value
from ecomvlm.curate.records import ClaimVerdict, ImagePerception


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds of the rules. Checked on the val splits of two 2000-listing
    synthetic catalogs (seeds 7 and 8; no false alarm there); test splits were not used."""

    correct: float = 0.8  # confidence a contradiction needs before its value replaces the claim
    colour_support: float = 0.3  # listed colour's share that still supports it (trim, print)
    colour_dominant: float = 0.45  # share another colour needs to contradict the listed one
    colour_absent: float = 0.12  # listed colour share below which it counts as not there
    near_colour: float = 0.6  # confidence factor when the two colours are easily confused
    category_score: float = 0.5  # perception's score for another category before it counts
    category_margin: float = 0.25  # ... and its lead over the listed category
    category_text_lead: float = 0.35  # title/keys vote lead of another category to count
    mark_score: float = 0.5  # detector score for a compliance mark to count as seen
    brand_unknown: float = 0.6  # confidence in a prominent label line that is no known brand
    pattern_support: float = 0.6  # pattern reading's confidence that supports an equal claim
    pattern_contradict: float = 0.7  # ... that contradicts a different one
    pattern_rival: float = 0.3  # a reading of another pattern above this makes photos disagree


# Pairs a colour reading confuses under lighting and print: a contradiction between them
# is reported with lower confidence (and so is rarely corrected).
NEAR_COLOURS = {frozenset(p) for p in [
    ("Navy", "Blue"), ("Navy", "Black"), ("Navy", "Purple"), ("Black", "Grey"), ("Grey", "White"),
    ("Beige", "White"), ("Beige", "Brown"), ("Beige", "Orange"), ("Beige", "Yellow"),
    ("Orange", "Brown"), ("Orange", "Red"), ("Orange", "Yellow"), ("Red", "Pink"),
    ("Pink", "Purple"), ("Red", "Brown"),
]}
_BOILERPLATE = ("madein", "model", "mod", "size", "warning", "caution", "capacity", "power",
                "material", "input", "output", "rated", "handwash", "dishwasher", "keep", "www",
                "distributed", "shockproof", "bpa", "machinewash", "donot", "upper", "shell")


# ---------------------------------------------------------------- text folding
def squash(text: str) -> str:
    """Lower case without whitespace (punctuation kept): the form RapidOCR tends to give."""
    return re.sub(r"\s+", "", text.lower())


def fold(text: str) -> str:
    """Letters and digits only, lower case; a decimal point between digits survives."""
    t = re.sub(r"[^a-z0-9.]", "", text.lower())
    return re.sub(r"(?<!\d)\.|\.(?!\d)", "", t)


def _similar(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()


# Label captions sellers' values sit behind ("Rated Capacity: ", "Shell: ", "100% ").
_PREFIXES = ("uppermaterial", "ratedcapacity", "ratedpower", "suitablefor", "compatible",
             "material", "capacity", "battery", "shell", "outer", "upper", "power", "size",
             "brand", "age", "for", "100")


def _remainders(folded: str) -> dict[str, bool]:
    """Every tail of a folded line after stripping caption prefixes -> whether one was stripped."""
    out, todo = {folded: False}, [folded]
    while todo:
        cur = todo.pop()
        for p in _PREFIXES:
            if cur.startswith(p) and len(cur) > len(p) and cur[len(p):] not in out:
                out[cur[len(p):]] = True
                todo.append(cur[len(p):])
    return out


# ---------------------------------------------------------------- aspect schema lookups
@cache
def aspect_defs(key: str) -> tuple[tx.Aspect, ...]:
    return tuple(c.aspect(key) for c in tx.CATEGORIES.values() if key in c.keys)


@cache
def domain(key: str) -> tuple[str, ...]:
    """Every valid value of ``key`` over all categories (a miscategorised listing keeps the
    true category's keys, so the listed category's value set alone is too narrow)."""
    if key == "Brand":
        return tuple(tx.FASHION_BRANDS + tx.GOODS_BRANDS)
    return tuple(dict.fromkeys(v for a in aspect_defs(key) for v in a.values))


def aspect_for(key: str, category: str) -> tx.Aspect | None:
    """The aspect definition in ``category`` if it has ``key``, else the most visible one."""
    if category in tx.CATEGORIES and key in tx.CATEGORIES[category].keys:
        return tx.CATEGORIES[category].aspect(key)
    rank = {"label": 2, "product": 1, "": 0}
    defs = sorted(aspect_defs(key), key=lambda a: -rank[a.visible])
    return defs[0] if defs else None


def quantity(value: str) -> str:
    """Unit values compared as one quantity: '1.0L' and '1000ml' are the same volume."""
    return normalise_unit_value(value, "ml")


# ---------------------------------------------------------------- OCR readers
@dataclass
class Reading:
    value: str  # a valid value of the aspect (canonical spelling)
    image: int
    text: str  # the OCR line it was read from
    conf: float  # reading strength x OCR score


_UNIT_RE = re.compile(r"(?<![\d.,])(\d[\d,]*(?:\.\d+)?)(mah|ml|l|w)(?![a-z0-9])")
_SIZE_RE = re.compile(r"^(size)?(xs|s|m|l|xl|xxl|onesize|adjustable)$")
_SHOE_RE = re.compile(r"(?:^|size)uk(\d{1,2})(?!\d)")
_WAIST_RE = re.compile(r"(?:^|size)w(\d{2})(?!\d)")
_AGE_RE = re.compile(r"(?<!under)(?<![\d.])(\d{1,2})(\+?)(?:years?|yrs?)")


def _read_unit(line: str, values: tuple[str, ...]) -> list[tuple[str, float]]:
    by_quantity = {quantity(v): v for v in values}
    out = []
    for number, unit in _UNIT_RE.findall(squash(line)):
        value = by_quantity.get(quantity(number.replace(",", "") + unit))
        if value is not None:
            out.append((value, 1.0))
    return out


def _read_line(key: str, line: str, values: tuple[str, ...]) -> list[tuple[str, float]]:
    """Values of ``key`` one OCR line states, each with a strength in (0, 1]."""
    folded = fold(line)
    if not folded:
        return []
    if any(a.unit for a in aspect_defs(key)):
        return _read_unit(line, values)
    found: list[tuple[str, float]] = []
    if key == "Size":
        if m := _SIZE_RE.match(folded):
            word = {"onesize": "One Size", "adjustable": "Adjustable"}.get(m[2], m[2].upper())
            strength = 1.0 if m[1] else (0.9 if len(m[2]) > 1 else 0.7)  # bare "M" may be noise
            found.append((word, strength))
    elif key == "Shoe Size":
        found += [(f"UK {int(n)}", 1.0) for n in _SHOE_RE.findall(folded)]
    elif key == "Waist Size":
        found += [(f"W{n}", 1.0) for n in _WAIST_RE.findall(folded)]
    elif key == "Age Range":
        found += [(f"{int(n)}+ Years", 1.0 if plus else 0.8)
                  for n, plus in _AGE_RE.findall(squash(line))]
    else:  # closed vocabularies: brand, material, battery type, compatible model...
        tails = _remainders(folded)
        for value in values:
            fv = fold(value)
            if fv in tails:
                found.append((value, 1.0 if tails[fv] or len(fv) >= 4 else 0.8))
            elif len(fv) >= 5 and not re.search(r"\d", fv):  # OCR slips: "Lithium-lon"
                best = max(_similar(fv, t) for t in tails)
                if best >= 0.86:
                    found.append((value, 0.75))
    return [(v, s) for v, s in found if v in values]


def read_values(key: str, images: list[ImagePerception], listed: str) -> list[Reading]:
    """Every reading of ``key`` across the OCR of all photos."""
    values = domain(key) + ((listed,) if listed and listed not in domain(key) else ())
    out = []
    for i, image in enumerate(images):
        for box in image.ocr:
            out += [Reading(v, i, box.text, s * box.score) for v, s in _read_line(key, box.text, values)]
    return out


def unknown_brand_line(images: list[ImagePerception]) -> Reading | None:
    """The label's prominent top line when it is no value we know: a brand we have not met."""
    for i, image in enumerate(images):
        if image.role != "label" or not image.ocr:
            continue
        lines = sorted(image.ocr, key=lambda b: (b.box[1], b.box[0]))
        tallest = max(b.box[3] - b.box[1] for b in lines)
        top = next((b for b in lines[:2] if b.box[3] - b.box[1] >= 0.9 * tallest), None)
        if top is None:
            continue
        folded = fold(top.text)
        if (len(folded) < 3 or re.search(r"\d", folded) or folded.startswith(_BOILERPLATE)
                or any(_read_line(k, top.text, domain(k)) for k in ("Material", "Size"))):
            continue
        return Reading(top.text.strip(), i, top.text, top.score)
    return None


def _noisy_or(confs: list[float]) -> float:
    p = 1.0
    for c in confs:
        p *= 1.0 - min(max(c, 0.0), 1.0)
    return 1.0 - p


def _where(images: list[ImagePerception], r: Reading) -> str:
    return f"image {r.image} ({images[r.image].role}) reads {r.text[:60]!r}"


def judge_text_aspect(key: str, listed: str, images: list[ImagePerception],
                      th: Thresholds) -> ClaimVerdict:
    """A label-visible claim against what OCR read on label and packaging photos."""
    readings = read_values(key, images, listed)
    same = (lambda v: quantity(v) == quantity(listed)) if any(
        a.unit for a in aspect_defs(key)) else (lambda v: fold(v) == fold(listed))
    support = [r for r in readings if same(r.value)]
    others: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        if not same(r.value):
            others[r.value].append(r)
    if key == "Brand" and not readings:
        line = unknown_brand_line(images)
        if line and _similar(fold(line.value), fold(listed)) < 0.6:  # not a garbled listed one
            line.conf *= th.brand_unknown
            others[line.value].append(line)
    sup = _noisy_or([r.conf for r in support])
    ranked = sorted(((_noisy_or([r.conf for r in rs]), v) for v, rs in others.items()), reverse=True)
    if support and (not ranked or sup >= ranked[0][0]):
        conf = sup - 0.5 * (ranked[0][0] if ranked else 0.0)
        return ClaimVerdict(key=key, value=listed, status="supported", confidence=round(conf, 3),
                            evidence=_where(images, max(support, key=lambda r: r.conf)))
    if ranked:
        best, value = ranked[0]
        conf = best - 0.5 * sup - 0.5 * (ranked[1][0] if len(ranked) > 1 else 0.0)
        top = max(others[value], key=lambda r: r.conf)
        return ClaimVerdict(key=key, value=listed, status="contradicted", confidence=round(conf, 3),
                            evidence=f"{_where(images, top)}, not {listed!r}",
                            corrected=value if conf >= th.correct else None)
    texts = [i for i, p in enumerate(images) if p.ocr]
    why = (f"text read on image {texts[0]} ({images[texts[0]].role}) states no {key}" if texts
           else "no label or packaging text in the photos")
    return ClaimVerdict(key=key, value=listed, status="unverifiable", confidence=0.0, evidence=why)


# ---------------------------------------------------------------- colour
def colour_shares(images: list[ImagePerception]) -> dict[str, float]:
    """Mean colour shares over the product shots (each shot counts once)."""
    shots = [p for p in images if p.role == "product" and p.colours]
    shares: dict[str, float] = defaultdict(float)
    for p in shots:
        for name, share in p.colours:
            shares[name] += share / len(shots)
    return dict(shares)


def judge_colour(listed: str, images: list[ImagePerception], th: Thresholds) -> ClaimVerdict:
    shares = colour_shares(images)
    if not shares:
        return ClaimVerdict(key="Color", value=listed, status="unverifiable", confidence=0.0,
                            evidence="no product photo with colour readings")
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    top, top_share = ranked[0]
    mine = shares.get(listed, 0.0)
    seen = ", ".join(f"{n} {s:.0%}" for n, s in ranked[:3])
    evidence = f"product photos: {seen}"
    if top == listed or mine >= th.colour_support:
        conf = mine if top == listed else mine / max(top_share, 1e-6) * 0.5
        return ClaimVerdict(key="Color", value=listed, status="supported",
                            confidence=round(min(1.0, conf + 0.3), 3), evidence=evidence)
    if top_share >= th.colour_dominant and mine <= th.colour_absent:
        conf = top_share * (1.0 - mine / th.colour_absent * 0.5)
        if frozenset((top, listed)) in NEAR_COLOURS:
            conf *= th.near_colour
        conf = round(min(1.0, conf + 0.2), 3)
        return ClaimVerdict(key="Color", value=listed, status="contradicted", confidence=conf,
                            evidence=f"{evidence}; {top} dominates, not {listed}",
                            corrected=top if conf >= th.correct else None)
    return ClaimVerdict(key="Color", value=listed, status="unverifiable", confidence=0.0,
                        evidence=f"{evidence}; no clear dominant colour")


# ---------------------------------------------------------------- pattern
def pattern_reading(images: list[ImagePerception],
                    th: Thresholds) -> tuple[str, float, str] | None:
    """(pattern, confidence, evidence) the product shots agree on, or None.

    A print seen in one shot beats plain-looking ones (the inside or back of an item can be
    plain); two different prints, or a weak print next to plain shots, settle nothing."""
    shots = [(i, p.pattern) for i, p in enumerate(images)
             if p.role == "product" and p.pattern is not None and p.pattern[1] > 0]
    if not shots:
        return None
    seen = "; ".join(f"image {i} looks {name} ({conf:.2f})" for i, (name, conf) in shots)
    best: dict[str, float] = defaultdict(float)
    for _, (name, conf) in shots:
        best[name] = max(best[name], conf)
    prints = sorted(((c, n) for n, c in best.items() if n != "Solid"), reverse=True)
    if prints and prints[0][0] >= th.pattern_support:
        rival = prints[1][0] if len(prints) > 1 else 0.0
        if rival > th.pattern_rival:
            return None
        return prints[0][1], round(prints[0][0] - rival, 3), seen
    if prints and prints[0][0] > th.pattern_rival:
        return None
    return "Solid", round(best.get("Solid", 0.0), 3), seen


def judge_pattern(listed: str, images: list[ImagePerception], th: Thresholds) -> ClaimVerdict:
    """A listed pattern against the pattern readings of the product shots. A wrong "supported"
    would teach the wrong pattern, so a claim is supported or contradicted only on confident
    readings; anything unsure is unverifiable."""
    reading = pattern_reading(images, th)
    if reading is None:
        return ClaimVerdict(key="Pattern", value=listed, status="unverifiable", confidence=0.0,
                            evidence="no product photo with a clear pattern reading")
    value, conf, seen = reading
    if value == listed and conf >= th.pattern_support:
        return ClaimVerdict(key="Pattern", value=listed, status="supported", confidence=conf,
                            evidence=f"product photos: {seen}")
    if value != listed and conf >= th.pattern_contradict:
        return ClaimVerdict(key="Pattern", value=listed, status="contradicted", confidence=conf,
                            evidence=f"product photos: {seen}; {value}, not {listed}",
                            corrected=value if conf >= th.correct else None)
    return ClaimVerdict(key="Pattern", value=listed, status="unverifiable", confidence=0.0,
                        evidence=f"product photos: {seen}; not decisive")


# ---------------------------------------------------------------- category
def category_scores(images: list[ImagePerception]) -> dict[str, float]:
    """Mean category-bridge score over product shots (all shots when none is a product)."""
    shots = [p for p in images if p.role == "product" and p.categories] or [
        p for p in images if p.categories]
    scores: dict[str, float] = defaultdict(float)
    for p in shots:
        for name, score in p.categories:
            scores[name] += score / len(shots)
    return dict(scores)


def text_category_votes(title: str, keys: list[str]) -> dict[str, float]:
    """How strongly the listing's own text points at each category: its name in the title,
    its distinctive keywords, and aspect keys only that category's schema has."""
    low = f" {title.lower()} "
    votes: dict[str, float] = defaultdict(float)
    keyword_owners: dict[str, list[str]] = defaultdict(list)
    for c in tx.CATEGORIES.values():
        for kw in c.keywords:
            keyword_owners[kw].append(c.name)
    for c in tx.CATEGORIES.values():
        if re.search(rf"\b{re.escape(c.name.lower())}s?\b", low):
            votes[c.name] += 1.0
        votes[c.name] += sum(0.4 for kw in c.keywords
                             if len(keyword_owners[kw]) == 1 and f" {kw} " in low)
        if keys:
            votes[c.name] += 0.5 * sum(k in c.keys for k in keys) / len(keys)
    return dict(votes)


def judge_category(listed: str, title: str, keys: list[str], images: list[ImagePerception],
                   th: Thresholds) -> tuple[ClaimVerdict, str]:
    """The listed category against the image bridge and the listing's own words; returns
    (verdict, category we believe). The bridge alone is weak (EfficientNet ImageNet classes
    mapped by text similarity), so a contradiction needs perception to back it: either the
    bridge is confident by itself and the text does not disagree, or the text points at
    another category and the bridge ranks that one above the listed one."""
    scores = category_scores(images)
    votes = text_category_votes(title, keys)
    text_best = max(votes, key=votes.get, default=listed)
    text_lead = votes.get(text_best, 0.0) - votes.get(listed, 0.0)
    known = listed in tx.CATEGORIES
    if not scores:
        return ClaimVerdict(key="Category", value=listed, status="unverifiable", confidence=0.0,
                            evidence="no category reading from the photos"), \
            listed if known else text_best
    best = max(scores, key=scores.get)
    mine = scores.get(listed, 0.0)
    seen = ", ".join(f"{n} {s:.2f}" for n, s in sorted(scores.items(), key=lambda kv: -kv[1])[:3])
    evidence = f"photos look like: {seen}; title and keys point at {text_best}"
    if best == listed and text_best == listed:
        return ClaimVerdict(key="Category", value=listed, status="supported",
                            confidence=round(min(1.0, 0.5 + mine), 3), evidence=evidence), listed
    alone = (scores[best] >= th.category_score and scores[best] - mine >= th.category_margin
             and votes.get(best, 0.0) >= votes.get(listed, 0.0))
    backed = (text_best != listed and text_lead >= th.category_text_lead
              and scores.get(text_best, 0.0) > mine)
    if alone or backed or not known:
        other = best if alone or (not known and not backed) else text_best
        lead = scores.get(other, 0.0) - mine
        conf = 0.4 + 0.2 * min(max(text_lead, 0.0), 1.5) + min(0.3, 1.5 * lead)
        conf = round(min(1.0, max(conf, scores.get(other, 0.0))), 3)
        return ClaimVerdict(key="Category", value=listed, status="contradicted", confidence=conf,
                            evidence=evidence, corrected=other if conf >= th.correct else None), \
            other
    return ClaimVerdict(key="Category", value=listed, status="unverifiable", confidence=0.0,
                        evidence=f"{evidence}; not decisive"), listed
