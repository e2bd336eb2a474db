"""Stage 1a of curation: turn a raw seller listing into a ``CleanListing``.

Descriptions lose their markup, hidden elements and seller boilerplate (postage, returns,
payment, feedback, "see my other items"); titles lose emoji, shouting and repeated keywords;
aspect keys are mapped onto the category's canonical keys (exact spellings first, then MiniLM
similarity for unknown ones) and values onto canonical spellings (``catalog.values``).

Listing text stays data: an instruction aimed at a model ("ignore previous instructions...")
is kept as a visible line, so verification sees what the buyer sees, and
``suspicious_instructions`` lets the quality report count such lines.
"""

from __future__ import annotations

import html
import os
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from ecomvlm.catalog.taxonomy import CATEGORIES, COLOUR_SYNONYMS, KEY_VARIANTS, canonical_keys
from ecomvlm.catalog.values import canonical_value, normalise_unit_value
from ecomvlm.curate.records import CleanListing
from ecomvlm.images import UnreadableSource, is_url
from ecomvlm.schema import Listing

# ---------------------------------------------------------------- HTML -> text
_BLOCK = {"p", "div", "br", "ul", "ol", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6",
          "center", "section", "article", "header", "footer", "blockquote", "hr", "dt", "dd",
          "pre", "tbody", "thead", "form", "fieldset", "address", "figure", "figcaption"}
_SKIP = {"script", "style", "head", "title", "noscript", "template", "iframe", "object", "svg",
         "select", "textarea", "button"}
_VOID = {"br", "img", "hr", "input", "meta", "link", "wbr", "area", "base", "col", "embed",
         "param", "source", "track"}
# Ways sellers (and injectors) hide text from buyers while it stays in the markup.
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d])"
                           r"|opacity\s*:\s*0(?![.\d])", re.IGNORECASE)
_HTML_HINT = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?\s*>|&(#\d+|#x[0-9a-f]+|[a-z]+);",
                        re.IGNORECASE)


