"""One self-contained HTML page comparing eval runs side by side (``ecomvlm report``).

Input: folders written by ``ecomvlm eval`` (``<out>/<model>/results.json`` and its
``samples_<bench>.jsonl``); a folder holding several model folders counts as all of them.
Optional extras: a curation folder (its ``quality/`` report) and a training folder (its
``summary.json`` and loss curves). Plots are PNGs inlined as data URLs; nothing is fetched,
so the file can be mailed or archived. Every listing-derived string is HTML-escaped: seller
text is data here too. Same inputs give the same bytes (no timestamps, fixed PNG metadata).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import plain_metrics, read_samples

# the one number each benchmark is ranked by, and how the table labels it
HEADLINE: dict[str, tuple[str, str]] = {
    "aspect": ("accuracy", "Aspect acc."),
    "fashion": ("accuracy", "Fashion acc."),
    "extract": ("f1_micro", "Extract F1"),
    "multi_image": ("marks_f1_micro", "Marks F1"),
    "multi_image_crops": ("marks_f1_micro", "Marks F1 +crops"),
    "general": ("accuracy", "General acc."),
}
ROLE_ORDER = ("adapted", "un-adapted", "text-only", "perception", "majority", "other")
EXAMPLE_BENCHMARKS = ("aspect", "extract", "multi_image")


@dataclass
class Run:
    """One model's results.json plus where it lives."""

    folder: Path
    results: dict[str, Any]
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.results["model_name"]

    @property
    def spec(self) -> str:
        return str(self.results.get("model_spec", self.name))

    @property
    def role(self) -> str:
        spec = self.spec
        if spec in ("majority", "perception"):
            return spec
        if spec.startswith("text-only"):
            return "text-only"
        if spec.startswith("base:") or spec == "untrained":
            return "un-adapted"
        return "adapted" if self.results.get("model_info", {}).get("backend") else "other"

    @property
    def label(self) -> str:
        if self.role in ("adapted", "other") or self.role in self.name:
            return self.name
        return f"{self.name} ({self.role})"

    def metric(self, bench: str, key: str) -> float | None:
        if bench not in self.results.get("results", {}):
            return None
        value = plain_metrics(self.results, bench).get(key)
        return value if isinstance(value, (int, float)) else None

    def sample_list(self, bench: str) -> list[dict[str, Any]]:
        if bench not in self.samples:
            path = self.folder / f"samples_{bench}.jsonl"
            self.samples[bench] = read_samples(path) if path.is_file() else []
        return self.samples[bench]


