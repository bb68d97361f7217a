"""Ledger: schema, migration of old files, atomic writes, concurrent appends, DataFrame loading."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from pytest_plmtransfer import ledger as ledger_mod
from pytest_plmtransfer.ledger import SCHEMA_VERSION, Ledger, LedgerError, load_ledger, read_records


def _rec(model="onehot", layer=0, value=0.5, ts="2026-01-01T00:00:00+00:00", **kw):
    return {
        "kind": "layer", "run_id": "r1", "model": model, "task": "gb1_sampled", "layer": layer,
        "init": "none", "seed": None, "metrics": {"test_spearman": value}, "timestamp": ts, **kw,
    }


def test_append_writes_schema_and_keeps_order(tmp_path):
    led = Ledger(tmp_path / "sub" / "ledger.json")
    led.append([_rec(layer=0)])
    led.append([_rec(layer=1), _rec(layer=2)])
    doc = json.loads(led.path.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    assert [r["layer"] for r in doc["records"]] == [0, 1, 2]


def test_schema1_bare_list_still_loads(tmp_path):
    path = tmp_path / "old.json"
    old = [{k: v for k, v in _rec(layer=i).items() if k != "kind"} for i in range(3)]
    path.write_text(json.dumps(old))
    recs = read_records(path)
    assert len(recs) == 3 and all(r["kind"] == "layer" for r in recs)
    frame = load_ledger(path)
    assert list(frame["layer"]) == [0, 1, 2] and "test_spearman" in frame.columns
    # appending to an old file upgrades it in place without losing records
    Ledger(path).append([_rec(layer=3)])
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert len(read_records(path)) == 4


def test_newer_schema_and_garbage_are_refused_with_the_path(tmp_path):
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1, "records": []}))
    with pytest.raises(LedgerError, match="newer.json.*upgrade"):
        read_records(newer)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{")
    with pytest.raises(LedgerError, match="garbage.json: not valid JSON"):
        read_records(garbage)


def test_failed_write_leaves_previous_ledger_intact(tmp_path, monkeypatch):
    led = Ledger(tmp_path / "ledger.json")
    led.append([_rec(layer=0)])
    before = led.path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ledger_mod.os, "replace", boom)
    with pytest.raises(OSError):
        led.append([_rec(layer=1)])
    assert led.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def _worker(path, worker, n):
    led = Ledger(path)
    for i in range(n):
        led.append([_rec(model=f"w{worker}", layer=i)])


def test_concurrent_processes_lose_no_record(tmp_path):
    path = tmp_path / "ledger.json"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(path, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    recs = read_records(path)
    assert len(recs) == 60
    assert {(r["model"], r["layer"]) for r in recs} == {(f"w{w}", i) for w in range(4) for i in range(15)}


def test_load_latest_keeps_newest_per_key(tmp_path):
    led = Ledger(tmp_path / "l.json")
    led.append([_rec(value=0.1, ts="2026-01-01T00:00:00+00:00"), _rec(value=0.9, ts="2026-02-01T00:00:00+00:00")])
    led.append([{"kind": "claim", "claim": "beats_onehot", "outcome": "passed", "timestamp": "x"}])
    assert len(load_ledger(led.path)) == 2
    latest = load_ledger(led.path, latest=True)
    assert len(latest) == 1 and latest["test_spearman"].iloc[0] == 0.9
    assert list(load_ledger(led.path, kind="claim")["outcome"]) == ["passed"]
