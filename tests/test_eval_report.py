"""``ecomvlm report`` on real eval runs (a tiny checkpoint and the majority baseline):
self-contained HTML, the table matches results.json, seller text is escaped, same bytes twice."""

from __future__ import annotations

import json
import re

import pytest

from ecomvlm.catalog.synth import synthesize
from ecomvlm.cli import main
from ecomvlm.eval.report import colour_confusion, find_runs, summary_table, write_report
from ecomvlm.eval.results import plain_metrics
from ecomvlm.eval.runner import run_eval
from ecomvlm.model.vlm import VisionLanguageModel, VLMConfig


@pytest.fixture(scope="module")
def evals(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    synthesize(root / "cat", 30, seed=5, workers=1, progress=False)
    model = VisionLanguageModel.build(VLMConfig(vision="tiny:siglip", lm="tiny:llama"))
    tiny = str(model.save_pretrained(root / "ckpt" / "tiny-vlm"))
    out = root / "eval"
    for spec in (tiny, "majority"):
        run_eval(spec, "aspect,extract,multi_image", root / "cat", out, limit=6, crops="both",
                 batch_size=6, progress=False, split="train", threads=1)
    return out


def test_report_is_self_contained_and_matches_the_results(evals, tmp_path):
    page = write_report([evals], tmp_path / "r.html").read_text()
    runs = find_runs([evals])
    assert [r.role for r in runs] == ["adapted", "majority"]  # adapted model first
    # nothing to fetch: every picture is inline, no script, no external link
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)
    assert len(images) >= 3  # scores, per-aspect bars, crops plot
    for run in runs:  # each model's aspect accuracy is in its table row
        value = plain_metrics(run.results, "aspect")["accuracy"]
        assert re.search(rf"<td>{re.escape(run.label)}</td><td>{value:.3f}</td>", page)
    assert "Marks F1 +crops" in page and "Example generations" in page


def test_same_runs_same_bytes(evals, tmp_path):
    first = write_report([evals], tmp_path / "a.html").read_bytes()
    second = write_report([evals / "majority", evals], tmp_path / "b.html").read_bytes()
    assert first == second  # a folder given twice counts once


def test_model_output_and_listing_text_are_escaped(evals, tmp_path):
    copy = tmp_path / "eval"
    for run in find_runs([evals]):
        (copy / run.folder.name).mkdir(parents=True)
        for file in run.folder.iterdir():
            text = file.read_text()
            if file.name == "samples_aspect.jsonl":
                rows = [json.loads(line) for line in text.splitlines()]
                rows[0]["output"] = "<script>alert('seller')</script>"
                rows[0]["prompt"] = "<img src=x onerror=alert(1)>"
                text = "".join(json.dumps(r) + "\n" for r in rows)
            (copy / run.folder.name / file.name).write_text(text)
    page = write_report([copy], tmp_path / "r.html").read_text()
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;seller&#x27;)&lt;/script&gt;" in page


def test_colour_confusion_maps_off_taxonomy_answers_to_other(evals):
    run = find_runs([evals])[0]
    run.results["breakdowns"]["aspect"]["confusion_color"] = {
        "open": {"Navy": {"Blue": 2, "Navy": 1, "a dark shade": 1}},
        "mc": {"Navy": {"Navy": 3}, "Red": {"Red": 1}}}
    truths, columns, matrix = colour_confusion(run)
    assert truths == ["Navy", "Red"]
    assert columns == ["Blue", "Navy", "Red", "other"]
    assert matrix == [[2, 4, 0, 1], [0, 0, 1, 0]]


def test_cli_report_prints_the_table_and_names_missing_folders(evals, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(evals), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert summary_table(find_runs([evals])).splitlines()[0] in printed
    assert str(out) in printed and out.stat().st_size > 20_000
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert "nowhere: no such folder" in capsys.readouterr().err
