"""The HTML report, the leaderboard and the plots: what a reader sees.

The page is checked in a real headless browser (chromium through Playwright): it loads without
console errors or requests, every figure and table the ledger calls for is there and drawn,
every internal link lands on an element, and a full-page screenshot is kept."""

from __future__ import annotations

import copy
import math
import re
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest
from browser import browser_missing, inspect_page

from pytest_plmtransfer.report.cli import main
from pytest_plmtransfer.report.summary import write_report
from pytest_plmtransfer.report.tables import leaderboard, render_markdown, render_text, task_tables
from pytest_plmtransfer.results.ledger import records_to_frame
from pytest_plmtransfer.testing import synthetic_records, write_ledger

matplotlib.use("Agg")

MODELS = {"onehot": 0, "tiny_esm": 6, "tiny_carp": 4}
TASKS = ("gb1_sampled", "gb1_two_vs_rest")


def _with_intervals(records: list[dict], half_width: float = 0.02) -> list[dict]:
    for r in records:
        m = r["test_metric"]
        v = r["metrics"][m]
        r["intervals"] = {m: {"estimate": v, "low": v - half_width, "high": v + half_width, "se": half_width / 1.96}}
    return records


@pytest.fixture(scope="module")
def records() -> list[dict]:
    recs = _with_intervals(synthetic_records(models=MODELS, tasks=TASKS, seeds=(42, 0)))
    # tiny_carp/pretrained never measured layer 2 on gb1_sampled: its line must break there
    recs = [
        r
        for r in recs
        if not (
            r["model"] == "tiny_carp" and r["init"] == "pretrained" and r["task"] == "gb1_sampled" and r["layer"] == 2
        )
    ]
    # a user's head (plm_record with predictions): its own row, with intervals
    heads = copy.deepcopy([r for r in recs if r["model"] == "tiny_esm" and r["init"] == "pretrained"])
    for r in heads:
        r["model"] = "tiny_esm+mlp"
        r["metrics"]["test_spearman"] -= 0.05
    return recs + _with_intervals(heads, 0.03)


CLAIMS = [
    {
        "kind": "claim",
        "run_id": "run-1",
        "claim": "beats_onehot",
        "claim_id": "beats_onehot[tiny_esm-gb1_sampled-pretrained]",
        "model": "tiny_esm",
        "task": "gb1_sampled",
        "init": "pretrained",
        "outcome": "passed",
        "message": "tiny_esm/pretrained on gb1_sampled: layer 3 0.70 [0.68, 0.72] beats one-hot 0.55\nlayer  value\n3      0.70",
        "detail": {"finding": "Pretrained representations beat one-hot encodings for most tasks."},
        "timestamp": "2024-01-01T00:00:01+00:00",
    },
    {
        "kind": "claim",
        "run_id": "run-1",
        "claim": "beats_onehot",
        "claim_id": "beats_onehot[tiny_carp-gb1_two_vs_rest-random]",
        "model": "tiny_carp",
        "task": "gb1_two_vs_rest",
        "init": "random",
        "outcome": "failed",
        "message": "tiny_carp/random on gb1_two_vs_rest: 0.50 does not beat one-hot 0.60 <script>",
        "timestamp": "2024-01-01T00:00:02+00:00",
    },
    {
        "kind": "claim",
        "run_id": "run-1",
        "claim": "saturates_by",
        "claim_id": "saturates_by[tiny_esm-gb1_two_vs_rest-pretrained]",
        "model": "tiny_esm",
        "task": "gb1_two_vs_rest",
        "init": "pretrained",
        "outcome": "xfailed",
        "expected_failure": "the paper saw a late peak",
        "message": "gap 0.1",
        "timestamp": "2024-01-01T00:00:03+00:00",
    },
]


@pytest.fixture(scope="module")
def frame(records) -> pd.DataFrame:
    return records_to_frame(records)


@pytest.fixture(scope="module")
def written(frame, tmp_path_factory):
    import matplotlib.pyplot as plt

    out = tmp_path_factory.mktemp("report")
    # a figure from elsewhere (the papers' figures module gives these): embedded with its reference
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(out / "paper.png")
    fig.savefig(out / "paper.svg")
    plt.close(fig)
    paper = SimpleNamespace(path=out / "paper.png", svg=out / "paper.svg", title="Layer transfer", paper_ref="Fig. 1")
    return write_report(frame, CLAIMS, out, extra_figures=[paper])


