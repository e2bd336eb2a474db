"""Reading answers out of free model text. Every parser returns None (or an empty result) on
text it cannot read; none raises, whatever the model wrote: prose around the answer, code
fences, truncated JSON, extra keys, megabytes of repetition.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ecomvlm.catalog.taxonomy import CATEGORIES, MARKS
from ecomvlm.catalog.values import canonical_value

MAX_PARSE_CHARS = 20_000  # longer output is cut before parsing: it cannot be a short answer
MAX_VALUE_CHARS = 120  # an extracted value longer than this is no aspect value
_NULLS = {"", "null", "none", "n/a", "na", "unknown", "not visible", "not shown", "-", "?"}
_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)
_WS = re.compile(r"\s+")


def clip(text: Any) -> str:
    return (text if isinstance(text, str) else "")[:MAX_PARSE_CHARS]


def norm(text: str) -> str:
    """Lower case, punctuation as spaces, single spaces: 'Navy-Blue.' -> 'navy blue'."""
    return _WS.sub(" ", re.sub(r"[^0-9a-z+.%]+", " ", text.lower())).strip(" .")


def first_line(text: str) -> str:
    """The answer part of a reply: the first non-empty line, without 'Answer:' and quotes."""
    for line in clip(text).splitlines():
        line = line.strip().strip("*`\"' ")
        if line:
            return re.sub(r"^(final )?answer\s*[:\-]\s*", "", line, flags=re.IGNORECASE)
    return ""


def _contains(haystack: str, needle: str) -> bool:
    return bool(needle) and re.search(rf"(?<![0-9a-z]){re.escape(needle)}(?![0-9a-z])",
                                      haystack) is not None


def find_value(text: str, values: list[str]) -> str | None:
    """The value among ``values`` the text states: an exact (normalised) match, else the
    longest value mentioned as whole words ('It is navy blue' -> 'Navy' if only Navy fits)."""
    line, whole = norm(first_line(text)), norm(clip(text))
    by_norm = {norm(v): v for v in values}
    if line in by_norm:
        return by_norm[line]
    for scope in (line, whole):
        hits = [v for n, v in by_norm.items() if _contains(scope, n)]
        if hits:
            return max(hits, key=lambda v: (len(norm(v)), -values.index(v)))
    return None


def parse_aspect(category: str, key: str, text: str) -> str | None:
    """An open answer for ``category``'s aspect ``key`` -> its canonical value, or the cleaned
    answer when it is no known value (scored wrong, kept for the record)."""
    line = first_line(text).rstrip(".")
    if not line or norm(line) in _NULLS:
        return None
    values = list(CATEGORIES[category].aspect(key).values)
    canon = canonical_value(category, key, line)
    if canon in values:
        return canon
    found = find_value(text, values)
    return found if found is not None else line[:MAX_VALUE_CHARS]


def parse_category(text: str, names: list[str] | None = None) -> str | None:
    """A category name ('t-shirts', 'It is a kettle.') -> the taxonomy name."""
    names = names or list(CATEGORIES)
    spellings = {n: [n, n + "s", n.replace("-", " "), n.replace("-", "")] for n in names}
    line, whole = norm(first_line(text)), norm(clip(text))
    for scope in (line, whole):
        hits = [n for n, spells in spellings.items() if any(_contains(scope, norm(s))
                                                            for s in spells)]
        if hits:
            return max(hits, key=len)
    return None


_LETTER = re.compile(r"^\(?([A-H])\)?(?:[.):\s]|$)")
_LETTER_ANYWHERE = re.compile(r"(?:answer|option|choice)(?: is)?\s*[:\-]?\s*\(?([A-H])\b")


def parse_choice(text: str, options: list[str]) -> str | None:
    """A multiple-choice reply -> the chosen option's text. Accepts a letter ('B', '(B)',
    'B. Navy', 'The answer is B') or the option's text; None if it names no option."""
    line = first_line(text)
    letters = [chr(65 + i) for i in range(len(options))]
    match = (re.fullmatch(r"\(?([A-Ha-h])\)?\.?", line) or _LETTER.match(line)
             or _LETTER_ANYWHERE.search(clip(text)))
    if match and match.group(1).upper() in letters:
        return options[letters.index(match.group(1).upper())]
    return find_value(text, options)


_MARK_PATTERNS: dict[str, str] = {
    "ukca": r"\bukca\b",
    "ce": r"\bce\b(?! ?\d)",
    "weee": r"\bweee\b|wheelie|crossed.out (wheelie )?bin|\bbin\b",
    "battery_warning": r"battery warning|lithium|battery (hazard|caution)",
    "under_3": r"under (3|three)|0 ?- ?3|children under|not suitable for children",
    "choking_hazard": r"chok|small parts",
    "food_safe": r"food|glass and fork",
    "hot_surface": r"hot surface|\bhot\b",
    "recycle": r"recycl|mobius|möbius",
}


def parse_marks(text: str) -> set[str]:
    """Compliance marks named anywhere in the reply (descriptions, keys or common names).
    'None' and anything unrecognisable give the empty set."""
    low = clip(text).lower().replace("_", " ")
    return {mark for mark, pattern in _MARK_PATTERNS.items() if re.search(pattern, low)}


def mark_names(marks: set[str] | list[str]) -> str:
    """The answer format the model is trained on: sorted descriptions, or 'None'."""
    return ", ".join(sorted(MARKS[m] for m in marks)) or "None"


def parse_yes_no(text: str) -> bool | None:
    words = norm(first_line(text)).split() or norm(clip(text)).split()
    for word in words[:8]:
        if word in ("yes", "true", "y"):
            return True
        if word in ("no", "false", "n", "none"):
            return False
    return None


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in the reply (code fences and prose around it allowed), or None
    when there is none or it is cut off."""
    body = _FENCE.sub("", clip(text))
    start = body.find("{")
    while start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(body, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = body.find("{", start + 1)
    return None


def json_value(category: str, key: str, raw: Any) -> str | None:
    """One extracted value -> canonical string, None for null-like; a list, an object or a
    huge string is no value (returned as a marker that never matches the truth)."""
    if raw is None or isinstance(raw, bool):
        return None if raw is None else f"<invalid:{raw}>"
    if isinstance(raw, (int, float)):
        raw = str(raw)
    if not isinstance(raw, str):
        return "<invalid:not a string>"
    text = raw.strip()
    if norm(text) in _NULLS:
        return None
    if len(text) > MAX_VALUE_CHARS:
        return "<invalid:too long>"
    if key not in CATEGORIES[category].keys:
        return text
    return canonical_value(category, key, text)
