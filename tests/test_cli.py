"""The ``plmtransfer`` command line: report, compare, show; exit codes (paper: test_paper.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pytest_plmtransfer.report.cli import main
from pytest_plmtransfer.testing import curve_records, synthetic_records, write_ledger

REPO = Path(__file__).resolve().parents[1]
MODELS = {"onehot": 0, "tiny_esm": 3}


@pytest.fixture(scope="module")
def records():
    return synthetic_records(models=MODELS, tasks=("gb1_sampled",), seeds=(42, 0))


@pytest.fixture
def ledger(tmp_path, records):
    return write_ledger(tmp_path / "a.json", records)


def shifted(records, delta, *, layer=2, init="pretrained"):
    out = copy.deepcopy(records)
    for r in out:
        if r["layer"] == layer and r["init"] == init and r["model"] == "tiny_esm":
            r["metrics"]["test_spearman"] += delta
    return out


@pytest.mark.slow
def test_report_prints_tables_and_writes_files(tmp_path, records, capsys):
    claim = {
        "kind": "claim",
        "run_id": "run-1",
        "claim": "beats_onehot",
        "model": "tiny_esm",
        "task": "gb1_sampled",
        "init": "pretrained",
        "outcome": "failed",
        "message": "worse than one-hot",
        "detail": {},
        "timestamp": "2024-01-01T00:00:05+00:00",
    }
    ledger = write_ledger(tmp_path / "a.json", [*records, claim])
    assert main(["report", str(ledger), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "gb1_sampled: test_spearman by layer" in out
    assert "onehot" in out and "*" in out and "tiny_esm/random" in out
    claim_line = next(l for l in out.splitlines() if l.startswith("FAILED"))
    assert claim_line.split(maxsplit=2) == [
        "FAILED",
        "beats_onehot[tiny_esm-gb1_sampled-pretrained]",
        "worse than one-hot",
    ]
    for name in ("report.html", "report.md", "results.csv", "layers_gb1_sampled.png", "layers_gb1_sampled.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 100
    assert f"  html: {tmp_path / 'out' / 'report.html'}" in out.splitlines()


def test_report_selects_runs(tmp_path, records, capsys):
    old = shifted(records, -0.3)
    new = [dict(r, run_id="run-2", timestamp="2024-02-01T00:00:00+00:00") for r in records[:4]]
    path = write_ledger(tmp_path / "l.json", old + new)
    assert main(["report", str(path), "--latest"]) == 0
    latest = capsys.readouterr().out
    assert "tiny_esm/pretrained" in latest and "tiny_esm/random" not in latest
    # a 4-record retry is newer than the full run: it says what it picked, and where the rest is
    assert latest.startswith(
        "--latest: run run-2 of 2024-02-01T00:00:00+00:00, 4 layer record(s); an earlier run holds more: run-1 ("
    )
    assert "--run-id run-1 reports it" in latest.splitlines()[0]
    assert main(["report", str(path), "--run-id", "run-1"]) == 0
    assert "tiny_esm/random" in capsys.readouterr().out
    assert main(["report", str(path), "--run-id", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no records with run_id 'nope'" in err and "run-1, run-2" in err


def test_show_describes_a_ledger_directory_or_one_part(tmp_path, records, capsys):
    path = write_ledger(tmp_path / "ledger" / "one.jsonl", records)
    for ledger, layout in ((path, "one part"), (path.parent, "directory, 1 file(s)")):
        assert main(["show", str(ledger)]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"ledger {ledger}: schema 3 ({layout}), {len(records)} record(s)\nrecords: ")
        assert "  run-1: 2024-01-01T00:00:00+00:00 .. 2024-01-01T00:00:00+00:00, commit " in out
        assert "models: onehot, tiny_esm" in out and "seeds: none, 0, 42" in out


def test_compare_identical_within_and_beyond_threshold(tmp_path, records, capsys):
    a = write_ledger(tmp_path / "a.json", records)
    b_same = write_ledger(tmp_path / "b.json", records)
    assert main(["compare", str(a), str(b_same), "--fail-above", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "none above 0.02: OK" in out and "max |diff| 0.0000" in out

    small = write_ledger(tmp_path / "small.json", shifted(records, 0.01))
    assert main(["compare", str(a), str(small), "--fail-above", "0.02"]) == 0
    capsys.readouterr()

    big = write_ledger(tmp_path / "big.json", shifted(records, -0.05))
    assert main(["compare", str(a), str(big), "--fail-above", "0.02", "--only-diffs"]) == 1
    out = capsys.readouterr().out
    lines = [l for l in out.splitlines() if l.startswith("tiny_esm")]
    assert len(lines) == 1
    assert lines[0].split()[:4] == ["tiny_esm", "gb1_sampled", "pretrained", "2"]
    assert "-0.0500" in lines[0] and "FAIL" in lines[0]
    assert "1 above 0.02: FAIL" in out
    # without a threshold it only reports
    assert main(["compare", str(a), str(big)]) == 0


@pytest.mark.slow
def test_compare_averages_seeds_and_explains_rows_in_one_ledger(tmp_path, records, capsys):
    a = write_ledger(tmp_path / "a.json", records)
    fewer = [r for r in records if r["init"] != "stat" and r["seed"] != 0]
    b = write_ledger(tmp_path / "b.json", fewer)
    code = main(["compare", str(a), str(b), "--metric", "test_spearman", "--fail-above", "0.5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "only in A (" in out and "tiny_esm/stat on gb1_sampled: layers 0-3" in out
    assert "seeds A=0,42 B=42" in out
    disjoint = write_ledger(
        tmp_path / "c.json", curve_records("other", "gb1_sampled", "pretrained", {None: [(0.5, 0.5)]})
    )
    assert main(["compare", str(a), str(disjoint), "--fail-above", "0.02"]) == 1
    out = capsys.readouterr().out
    assert "nothing to compare" in out and "only in B (" in out and "other/pretrained on gb1_sampled: layers 0" in out


def test_missing_or_broken_ledger_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.json")]) == 2
    assert "no such ledger" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{\n")
    assert main(["show", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["compare", str(bad)]) == 2  # one ledger needs --model X --model Y
    assert "give two ledgers, or one ledger and --model X --model Y" in capsys.readouterr().err


def test_compare_outside_interval_flags_only_changes_beyond_the_noise(tmp_path, records, capsys):
    def with_se(recs, se):
        out = copy.deepcopy(recs)
        for r in out:
            r["intervals"] = {"test_spearman": {"se": se, "low": 0.0, "high": 1.0, "n_resamples": 1000}}
        return out

    a = write_ledger(tmp_path / "a.json", with_se(records, 0.01))
    moved = shifted(records, -0.05)
    quiet = write_ledger(tmp_path / "quiet.json", with_se(moved, 0.01))  # noise 1.96*sqrt(2)*0.01 = 0.028
    noisy = write_ledger(tmp_path / "noisy.json", with_se(moved, 0.04))  # noise 0.081
    args = ["--fail-above", "0.02", "--outside-interval"]
    assert main(["compare", str(a), str(quiet), *args]) == 1
    assert "1 above 0.02 and outside the noise: FAIL" in capsys.readouterr().out
    assert main(["compare", str(a), str(noisy), *args]) == 0
    out = capsys.readouterr().out
    assert "none above 0.02 and outside the noise: OK" in out and "within noise" in out
    # the fixed threshold alone still flags it
    assert main(["compare", str(a), str(noisy), "--fail-above", "0.02"]) == 1
    capsys.readouterr()
    # records without intervals: the threshold alone decides, and the row says so
    plain = write_ledger(tmp_path / "plain.json", moved)
    assert main(["compare", str(a), str(plain), *args]) == 1
    assert "no interval" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_report_prints_the_plugins_tables_byte_for_byte(bench, capsys):
    """One renderer (table.py): `plmtransfer report` on the ledger a run wrote prints exactly what
    that run's --plm-report printed."""
    result = bench.run(
        "--plm-models=onehot,toy",
        "--plm-tasks=gb1_sampled,gb1_low_vs_high",
        "--plm-inits=pretrained,random",
        "--plm-report",
    )
    result.assert_outcomes(passed=14)
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "plmtransfer report" in line and line.startswith("="))
    end = next(i for i, line in enumerate(lines) if "plmtransfer time per model" in line)
    plugin_text = "\n".join(lines[start + 1 : end])
    assert "gb1_low_vs_high" in plugin_text and "toy/random" in plugin_text
    capsys.readouterr()
    assert main(["report", str(bench.ledger)]) == 0
    # joined, the lines between the separators end in "\n": write_line's newline after the text's own
    assert capsys.readouterr().out == plugin_text
