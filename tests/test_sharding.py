"""Plain-Python parts of the scale-out: shard plans, group ids from node ids, GPU mapping,
model descriptions without building, typed records, merge checks."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from pytest_plmtransfer.models.registry import ModelOptions, builtin_registry
from pytest_plmtransfer.models.weights import peek_checkpoint
from pytest_plmtransfer.plan.sharding import GroupWork, Shard, ShardError, ShardPlan, plan_shards
from pytest_plmtransfer.plan.xdist import device_for_worker, group_of_case_id, group_of_nodeid, visible_devices
from pytest_plmtransfer.report.merge import MergeError, merge_ledgers
from pytest_plmtransfer.results.ledger import Ledger
from pytest_plmtransfer.results.records import LayerRecord, Provenance, measurement, parse_record
from pytest_plmtransfer.testing import synthetic_records


def test_shard_parse_and_errors():
    assert Shard.parse("1/4") == Shard(1, 4) and Shard.parse("1/4").tag == "shard1of4"
    for bad in ("4/4", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ShardError, match="--plm-shard"):
            Shard.parse(bad)


def _work(costs):
    return {f"m{i}|random|{i}": GroupWork(c, [("gb1_sampled", 0)]) for i, c in enumerate(costs)}


def test_plan_assigns_whole_groups_deterministically_and_balanced():
    work = _work([100, 90, 50, 40, 30, 20, 10, 5])
    plan = plan_shards(work, 3)
    again = plan_shards(dict(reversed(list(work.items()))), 3)
    assert plan.assignment == again.assignment and plan.hash == again.hash
    assert sorted(plan.assignment) == sorted(work)  # every group on exactly one shard
    assert max(plan.loads()) - min(plan.loads()) <= 30  # LPT: within the largest small item
    assert plan_shards(work, 2).hash != plan.hash  # another N is another plan
    assert ShardPlan.from_dict(json.loads(json.dumps(plan.to_dict()))).hash == plan.hash


def test_group_of_case_and_node_ids():
    assert group_of_case_id("esm2_t6_8M_UR50D-gb1_sampled-L03-random-s42") == "esm2_t6_8M_UR50D|random|42"
    assert group_of_case_id("onehot-gb1_sampled-L00-none") == "onehot|none|None"
    assert group_of_case_id("hf:org/some-model-ss3-Lall-pretrained") == "hf:org/some-model|pretrained|None"
    assert group_of_nodeid("benchmarks/test_layers.py::test_layer[carp_600k-ss3-L16-stat-s-1]") == "carp_600k|stat|-1"
    assert group_of_nodeid("benchmarks/test_claims.py::test_claim[beats_onehot-x]") is None
    assert group_of_nodeid("tests/test_x.py::test_plain") is None


def test_cuda_visible_devices_map_workers_to_gpus():
    devices = visible_devices({"CUDA_VISIBLE_DEVICES": "3,5"})
    assert devices == ["3", "5"]
    assert [device_for_worker(w, devices) for w in ("gw0", "gw1", "gw2")] == ["3", "5", "3"]
    assert device_for_worker("gw0", visible_devices({"CUDA_VISIBLE_DEVICES": ""})) is None


def test_builtin_models_are_described_without_building():
    registry = builtin_registry()
    options = ModelOptions()
    esm1b = registry.describe("esm1b_t33_650M_UR50S", options)
    assert (esm1b.num_layers, esm1b.embed_dim, esm1b.max_residues) == (33, 1280, 1022)
    assert 600e6 < esm1b.parameters < 700e6
    carp = registry.describe("carp_640M@step=78810", options)  # a checkpoint shares its base's table
    assert (carp.num_layers, carp.embed_dim) == (56, 1280) and 600e6 < carp.parameters < 700e6
    assert registry.describe("antiberty", options).num_layers == 8
    assert registry.describe("onehot", options).num_layers == 0


def test_checkpoint_args_are_read_without_tensor_data(tmp_path):
    path = tmp_path / "my_esm.pt"
    args = argparse.Namespace(arch="protein_bert_base", layers=3, embed_dim=24, ffn_embed_dim=96)
    torch.save({"model": {"w": torch.zeros(1000, 1000)}, "args": args}, path)
    peeked = peek_checkpoint(path)
    assert peeked["args"].layers == 3 and peeked["model"]["w"] is None
    desc = builtin_registry().describe(str(path), ModelOptions())
    assert (desc.num_layers, desc.embed_dim, desc.max_residues) == (3, 24, 1023)
    carp = tmp_path / "my_carp.pt"
    torch.save({"model": "carp", "d_model": 16, "n_layers": 2, "slim": True, "model_state_dict": {}}, carp)
    assert builtin_registry().describe(str(carp), ModelOptions()).num_layers == 2


def test_typed_records_round_trip_old_and_new():
    rec = LayerRecord(
        model="m",
        task="t",
        layer=1,
        init="random",
        seed=3,
        metrics={"test_spearman": 0.5},
        provenance=Provenance(run_id="r", worker="gw1", shard="0/2", plan_hash="h"),
    )
    flat = rec.to_dict()
    assert flat["kind"] == "layer" and flat["worker"] == "gw1" and flat["plan_hash"] == "h"
    assert parse_record(flat) == rec
    newer = synthetic_records(models={"m": 1}, tasks=["t"])[0]
    newer["from_the_future"] = 1  # unknown fields are kept, not dropped
    parsed = parse_record(newer)
    assert isinstance(parsed, LayerRecord) and parsed.extra == {"from_the_future": 1}
    assert parsed.to_dict()["from_the_future"] == 1
    assert "timestamp" not in measurement(flat) and "metrics" in measurement(flat)


def test_merge_refuses_mixed_plans_and_versions(tmp_path):
    recs = synthetic_records(models={"m": 1}, tasks=["gb1_sampled"], inits=["pretrained"])
    Ledger(tmp_path / "a", run_id="r", header={"plan_hash": "p1"}).append([{**r, "plan_hash": "p1"} for r in recs])
    Ledger(tmp_path / "b", run_id="r", header={"plan_hash": "p2"}).append([{**r, "plan_hash": "p2"} for r in recs])
    with pytest.raises(MergeError, match="2 different shard plans"):
        merge_ledgers([tmp_path / "a", tmp_path / "b"])
    Ledger(tmp_path / "c", run_id="r").append([{**r, "plugin_version": "9.9"} for r in recs])
    Ledger(tmp_path / "d", run_id="r").append(recs)
    with pytest.raises(
        MergeError, match=r"different plugin versions: 0\.1\.0 \(.*c/r--all--main\.jsonl\), 9\.9 \(.*: line 2\)"
    ):
        merge_ledgers([tmp_path / "c", tmp_path / "d"])
    merged = merge_ledgers([tmp_path / "d", tmp_path / "d"])  # the same ledger twice
    assert merged.duplicates == len(recs) and len(merged.records) == len(recs)


class _Config:
    """What the xdist hooks read: the options pytest_configure parsed."""

    def __init__(self, dist):
        from pytest_plmtransfer.options import PlmOptions
        from pytest_plmtransfer.plugin import OPTIONS_KEY

        self.stash = pytest.Stash()
        self.stash[OPTIONS_KEY] = PlmOptions(dist=dist)


def test_n_auto_means_one_worker_per_gpu_only_with_dist_group(monkeypatch):
    from pytest_plmtransfer import plugin

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    assert plugin.pytest_xdist_auto_num_workers(_Config("group")) == 3
    assert plugin.pytest_xdist_auto_num_workers(_Config(None)) is None  # xdist's CPU count
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert plugin.pytest_xdist_auto_num_workers(_Config("group")) is None  # no GPU: CPU count
