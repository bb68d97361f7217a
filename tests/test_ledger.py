"""Ledger: the part format, records typed in and out, concurrent appends, the result frame."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from pytest_plmtransfer.results.ledger import (
    SCHEMA_VERSION,
    Ledger,
    LedgerError,
    load_ledger,
    part_header,
    read_ledger,
    read_records,
    records_to_frame,
    write_part,
)
from pytest_plmtransfer.results.records import FRAME_COLUMNS, ClaimRecord, LayerRecord, parse_record
from pytest_plmtransfer.testing import synthetic_records


def _rec(model="onehot", layer=0, value=0.5, ts="2026-01-01T00:00:00+00:00", **kw):
    return {
        "kind": "layer",
        "run_id": "r1",
        "model": model,
        "task": "gb1_sampled",
        "layer": layer,
        "init": "none",
        "seed": None,
        "protocol": "plmtransfer",
        "metrics": {"test_spearman": value},
        "timestamp": ts,
        **kw,
    }


def test_append_writes_one_jsonl_part_per_process_with_a_header(tmp_path):
    led = Ledger(tmp_path / "sub" / "ledger", run_id="r1", worker="gw3", header={"plan_hash": "abc"})
    led.append([_rec(layer=0)])
    led.append([_rec(layer=1), _rec(layer=2)])
    (part,) = led.path.iterdir()
    assert part.name == "r1--all--gw3.jsonl"
    lines = [json.loads(line) for line in part.read_text().splitlines()]
    assert lines[0]["kind"] == "ledger_part" and lines[0]["schema_version"] == SCHEMA_VERSION
    assert lines[0]["plan_hash"] == "abc"
    assert [r["layer"] for r in lines[1:]] == [0, 1, 2]
    records, headers = read_ledger(led.path)
    assert [r["layer"] for r in records] == [0, 1, 2] and len(headers) == 1


def test_records_of_every_part_load_together_and_by_run(tmp_path):
    path = tmp_path / "ledger"
    Ledger(path, run_id="r1", worker="gw0").append([_rec(layer=0)])
    Ledger(path, run_id="r1", worker="gw1").append([_rec(layer=1)])
    Ledger(path, run_id="r2").append([_rec(layer=2, run_id="r2")])
    assert sorted(load_ledger(path)["layer"]) == [0, 1, 2]
    assert sorted(r["layer"] for r in Ledger(path, run_id="x").records(run_id="r1")) == [0, 1]


def test_records_read_back_as_their_types_and_a_whole_part_is_one_write(tmp_path):
    recs = synthetic_records(models={"onehot": 0, "tiny_esm": 2}, tasks=["gb1_sampled"], seeds=[42])
    part = tmp_path / "ledger" / "merged.jsonl"
    write_part(part, recs, part_header(plan_hash="abc"))
    back, (header,) = read_ledger(part.parent, verify=True)
    assert back == recs and header["plan_hash"] == "abc" and header["schema_version"] == SCHEMA_VERSION
    assert [parse_record(r).to_dict() for r in back] == back  # typed in and out: nothing lost or added
    assert read_records(part) == recs  # one part, named directly


def test_optional_layer_fields_are_absent_unless_set():
    base = LayerRecord("m", "gb1_sampled", 0, "pretrained", None, {"test_spearman": 0.5})
    assert not {"limit", "cuda_visible_devices", "base_model", "head_name"} & set(base.to_dict())
    rec = LayerRecord(
        "m+h",
        "gb1_sampled",
        0,
        "pretrained",
        None,
        {},
        limit=50,
        cuda_visible_devices="1",
        base_model="m",
        head_name="h",
    )
    # after the provenance, as the session added them to the dict before they were fields
    assert list(rec.to_dict())[-4:] == ["cuda_visible_devices", "limit", "base_model", "head_name"]
    assert parse_record(rec.to_dict()) == rec
    with pytest.raises(ValueError, match="unknown record kind None"):
        parse_record({k: v for k, v in rec.to_dict().items() if k != "kind"})


def test_the_result_frame_has_its_columns_whatever_the_records_hold():
    empty = records_to_frame([])
    assert empty.empty and tuple(empty.columns) == FRAME_COLUMNS
    claim = ClaimRecord("beats_onehot", "beats_onehot", "c1", "m", "t", "pretrained", "passed", True)
    frame = records_to_frame([_rec(limit=5), claim])
    assert tuple(frame.columns) == (*FRAME_COLUMNS, "test_spearman")
    assert list(frame["kind"]) == ["layer", "claim"] and frame["limit"].iloc[0] == 5 and frame["limit"].isna().iloc[1]
    assert frame["outcome"].isna().iloc[0] and frame["claim_kind"].iloc[1] == "beats_onehot"


def test_torn_last_line_is_skipped_and_cut_on_next_append(tmp_path):
    led = Ledger(tmp_path / "ledger", run_id="r1")
    led.append([_rec(layer=0)])
    with open(led.part, "ab") as fh:  # a writer killed mid-record
        fh.write(b'{"kind": "layer", "model": "oneh')
    with pytest.warns(UserWarning, match="incomplete record"):
        assert [r["layer"] for r in read_records(led.path)] == [0]
    led.append([_rec(layer=1)])
    assert [r["layer"] for r in read_records(led.path)] == [0, 1]


def test_bad_line_inside_a_part_names_file_and_line(tmp_path):
    led = Ledger(tmp_path / "ledger", run_id="r1")
    led.append([_rec(layer=0)])
    with open(led.part, "ab") as fh:
        fh.write(b"not json\n")
    led.append([_rec(layer=1)])
    with pytest.raises(LedgerError, match=r"r1--all--main.jsonl: line 3 is not valid JSON"):
        read_records(led.path)


def test_newer_schema_and_garbage_are_refused_with_the_path(tmp_path):
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({**part_header(), "schema_version": SCHEMA_VERSION + 1}) + "\n")
    with pytest.raises(LedgerError, match="newer.jsonl: line 1: schema_version 4 is newer.*upgrade"):
        read_records(newer)
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{\n "schema_version": 2,\n "records": []\n}\n')  # not a part: a JSON document
    with pytest.raises(LedgerError, match="garbage.json: line 1 is not valid JSON"):
        read_records(garbage)


def _worker(path, worker, n):
    led = Ledger(path, run_id="r1", worker=f"gw{worker}")
    for i in range(n):
        led.append([_rec(model=f"w{worker}", layer=i)])


@pytest.mark.slow
def test_concurrent_processes_lose_no_record(tmp_path):
    path = tmp_path / "ledger"
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
    led = Ledger(tmp_path / "l")
    led.append([_rec(value=0.1, ts="2026-01-01T00:00:00+00:00"), _rec(value=0.9, ts="2026-02-01T00:00:00+00:00")])
    led.append([{"kind": "claim", "claim": "beats_onehot", "outcome": "passed", "timestamp": "x"}])
    assert len(load_ledger(led.path)) == 2
    latest = load_ledger(led.path, latest=True)
    assert len(latest) == 1 and latest["test_spearman"].iloc[0] == 0.9
    assert list(load_ledger(led.path, kind="claim")["outcome"]) == ["passed"]


def test_parts_read_in_creation_order_whatever_their_names(tmp_path):
    path = tmp_path / "ledger"
    Ledger(path, run_id="zzz").append([_rec(layer=0, run_id="zzz")])
    Ledger(path, run_id="aaa").append([_rec(layer=1, run_id="aaa")])
    assert [r["run_id"] for r in read_records(path)] == ["zzz", "aaa"]
