"""Scale-out: collection builds nothing, group order and one resident model, shards + merge,
claims from a merged ledger, --plm-dist group under xdist with GPU pinning (simulated, CPU only).

The harness's toy, counting below, logs every build (with the CUDA_VISIBLE_DEVICES its process saw and how
many instances were alive) and every forward pass (start and done) to files, so the tests can
count work across processes; TINY_KILL_GROUP makes a process SIGKILL itself mid-embedding.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from pytest_plmtransfer.report.cli import main as cli_main
from pytest_plmtransfer.results.ledger import LAYER_KEY, read_records
from pytest_plmtransfer.results.records import measurement

QUIET_PLUGINS = ["-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:anyio"]

#: after the harness's conftest: the toy, counting live instances and logging its builds and passes
CONFTEST = '''
import dataclasses
import os
import signal


def _log(name, line):
    with open(os.environ[name], "a") as fh:
        fh.write(line + "\\n")


class CountingToy(ToyAdapter):
    """The toy adapter, counting live instances and logging (or, on request, killing) its passes."""

    alive = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        CountingToy.alive += 1

    def __del__(self):
        CountingToy.alive -= 1

    def embed(self, sequences, layers, *, per_residue):
        group = f"{self.name}|{self.init}|{self.seed}"
        _log("TINY_PASSES", f"start {os.getpid()} {group}")
        for batch in super().embed(sequences, layers, per_residue=per_residue):
            if int(batch.indices[0]) == len(sequences) // 2 and os.environ.get("TINY_KILL_GROUP") == group:
                os.kill(os.getpid(), signal.SIGKILL)  # a node lost mid-embedding
            yield batch
        _log("TINY_PASSES", f"done {os.getpid()} {group}")


def _counting(factory):
    def build(name, init, seed, options):
        adapter = factory(name, init, seed, options)
        _log("TINY_BUILDS", f"{os.getpid()} {os.environ.get('PYTEST_XDIST_WORKER', 'main')} "
             f"{os.environ.get('CUDA_VISIBLE_DEVICES', '-')} {name}|{init}|{seed} alive={CountingToy.alive}")
        return adapter
    return build


def pytest_plmtransfer_register_models(registry):
    # sizes declared, as the built-in models' tables do: collection builds nothing
    registry.register("toy", lambda name, init, seed, options: CountingToy(init, seed, name="toy"),
                      inits=("pretrained", "random"), needs_weights=(), num_layers=2, embed_dim=8)
    # every entry, built-in ones included, counts its builds
    for name, entry in list(registry._entries.items()):
        registry._entries[name] = dataclasses.replace(entry, factory=_counting(entry.factory))
'''

SELECT = [
    "--plm-models=onehot,toy",
    "--plm-tasks=gb1_sampled,gb1_two_vs_rest",
    "--plm-inits=pretrained,random",
    "--plm-seeds=1,2",
]
#: (model, init, seed) groups of SELECT: onehot, toy pretrained, random seed 1, random seed 2
GROUPS = {"onehot|none|None", "toy|pretrained|None", "toy|random|1", "toy|random|2"}


@pytest.fixture
def bench(plm, pytester, tmp_path, monkeypatch):
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("TINY_PASSES", str(tmp_path / "passes.log"))
    monkeypatch.setenv("TINY_BUILDS", str(tmp_path / "builds.log"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))  # no cached checkpoints
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    bench = plm(suite_dir="benchmarks", claims=True, conftest=CONFTEST)
    run = bench.run

    def run_in(*args, ledger="ledger", cache="cache", target="benchmarks/test_plm_layers.py", subprocess=False):
        where = {"ledger": tmp_path / ledger, "cache": tmp_path / cache}
        return run(target, "--plm-offline", "--plm-device=cpu", *QUIET_PLUGINS, *args, subprocess=subprocess, **where)

    bench.run = run_in
    bench.path = lambda name: tmp_path / name
    bench.log = lambda name: (
        (tmp_path / f"{name}.log").read_text().splitlines() if bench.path(f"{name}.log").exists() else []
    )
    return bench


def _ids(result):
    return sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines if "test_layer[" in line)


def _group(rec):
    return f"{rec['model']}|{rec['init']}|{rec['seed']}"


def _by_key(records):
    layers = [r for r in records if r.get("kind") == "layer"]
    keyed = {tuple(r[k] for k in LAYER_KEY): measurement(r) for r in layers}
    assert len(keyed) == len(layers), "duplicate (model, task, layer, init, seed) records"
    return keyed


def test_missing_data_skips_without_building_the_model(bench):
    # the flip root here has no AAV archive: every test of the task skips, and no model is built
    # to find that out (a `-k scl` over the default models would otherwise build each of them)
    result = bench.run("--plm-models=toy", "--plm-tasks=aav_sampled", "--plm-inits=pretrained,random")
    result.assert_outcomes(skipped=6)
    assert bench.log("builds") == [], bench.log("builds")


def test_collection_builds_no_model_and_knows_every_layer(bench):
    result = bench.run(
        "--plm-models=onehot,toy,esm2_t6_8M_UR50D,carp_600k,antiberty",
        "--plm-tasks=gb1_sampled",
        "--plm-inits=pretrained,random",
        "--collect-only",
        "-q",
    )
    ids = _ids(result)
    assert bench.log("builds") == [], "collection built a model"
    # layer counts come from the config tables / shipped config.json, not from built models
    assert {i for i in ids if i.startswith("esm2_t6_8M_UR50D-") and i.endswith("-random")} == {
        f"esm2_t6_8M_UR50D-gb1_sampled-L{layer:02d}-random" for layer in range(7)
    }
    assert len([i for i in ids if i.startswith("carp_600k-") and i.endswith("-pretrained")]) == 17
    assert len([i for i in ids if i.startswith("antiberty-") and i.endswith("-random")]) == 9


def test_missing_weights_skip_at_run_time_with_the_message_and_strict_fails(bench, tmp_path):
    args = [
        "--plm-models=esm2_t6_8M_UR50D",
        "--plm-tasks=gb1_sampled",
        "--plm-inits=pretrained",
        f"--plm-weights-dir={tmp_path / 'empty'}",
        "-k",
        "L00 or L06",
        "-rs",
    ]
    result = bench.run(*args)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*esm2_t6_8M_UR50D.pt*downloads are disabled*"])
    strict = bench.run(*args, "--plm-strict")
    strict.assert_outcomes(errors=2)
    strict.stdout.fnmatch_lines(["*--plm-strict*"])


@pytest.mark.slow
def test_groups_run_contiguously_one_model_resident_each_built_once(bench):
    result = bench.run(*SELECT, "-v")
    result.assert_outcomes(passed=2 + 3 * 2 * 3)
    order = [
        line.split("[", 1)[1].split("]")[0] for line in result.outlines if "test_layer[" in line and "PASSED" in line
    ]
    groups = []
    for case in order:
        from pytest_plmtransfer.plan.xdist import group_of_case_id

        group = group_of_case_id(case)
        if not groups or groups[-1] != group:
            groups.append(group)
    assert len(groups) == len(set(groups)) == 4, f"groups interleaved: {groups}"
    builds = bench.log("builds")
    built = [line.split()[3] for line in builds]
    assert sorted(built) == sorted(GROUPS), builds  # each group built exactly once
    # the previous tiny model was released before the next one was built
    assert all(line.endswith("alive=1") for line in builds if "toy" in line), builds


@pytest.mark.slow
def test_shards_merge_to_the_serial_records_and_a_killed_shard_is_named_then_completed(bench, capsys):
    serial = bench.run(*SELECT, ledger="serial", cache="serial-cache")
    serial.assert_outcomes(passed=20)
    serial_records = read_records(bench.path("serial"))
    serial_passes = [line for line in bench.log("passes") if line.startswith("done")]
    assert len(serial_passes) == len(GROUPS) - 1  # one-hot does not log: it is not toy
    shutil.move(bench.path("passes.log"), bench.path("serial-passes.log"))

    run_id = ["--plm-run-id=nightly-1"]
    s0 = bench.run(*SELECT, *run_id, "--plm-shard=0/2", ledger="shard0")
    assert s0.ret == 0
    # shard 1 dies in the middle of one of its groups' forward pass
    plan_groups = {_group(r) for r in read_records(bench.path("shard0"))}
    order = ["onehot|none|None", "toy|pretrained|None", "toy|random|1", "toy|random|2"]
    victim = [g for g in order if g not in plan_groups][-1]  # the shard's last group: some records first
    assert victim != "onehot|none|None"
    import os

    os.environ["TINY_KILL_GROUP"] = victim
    try:  # the process kills itself: one of its own
        s1 = bench.run(*SELECT, *run_id, "--plm-shard=1/2", ledger="shard1", subprocess=True)
    finally:
        del os.environ["TINY_KILL_GROUP"]
    assert s1.ret != 0

    code = cli_main(
        ["merge", str(bench.path("shard0")), str(bench.path("shard1")), "--out", str(bench.path("merged.json"))]
    )
    err = capsys.readouterr().err
    model, init, seed = victim.split("|")
    assert code == 2 and f"group model={model} init={init} seed={seed} (shard 1/2)" in err, err
    assert not bench.path("merged.json").exists()

    bench.run(*SELECT, *run_id, "--plm-shard=1/2", ledger="shard1").assert_outcomes(
        passed=len(_by_key(serial_records)) - len(_by_key(read_records(bench.path("shard0"))))
    )
    assert (
        cli_main(
            ["merge", str(bench.path("shard0")), str(bench.path("shard1")), "--out", str(bench.path("merged.json"))]
        )
        == 0
    )
    merged = read_records(bench.path("merged.json"))
    got, want = _by_key(merged), _by_key(serial_records)
    diffs = {
        k: {f: (got[k].get(f), want[k].get(f)) for f in set(got[k]) | set(want[k]) if got[k].get(f) != want[k].get(f)}
        for k in want
        if k in got and got[k] != want[k]
    }
    assert got == want, diffs
    # every group on exactly one shard, every record of a run with the same plan hash
    shards_of = {}
    for rec in merged:
        shards_of.setdefault(_group(rec), set()).add(rec["shard"])
    assert set(shards_of) == GROUPS and all(len(s) == 1 for s in shards_of.values()), shards_of
    assert {rec["shard"] for rec in merged} == {"0/2", "1/2"}
    assert len({rec["plan_hash"] for rec in merged}) == 1 and {rec["run_id"] for rec in merged} == {"nightly-1"}
    # each group's forward pass completed exactly once over both shards, the killed try included
    done = Counter(line.split()[2] for line in bench.log("passes") if line.startswith("done"))
    assert done == Counter(GROUPS - {"onehot|none|None"}), done

    # claims from the merged ledger alone: no model built, nothing embedded
    (bench.root / "baselines").mkdir()
    (bench.root / "baselines" / "claims.json").write_text(
        json.dumps(
            {
                "format": "plmtransfer-claims/1",
                "claims": [
                    {
                        "name": "saturates",
                        "kind": "saturates_by",
                        "models": "toy",
                        "params": {"layer": 2, "tolerance": 1.0},
                    }
                ],
            }
        )
    )
    builds_before, passes_before = len(bench.log("builds")), len(bench.log("passes"))
    claims = bench.run(
        "-k",
        "test_claim",
        f"--plm-from-ledger={bench.path('merged.json')}",
        "--plm-update-baselines",
        ledger="claims",
        cache="no-cache",
        target="benchmarks",
    )
    counts = claims.parseoutcomes()
    assert counts.get("passed", 0) >= 2 and not counts.get("failed") and not counts.get("skipped"), counts
    assert len(bench.log("builds")) == builds_before and len(bench.log("passes")) == passes_before
    outcomes = [r for r in read_records(bench.path("claims")) if r["kind"] == "claim"]
    assert {r["outcome"] for r in outcomes} == {"passed"} and not bench.path("no-cache").exists()
    # --plm-update-baselines took the merged ledger's numbers
    written = sorted(p.name for p in (bench.root / "baselines" / "gb1_sampled").glob("*.json"))
    assert "toy--pretrained.json" in written and "onehot--none.json" in written, written


@pytest.mark.slow
def test_dist_group_puts_each_group_on_one_worker_pinned_to_its_gpu(bench, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    result = bench.run(*SELECT, "-n", "2", "--plm-dist=group", subprocess=True)
    result.assert_outcomes(passed=20)
    records = read_records(bench.path("ledger"))
    workers_of = {}
    for rec in records:
        workers_of.setdefault(_group(rec), set()).add(rec["worker"])
    assert set(workers_of) == GROUPS and all(len(w) == 1 for w in workers_of.values()), workers_of
    assert {rec["worker"] for rec in records} == {"gw0", "gw1"}
    assert {(rec["worker"], rec["cuda_visible_devices"]) for rec in records} == {("gw0", "3"), ("gw1", "5")}
    # the variable was in each worker's environment when its models were built
    for line in bench.log("builds"):
        _pid, worker, visible, _group_id, _alive = line.split()
        assert visible == {"gw0": "3", "gw1": "5"}[worker], line
    # each embedding group was embedded once, by its one worker
    done = Counter(line.split()[2] for line in bench.log("passes") if line.startswith("done"))
    assert done == Counter(GROUPS - {"onehot|none|None"})
