"""Eval parsers: every reply a model may write is read or rejected, never a crash."""

from __future__ import annotations

import pytest

from ecomvlm.eval.parsing import (
    MAX_PARSE_CHARS,
    json_value,
    mark_names,
    parse_aspect,
    parse_category,
    parse_choice,
    parse_json_object,
    parse_marks,
    parse_yes_no,
)

OPTIONS = ["Red", "Navy", "Blue", "Black"]


@pytest.mark.parametrize("reply, expected", [
    ("B", "Navy"), ("b", "Navy"), ("(B)", "Navy"), ("B.", "Navy"), ("B. Navy", "Navy"),
    ("The answer is C", "Blue"), ("Answer: D", "Black"), ("Navy", "Navy"),
    ("It is navy.", "Navy"), ("E", None), ("purple", None), ("", None),
    ("  \n\nA\n", "Red"), ("Option C) blue", "Blue"),
])
def test_choice_reads_letters_and_option_text(reply, expected):
    assert parse_choice(reply, OPTIONS) == expected


def test_choice_prefers_the_longest_option_named():
    # "Navy Blue" names both Navy and Blue as words; the longer canonical name must not lose
    # to the shorter, and an exact option wins outright
    assert parse_choice("Dark Blue", ["Blue", "Dark Blue", "Red"]) == "Dark Blue"


@pytest.mark.parametrize("category, key, reply, expected", [
    ("T-Shirt", "Color", "Navy", "Navy"),
    ("T-Shirt", "Color", "Navy Blue", "Navy"),  # a seller synonym, canonicalised
    ("T-Shirt", "Color", "gray", "Grey"),
    ("T-Shirt", "Color", "The colour is red.", "Red"),
    ("Power Bank", "Capacity", "10,000 mAh", "10000mAh"),
    ("Kettle", "Capacity", "1500ml", "1.5L"),
    ("T-Shirt", "Size", "Medium", "M"),
    ("T-Shirt", "Color", "Teal", "Teal"),  # no known value: kept, so it scores wrong
    ("T-Shirt", "Color", "unknown", None),
    ("T-Shirt", "Color", "", None),
])
def test_open_aspect_answers_map_onto_the_taxonomy(category, key, reply, expected):
    assert parse_aspect(category, key, reply) == expected


def test_category_names_in_any_spelling():
    assert parse_category("t-shirts") == "T-Shirt"
    assert parse_category("It is a kettle.") == "Kettle"
    assert parse_category("Water Bottle") == "Water Bottle"
    assert parse_category("a spaceship") is None


def test_marks_from_descriptions_keys_and_none():
    answer = mark_names({"ce", "weee", "battery_warning"})
    assert parse_marks(answer) == {"ce", "weee", "battery_warning"}
    assert parse_marks("UKCA, recycling symbol and a choking hazard") == \
        {"ukca", "recycle", "choking_hazard"}
    assert parse_marks("None") == set()
    assert parse_marks("\x00" * 50_000) == set()
    assert mark_names(set()) == "None"
    # every mark's own training description reads back as that mark alone
    from ecomvlm.catalog.taxonomy import MARKS

    for mark in MARKS:
        assert parse_marks(mark_names({mark})) == {mark}, mark


@pytest.mark.parametrize("reply, expected", [
    ("Yes", True), ("no.", False), ("Yes, it has a lithium cell", True), ("NO", False),
    ("maybe", None), ("", None),
])
def test_yes_no(reply, expected):
    assert parse_yes_no(reply) is expected


@pytest.mark.parametrize("reply", [
    '{"Color": "Red", "Size": null}',
    '```json\n{"Color": "Red", "Size": null}\n```',
    'Here you go: {"Color": "Red", "Size": null} hope it helps',
    '{"broken": \n{"Color": "Red", "Size": null}',  # a bad object first, a good one after
])
def test_json_object_found_in_prose_and_fences(reply):
    assert parse_json_object(reply) == {"Color": "Red", "Size": None}


@pytest.mark.parametrize("reply", [
    '{"Color": "Red", "Size": ', "no json here", "[1, 2, 3]", '"just a string"', "{" * 10_000,
    "", None, '{"a": ' + '"x' * (MAX_PARSE_CHARS + 10),
])
def test_json_garbage_and_truncation_give_none(reply):
    assert parse_json_object(reply) is None


def test_json_values_are_canonical_and_junk_never_matches():
    assert json_value("T-Shirt", "Color", "navy blue") == "Navy"
    assert json_value("Power Bank", "Capacity", 10000) == "10000"  # a number is text
    assert json_value("T-Shirt", "Color", None) is None
    assert json_value("T-Shirt", "Color", "null") is None
    for junk in (["Red"], {"v": "Red"}, "Red" * 100, True):
        value = json_value("T-Shirt", "Color", junk)
        assert value is not None and value.startswith("<invalid")
