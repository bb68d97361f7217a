"""Plugin behaviour under pytester: parametrization, selection, ledger, offline skips, xdist."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

try:
    from . import flip_files
except ImportError:  # tests/ is not a package
    import flip_files


@pytest.mark.slow
def test_one_test_per_model_task_layer_init_with_readable_ids(bench):
    result = bench.run(
        "--plm-models=onehot,toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained,random", "--collect-only", "-q"
    )
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines if "test_layer[" in line)
    assert ids == sorted(
        ["onehot-gb1_sampled-L00-none"]
        + [f"toy-gb1_sampled-L{layer:02d}-{init}" for layer in range(3) for init in ("pretrained", "random")]
    )


@pytest.mark.slow
def test_run_writes_one_ledger_record_per_test(bench):
    result = bench.run("--plm-models=onehot,toy", "--plm-tasks=gb1_sampled,gb1_two_vs_rest", "--plm-inits=pretrained")
    result.assert_outcomes(passed=2 + 2 * 3)
    recs = bench.records()
    assert len(recs) == 8
    rec = next(r for r in recs if r["model"] == "toy" and r["layer"] == 2 and r["task"] == "gb1_sampled")
    assert rec["test_id"].endswith("test_layer[toy-gb1_sampled-L02-pretrained]")
    for field in ("weights", "data", "split_sizes", "host", "timestamp", "versions", "head"):
        assert rec[field], field
    assert "git_commit" in rec  # None here: pytester's directory is not a git checkout
    assert set(rec["metrics"]) >= {"test_spearman", "test_ndcg", "val_spearman", "test_mse", "test_pearson"}
    # one forward pass over the GB1 sequences serves all layers and both GB1 splits
    assert len(bench.forward_passes()) == 1


@pytest.mark.slow
def test_k_selection_computes_only_what_is_selected(bench):
    result = bench.run("--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained", "-k", "L01")
    result.assert_outcomes(passed=1)
    passes = bench.forward_passes()
    assert len(passes) == 1 and passes[0].endswith("[1]"), passes
    # a rerun of the whole selection reuses layer 1 and computes only 0 and 2, in one pass
    bench.run("--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained").assert_outcomes(passed=3)
    assert bench.forward_passes()[1].endswith("[0, 2]")
    bench.run("--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained").assert_outcomes(passed=3)
    assert len(bench.forward_passes()) == 2, "a warm cache must not run the model again"


@pytest.mark.slow
def test_layers_option_and_seed_ids(bench):
    result = bench.run(
        "--plm-models=toy",
        "--plm-tasks=gb1_sampled",
        "--plm-layers=0,-1",
        "--plm-inits=pretrained,random",
        "--plm-seeds=1,2",
        "--collect-only",
        "-q",
    )
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines if "test_layer[" in line)
    assert ids == sorted(
        [f"toy-gb1_sampled-L{layer:02d}-pretrained" for layer in (0, 2)]
        + [f"toy-gb1_sampled-L{layer:02d}-random-s{s}" for layer in (0, 2) for s in (1, 2)]
    )


@pytest.mark.slow
def test_per_residue_task_records_q3(bench):
    bench.run("--plm-models=onehot", "--plm-tasks=ss3").assert_outcomes(passed=1)
    (rec,) = bench.records()
    assert rec["task_kind"] == "per_residue"
    assert 0.0 <= rec["metrics"]["test_q3"] <= 1.0


@pytest.mark.slow
def test_missing_data_offline_skips_with_instructions_and_strict_fails(bench, pytester, tmp_path):
    (tmp_path / "nothing").mkdir()  # a data dir without the archive (a missing dir is a usage error)
    args = [
        "--plm-models=onehot",
        "--plm-tasks=gb1_sampled",
        f"--plm-data-dir={tmp_path / 'nothing'}",
        "--plm-offline",
        "-rs",
    ]
    result = bench.run(*args)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*splits/gb1/splits.zip*"])
    # pinned to a commit, not the mutable main branch
    assert (
        "https://github.com/J-SNACKKB/FLIP/raw/0a3cf047f63e70c14f7af29e88de256222fe9ee7/splits/gb1/splits.zip"
        in result.stdout.str()
    )
    strict = bench.run(*args, "--plm-strict")
    strict.assert_outcomes(errors=1)
    strict.stdout.fnmatch_lines(["*--plm-strict*"])


@pytest.mark.slow
def test_options_are_settable_in_ini(bench, pytester):
    pytester.makeini("[pytest]\nplm_models = toy\nplm_tasks = gb1_two_vs_rest\nplm_inits = random\nplm_layers = 1\n")
    result = bench.run("--collect-only", "-q")
    assert "test_plm_layers.py::test_layer[toy-gb1_two_vs_rest-L01-random]" in result.stdout.str()


def test_unknown_model_and_task_fail_collection_clearly(bench):
    # usage errors: one line on stderr, exit code 4, no traceback
    result = bench.run("--plm-models=nope", "--plm-tasks=gb1_sampled")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: unknown model 'nope'*Known models:*onehot*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result = bench.run("--plm-models=onehot", "--plm-tasks=gb2")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: *unknown task id 'gb2'*gb1_sampled*"])


@pytest.mark.slow
def test_xdist_keeps_every_record_and_embeds_once(bench):
    args = ["--plm-models=onehot,toy", "--plm-tasks=gb1_sampled,gb1_low_vs_high", "--plm-inits=pretrained,random"]
    serial = bench.run(*args, subprocess=True)
    serial.assert_outcomes(passed=2 + 2 * 2 * 3)
    serial_recs = bench.records()
    shutil.rmtree(bench.ledger)
    bench.log.unlink()
    shutil.rmtree(bench.cache)
    parallel = bench.run(*args, "-n", "2", subprocess=True)
    parallel.assert_outcomes(passed=2 + 2 * 2 * 3)
    par_recs = bench.records()
    assert len(par_recs) == len(serial_recs) == 14
    assert len({r["run_id"] for r in par_recs}) == 1

    def key(r):
        return (r["model"], r["task"], r["layer"], r["init"], r["seed"])

    assert {key(r): r["metrics"] for r in par_recs} == {key(r): r["metrics"] for r in serial_recs}
    # toy pretrained and random each embedded once, by whichever worker came first
    assert len(bench.forward_passes()) == 2, bench.forward_passes()


def save_carp_600k_checkpoints(out: Path) -> int:
    """Two real carp_600k architectures: the 1/8 checkpoint in sequence-models' format, the 1/4 one
    in the authors' training layout; the parameter count."""
    import torch

    from pytest_plmtransfer.models.carp import CARP_CONFIGS, build_architecture

    (out / "carp_600k").mkdir(parents=True)
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        nets.append(build_architecture(CARP_CONFIGS["carp_600k"]))
    fields = {"model": "carp_600k", "d_embed": 8, "d_model": 128, "n_layers": 16, "kernel_size": 5}
    fields |= {"activation": "gelu", "slim": True, "r": 128}
    torch.save({**fields, "model_state_dict": nets[0].model.state_dict()}, out / "carp_600k@step=52039.pt")
    state = {"module." + k: v for k, v in nets[1].model.state_dict().items()}
    torch.save({"model_state_dict": state, "epoch": 1}, out / "carp_600k" / "checkpoint114344.tar")
    return sum(p.numel() for p in nets[0].parameters())