# ------------------------------------------------------------------------------ leaderboard
def test_leaderboard_ranks_each_task_on_its_own_metric_and_never_averages_scores(frame):
    tables = task_tables(frame)
    board = leaderboard(tables)
    labels = [r.label for r in board]
    assert len(labels) == len(set(labels)) == 1 + 3 * 2 + 1  # one-hot, 2 models x 3 inits, the head
    for table in tables:
        ranked = sorted((r for r in board if table.task in r.cells), key=lambda r: r.cells[table.task].rank)
        values = [r.cells[table.task].value for r in ranked]
        assert values == sorted(values, reverse=True)  # rank 1 = highest test_spearman
        for row in table.rows:  # the cell is the table's best layer (chosen on validation)
            assert board[labels.index(row.label)].cells[table.task].layer == row.best_layer
    assert [r.mean_rank for r in board] == sorted(r.mean_rank for r in board)
    text = render_text(frame, CLAIMS)
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("leaderboard:"))
    assert lines[start + 1].split() == ["rank", "model/init", *TASKS]
    top = lines[start + 3].split()
    cell = board[0].cells["gb1_sampled"]
    assert top[:4] == [f"{board[0].mean_rank:.1f}", board[0].label, f"L{cell.layer:02d}", f"{cell.value:.3f}"]
    md = render_markdown(frame, CLAIMS)
    assert "## Leaderboard" in md and "vs one-hot)" in md


# ------------------------------------------------------------------------------ plots
def _drawn(frame, tables=None):
    """The overview's axes as drawn (lines, fills, legend), without saving."""
    import matplotlib.pyplot as plt

    from pytest_plmtransfer.report.plots import _draw_table, _legend_entries, _x_mode, row_colors

    tables = tables or task_tables(frame)
    fig, axes = plt.subplots(1, len(tables), squeeze=False)
    bands: set[str] = set()
    mode = _x_mode(tables)
    for ax, t in zip(axes.flat, tables):
        _draw_table(ax, t, mode, row_colors(tables), bands)
    handles, labels = _legend_entries(list(axes.flat), bands, {t.selection_metric for t in tables})
    return fig, list(axes.flat), labels


def test_each_model_init_has_its_own_colour_and_init_style_and_the_legend_names_the_band(frame):
    import matplotlib.pyplot as plt

    fig, axes, labels = _drawn(frame)
    lines = {l.get_label(): l for l in axes[0].lines if not l.get_label().startswith("_")}
    colours = {lbl: line.get_color() for lbl, line in lines.items() if not lbl.startswith("one-hot")}
    assert len(set(colours.values())) == len(colours) == 7  # 2 models x 3 inits + the head: no shared colour
    assert lines["tiny_esm pretrained"].get_linestyle() == "-"
    assert lines["tiny_esm random (2 seeds)"].get_linestyle() == "--"
    assert lines["tiny_esm stat (2 seeds)"].get_linestyle() == ":"
    onehot = lines["one-hot (best layer)"]
    assert onehot.get_linestyle() == ":" and len(set(onehot.get_ydata())) == 1  # a horizontal line
    assert len(labels) == len(set(labels))  # two panels, each entry once
    # pretrained rows and the head: bootstrap; rows with 2 seeds add the seed spread: one entry says both
    assert [l for l in labels if l.startswith("band")] == ["band: 95% CI (test bootstrap; + seed spread if seeds > 1)"]
    # the +mlp head has its band: a fill in its colour
    head = colours["tiny_esm+mlp pretrained"]
    assert any(matplotlib.colors.same_color(c.get_facecolor()[0][:3], head) for c in axes[0].collections)
    # depths 6 and 4: one relative-depth axis on every panel, stated
    assert {ax.get_xlabel() for ax in axes} == {"relative depth (layer / last layer)"}
    plt.close(fig)


def test_a_line_breaks_at_an_unmeasured_layer(frame):
    import matplotlib.pyplot as plt

    fig, axes, _ = _drawn(frame)
    line = next(l for l in axes[0].lines if l.get_label() == "tiny_carp pretrained")
    ys = list(line.get_ydata())
    assert len(ys) == 5 and math.isnan(ys[2]) and not any(math.isnan(y) for y in ys[:2] + ys[3:])
    plt.close(fig)


@pytest.mark.slow
def test_layer_curves_are_written_as_png_and_svg(written):
    for png in written["png"].values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        svg = png.with_suffix(".svg").read_text()
        assert (
            svg.lstrip().startswith("<?xml")
            and "<svg" in svg
            and "http://"
            not in svg.replace("http://www.w3.org", "")
            .replace("http://purl.org", "")
            .replace("http://creativecommons.org", "")
        )
    assert written["svg"] == {k: p.with_suffix(".svg") for k, p in written["png"].items()}


