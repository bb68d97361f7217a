"""tools/same_numbers.py: the check a refactoring's "no number changed" rests on."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from pytest_plmtransfer.testing import synthetic_records, write_ledger

TOOL = runpy.run_path(str(Path(__file__).parents[1] / "tools" / "same_numbers.py"))


def test_same_ledgers_pass_a_changed_number_or_a_missing_ledger_fails(tmp_path, capsys):
    records = synthetic_records(models={"onehot": 0, "tiny_esm": 2}, tasks=("gb1_sampled",), seeds=(42,))
    before = write_ledger(tmp_path / "before" / "a.jsonl", records)
    again = write_ledger(tmp_path / "again" / "a.jsonl", [dict(r, run_id="run-2") for r in records])
    assert TOOL["main"]([str(before), str(again)]) == 0
    assert capsys.readouterr().out.startswith(f"same: {len(records)} records")

    changed = [dict(r) for r in records]
    changed[3] = dict(changed[3], metrics={**changed[3]["metrics"], "test_spearman": 0.5})
    assert TOOL["main"]([str(before), str(write_ledger(tmp_path / "changed" / "a.jsonl", changed))]) == 1
    assert "metrics" in capsys.readouterr().out

    with pytest.raises(SystemExit) as stop:
        TOOL["main"]([str(before), str(tmp_path / "no-such-ledger")])
    assert stop.value.code == 2 and "no ledger records there" in capsys.readouterr().err
