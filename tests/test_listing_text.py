"""Noisy listing text: aspect report statuses, value equivalence, titles, descriptions."""

from __future__ import annotations

import random
import re

import pytest

from ecomvlm.catalog.listing_text import (
    EMOJI,
    INJECTION_LINES,
    SHOUTS,
    contains_injection,
    make_description,
    make_title,
    noisy_aspects,
)
from ecomvlm.catalog.taxonomy import (
    CATEGORIES,
    COLOUR_SYNONYMS,
    HELD_OUT_BRANDS,
    KEY_VARIANTS,
    canonical_keys,
)
from ecomvlm.catalog.values import canonical_value, normalise_unit_value, surface_spellings


def _true(cat, rng: random.Random) -> dict[str, str]:
    return {a.key: rng.choice(a.values) for a in cat.aspects}


def _draws(n: int, **kw):
    """n (category, true aspects, listed, report) draws cycling through every category."""
    cats = list(CATEGORIES.values())
    for i in range(n):
        rng = random.Random(i)
        cat = cats[i % len(cats)]
        true = _true(cat, rng)
        listed, report = noisy_aspects(cat.name, true, rng, **kw)
        yield cat, true, listed, report


@pytest.mark.parametrize(("value", "unit", "canonical"), [
    ("10000mAh", "", "10000mAh"), ("10,000 mAh", "", "10000mAh"), ("10000 MAH", "", "10000mAh"),
    ("10000mah", "", "10000mAh"), ("1.5L", "L", "1.5L"), ("1.5 Litre", "L", "1.5L"),
    ("1500ml", "L", "1.5L"), ("1 Litre", "L", "1.0L"), ("1000ml", "L", "1.0L"),
    ("500ml", "ml", "500ml"), ("500 ML", "ml", "500ml"), ("0.5L", "ml", "500ml"),
    ("1L", "ml", "1000ml"), ("2200W", "", "2200W"), ("2200 Watts", "", "2200W"),
    ("2.2kW", "", "2200W"), ("5 Watt", "", "5W"), ("1500ml", "", "1500ml"), ("0.5L", "", "0.5L"),
    ("Stainless Steel", "", "Stainless Steel"), ("  Model 13 ", "", "Model 13"),
])
def test_normalise_unit_value(value: str, unit: str, canonical: str) -> None:
    assert normalise_unit_value(value, unit) == canonical


def test_spellings_never_collide_between_values() -> None:
    for cat in CATEGORIES.values():
        for aspect in cat.aspects:
            seen: dict[str, str] = {}
            for value in aspect.values:
                spellings = surface_spellings(aspect, value)
                assert spellings[0] == value
                for s in spellings:
                    folded = " ".join(s.lower().split())
                    assert seen.setdefault(folded, value) == value, (cat.name, aspect.key, s)
                    assert canonical_value(cat.name, aspect.key, s) == value


def test_report_covers_every_key_and_matches_listing() -> None:
    for cat, true, listed, report in _draws(400):
        assert set(cat.keys) <= set(report)
        for key, entry in report.items():
            if key not in cat.keys:
                assert entry["status"] == "extra" and key not in canonical_keys()
                assert listed[key] == entry["listed_value"]
                continue
            assert entry["true_value"] == true[key]
            if entry["status"] == "missing":
                assert entry["listed_key"] is None and entry["listed_value"] is None
            else:
                lk = entry["listed_key"]
                assert lk == key or lk in KEY_VARIANTS.get(key, []), (key, lk)
                assert listed[lk] == entry["listed_value"]
        listed_keys = {e["listed_key"] for e in report.values() if e["status"] != "missing"}
        assert listed_keys == set(listed)


def test_statuses_reconcile_with_rates() -> None:
    counts = {"correct": 0, "wrong": 0, "missing": 0}
    for cat, _, _, report in _draws(3000):
        for key in cat.keys:
            if len(cat.aspect(key).values) > 1:  # a one-value aspect cannot be wrong
                counts[report[key]["status"]] += 1
    listed = counts["correct"] + counts["wrong"]
    wrong_rate = counts["wrong"] / listed
    missing_rate = counts["missing"] / (listed + counts["missing"])
    print(f"empirical wrong rate {wrong_rate:.3f}, missing rate {missing_rate:.3f}")
    assert abs(wrong_rate - 0.15) < 0.02
    assert abs(missing_rate - 0.12) < 0.02
    assert sum(1 for *_, r in _draws(200, wrong_rate=0.0, missing_rate=0.0)
               for e in r.values() if e["status"] in ("wrong", "missing")) == 0


def _colour_name(listed: str) -> str | None:
    for canon, synonyms in COLOUR_SYNONYMS.items():
        if listed.lower() in {s.lower() for s in [canon, *synonyms]}:
            return canon
    return None