# ------------------------------------------------------------------------------ compare
@pytest.mark.slow
def test_compare_plots_two_ledgers_and_two_models(tmp_path, records, capsys):
    a = write_ledger(tmp_path / "a.json", records)
    later = copy.deepcopy(records)
    for r in later:
        r["metrics"]["test_spearman"] -= 0.01
    b = write_ledger(tmp_path / "b.json", later)
    out = tmp_path / "cmp" / "runs.png"
    main(["compare", str(a), str(b), "--plot", str(out)])
    text = capsys.readouterr().out
    assert f"wrote {out}, {out.with_suffix('.svg')}" in text and "row(s) compared" in text
    assert out.stat().st_size > 20_000 and "<svg" in out.with_suffix(".svg").read_text()

    two = tmp_path / "models.png"
    assert main(["compare", str(a), "--model", "tiny_esm", "--model", "tiny_carp", "--plot", str(two)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("leaderboard:") and "tiny_esm/pretrained" in text and "tiny_carp/stat" in text
    assert "onehot" in text and "tiny_esm+mlp" not in text and two.is_file()

    assert main(["compare", str(a), "--model", "tiny_esm"]) == 2
    assert main(["compare", str(a), "--model", "tiny_esm", "--model", "esm2_t48"]) == 2
    assert main(["compare", str(a)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "plmtransfer compare: error: --model names two different models to compare (given: tiny_esm)",
        f"plmtransfer compare: error: {a}: no layer results for model 'esm2_t48'; "
        "models present: onehot, tiny_carp, tiny_esm, tiny_esm+mlp",
        "plmtransfer compare: error: give two ledgers, or one ledger and --model X --model Y",
    ]


# ------------------------------------------------------------------------------ the page
@pytest.mark.slow
def test_report_html_is_self_contained_and_escapes_what_it_quotes(written):
    page = written["html"].read_text()
    assert "&lt;script&gt;" in page and "<script" not in page
    assert not re.search(r'(src|href)="(?!#|data:)', page)  # every resource inline, every link internal
    assert "<strong>Layer transfer.</strong> Regenerates Fig. 1." in page


@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
@pytest.mark.slow
def test_report_html_in_a_real_browser(written, frame, tmp_path):
    shot = tmp_path / "report.png"
    facts = inspect_page(written["html"], shot, click="#task-gb1_two_vs_rest")
    print(f"screenshot of the report: {shot}")
    assert facts["console"] == [] and facts["requests"] == [] and facts["external"] == []
    assert facts["scripts"] == 0
    tables = task_tables(frame)
    # a figure per task and the overview, each drawn (an SVG the browser decoded)
    # and every figure write_report lists: the papers' figures the records allow, then the extra one
    extra = [f"figure-{i + 1}" for i in range(len(written["figures"]))]
    expected = [f"task-{t.task}-figure" for t in tables] + ["figure-overview", *extra]
    assert sorted(facts["figures"]) == sorted(expected)
    assert all(img["complete"] and img["width"] > 300 for img in facts["images"])
    assert len(facts["images"]) == len(tables) + 1 + len(extra)
    # the leaderboard, a table per task, the claims, and the provenance
    assert facts["tables"] == [
        "leaderboard-table",
        *(f"task-{t.task}-table" for t in tables),
        "claims-table",
        "provenance-runs",
        "provenance-models",
        "provenance-data",
        "provenance-env",
    ]
    rows = facts["rows"]
    assert rows["leaderboard-table"] == len(leaderboard(tables)) == 8
    assert all(rows[f"task-{t.task}-table"] == len(t.rows) for t in tables)
    assert rows["claims-table"] == len(CLAIMS)
    assert rows["provenance-models"] == len(frame.groupby(["model", "init"]))
    # contents, leaderboard -> task, task -> claims, claim -> task: every one lands
    assert facts["internal_links"] >= 6 + 2 * 8 + 3 + 3 and facts["broken_links"] == []
    assert facts["hash_after_click"] == "#task-gb1_two_vs_rest" and facts["target_in_view"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


@pytest.mark.parametrize(
    ("seeds", "intervals", "band"),
    [
        ((1, 2), False, "band: ±1 sd across seeds"),
        ((1,), True, "band: 95% bootstrap CI (test examples)"),
        # one-hot has no seeds, the model two: one entry says both
        ((1, 2), True, "band: 95% CI (test bootstrap; + seed spread if seeds > 1)"),
        ((1,), False, None),
    ],
)
def test_the_legend_says_what_the_band_is(seeds, intervals, band):
    import matplotlib.pyplot as plt

    recs = synthetic_records(models={"onehot": 0, "m": 3}, tasks=("gb1_sampled",), inits=("random",), seeds=seeds)
    fig, axes, labels = _drawn(records_to_frame(_with_intervals(recs) if intervals else recs))
    assert [l for l in labels if l.startswith("band")] == ([band] if band else [])
    assert len(axes[0].collections) == (1 if band else 0)  # the curve's band
    assert len(axes[0].patches) == (1 if intervals else 0)  # one-hot's
    plt.close(fig)