@pytest.mark.slow
def test_checkpoints_and_tape_tasks_records_carry_step_fraction_loss(bench, flip_root, tmp_path, monkeypatch):
    """Real carp_600k checkpoints (1/8 and 1/4 of training); GB1 and TAPE's CB513 through the
    per-residue head."""
    data = tmp_path / "data"
    shutil.copytree(flip_root, data)
    flip_files.write_tape_ss(data, n=8)
    params = save_carp_600k_checkpoints(tmp_path / "weights")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no user hub cache
    result = bench.run(
        "--plm-models=onehot,carp_600k@0.125,carp_600k@step=114344",
        "--plm-tasks=gb1_sampled,ss3_cb513",
        "--plm-inits=pretrained",
        "--plm-layers=0,-1",
        f"--plm-weights-dir={tmp_path / 'weights'}",
        "--plm-offline",
        data=data,
    )
    result.assert_outcomes(passed=2 + 2 * 2 * 2)
    recs = bench.records()
    by_model = {}
    for rec in recs:
        by_model.setdefault(rec["model"], []).append(rec)
    assert {
        (r["checkpoint_step"], r["checkpoint_fraction"], r["mlm_loss"], r["model_params"])
        for r in by_model["carp_600k@0.125"]
    } == {(52039, 0.125, 2.5268538140067247, params)}
    assert {
        (r["checkpoint_step"], r["checkpoint_fraction"], r["mlm_loss"]) for r in by_model["carp_600k@step=114344"]
    } == {(114344, 0.25, 2.517630364015801)}
    assert {
        (r["checkpoint_step"], r["checkpoint_fraction"], r["mlm_loss"], r["model_params"]) for r in by_model["onehot"]
    } == {(None, None, None, 0)}
    tape = [r for r in recs if r["task"] == "ss3_cb513"]
    assert len(tape) == 5 and all(
        r["task_kind"] == "per_residue" and 0 <= r["metrics"]["test_accuracy"] <= 1 for r in tape
    )
    assert {r["data"]["member"] for r in tape} == {"secondary_structure/secondary_structure_cb513.json"}
    assert {tuple(r["split_sizes"].values()) for r in tape} == {(8, 8, 8)}
