"""Benchmarks: samples built from a real synthetic catalog, scored on hand-made replies
(right, wrong, malformed), aggregated into the metrics the report reads."""

from __future__ import annotations

import json

import pytest

from ecomvlm.catalog.synth import synthesize
from ecomvlm.eval.base import Scored
from ecomvlm.eval.bench_aspect import AspectBenchmark
from ecomvlm.eval.bench_extract import ExtractBenchmark
from ecomvlm.eval.bench_fashion import FashionBenchmark
from ecomvlm.eval.bench_general import GeneralBenchmark, check_reply, load_data
from ecomvlm.eval.bench_multi_image import MultiImageBenchmark, MultiImageCropsBenchmark
from ecomvlm.eval.catalog import load_items
from ecomvlm.eval.parsing import mark_names
from ecomvlm.images import load_image
from ecomvlm.samples import IMAGE_TOKEN


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    out = tmp_path_factory.mktemp("evalcat") / "cat"
    synthesize(out, 30, seed=3, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def items(catalog):
    return load_items(catalog, "train")  # 20 listings: more material than the 2 test ones


def scored(bench, samples, replies):
    out = []
    for s, reply in zip(samples, replies):
        parsed, score, details = bench.score(s, reply)
        out.append(Scored(s.id, s.benchmark, s.prompt, s.images, reply, parsed, s.target, score,
                          0.1, 49 * len(s.images), s.meta, details))
    return out


def test_items_join_truth_skip_reposts_and_hide_invisible_values(catalog, items):
    truth = [json.loads(line) for line in (catalog / "ground_truth/train.jsonl").open()]
    reposts = {t["id"] for t in truth if t["duplicate_of"]}
    assert {i.id for i in items} == {t["id"] for t in truth} - reposts
    for item in items:
        assert all(p.startswith(str(catalog.resolve())) for p in item.images)
        for aspect in item.category.aspects:
            if aspect.visible == "":
                assert item.visible_value(aspect.key) is None  # only the seller knows it
            if aspect.key == "Color":
                assert item.visible_value("Color") == item.truth["aspects"]["Color"]


def test_missing_ground_truth_is_a_clear_error(tmp_path, catalog):
    (tmp_path / "ground_truth").mkdir()
    (tmp_path / "test.jsonl").write_text((catalog / "train.jsonl").read_text())
    (tmp_path / "ground_truth/test.jsonl").write_text("")
    with pytest.raises(ValueError, match="has no ground-truth record"):
        load_items(tmp_path, "test")


def test_aspect_open_and_mc_scoring(items):
    bench = AspectBenchmark(seed=0)
    samples = bench.build(items)
    assert all(s.prompt.count(IMAGE_TOKEN) == len(s.images) for s in samples)
    assert {s.meta["variant"] for s in samples} == {"open", "mc"}
    colour_open = next(s for s in samples
                       if s.meta["key"] == "Color" and s.meta["variant"] == "open")
    _, right, _ = bench.score(colour_open, colour_open.target.lower() + ".")
    _, wrong, _ = bench.score(colour_open, "Teal")
    assert (right, wrong) == (1.0, 0.0)
    mc = next(s for s in samples if s.meta["variant"] == "mc")
    letter = chr(65 + mc.meta["options"].index(mc.target))
    other = next(chr(65 + i) for i, o in enumerate(mc.meta["options"]) if o != mc.target)
    assert [bench.score(mc, r)[1] for r in (letter, mc.target, other, "", "Z" * 5000)] == \
        [1.0, 1.0, 0.0, 0.0, 0.0]
    cat_q = next(s for s in samples
                 if s.meta["key"] == "Category" and s.meta["variant"] == "open")
    assert bench.score(cat_q, cat_q.target.lower() + "s")[1] == 1.0
    # aggregate: half right per variant -> per-aspect table and a colour confusion matrix
    replies = [s.target if k % 2 == 0 else "nonsense" for k, s in enumerate(samples)]
    metrics, breakdown = bench.aggregate(scored(bench, samples, replies))
    assert metrics["accuracy"] == pytest.approx(sum(1 for k in range(len(samples))
                                                    if k % 2 == 0) / len(samples), abs=1e-4)
    assert "Color" in breakdown["per_aspect"] and "Category" in breakdown["per_aspect"]
    confusion = breakdown["confusion_color"]["open"]
    assert sum(sum(row.values()) for row in confusion.values()) == \
        sum(1 for s in samples if s.meta["key"] == "Color" and s.meta["variant"] == "open")


def test_mc_options_are_seeded_and_hold_the_answer(items):
    a, b = AspectBenchmark(seed=0).build(items), AspectBenchmark(seed=1).build(items)
    for s in a:
        if s.meta["variant"] == "mc":
            assert s.target in s.meta["options"] and 2 <= len(s.meta["options"]) <= 4
    assert [s.id for s in a] == [s.id for s in AspectBenchmark(seed=0).build(items)]
    assert [s.id for s in a] != [s.id for s in b]  # the seed orders listings (and limit)


def test_fashion_questions_per_type(items):
    bench = FashionBenchmark(seed=0)
    samples = bench.build(items)
    assert samples and all(s.meta["category"] in
                           {"T-Shirt", "Shirt", "Dress", "Skirt", "Jeans", "Jacket", "Sneakers",
                            "Handbag", "Cap"} for s in samples)
    types = {s.meta["question"] for s in samples}
    assert {"category", "colours"} <= types
    replies = [chr(65 + s.meta["options"].index(s.target)) if s.meta["question"] == "category"
               else "I cannot tell" for s in samples]
    metrics, breakdown = bench.aggregate(scored(bench, samples, replies))
    assert metrics["accuracy_category"] == 1.0 and metrics["accuracy_colours"] == 0.0
    assert breakdown["per_question"]["category"]["n"] == \
        sum(s.meta["question"] == "category" for s in samples)


def test_extract_f1_validity_keys_and_hallucination(items):
    bench = ExtractBenchmark(seed=0)
    samples = bench.build(items)
    s = next(x for x in samples if any(v is None for v in x.target.values())
             and sum(v is not None for v in x.target.values()) >= 2)
    keys = s.meta["keys"]
    perfect = json.dumps(s.target)
    null_key = next(k for k in keys if s.target[k] is None)
    true_keys = [k for k in keys if s.target[k] is not None]
    hallucinating = json.dumps({**s.target, null_key: "Something"})
    one_wrong = json.dumps({**s.target, true_keys[0]: "Wrong Value"})
    extra = json.dumps({**s.target, "Warranty": "2 years"})
    replies = {
        "perfect": perfect, "fenced": f"```json\n{perfect}\n```", "hallucinating": hallucinating,
        "one_wrong": one_wrong, "extra": extra, "missing_key": json.dumps(
            {k: v for k, v in s.target.items() if k != true_keys[0]}),
        "truncated": perfect[: len(perfect) // 2], "prose": "The item is red.",
        "huge": json.dumps({k: "x" * 1000 for k in keys}),
        "enormous": json.dumps({k: "x" * 10_000 for k in keys}), "list": json.dumps([s.target]),
    }
    out = {name: bench.score(s, reply) for name, reply in replies.items()}
    n = len(true_keys)
    assert out["perfect"][1] == out["fenced"][1] == 1.0
    assert out["perfect"][2]["exact_keys"] and out["perfect"][2]["hallucinated"] == 0
    assert out["hallucinating"][2]["hallucinated"] == 1 and out["hallucinating"][2]["fp"] == 1
    assert (out["one_wrong"][2]["tp"], out["one_wrong"][2]["fp"], out["one_wrong"][2]["fn"]) == \
        (n - 1, 1, 1)
    assert out["extra"][2]["fp"] == 1 and not out["extra"][2]["exact_keys"]
    assert not out["missing_key"][2]["exact_keys"] and out["missing_key"][2]["fn"] == 1
    for name in ("truncated", "prose"):
        assert out[name][0] is None and out[name][1] == 0.0 and not out[name][2]["valid_json"]
    assert out["list"][1] == 1.0  # lenient: the object inside a wrapping list is read
    # huge values are no values; a reply past the parse limit is cut, so not valid JSON
    assert out["huge"][2]["valid_json"] and out["huge"][2]["tp"] == 0 and out["huge"][1] == 0.0
    assert not out["enormous"][2]["valid_json"] and out["enormous"][1] == 0.0
    records = scored(bench, [s, s, s], [perfect, one_wrong, "garbage"])
    metrics, breakdown = bench.aggregate(records)
    tp, fp, fn = 2 * n - 1, 1, 1 + n
    assert metrics["precision_micro"] == pytest.approx(tp / (tp + fp), abs=1e-4)
    assert metrics["recall_micro"] == pytest.approx(tp / (tp + fn), abs=1e-4)
    assert metrics["json_valid_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert null_key not in breakdown["per_key_f1"]  # never true, never predicted: no F1


def test_multi_image_sets_battery_and_costs(items):
    bench = MultiImageBenchmark(seed=0)
    samples = bench.build(items)
    marks = [s for s in samples if s.meta["question"] == "marks"]
    battery = [s for s in samples if s.meta["question"] == "battery"]
    assert len(marks) == len(battery) == len(items)
    with_marks = next(s for s in marks if len(s.target) >= 2)
    assert bench.score(with_marks, mark_names(with_marks.target))[1] == 1.0
    half = bench.score(with_marks, mark_names(with_marks.target[:1]))
    assert 0.0 < half[1] < 1.0 and half[2]["fn"] == len(with_marks.target) - 1
    empty = next(s for s in marks if not s.target)
    assert bench.score(empty, "None")[1] == 1.0 and bench.score(empty, "CE mark")[1] == 0.0
    b = battery[0]
    assert bench.score(b, "Yes" if b.target else "No")[1] == 1.0
    assert bench.score(b, "No" if b.target else "Yes")[1] == 0.0
    metrics, breakdown = bench.aggregate(scored(bench, samples, [
        mark_names(s.target) if s.meta["question"] == "marks" else "maybe" for s in samples]))
    assert metrics["marks_f1_micro"] == 1.0 and metrics["battery_accuracy"] == 0.0
    assert metrics["image_tokens"] > 0 and "latency_s" in metrics
    assert not breakdown["crops"]["enabled"]


def test_crops_add_detected_regions_within_budget(items):
    packs = [i for i in items if "packaging" in i.roles and i.truth["compliance"]][:3]
    assert packs, "the fixture catalog should hold packaging with marks"
    bench = MultiImageCropsBenchmark(seed=0, max_crops=2)
    samples = bench.build(packs)
    for s in samples:
        n_photos = s.meta["n_photos"]
        crops = s.images[n_photos:]
        assert 1 <= len(crops) <= 2 and s.meta["preprocess_s"] > 0
        assert all(isinstance(c, dict) and c["path"] in s.images[:n_photos] for c in crops)
        assert f"Images {n_photos + 1} to" in s.prompt
        assert s.prompt.count(IMAGE_TOKEN) == len(s.images)
    # the crops cover the marks' true boxes on the packaging photo
    item = packs[0]
    pack_index = item.roles.index("packaging")
    boxes = item.truth["images"][pack_index].get("mark_boxes", {})
    first = next(s for s in samples if s.meta["listing_id"] == item.id)
    crops = [c["box"] for c in first.images[first.meta["n_photos"]:]
             if c["path"] == item.images[pack_index]]
    covered = [m for m, (x0, y0, x1, y1) in boxes.items()
               if any(c[0] <= x0 and c[1] <= y0 and x1 <= c[2] and y1 <= c[3] for c in crops)]
    assert covered
    for c in crops:  # zoomed in: a crop is a small part of the packaging photo
        assert c[2] - c[0] == c[3] - c[1] < 0.6 * min(load_image(item.images[pack_index]).size)


def test_general_checks_and_data():
    questions = load_data("general_qa.json")["questions"]
    assert len(questions) >= 40 and len({q["id"] for q in questions}) == len(questions)
    by_id = {q["id"]: q for q in questions}
    assert check_reply(by_id["fact-01"], "The capital of France is Paris.")
    assert not check_reply(by_id["fact-01"], "London")
    assert check_reply(by_id["arith-02"], "54") and not check_reply(by_id["arith-02"], "45")
    assert check_reply(by_id["instr-02"], "HELLO") and not check_reply(by_id["instr-02"], "Hello")
    assert check_reply(by_id["instr-05"], '{"name": "Alice"}')
    assert not check_reply(by_id["instr-05"], '{"name": "Bob"}')
    assert check_reply(by_id["instr-10"], "apple, mango, pear")
    assert not check_reply(by_id["instr-10"], "pear, apple, mango")
    bench = GeneralBenchmark(seed=0)
    samples = bench.build([])
    assert len(samples) == len(questions) and not any(s.images for s in samples)
    assert len(bench.build([], limit=5)) == 5
    text = load_data("general_text.json")["paragraphs"]
    assert sum(len(p) for p in text) > 3000
