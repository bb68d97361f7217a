"""Reports: text tables with the best-layer marker and the one-hot row, Markdown, CSV, PNGs."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from pytest_plmtransfer.report.summary import write_report
from pytest_plmtransfer.report.tables import render_text, results_table, task_tables
from pytest_plmtransfer.results.aggregate import latest_run, select_runs
from pytest_plmtransfer.results.ledger import records_to_frame
from pytest_plmtransfer.testing import curve_records, synthetic_records


@pytest.fixture(scope="module")
def frame():
    return records_to_frame(synthetic_records(classification_task="scl_balanced"))


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
        "message": "tiny_esm/pretrained on gb1_sampled: layer 4 ... beats one-hot",
        "timestamp": "2024-01-01T00:00:01+00:00",
    },
    {
        "kind": "claim",
        "run_id": "run-1",
        "claim": "saturates_by",
        "model": "tiny_carp",
        "task": "gb1_sampled",
        "init": "pretrained",
        "outcome": "xfailed",
        "message": "XFAIL (reason): gap 0.1\nsecond line",
        "timestamp": "2024-01-01T00:00:02+00:00",
    },
]


def test_best_layer_is_chosen_on_validation_and_marked():
    # validation peaks at layer 1, test at layer 2: the marker must follow validation
    recs = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.5, 0.50), (0.9, 0.70), (0.6, 0.80)]})
    recs += curve_records("onehot", "gb1_sampled", "none", {None: [(0.6, 0.65)]})
    text = render_text(records_to_frame(recs))
    lines = text.splitlines()
    assert lines[0].startswith("gb1_sampled: test_spearman by layer (* = best layer chosen on val_spearman")
    header = lines[1].split()
    assert header[:5] == ["model/init", "seeds", "L00", "L01", "L02"]
    assert lines[3].split()[0] == "onehot"  # the one-hot row comes first
    row = lines[4].split()
    assert row[:5] == ["m/pretrained", "-", "0.500", "0.700*", "0.800"]
    assert row[5:] == ["L01", "0.700", "+0.050"]


@pytest.mark.slow
def test_replicates_show_mean_and_std_and_claims_follow(frame):
    text = render_text(frame, CLAIMS)
    assert re.search(r"tiny_esm/random +3 seeds  ", text)  # a count, not seed number 3
    assert "±" in text
    tables = task_tables(frame)
    assert [t.task for t in tables] == ["gb1_sampled", "gb1_two_vs_rest", "scl_balanced"]
    scl = tables[2]
    assert (scl.selection_metric, scl.test_metric) == ("val_loss", "test_accuracy")
    # one-hot first, then models sorted by name (not record order, which xdist makes random)
    assert [r.label for r in scl.rows][:2] == ["onehot", "tiny_carp/pretrained"]
    row = next(r for r in scl.rows if r.label == "tiny_esm/random")
    assert row.n_seeds == 3 and row.seeds == ["0", "42", "12345"]
    sub = frame[(frame.task == "scl_balanced") & (frame.model == "tiny_esm") & (frame.init == "random")]
    means = sub.groupby("layer")[["val_loss", "test_accuracy"]].mean()
    assert row.best_layer == int(means["val_loss"].idxmin())
    assert row.values[2][0] == pytest.approx(means.loc[2, "test_accuracy"])
    assert "claims: 1 passed, 1 xfailed" in text
    assert "PASSED   beats_onehot[tiny_esm-gb1_sampled-pretrained]" in text
    assert "XFAILED  saturates_by[tiny_carp-gb1_sampled-pretrained]  XFAIL (reason): gap 0.1" in text
    assert "second line" not in text


def test_many_layers_wrap_into_blocks():
    recs = curve_records("deep", "gb1_sampled", "pretrained", {None: [(0.5 + i / 100, 0.5) for i in range(30)]})
    text = render_text(records_to_frame(recs), max_layer_columns=12)
    assert text.count("model/init") == 3
    assert max(len(line) for line in text.splitlines()) < 160


@pytest.mark.slow
def test_write_report_writes_markdown_csv_and_readable_pngs(tmp_path, frame):
    out = write_report(frame, pd.DataFrame(CLAIMS), tmp_path / "rep")
    md = out["markdown"].read_text()
    assert "## gb1_sampled" in md and "| onehot |" in md and "\\*" in md
    assert "![gb1_sampled layer curves](layers_gb1_sampled.png)" in md
    assert "## Claims" in md and "beats\\_onehot" in md
    csv = pd.read_csv(out["csv"])
    assert {
        "task",
        "model",
        "init",
        "layer",
        "relative_depth",
        "seeds",
        "best",
        "test_spearman",
        "test_spearman_std",
        "val_spearman",
    } <= set(csv.columns)
    assert csv.groupby(["task", "model", "init"])["best"].sum().eq(1).all()
    assert set(out["png"]) == {"gb1_sampled", "gb1_two_vs_rest", "scl_balanced", "_all"}
    for path in out["png"].values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 20_000, path  # curves, bands and legend, not an empty canvas


def test_empty_frame():
    assert render_text(records_to_frame([])) == "no layer results\n"


# ------------------------------------------------------------------------- multi-run ledgers (issue 19.5)
def _version(recs, digest: str, run_id: str, timestamp: str):
    for r in recs:
        r["weights"] = {**r["weights"], "weights_sha256": digest * 64}
        r["run_id"], r["timestamp"] = run_id, timestamp
    return recs


def test_two_model_versions_get_a_row_each_never_an_average():
    v1 = _version(
        curve_records("m", "gb1_sampled", "pretrained", {None: [(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]}),
        "a",
        "r1",
        "2024-01-01T00:00:00+00:00",
    )
    # the new version measured only layers 0-1: the old code showed its L0-L1 beside v1's L2
    v2 = _version(
        curve_records("m", "gb1_sampled", "pretrained", {None: [(0.6, 0.6), (0.7, 0.7)]}),
        "b",
        "r2",
        "2024-01-02T00:00:00+00:00",
    )
    frame = records_to_frame(v1 + v2)
    assert frame.groupby("weights").size().to_dict() == {"sha256:" + _label("a"): 3, "sha256:" + _label("b"): 2}
    (table,) = task_tables(frame)
    rows = {r.weights: r for r in table.rows}
    assert len(rows) == 2
    assert {l: v[0] for l, v in rows["sha256:" + _label("a")].values.items()} == {0: 0.1, 1: 0.2, 2: 0.3}
    assert {l: v[0] for l, v in rows["sha256:" + _label("b")].values.items()} == {0: 0.6, 1: 0.7}
    text = render_text(frame)
    assert f"m/pretrained @{_label('a')}" in text and f"m/pretrained @{_label('b')}" in text
    assert "note: m/pretrained on gb1_sampled: measured with 2 weights identities" in text
    csv = results_table(frame)
    assert set(zip(csv["weights"], csv["run_ids"])) == {
        ("sha256:" + _label("a"), "r1"),
        ("sha256:" + _label("b"), "r2"),
    }


def _label(digit: str) -> str:
    import hashlib

    return hashlib.sha256((digit * 64).encode()).hexdigest()[:12]


def test_a_layer_with_more_seeds_is_averaged_over_the_seeds_its_neighbours_have():
    recs = curve_records("m", "gb1_sampled", "random", {1: [(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]})
    # seeds 2 and 3 only at layer 1, far better: the old table averaged them in and starred L01
    recs += [
        r
        for r in curve_records("m", "gb1_sampled", "random", {2: [(0, 0), (0.9, 0.9)], 3: [(0, 0), (0.9, 0.9)]})
        if r["layer"] == 1
    ]
    (table,) = task_tables(records_to_frame(recs))
    (row,) = table.rows
    assert row.values[1][0] == pytest.approx(0.2) and row.best_layer == 2
    assert row.seeds_text == "seed 1"
    (note,) = table.notes
    assert note == (
        "m/random on gb1_sampled: layer(s) 1 have more seeds than the others: "
        "every layer is averaged over the seed(s) all layers have (1)"
    )


def test_latest_says_which_run_it_picked_and_names_a_fuller_earlier_one():
    full = curve_records(
        "m", "gb1_sampled", "pretrained", {None: [(0.1, 0.1)] * 5}, run_id="full", timestamp="2024-01-01T00:00:00+00:00"
    )
    retry = curve_records(
        "m", "gb1_sampled", "pretrained", {None: [(0.1, 0.1)]}, run_id="retry", timestamp="2024-01-02T00:00:00+00:00"
    )
    frame = records_to_frame(full + retry)
    run, line = latest_run(frame)
    assert run == "retry" and list(select_runs(frame, latest=True)["run_id"].unique()) == ["retry"]
    assert line == (
        "--latest: run retry of 2024-01-02T00:00:00+00:00, 1 layer record(s); an earlier run holds more: "
        "full (5 layer records, 2024-01-01T00:00:00+00:00), --run-id full reports it"
    )
    assert latest_run(records_to_frame(full))[1] == "--latest: run full of 2024-01-01T00:00:00+00:00, 5 layer record(s)"