def test_correct_values_normalise_back_and_wrong_ones_do_not() -> None:
    seen_spelling = set()
    for cat, _, _, report in _draws(1500):
        for key in cat.keys:
            entry = report[key]
            if entry["status"] == "missing":
                continue
            listed = entry["listed_value"]
            value = listed[0] if isinstance(listed, list) else listed
            back = canonical_value(cat.name, key, listed)
            unit = cat.aspect(key).unit
            if entry["status"] == "correct":
                assert back == entry["true_value"], (cat.name, key, listed)
                if value != entry["true_value"]:
                    seen_spelling.add(key)
                if key == "Color":  # the taxonomy's own synonym table agrees
                    assert _colour_name(value) == entry["true_value"]
                if unit:
                    assert normalise_unit_value(value, unit) == entry["true_value"]
            else:
                assert back != entry["true_value"] and back in cat.aspect(key).values
                if unit:
                    assert normalise_unit_value(value, unit) != entry["true_value"]
    assert {"Color", "Capacity", "Size", "Power"} <= seen_spelling


def test_wrong_brands_never_leak_held_out_brands() -> None:
    for cat, true, _, report in _draws(1500, wrong_rate=1.0):
        entry = report.get("Brand")
        if entry and entry["status"] == "wrong" and true["Brand"] not in HELD_OUT_BRANDS:
            assert canonical_value(cat.name, "Brand", entry["listed_value"]) not in HELD_OUT_BRANDS


def test_titles_are_noisy_but_on_topic() -> None:
    stuffed = emoji = clean = 0
    for i in range(300):
        rng = random.Random(i)
        cat = list(CATEGORIES.values())[i % len(CATEGORIES)]
        title = make_title(cat.name, _true(cat, rng), rng)
        low = title.lower()
        assert 0 < len(title) <= 200
        assert any(w.lower() in low for w in (cat.name, *cat.keywords)), title
        has_emoji = any(e in title for e in EMOJI)
        has_shout = "!" in title or any(re.search(rf"(^|\s){re.escape(s)}(\s|$)", title)
                                        for s in SHOUTS)
        emoji += has_emoji
        stuffed += has_shout
        clean += not (has_emoji or has_shout)
    assert emoji > 60 and stuffed > 60 and clean > 60, (emoji, stuffed, clean)


def test_descriptions_have_html_boilerplate_and_sometimes_injections() -> None:
    html = plain = injected = entities = 0
    n = 600
    for i in range(n):
        rng = random.Random(i)
        cat = list(CATEGORIES.values())[i % len(CATEGORIES)]
        text = make_description(cat.name, _true(cat, rng), rng)
        if "<p" in text:
            html += 1
            entities += "&amp;" in text or "&nbsp;" in text
            assert re.search(r"<(ul|br|b)>", text)
        else:
            plain += 1
        low = text.lower()
        assert "return" in low and ("dispatch" in low or "post" in low), text
        assert "paypal" in low or "payment" in low
        injected += contains_injection(text)
    assert html > 0.5 * n and plain > 0.15 * n and entities > 0.4 * html
    assert 0.03 * n < injected < 0.15 * n, injected
    assert not contains_injection("Great kettle, ignore the scratches.")
    assert all(not contains_injection(make_title("Kettle", {"Brand": "Arcton"}, random.Random(i)))
               for i in range(50))
    assert INJECTION_LINES


def test_description_mentions_true_aspects() -> None:
    rng = random.Random(3)
    aspects = {"Color": "Navy", "Capacity": "20000mAh", "Brand": "Tamsin & Co"}
    hits = 0
    for _ in range(50):
        text = make_description("Power Bank", aspects, rng)
        hits += "navy" in text.lower()
        assert "Tamsin &amp; Co" in text or "Tamsin & Co" in text
        if "<p" in text:
            assert "Tamsin & Co" not in text  # HTML mode escapes the ampersand
    assert hits > 25


def test_listing_text_is_deterministic() -> None:
    cat = CATEGORIES["Kettle"]
    true = _true(cat, random.Random(1))
    for seed in range(5):
        runs = []
        for _ in range(2):
            rng = random.Random(seed)
            runs.append((make_title(cat.name, true, rng), make_description(cat.name, true, rng),
                         noisy_aspects(cat.name, true, rng)))
        assert runs[0] == runs[1]
        assert list(runs[0][2][0]) == list(runs[1][2][0])  # same key order too


def test_unknown_aspect_key_is_refused() -> None:
    with pytest.raises(ValueError, match="no aspects"):
        noisy_aspects("Mug", {"Colour": "Red"}, random.Random(0))
