"""When two spellings of an aspect value mean the same: units, colour synonyms, size words.

The noise generator uses ``surface_spellings`` to write a true value the way sellers do;
curation and the benchmarks use ``canonical_value`` to map any spelling back, so "10,000 mAh"
and "10000mAh" are one value and a colour synonym is not a wrong claim.
"""

from __future__ import annotations

import re
from functools import cache

from .taxonomy import COLOUR_SYNONYMS, Aspect
from .taxonomy import category as get_category

_SIZE_WORDS = {"XS": ["Extra Small", "X-Small"], "S": ["Small"], "M": ["Medium", "Med"],
               "L": ["Large"], "XL": ["Extra Large", "X-Large"], "XXL": ["2XL", "XX-Large"]}


# ---------------------------------------------------------------- value spellings
_UNIT_RE = re.compile(r"^\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*(mah|ml|millilitres?|milliliters?|l|ltrs?|"
                      r"litres?|liters?|w|watts?|kw)\s*\.?\s*$", re.IGNORECASE)
_UNIT_FAMILY = {"mah": "mAh", "w": "W", "watt": "W", "watts": "W", "kw": "kW", "ml": "ml"}


def _num(x: float) -> str:
    """12.0 -> '12', 2.5 -> '2.5', without float noise such as 2200.0000000000005."""
    x = round(x, 6)
    return str(int(x)) if x == int(x) else f"{x:g}"


def _unit_of(word: str) -> str:
    word = word.lower()
    if word in _UNIT_FAMILY:
        return _UNIT_FAMILY[word]
    return "ml" if word.startswith("milli") else "L"  # l, ltr, litre(s), liter(s)


def normalise_unit_value(value: str, unit: str = "") -> str:
    """Canonical spelling of a number with a unit: '10,000 mAh' -> '10000mAh', '2.2kW' -> '2200W',
    '1.5 Litre' -> '1.5L'. Volumes stay in the unit written unless ``unit`` ('ml' or 'L', the
    aspect's ``Aspect.unit``) says which to use: ('1500ml', 'L') -> '1.5L', ('0.5L', 'ml') ->
    '500ml'. Litres keep one decimal ('1.0L'), as the taxonomy writes them. Anything that is
    not a number with a known unit comes back stripped but otherwise unchanged."""
    match = _UNIT_RE.match(value)
    if not match:
        return value.strip()
    number, written = float(match.group(1).replace(",", "")), _unit_of(match.group(2))
    if written == "mAh":
        return f"{_num(number)}mAh"
    if written in ("W", "kW"):
        return f"{_num(number * (1000 if written == 'kW' else 1))}W"
    ml = number * (1000 if written == "L" else 1)
    target = unit if unit in ("ml", "L") else written
    if target == "ml":
        return f"{round(ml):d}ml"
    litres = ml / 1000
    return f"{litres:.1f}L" if abs(litres * 10 - round(litres * 10)) < 1e-9 else f"{_num(litres)}L"


def _unit_spellings(value: str, unit: str) -> list[str]:
    n = float(re.match(r"[\d.]+", value).group())
    if unit == "mAh":
        i = int(n)
        return [value, f"{i:,} mAh", f"{i} MAH", f"{i}mah", f"{i} mAh"]
    if unit == "W":
        i = int(n)
        out = [value, f"{i} Watts" if i > 1 else f"{i} Watt", f"{i} W", f"{i}w"]
        return out + ([f"{i / 1000:g}kW"] if i >= 1000 else [])
    if unit == "ml":
        i = int(n)
        return [value, f"{i} ML", f"{i} ml", f"{i}mL", f"{i / 1000:g}L"]
    litres = f"{n:g}"  # unit == "L"
    plural = "Litres" if n > 1 else "Litre"
    return [value, f"{litres} {plural}", f"{litres}L", f"{round(n * 1000)}ml",
            f"{litres} Liter", f"{litres} ltr"]


def surface_spellings(aspect: Aspect, value: str) -> list[str]:
    """Every spelling a seller may use for ``value`` of ``aspect``; the first is canonical."""
    if aspect.unit:
        return _unit_spellings(value, aspect.unit)
    if value in COLOUR_SYNONYMS and aspect.key == "Color":
        return [value, *COLOUR_SYNONYMS[value], value.upper()]
    if value in _SIZE_WORDS and aspect.key == "Size":
        return [value, *_SIZE_WORDS[value], f"Size {value}", value.lower()]
    if aspect.key == "Shoe Size":
        n = value.split()[-1]
        return [value, f"UK{n}", f"{n} UK", f"UK Size {n}"]
    if aspect.key == "Waist Size":
        n = value[1:]
        return [value, f"{n}W", f'{n}"', f"{n} in", f"{n} Waist"]
    if aspect.key == "Age Range":
        n = value.split("+")[0]
        return [value, f"{n}+", f"{n} Years +", f"{n} yrs+"]
    out = [value, value.lower(), value.upper()]
    if value.startswith("100% "):
        out.append(f"{value[5:]} 100%")
    return out


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


@cache
def _reverse_spellings(category: str, key: str) -> dict[str, str]:
    aspect = get_category(category).aspect(key)
    return {_fold(s): v for v in aspect.values for s in surface_spellings(aspect, v)}


def canonical_value(category: str, key: str, listed: str | list[str]) -> str:
    """Map a listed value back to the canonical value of ``category``'s aspect ``key``; a value
    that matches none comes back stripped, so it can never equal a canonical value by accident
    unless it was one."""
    if isinstance(listed, list):
        listed = listed[0] if listed else ""
    found = _reverse_spellings(category, key).get(_fold(listed))
    if found is not None:
        return found
    unit = get_category(category).aspect(key).unit
    return normalise_unit_value(listed, unit) if unit else listed.strip()
