"""Where the time goes: per-model phase times in records and in --plm-report."""

from __future__ import annotations

import time

import pytest

from pytest_plmtransfer.run.timing import PHASES, PhaseTimer, render_timing_text, run_timing


def test_take_returns_pending_seconds_once():
    timer = PhaseTimer()
    with timer.measure("m", "embedding"):
        time.sleep(0.01)
    timer.add("m", "probe", 2.0)
    timer.add("other", "data", 1.0)
    first = timer.take("m")
    assert set(first) == {f"{p}_seconds" for p in PHASES}
    assert first["embedding_seconds"] >= 0.01 and first["probe_seconds"] == 2.0
    assert timer.take("m")["probe_seconds"] == 0.0  # reset after a take
    assert timer.take("other")["data_seconds"] == 1.0
    with pytest.raises(ValueError, match="phase"):
        timer.add("m", "sleeping", 1.0)


def test_run_timing_sums_records_per_model_and_renders():
    records = [
        {"model": "a", "timing": {"embedding_seconds": 3.0, "probe_seconds": 1.0}},
        {"model": "a", "timing": {"probe_seconds": 0.5, "ledger_seconds": 0.25}},
        {"model": "b", "timing": {"collection_seconds": 2.0}},
        {"model": "b"},  # an old record without timing
    ]
    totals = run_timing(records)
    assert totals["a"]["probe"] == 1.5 and totals["a"]["embedding"] == 3.0
    assert totals["b"]["collection"] == 2.0
    text = render_timing_text(records)
    assert "time per model" in text and "(all)" in text
    row_a = next(line for line in text.splitlines() if line.startswith("a "))
    assert row_a.split()[-1] == "4.8"  # 3 + 1.5 + 0.25, one decimal
    assert render_timing_text([]) == ""


@pytest.mark.slow
def test_records_carry_timing_and_report_shows_it(bench):
    result = bench.run("--plm-models=onehot,toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained", "--plm-report")
    result.assert_outcomes(passed=4)
    records = [r for r in bench.records() if r.get("kind") == "layer"]
    assert all(set(r["timing"]) == {f"{p}_seconds" for p in PHASES} for r in records)
    totals = run_timing(records)
    assert totals["toy"]["embedding"] > 0 and totals["onehot"]["probe"] > 0
    assert totals["toy"]["collection"] > 0  # the model was described during collection
    out = result.stdout.str()
    assert "time per model" in out and "toy" in out.split("time per model", 1)[1]
    # a rerun reuses every probe result: no fitting, so no probe seconds
    bench.run("--plm-models=onehot,toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained").assert_outcomes(passed=4)
    rerun = [r for r in bench.records() if r.get("kind") == "layer"][len(records) :]
    assert len(rerun) == 4 and all(r["timing"]["probe_seconds"] == 0.0 for r in rerun)
