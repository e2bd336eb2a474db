"""Baselines run by the same command as the models: majority class of the train answer key
and the curation pipeline's perception with rules, on a real synthetic catalog."""

from __future__ import annotations

import pytest

from ecomvlm.catalog.synth import synthesize
from ecomvlm.eval.baselines import PerceptionAdapter
from ecomvlm.eval.bench_aspect import AspectBenchmark
from ecomvlm.eval.bench_multi_image import MultiImageBenchmark
from ecomvlm.eval.catalog import TrainPriors, load_items
from ecomvlm.eval.results import plain_metrics, read_samples
from ecomvlm.eval.runner import run_eval

SPLIT = "train"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    out = tmp_path_factory.mktemp("basecat") / "cat"
    synthesize(out, 30, seed=3, workers=1, progress=False)
    return out


def test_majority_answers_the_most_frequent_true_value(catalog, tmp_path):
    results = run_eval("majority", "all", catalog, tmp_path, crops="both", progress=False,
                       split=SPLIT)
    assert set(results["skipped"]) == {"general", "multi_image_crops"}
    assert plain_metrics(results, "extract")["json_valid_rate"] == 1.0
    priors = TrainPriors.from_catalog(catalog)
    top_category = priors.categories.most_common(1)[0][0]
    rows = read_samples(tmp_path / "majority" / "samples_aspect.jsonl")
    asked = [r for r in rows if r["meta"]["key"] == "Category" and r["meta"]["variant"] == "open"]
    assert asked and all(r["output"] == top_category for r in asked)
    assert 0.0 < plain_metrics(results, "aspect")["accuracy"] < 1.0


def test_perception_reads_photos_not_claims(catalog, tmp_path):
    items = load_items(catalog, SPLIT)
    packs = [i for i in items if "packaging" in i.roles and i.truth["compliance"]][:2]
    chosen = packs + [next(i for i in items if i.category.is_fashion and i not in packs)]
    adapter = PerceptionAdapter()
    adapter.bind(chosen, catalog)
    marks_bench, aspect_bench = MultiImageBenchmark(), AspectBenchmark()
    marks = [s for s in marks_bench.build(packs) if s.meta["question"] == "marks"]
    replies = adapter.generate(marks)
    f1s = [marks_bench.score(s, g.text)[1] for s, g in zip(marks, replies)]
    assert sum(f1s) / len(f1s) > 0.5  # the template detector finds the printed marks
    questions = [s for s in aspect_bench.build(chosen) if s.meta["variant"] == "open"]
    answers = {(s.meta["listing_id"], s.meta["key"]): g.text
               for s, g in zip(questions, adapter.generate(questions))}
    assert all(answers[(i.id, "Color")] != "unknown" for i in chosen)
    # no perception signal for sleeves or fits: it abstains instead of echoing the seller
    blind = [v for (_, key), v in answers.items()
             if key in ("Sleeve Length", "Neckline", "Fit", "Closure", "Style", "Type")]
    assert all(v == "unknown" for v in blind)