class _TextExtractor(HTMLParser):
    def __init__(self, keep_hidden: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.keep_hidden = keep_hidden
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # open elements: (tag, hides its content)

    def _hidden(self) -> bool:
        return any(h for _, h in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag in _BLOCK and not self._hidden():
            self.parts.append("\n- " if tag == "li" else "\n")
        elif tag in ("td", "th") and not self._hidden():
            self.parts.append(" ")
        if tag in _VOID:
            return
        hides = tag in _SKIP or (not self.keep_hidden and (
            "hidden" in a or a.get("aria-hidden", "").lower() == "true"
            or bool(_HIDDEN_STYLE.search(a.get("style", "")))))
        self.stack.append((tag, hides))

    def handle_endtag(self, tag: str) -> None:
        # Messy seller HTML: close up to the matching open tag; a stray end tag is ignored.
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        if tag in _BLOCK and not self._hidden():
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden():
            self.parts.append(data)


def looks_like_html(text: str) -> bool:
    return bool(_HTML_HINT.search(text))


def html_to_text(text: str, *, keep_hidden: bool = False) -> str:
    """Readable text of an HTML fragment: blocks become lines, list items "- ", entities are
    decoded, scripts/styles dropped. Hidden elements (``display:none`` and friends) are dropped
    unless ``keep_hidden``: a buyer never sees them, so they must never become a fact. Plain
    text (no tags or entities) only has its whitespace tidied."""
    if looks_like_html(text):
        parser = _TextExtractor(keep_hidden)
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    lines = (" ".join(line.split()) for line in text.replace("\xa0", " ").splitlines())
    return "\n".join(line for line in lines if line)


# ---------------------------------------------------------------- boilerplate and injections
_BOILERPLATE_PATTERNS = (
    r"\bdispatch(ed|es)?\b", r"\bpostage\b", r"\bp\s*&\s*p\b", r"\bship(ping|ped|s)?\b",
    r"\broyal mail\b", r"\bcourier\b", r"\bimport (charges|duties|fees)\b", r"\bpost worldwide\b",
    r"\binternational (buyers|shipping|orders)\b", r"\b(tracked|next day|free) delivery\b",
    r"\breturns?\b.{0,30}\b(accepted|policy|within|unless|postage|not accepted)\b",
    r"\bno returns\b", r"\brefund", r"\bmoney back\b", r"\bpayment\b", r"\bpaypal\b",
    r"\b(debit|credit) cards?\b", r"\bbank transfer\b", r"\bfeedback\b", r"\bdsrs?\b",
    r"\b(see|check out|visit|browse) (my|our) (other items|shop|store|listings)\b",
    r"\bother items\b", r"\bfavourite sellers?\b", r"\bthanks? (you )?for (looking|viewing)\b",
    r"\bany questions\b", r"\b(message|contact) (us|me)\b", r"\bcombined (p&p|postage|shipping)\b",
)
_INSTRUCTION_PATTERNS = (
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|rules|prompts?|checks)\b",
    r"\b(ignore|disregard|forget)\b.{0,20}\b(above|previous)\b", r"^\s*(system|assistant|user)\s*:", r"\bai (assistant|model)\b",
    r"\b(language model|llm|chatgpt)\b", r"\bmark (every|all|each)\b.{0,30}\bas\b",
    r"\b(output|reply|respond|answer)\b.{0,30}\b(only|approved|that the item)\b",
    r"\bskip (all |the )?(checks|verification)\b", r"\brate (this|me|us) \d+ stars?\b",
    r"\byou are now\b", r"\bnew instructions\b",
)
_BOILERPLATE = re.compile("|".join(_BOILERPLATE_PATTERNS), re.IGNORECASE)
_INSTRUCTION = re.compile("|".join(_INSTRUCTION_PATTERNS), re.IGNORECASE)


def suspicious_instructions(text: str) -> list[str]:
    """Lines that address a model rather than a buyer (prompt injection). Raw HTML is read
    with hidden elements included: an injection hidden in markup still counts."""
    plain = html_to_text(text, keep_hidden=True)
    return [line for line in plain.splitlines() if _INSTRUCTION.search(line)]


def is_boilerplate(line: str) -> bool:
    """Seller small print: postage, returns, payment, feedback and shop adverts, plus pure
    separators ("***"). An instruction-like line is never boilerplate, so it stays visible."""
    if not any(ch.isalnum() for ch in line):
        return True
    return bool(_BOILERPLATE.search(line)) and not _INSTRUCTION.search(line)


# ---------------------------------------------------------------- emoji, caps, titles
_KEEP_SYMBOLS = {"°", "×", "£", "€", "$", "%"}
_ACRONYMS = {"USB", "LED", "LCD", "OLED", "HDMI", "TPU", "PVC", "BPA", "UV", "HD", "TV", "PC",
             "CE", "UKCA", "WEEE", "AC", "DC", "NFC", "GPS", "RGB", "ABS", "EVA", "PU", "DIY",
             "UPF", "SPF", "XS", "XL", "XXL", "XXXL", "UK", "US", "EU", "USA", "ANC", "DAB"}
_SMALL_WORDS = {"UP", "TO", "IN", "ON", "OF", "AT", "BY", "OR", "AN", "IS", "IT", "MY", "GO", "SO", "CO"}
_UNIT_CASE = {"mah": "mAh", "ml": "ml", "l": "L", "w": "W", "kw": "kW", "v": "V", "gb": "GB",
              "tb": "TB", "mm": "mm", "cm": "cm", "kg": "kg", "g": "g", "hz": "Hz", "in": "in"}
_NUM_UNIT = re.compile(r"^(\d[\d,.]*)([a-z]+)$", re.IGNORECASE)
# Shouting that says nothing about the item: any case, and words only noise when capitalised.
_SHOUT_ANY = re.compile(r"(?<!\w)(brand new|bnwt|bnwot|bnib|nwt|uk seller|uk stock|fast p&p|"
                        r"free p&p|free (uk )?(postage|post|delivery|shipping)|fast (dispatch|"
                        r"delivery|shipping)|same day (dispatch|postage)|l[@0]{2}k|"
                        r"best quality|top rated|gift idea|must (see|have)|wow|bargain)(?!\w)",
                        re.IGNORECASE)
_SHOUT_CAPS = re.compile(r"(?<!\w)(NEW|LOOK|SALE|HOT|RARE|CHEAP|GENUINE)(?!\w)")


def strip_emoji(text: str) -> str:
    """Drop pictographs, flags, skin tones, joiners and variation selectors."""
    return "".join(ch for ch in text if ch in _KEEP_SYMBOLS or not (
        unicodedata.category(ch) in ("So", "Sk", "Cf", "Co", "Cs", "Cn") or "\ufe00" <= ch <= "\ufe0f"))


def fix_caps(word: str) -> str:
    """One ALL-CAPS token in title case, keeping acronyms, sizes and units sane:
    'QUILLON' -> 'Quillon', 'V-NECK' -> 'V-Neck', 'USB-C' stays, '10000MAH' -> '10000mAh'."""
    if m := _NUM_UNIT.match(word):
        return m.group(1) + _UNIT_CASE.get(m.group(2).lower(), m.group(2))
    if not word.isupper():
        return word
    fixed = []
    for part in re.split(r"([-/&+])", word):
        letters = re.sub(r"[^A-Za-z]", "", part)
        keep = (len(letters) <= 1 or letters in _ACRONYMS or any(c.isdigit() for c in part)
                or (len(letters) == 2 and letters not in _SMALL_WORDS))
        fixed.append(part if keep else part[:1] + part[1:].lower())
    return "".join(fixed)


def _fold_token(token: str) -> str:
    return token.lower().strip(".,;:!?'\"()[]")


def _dedupe_ngrams(tokens: list[str], max_n: int = 3) -> list[str]:
    """Drop a word or phrase (up to ``max_n`` words) already said earlier in the title. A
    phrase needs a real word in it (3+ letters), so '&', '+', '2x' or sizes may repeat."""
    out: list[str] = []
    seen: set[tuple[str, ...]] = set()
    i = 0
    while i < len(tokens):
        for n in range(min(max_n, len(tokens) - i), 0, -1):
            gram = tuple(_fold_token(t) for t in tokens[i:i + n])
            if gram in seen and any(sum(c.isalpha() for c in g) >= 3 for g in gram):
                i += n
                break
        else:
            out.append(tokens[i])
            for n in range(1, max_n + 1):
                if len(out) >= n:
                    seen.add(tuple(_fold_token(t) for t in out[-n:]))
            i += 1
    return out


def clean_title(title: str) -> str:
    """De-stuff a title: no emoji, shouting, '!!!' or repeated keywords; ALL CAPS words in
    title case with brands, acronyms and units kept readable."""
    text = strip_emoji(html.unescape(title))
    text = _SHOUT_CAPS.sub(" ", _SHOUT_ANY.sub(" ", text))
    tokens = [t.rstrip("!*~") for t in text.split()]
    tokens = [t for t in tokens if t in ("&", "+") or any(ch.isalnum() for ch in t)]
    tokens = [fix_caps(t) for t in _dedupe_ngrams(tokens)]
    for i in range(1, len(tokens)):  # '1000 ML' -> '1000 ml', '10,000 MAH' -> '10,000 mAh'
        if tokens[i - 1][-1:].isdigit() and tokens[i].lower() in _UNIT_CASE:
            tokens[i] = _UNIT_CASE[tokens[i].lower()]
    cleaned = " ".join(tokens).strip(" -|,;:/&+")
    # all shouting and no words ('NEW!!! 🔥 L@@K'): better the plain original than nothing
    return cleaned or " ".join(strip_emoji(html.unescape(title)).split())


def clean_description(raw: str) -> str:
    """Plain description text: markup and hidden elements gone, boilerplate lines dropped,
    emoji stripped, shouted lines (3+ words, mostly capitals) put into title case."""
    lines = []
    for line in html_to_text(raw).splitlines():
        line = " ".join(strip_emoji(line).split())
        if not line or is_boilerplate(line):
            continue
        letters = [c for c in line if c.isalpha()]
        if len(line.split()) >= 3 and sum(c.isupper() for c in letters) > 0.7 * len(letters):
            line = " ".join(fix_caps(w) for w in line.split())
        lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------- aspect keys
# Keys sellers' tools fill in that are never a checkable product attribute.
JUNK_KEYS = {"mpn", "ean", "upc", "isbn", "gtin", "bundle", "custom bundle", "modified item",
             "modification description", "country/region of manufacture", "country of origin",
             "unit type", "unit quantity", "number of items", "features", "item weight",
             "california prop 65 warning", "non-domestic product", "sku", "custom label",
             "return policy", "shipping", "warranty", "department", "occasion", "season"}
# A qualifier turning a familiar head word into another attribute ('Sole Material', 'Style Code').
_QUALIFIERS = re.compile(r"\b(lining|sole|insole|outsole|heel|strap|trim|code|number|no|id|"
                         r"weight|dimensions?|country|region|warranty|year|date)\b",
                         re.IGNORECASE)


def _fold_key(key: str) -> str:
    key = re.sub(r"\([^)]*\)", " ", key)  # 'Power (W)', 'Size (UK)': units and qualifiers
    return " ".join(key.casefold().replace("_", " ").strip(" :").split())


class KeyMapper:
    """Maps a seller's aspect key onto one of the category's canonical keys, or ``None``.

    Exact and case-folded spellings of any taxonomy key (canonical keys and ``KEY_VARIANTS``)
    win, even when the listed category lacks that key (the category may be wrong); a key seen
    nowhere is compared by MiniLM embedding with the category's keys and their known spellings
    and mapped when the best cosine reaches ``threshold`` with ``margin`` over the next
    canonical key. Junk keys ('MPN', 'Bundle') and qualified keys ('Sole Material') are never
    embedded. Embeddings are cached per key string; decisions per (category, key)."""

    def __init__(self, encoder=None, threshold: float = 0.6, margin: float = 0.04) -> None:
        self._encoder, self.threshold, self.margin = encoder, threshold, margin
        self._vectors: dict[str, np.ndarray] = {}
        self._decisions: dict[tuple[str, str], tuple[str | None, str, float]] = {}
        self._spellings: dict[str, str] = {_fold_key(k): k for k in canonical_keys()}
        for key, variants in KEY_VARIANTS.items():
            for v in variants:
                self._spellings.setdefault(_fold_key(v), key)

    def _embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            if self._encoder is None:
                from ecomvlm.model import TextEncoder
                self._encoder = TextEncoder.shared()
            for text, vec in zip(missing, self._encoder.encode(missing), strict=True):
                self._vectors[text] = vec
        return np.stack([self._vectors[t] for t in texts])

    def explain(self, category: str, key: str) -> tuple[str | None, str, float]:
        """(canonical key or None, how: exact|variant|embedding|junk|none, score)."""
        found = self._decisions.get((category, key))
        if found is None:
            found = self._decisions[(category, key)] = self._decide(category, key)
        return found

    def map(self, category: str, key: str) -> str | None:
        return self.explain(category, key)[0]

    def _decide(self, category: str, key: str) -> tuple[str | None, str, float]:
        keys = CATEGORIES[category].keys if category in CATEGORIES else sorted(canonical_keys())
        folded = _fold_key(key)
        if not folded or folded in JUNK_KEYS:
            return None, "junk", 0.0
        canonical = self._spellings.get(folded)
        if canonical is not None:
            # Known anywhere in the taxonomy counts even when the listed category lacks the key:
            # the category may be the seller's mistake, and verification settles that.
            return canonical, "exact" if folded == _fold_key(canonical) else "variant", 1.0
        if _QUALIFIERS.search(folded):
            return None, "junk", 0.0
        anchors = [(k, k) for k in keys] + [(k, v) for k in keys for v in KEY_VARIANTS.get(k, [])]
        if not self._vectors:  # one batch for every taxonomy spelling, the first time only
            self._embed(sorted({*canonical_keys(), *(v for vs in KEY_VARIANTS.values() for v in vs)}))
        sims = self._embed([key]) @ self._embed([a for _, a in anchors]).T
        best: dict[str, float] = {}
        for (target, _), s in zip(anchors, sims[0].tolist(), strict=True):
            best[target] = max(best.get(target, -1.0), s)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
        top, score = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else -1.0
        if score >= self.threshold and score - runner_up >= self.margin:
            return top, "embedding", float(score)
        return None, "none", float(score)


# ---------------------------------------------------------------- values and listings
_KEYS_OF = {name: set(cat.keys) for name, cat in CATEGORIES.items()}
_COLOUR_NAMES = {s.casefold(): c for c, syns in COLOUR_SYNONYMS.items() for s in [c, *syns]}


def canonical_category(category: str) -> str:
    """The taxonomy name for a listed category spelled another way ('t shirt' -> 'T-Shirt')."""
    squash = re.sub(r"[^a-z0-9]", "", category.casefold())
    for name in CATEGORIES:
        if re.sub(r"[^a-z0-9]", "", name.casefold()) == squash:
            return name
    return " ".join(category.split())


def normalise_value(category: str, key: str, value: str | list[str]) -> str:
    """Canonical spelling of a claimed value. A list claims its first value: an aspect is one
    claim to verify, and sellers put the main value first ('Color': ['Red', 'White'])."""
    if isinstance(value, list):
        value = value[0] if value else ""
    value = " ".join(strip_emoji(value).split())
    # The listed category first; then any category that knows this key, since a miscategorised
    # listing still spells its values the way its real category does ('Lemon' for a 'Jeans').
    owners = [category] if key in _KEYS_OF.get(category, ()) else []
    owners += [c for c, keys in _KEYS_OF.items() if key in keys and c != category]
    for owner in owners:
        found = canonical_value(owner, key, value)
        if found in CATEGORIES[owner].aspect(key).values:
            return found
    if owners and owners[0] == category:
        return canonical_value(category, key, value)
    return _COLOUR_NAMES.get(value.casefold(), value) if key == "Color" else \
        normalise_unit_value(value)


def resolve_image(ref: str, base_dir: Path | None) -> str:
    """URLs stay; local paths become absolute. With ``base_dir`` a path must stay inside it:
    an untrusted listing must not point the pipeline at '../../' or '/etc' files."""
    if is_url(ref):
        return ref
    if base_dir is None:
        return os.path.abspath(ref)
    base = os.path.abspath(base_dir)
    path = os.path.abspath(os.path.join(base, ref))
    if os.path.commonpath([base, path]) != base:
        raise UnreadableSource(ref, f"image path leaves the listings folder {base}")
    return path


_MATCH_RANK = {"exact": 0, "variant": 1, "embedding": 2}


def clean_listing(listing: Listing, base_dir: Path | None, key_mapper: KeyMapper) -> CleanListing:
    """Clean one listing. When two seller keys land on one canonical key, the better match
    (exact > variant > embedding, then listing order) wins and the other is kept unmapped.
    Raises ``UnreadableSource`` (an ``ImageError``) for a path outside ``base_dir``."""
    category = canonical_category(listing.category)
    claims: dict[str, tuple[tuple[int, float], str, str]] = {}  # canonical -> (rank, key, value)
    unmapped: dict[str, str] = {}
    for key, raw in listing.aspects.items():
        target, how, score = key_mapper.explain(category, key)
        if target is None:
            unmapped[key] = ", ".join(raw) if isinstance(raw, list) else raw
            continue
        value = normalise_value(category, target, raw)
        rank = (_MATCH_RANK[how], -score)
        if target in claims and claims[target][0] <= rank:
            unmapped[key] = value
            continue
        if target in claims:
            _, old_key, old_value = claims[target]
            unmapped[old_key] = old_value
        claims[target] = (rank, key, value)
    return CleanListing(
        id=listing.id, title=clean_title(listing.title),
        description=clean_description(listing.description), category=category,
        aspects={k: v for k, (_, _, v) in claims.items() if v},
        listed_keys={k: key for k, (_, key, v) in claims.items() if v},
        unmapped_aspects=unmapped,
        images=[resolve_image(ref, base_dir) for ref in listing.images])