def find_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Every results.json under the given folders (a model folder, or an eval --out folder),
    adapted models first, then the baselines, each group by name."""
    found: dict[Path, Run] = {}
    for given in paths:
        path = Path(given)
        if path.is_file() and path.name == "results.json":
            path = path.parent
        if (path / "results.json").is_file():
            candidates = [path / "results.json"]
        elif path.is_dir():
            candidates = sorted(path.glob("*/results.json"))
        else:
            raise FileNotFoundError(f"{path}: no such folder")
        if not candidates:
            raise FileNotFoundError(f"{path}: no results.json in it or in its sub-folders "
                                    f"(run `ecomvlm eval --out {path}` first)")
        for file in candidates:
            try:
                results = json.loads(file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise ValueError(f"{file}: not valid JSON ({error})") from error
            if "results" not in results or "model_name" not in results:
                raise ValueError(f"{file}: not an `ecomvlm eval` results file")
            found[file.parent.resolve()] = Run(file.parent, results)
    return sorted(found.values(), key=lambda r: (ROLE_ORDER.index(r.role), r.name))


def benchmarks_of(runs: Sequence[Run]) -> list[str]:
    seen = {b for r in runs for b in r.results.get("results", {})}
    return [b for b in HEADLINE if b in seen] + sorted(seen - set(HEADLINE))


def summary_rows(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """The headline table: one row per model, one column per benchmark (plus perplexity)."""
    benches = benchmarks_of(runs)
    header = ["model", *(HEADLINE.get(b, ("", b))[1] for b in benches)]
    if "general" in benches:
        header.append("Perplexity")
    rows = []
    for run in runs:
        row = [run.label]
        for bench in benches:
            value = run.metric(bench, HEADLINE.get(bench, ("accuracy", ""))[0])
            row.append("-" if value is None else f"{value:.3f}")
        if "general" in benches:
            ppl = run.metric("general", "perplexity")
            row.append("-" if ppl is None else f"{ppl:.2f}")
        rows.append(row)
    return header, rows


def summary_table(runs: Sequence[Run]) -> str:
    """The headline table as aligned plain text (for terminals)."""
    header, rows = summary_rows(runs)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [header, *rows])


# ----------------------------------------------------------------------------- plots


def _png(fig) -> str:
    buffer = io.BytesIO()
    # no Software/date metadata: the same figure gives the same bytes
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.hashsalt": "ecomvlm"})
    return plt


def plot_scores(runs: Sequence[Run]) -> str | None:
    """Grouped bars: the headline score of every benchmark, one bar per model."""
    benches = [b for b in benchmarks_of(runs) if b in HEADLINE]
    if not benches:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(benches) + 2), 3.6))
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = [run.metric(b, HEADLINE[b][0]) for b in benches]
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(benches))]
        bars = ax.bar([x for x, v in zip(xs, values) if v is not None],
                      [v for v in values if v is not None], width, label=run.label)
        for bar in bars:
            ax.annotate(f"{bar.get_height():.2f}", (bar.get_x() + bar.get_width() / 2,
                                                    bar.get_height()),
                        ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(range(len(benches)), [HEADLINE[b][1] for b in benches])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("score (higher is better)")
    ax.legend(fontsize=7, ncol=min(3, len(runs)), loc="upper left", bbox_to_anchor=(0, -0.12))
    ax.set_title("Headline score per benchmark")
    return _png(fig)


def plot_per_aspect(runs: Sequence[Run]) -> str | None:
    """Horizontal grouped bars: aspect-prediction accuracy per aspect, per model."""
    tables = {r.label: r.results.get("breakdowns", {}).get("aspect", {}).get("per_aspect", {})
              for r in runs}
    tables = {k: v for k, v in tables.items() if v}
    if not tables:
        return None
    aspects = sorted({a for table in tables.values() for a in table}, reverse=True)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(aspects) * max(1, len(tables)) ** 0.5 + 1.5))
    height = 0.8 / len(tables)
    for i, (label, table) in enumerate(tables.items()):
        ys = [j + (i - (len(tables) - 1) / 2) * height for j in range(len(aspects))]
        ax.barh(ys, [table.get(a, {}).get("all", 0.0) for a in aspects], height, label=label)
    ticks = [f"{a} (n={max(t.get(a, {}).get('n', 0) for t in tables.values())})"
             for a in aspects]
    ax.set_yticks(range(len(aspects)), ticks)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (open and multiple choice together)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Aspect prediction, per aspect")
    return _png(fig)


def colour_confusion(run: Run) -> tuple[list[str], list[str], list[list[int]]] | None:
    """Rows: true colour; columns: the answer mapped to the taxonomy, anything else 'other'."""
    from ecomvlm.catalog.taxonomy import COLOURS

    confusion = run.results.get("breakdowns", {}).get("aspect", {}).get("confusion_color", {})
    counts: dict[str, dict[str, int]] = {}
    for table in confusion.values():  # open and multiple-choice answers together
        for truth, answers in table.items():
            row = counts.setdefault(truth, {})
            for answer, n in answers.items():
                column = answer if answer in COLOURS else "other"
                row[column] = row.get(column, 0) + n
    if not counts:
        return None
    truths = sorted(counts)
    columns = sorted({c for row in counts.values() for c in row} - {"other"} | set(truths))
    if any("other" in row for row in counts.values()):
        columns.append("other")
    return truths, columns, [[counts[t].get(c, 0) for c in columns] for t in truths]


def plot_confusion(run: Run) -> str | None:
    table = colour_confusion(run)
    if table is None:
        return None
    truths, columns, matrix = table
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(0.42 * len(columns) + 2.2, 0.38 * len(truths) + 1.6))
    ax.imshow(matrix, cmap="Blues", aspect="auto")
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if n > max(map(max, matrix)) / 2 else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right")
    ax.set_yticks(range(len(truths)), truths)
    ax.set_xlabel("answered")
    ax.set_ylabel("true colour")
    ax.set_title(f"Colour confusion: {run.label}")
    return _png(fig)


def crop_points(run: Run) -> list[tuple[str, float, float, float]]:
    """(variant, latency s/sample, marks F1, image tokens) for each multi-image run."""
    points = []
    for bench, variant in (("multi_image", "no crops"), ("multi_image_crops", "crops")):
        f1, latency = run.metric(bench, "marks_f1_micro"), run.metric(bench, "latency_s")
        if f1 is not None and latency is not None:
            points.append((variant, latency, f1, run.metric(bench, "image_tokens") or 0.0))
    return points


def plot_crops(runs: Sequence[Run]) -> str | None:
    """Marks F1 against latency, with and without targeted crops (arrow: adding crops)."""
    series = {r.label: crop_points(r) for r in runs if r.role not in ("majority",)}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, points in series.items():
        xs, ys = [p[1] for p in points], [p[2] for p in points]
        line, = ax.plot(xs[:1], ys[:1], "o", label=label)
        if len(points) == 2:  # the crops run: a square at the arrow's head
            ax.plot(xs[1:], ys[1:], "s", color=line.get_color())
            ax.annotate("", xy=(xs[1], ys[1]), xytext=(xs[0], ys[0]),
                        arrowprops={"arrowstyle": "->", "color": line.get_color()})
    ax.set_xlabel("latency per sample (s)")
    ax.set_ylabel("compliance-mark F1 (micro)")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("Multi-image: F1 against latency (circle: photos only, square: + crops)")
    return _png(fig)


# ----------------------------------------------------------------------------- html


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _figure(data_url: str | None, caption: str) -> str:
    if not data_url:
        return ""
    return (f'<figure><img src="{data_url}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _image_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def detail_section(runs: Sequence[Run], bench: str) -> str:
    """Every metric of one benchmark, models as rows."""
    having = [r for r in runs if bench in r.results.get("results", {})]
    keys = sorted({k for r in having for k in plain_metrics(r.results, bench)})
    rows = [[r.label, *(_fmt(plain_metrics(r.results, bench).get(k, "-")) for k in keys),
             r.results.get("n-samples", {}).get(bench, {}).get("effective", "-"),
             _fmt(r.results.get("timing", {}).get(bench, "-"))] for r in having]
    skipped = [f"{r.label}: {r.results['skipped'][bench]}" for r in runs
               if bench in r.results.get("skipped", {})]
    note = f'<p class="muted">Skipped: {html.escape("; ".join(skipped))}</p>' if skipped else ""
    return (f"<h3>{html.escape(bench)}</h3>"
            + _table(["model", *keys, "n", "seconds"], rows, "wide") + note)


def examples_section(runs: Sequence[Run], per_bench: int = 3, max_chars: int = 300) -> str:
    """The first few samples of some benchmarks with every model's raw answer beside the
    target: generations before (un-adapted) and after adaptation, read side by side."""
    models = [r for r in runs if r.role not in ("majority",)]
    parts = []
    for bench in EXAMPLE_BENCHMARKS:
        first = next((r.sample_list(bench) for r in models if r.sample_list(bench)), [])
        for sample in first[:per_bench]:
            rows = []
            for run in models:
                match = next((s for s in run.sample_list(bench) if s["id"] == sample["id"]),
                             None)
                if match is not None:
                    output = str(match.get("output", ""))
                    if len(output) > max_chars:
                        output = output[:max_chars] + " ..."
                    rows.append([run.label, output, _fmt(match.get("score"))])
            prompt = str(sample.get("prompt", "")).replace("<image>\n", "")
            parts.append(
                f'<div class="example"><p><b>{html.escape(bench)}</b> '
                f'<code>{html.escape(str(sample["id"]))}</code> '
                f'({len(sample.get("images", []))} images)</p>'
                f"<pre>{html.escape(prompt[:max_chars * 2])}</pre>"
                f"<p>target: <code>{html.escape(json.dumps(sample.get('target'), ensure_ascii=False))}</code></p>"
                + _table(["model", "raw output", "score"], rows) + "</div>")
    return "".join(parts)


def curation_section(curated: Path) -> str:
    path = curated / "quality" / "quality.json"
    if not path.is_file():
        return f'<p class="muted">No curation quality report at {html.escape(str(path))}.</p>'
    quality = json.loads(path.read_text(encoding="utf-8"))
    summary = quality.get("summary", {})
    counts = [[k, _fmt(summary[k])] for k in ("seen", "kept", "duplicates", "quarantined")
              if k in summary]
    counts += [[f"samples {stage}", n] for stage, n in summary.get("samples", {}).items()]
    detection = quality.get("wrong_claim_detection", {})
    rows = [[aspect, d.get("n_wrong", 0), _fmt(d.get("precision")), _fmt(d.get("recall")),
             _fmt(d.get("evidence_bound")), d.get("corrected", 0)]
            for aspect, d in sorted(detection.items(), key=lambda kv: -kv[1].get("n_wrong", 0))
            if d.get("n_wrong")]
    return ("<h3>What went in</h3>" + _table(["count", "value"], counts)
            + "<h3>Catching wrong seller claims (against the catalog's answer key)</h3>"
            + _table(["aspect", "wrong claims", "precision", "recall", "recall bound",
                      "corrected"], rows, "wide")
            + _figure(_image_file(curated / "quality" / "quality.png"),
                      "Curation quality report"))


def training_section(trained: Path) -> str:
    path = trained / "summary.json"
    if not path.is_file():
        return f'<p class="muted">No training summary at {html.escape(str(path))}.</p>'
    summary = json.loads(path.read_text(encoding="utf-8"))
    rows = [[s["stage"], s.get("steps", "-"), s.get("samples", "-"),
             _fmt(s.get("start_val_loss", "-")), _fmt(s.get("val_loss", "-")),
             _fmt(s.get("samples_per_s", "-")), _fmt(round(s.get("stage_wall_s", 0) / 60, 1))]
            for s in summary.get("stages", [])]
    curves = Path(summary.get("loss_curves") or trained / "loss_curves.png")
    if not curves.is_file():
        curves = trained / "loss_curves.png"
    return (_table(["stage", "steps", "samples", "val loss before", "val loss after",
                    "samples/s", "minutes"], rows, "wide")
            + _figure(_image_file(curves), "Training and validation loss per stage"))


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
td:first-child,th:first-child{text-align:left}
table.wide{display:block;overflow-x:auto}
figure{margin:1em 0}img{max-width:100%}figcaption,.muted{color:#777;font-size:.85em}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em;font-size:.8em}
.example{border-left:3px solid #ccd;padding-left:.8em;margin:1em 0}
.example td{text-align:left;max-width:700px;white-space:pre-wrap}
"""


