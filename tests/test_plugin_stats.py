"""Intervals, kept predictions and paired claims end to end, under pytester (the
``claims_bench`` harness of conftest.py)."""

from __future__ import annotations

import json

import pytest

from pytest_plmtransfer.report.cli import main as cli_main
from pytest_plmtransfer.results.ledger import read_records
from pytest_plmtransfer.results.predictions import load_predictions

SELECT = ["--plm-models=onehot,toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained,random"]
CLAIMS = [
    {"kind": "beats_onehot", "models": "toy", "params": {"margin": 0.0}},
    {"kind": "pretrained_beats_random", "models": "toy", "params": {"level": 0.05}},
]


def _intervals(ledger) -> dict[tuple, dict]:
    return {
        (r["model"], r["task"], r["layer"], r["init"], r["seed"]): r["intervals"]
        for r in read_records(ledger)
        if r.get("kind") == "layer"
    }


@pytest.mark.slow
def test_intervals_are_reproducible_and_independent_of_xdist(claims_bench, tmp_path):
    claims_bench.claims(*CLAIMS)
    serial = claims_bench.run(*SELECT, "--plm-seeds=42,0", ledger=tmp_path / "serial.json", cache=tmp_path / "c1")
    serial.assert_outcomes(
        passed=serial.parseoutcomes().get("passed", 0), failed=serial.parseoutcomes().get("failed", 0)
    )
    parallel = claims_bench.run(
        *SELECT, "--plm-seeds=42,0", "-n", "2", ledger=tmp_path / "xdist.json", cache=tmp_path / "c2", subprocess=True
    )
    a, b = _intervals(tmp_path / "serial.json"), _intervals(tmp_path / "xdist.json")
    assert a and a.keys() == b.keys()
    assert a == b  # bit-identical: resamples depend only on the test set and the seed
    for iv in a.values():
        spearman = iv["test_spearman"]
        assert spearman["n_resamples"] == 1000 and spearman["seed"] == 0
        assert spearman["method"] == "percentile" and spearman["unit"] == "sequence"
        assert spearman["low"] <= spearman["estimate"] <= spearman["high"]
    assert parallel.ret == serial.ret


@pytest.mark.slow
def test_records_keep_predictions_and_claims_use_the_paired_test(claims_bench, tmp_path):
    claims_bench.claims(*CLAIMS)
    result = claims_bench.run(*SELECT, "--plm-report", "-rA")
    out = result.stdout.str()
    layer = [r for r in read_records(claims_bench.ledger) if r.get("kind") == "layer"]
    for rec in layer:
        preds = load_predictions(rec["predictions"]["path"], rec["predictions"]["sha256"])
        assert preds.n_units == rec["split_sizes"]["test"]
        assert rec["intervals"]["test_spearman"]["estimate"] == pytest.approx(rec["metrics"]["test_spearman"])
    claims = {r["claim_id"]: r for r in read_records(claims_bench.ledger) if r.get("kind") == "claim"}
    beats = claims["beats_onehot[toy-gb1_sampled-pretrained]"]
    paired = beats["detail"]["paired"]
    assert paired["n_resamples"] == 1000 and paired["unit"] == "sequence"
    assert beats["passed"] == (paired["p_value"] < 0.05)
    assert "CI [" in beats["message"] and "one-sided p=" in beats["message"]
    pbr = claims["pretrained_beats_random[toy-gb1_sampled-pretrained]"]
    assert pbr["detail"]["test"] == "paired bootstrap"
    assert " ± " in out and "half-width of its 95% interval" in out

    # the same claims recomputed later from the ledger alone (no refit), and --plm-bootstrap 0
    capsys_out = tmp_path / "report.txt"
    with capsys_out.open("w") as fh:
        import contextlib

        with contextlib.redirect_stdout(fh):
            assert cli_main(["report", str(claims_bench.ledger)]) == 0
    assert " ± " in capsys_out.read_text()
    plain = claims_bench.run(*SELECT, "--plm-bootstrap=0", ledger=tmp_path / "plain.json")
    recs = read_records(tmp_path / "plain.json")
    assert all(r["intervals"] == {} for r in recs if r.get("kind") == "layer")
    msg = next(r for r in recs if r.get("kind") == "claim" and r["claim"] == "beats_onehot")["message"]
    assert "no paired test" in msg and "plain comparison" in msg
    assert plain.ret in (0, 1)


def test_old_ledger_without_predictions_keeps_the_plain_comparison(tmp_path):
    from pytest_plmtransfer.judge.claims import evaluate
    from pytest_plmtransfer.results.ledger import records_to_frame
    from pytest_plmtransfer.testing import curve_records

    try:
        from . import test_claims
    except ImportError:
        import test_claims
    frame = records_to_frame(
        curve_records("m", "gb1_sampled", "pretrained", {None: [(0.8, 0.8)]})
        + curve_records("onehot", "gb1_sampled", "none", {None: [(0.7, 0.7)]})
    )
    outcome = evaluate(test_claims.case("beats_onehot"), frame)
    assert outcome.passed
    assert "no paired test" in outcome.message and "no bootstrap intervals" in outcome.message
    assert json.dumps(outcome.detail)  # JSON-safe for the ledger