def render(runs: Sequence[Run], curation: Path | None = None,
           training: Path | None = None, title: str = "ecomvlm evaluation report") -> str:
    if not runs:
        raise ValueError("no runs to report")
    header, rows = summary_rows(runs)
    main = next((r for r in runs if r.role == "adapted"), runs[0])
    catalog = {str(r.results.get("config", {}).get("catalog_dir", "?")) for r in runs}
    limits = {json.dumps(r.results.get("config", {}).get("limit"), sort_keys=True) for r in runs}
    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"),
             (f'<p class="muted">Catalog: {html.escape(", ".join(sorted(catalog)))}; '
             f'limit per benchmark: {html.escape(", ".join(sorted(limits)))}. Baselines: '
             "text-only (the LM reads title and description, no image), perception (curation's "
             "rules on the photos), un-adapted (untrained projector), majority class.</p>"),
             "<h2>Summary</h2>", _table(header, rows),
             _figure(plot_scores(runs), "Headline score per benchmark and model"),
             "<h2>Aspect prediction</h2>",
             _figure(plot_per_aspect(runs), "Accuracy per aspect"),
             _figure(plot_confusion(main), f"Colour answers of {main.label}"),
             "<h2>Multi-image item intelligence: targeted crops</h2>",
             _figure(plot_crops(runs), "Marks F1 against latency per sample")]
    crop_rows = [[r.label, variant, f"{f1:.3f}", f"{tokens:.0f}", f"{latency:.3f}"]
                 for r in runs for variant, latency, f1, tokens in crop_points(r)]
    if crop_rows:
        parts.append(_table(["model", "variant", "marks F1", "image tokens/sample",
                             "latency s/sample"], crop_rows))
    if training is not None:
        parts += ["<h2>Training</h2>", training_section(Path(training))]
    if curation is not None:
        parts += ["<h2>Curation (Visual Verification Pipeline)</h2>",
                  curation_section(Path(curation))]
    parts.append("<h2>Every metric</h2>")
    parts += [detail_section(runs, bench) for bench in benchmarks_of(runs)]
    parts += ["<h2>Example generations</h2>", examples_section(runs), "</body></html>"]
    return "\n".join(p for p in parts if p)


def write_report(run_dirs: Sequence[str | Path], out: str | Path,
                 curation: str | Path | None = None, training: str | Path | None = None,
                 title: str = "ecomvlm evaluation report") -> Path:
    """Render the report for the eval folders in ``run_dirs`` into ``out``; returns its path."""
    runs = find_runs(run_dirs)
    page = render(runs, Path(curation) if curation else None,
                  Path(training) if training else None, title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
