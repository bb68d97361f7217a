"""Stored baselines: update, compare, tolerances, missing-baseline message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_plmtransfer.judge.baselines import BaselineError, BaselineMissing, BaselineStore, safe_name, tolerance_for
from pytest_plmtransfer.results.ledger import records_to_frame
from pytest_plmtransfer.testing import curve_records, synthetic_records

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run():
    return records_to_frame(synthetic_records(models={"onehot": 0, "tiny_esm": 4}, tasks=("gb1_sampled",)))


def one(frame, model="tiny_esm", init="random"):
    return frame[(frame["model"] == model) & (frame["init"] == init)]


def test_update_then_compare_passes_and_files_are_reviewable(tmp_path, run):
    store = BaselineStore(tmp_path)
    written = store.update_from(run)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "gb1_sampled/onehot--none.json",
        "gb1_sampled/tiny_esm--pretrained.json",
        "gb1_sampled/tiny_esm--random.json",
        "gb1_sampled/tiny_esm--stat.json",
    ]
    doc = json.loads((tmp_path / "gb1_sampled" / "tiny_esm--random.json").read_text())
    assert doc["format"] == "plmtransfer-baseline/1"
    assert (doc["task"], doc["model"], doc["init"]) == ("gb1_sampled", "tiny_esm", "random")
    assert doc["seeds"] == [0, 42, 12345]
    assert doc["num_layers"] == 4 and sorted(doc["layers"]) == ["0", "1", "2", "3", "4"]
    layer = doc["layers"]["2"]
    assert set(layer["per_seed"]) == {"0", "42", "12345"}
    mean = sum(v["test_spearman"] for v in layer["per_seed"].values()) / 3
    assert layer["mean"]["test_spearman"] == pytest.approx(mean)
    prov = doc["provenance"]
    assert prov["git_commit"] == "abc123" and prov["plugin_version"] == "0.1.0"
    assert prov["data_sha256"] == "0" * 64
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", prov["weights"])  # the weights' identity, as in the ledger frame
    # a committed file carries no machine: no host name, no absolute path
    assert "host" not in prov and prov["data_archive"] == "splits/gb1/splits.zip"
    assert prov["run_id"] == "run-1" and prov["written"]
    assert "*_spearman" in doc["tolerances"]["defaults"] and doc["tolerances"]["overrides"] == {}
    pre = json.loads((tmp_path / "gb1_sampled" / "tiny_esm--pretrained.json").read_text())
    assert pre["seeds"] == [None] and list(pre["layers"]["0"]["per_seed"]) == ["none"]

    for init in ("pretrained", "random", "stat"):
        cmp = store.compare(one(run, init=init))
        assert cmp.ok, cmp.format()
    cmp = store.compare(one(run, "onehot", "none"))
    assert cmp.ok and len(cmp.rows) == 8  # one layer, eight metrics
    assert store.entries() == [
        ("gb1_sampled", "onehot", "none", "plmtransfer"),
        ("gb1_sampled", "tiny_esm", "pretrained", "plmtransfer"),
        ("gb1_sampled", "tiny_esm", "random", "plmtransfer"),
        ("gb1_sampled", "tiny_esm", "stat", "plmtransfer"),
    ]


def test_perturbed_metric_fails_with_a_readable_diff(tmp_path, run):
    store = BaselineStore(tmp_path)
    store.update_from(run)
    cur = one(run, init="pretrained").copy()
    base = float(cur.loc[cur["layer"] == 3, "test_spearman"].iloc[0])
    cur.loc[cur["layer"] == 3, "test_spearman"] = base - 0.05
    cur.loc[cur["layer"] == 1, "test_mse"] = cur.loc[cur["layer"] == 1, "test_mse"] * 1.05  # within 10 %
    cmp = store.compare(cur)
    assert not cmp.ok
    assert [(r.layer, r.metric) for r in cmp.failures] == [(3, "test_spearman")]
    text = cmp.format()
    lines = text.splitlines()
    assert "1 of 40 values outside tolerance" in lines[0]
    assert lines[1].split() == ["layer", "metric", "baseline", "current", "diff", "tolerance", "status"]
    fail = next(l for l in lines if l.rstrip().endswith("FAIL"))
    assert fail.split()[:2] == ["3", "test_spearman"]
    assert f"{base:.4f}" in fail and f"{base - 0.05:.4f}" in fail and "-0.0500" in fail and "±0.02" in fail
    only = cmp.format(only_failures=True)
    assert len(only.splitlines()) == 4  # summary, header, rule, the one failing row


def test_overrides_are_used_and_kept_on_update(tmp_path, run):
    store = BaselineStore(tmp_path)
    store.update_from(run)
    path = store.path_for("gb1_sampled", "tiny_esm", "pretrained")
    doc = json.loads(path.read_text())
    doc["tolerances"]["overrides"] = {"test_spearman": {"atol": 0.1}}
    path.write_text(json.dumps(doc))
    cur = one(run, init="pretrained").copy()
    cur.loc[cur["layer"] == 3, "test_spearman"] -= 0.05
    assert store.compare(cur).ok  # loosened by the reviewer
    store.update_from(run)
    assert json.loads(path.read_text())["tolerances"]["overrides"] == {"test_spearman": {"atol": 0.1}}


def test_tolerance_lookup_order():
    assert tolerance_for("test_spearman").atol == 0.02
    assert tolerance_for("val_loss").rtol == 0.10
    assert tolerance_for("test_spearman", {"test_*": 0.5}).atol == 0.5
    assert tolerance_for("test_spearman", {"test_spearman": {"atol": 0.1, "rtol": 0.2}}).allowed(1.0) == pytest.approx(
        0.3
    )


def test_missing_baseline_message_gives_the_command(tmp_path, run):
    store = BaselineStore(tmp_path)
    with pytest.raises(BaselineMissing) as err:
        store.compare(one(run, init="random"))
    msg = str(err.value)
    assert (
        "pytest benchmarks --plm-models tiny_esm --plm-tasks gb1_sampled --plm-inits random "
        "--plm-seeds 0,42,12345 --plm-update-baselines"
    ) in msg
    assert str(tmp_path / "gb1_sampled" / "tiny_esm--random.json") in msg
    with pytest.raises(BaselineMissing) as err:
        store.compare(one(run, init="pretrained"))
    assert err.value.command == (
        "pytest benchmarks --plm-models tiny_esm --plm-tasks gb1_sampled --plm-inits pretrained --plm-update-baselines"
    )


def test_fewer_seeds_compare_with_their_own_stored_values_and_new_layers_fail(tmp_path, run):
    store = BaselineStore(tmp_path)
    store.update_from(run)
    rnd = one(run, init="random")
    cmp = store.compare(rnd[rnd["seed"] == 42])
    assert cmp.ok, cmp.format()
    assert any("comparing against the baseline's values for the run's seeds" in n for n in cmp.notes)
    deeper = records_to_frame(curve_records("tiny_esm", "gb1_sampled", "pretrained", {None: [(0.5, 0.5)] * 6}))
    cmp = store.compare(deeper)
    assert [r.status for r in cmp.rows if r.layer == 5] == ["NEW"]
    assert not cmp.ok and "--plm-update-baselines" in cmp.format()
    partial = one(run, init="pretrained")
    cmp = store.compare(partial[partial["layer"] <= 1])
    assert cmp.ok and any("(not compared): 2-4" in n for n in cmp.notes)


def test_compare_refuses_several_groups_and_corrupt_files(tmp_path, run):
    store = BaselineStore(tmp_path)
    with pytest.raises(BaselineError, match="one \\(task, model, init, protocol\\)"):
        store.compare(run)
    path = store.path_for("gb1_sampled", "tiny_esm", "stat")
    path.parent.mkdir(parents=True)
    path.write_text("{broken")
    with pytest.raises(BaselineError, match="not valid JSON"):
        store.compare(one(run, init="stat"))


def test_safe_names_for_hub_models(tmp_path):
    assert safe_name("hf:facebook/esm2_t6_8M_UR50D") == "hf_facebook__esm2_t6_8M_UR50D"
    assert (
        BaselineStore(tmp_path).path_for("gb1_sampled", "carp_640M@step=78810", "stat").name
        == "carp_640M@step=78810--stat.json"
    )


def test_more_seeds_than_the_baseline_compare_the_shared_seed(tmp_path):
    """A baseline stored from seed 42 still checks seed 42 of a 42,0,12345 run, value for value."""
    three = one(records_to_frame(synthetic_records(models={"tiny_esm": 4}, tasks=("gb1_sampled",))))
    store = BaselineStore(tmp_path)
    store.update_from(three[three["seed"] == 42])
    cmp = store.compare(three)
    assert any("shared seed(s) [42] value for value" in n for n in cmp.notes), cmp.notes
    assert cmp.ok, cmp.format(only_failures=True)
    # the seed means of the three seeds would not have matched the seed-42 baseline
    assert (
        not three.groupby("layer")["test_spearman"]
        .mean()
        .equals(three[three["seed"] == 42].groupby("layer")["test_spearman"].mean())
    )


def test_no_regression_fails_only_outside_tolerance_and_bootstrap_noise(tmp_path):
    from pytest_plmtransfer.results.ledger import records_to_frame
    from pytest_plmtransfer.testing import curve_records

    def records(se):
        recs = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.6, 0.6)]})
        for r in recs:
            r["intervals"] = {"test_spearman": {"se": se, "low": 0.4, "high": 0.8, "n_resamples": 1000}}
        return records_to_frame(recs)

    store = BaselineStore(tmp_path)
    store.update_from(records(0.01))
    path = store.path_for("gb1_sampled", "m", "pretrained")
    doc = json.loads(path.read_text())
    assert doc["layers"]["1"]["intervals"]["none"]["test_spearman"]["se"] == 0.01
    doc["layers"]["1"]["mean"]["test_spearman"] += 0.05
    doc["layers"]["1"]["per_seed"]["none"]["test_spearman"] += 0.05
    path.write_text(json.dumps(doc))

    # 0.05 is outside the tolerance (0.02) and outside the noise 1.96 * sqrt(2) * 0.01 = 0.028
    failing = store.compare(records(0.01), ["test_spearman"], level=0.05)
    assert [(r.layer, r.status) for r in failing.rows] == [(0, "OK"), (1, "FAIL")]
    assert failing.rows[1].noise == pytest.approx(1.959964 * 2**0.5 * 0.01, rel=1e-5)
    # noisier current results (SE 0.05): the same 0.05 change is within the noise
    noisy = store.compare(records(0.05), ["test_spearman"], level=0.05)
    assert noisy.ok and "noise ±" in noisy.format()
    # without a level (or without stored intervals) the tolerance alone decides, as before
    assert not store.compare(records(0.05), ["test_spearman"]).ok
    doc["layers"]["1"].pop("intervals")
    path.write_text(json.dumps(doc))
    old = store.compare(records(0.05), ["test_spearman"], level=0.05)
    assert not old.ok and any("tolerance only" in n for n in old.notes)


def test_last_digit_noise_is_the_same_value_a_real_change_is_not(tmp_path):
    # --plm-update-baselines keeps a reviewed file when only float noise differs (another BLAS)
    from pytest_plmtransfer.judge.baselines import _same_values

    doc = {
        "task": "gb1_sampled",
        "model": "onehot",
        "init": "none",
        "metrics": ["train_mse"],
        "num_layers": 1,
        "seeds": ["none"],
        "tolerances": {},
        "layers": {"0": {"train_mse": 0.9560224351666189}},
    }
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    noisy = json.loads(json.dumps(doc))
    noisy["layers"]["0"]["train_mse"] = 0.9560224351666186
    assert _same_values(path, noisy)
    changed = json.loads(json.dumps(doc))
    changed["layers"]["0"]["train_mse"] = 0.95602
    assert not _same_values(path, changed)
    extra = json.loads(json.dumps(doc))
    extra["layers"]["0"]["test_mse"] = 1.0
    assert not _same_values(path, extra)


def test_stored_baselines_carry_no_host_name_or_absolute_path(tmp_path):
    recs = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.6, 0.6)]})
    for r in recs:
        r["host"] = "alices-laptop.example.org"
        r["data"]["source"] = "/home/alice/flip/splits/gb1/splits.zip"
        r["weights"] = {"model": "hf:/home/alice/checkpoints/m", "init": "pretrained", "seed": None}
    BaselineStore(tmp_path).update_from(records_to_frame(recs))
    text = (tmp_path / "gb1_sampled" / "m--pretrained.json").read_text()
    assert "alice" not in text and "splits/gb1/splits.zip" in text
    # the same weights from another checkout are the same weights
    other = [{**r, "weights": {**r["weights"], "model": "hf:/ci/work/checkpoints/m"}} for r in recs]
    assert BaselineStore(tmp_path).compare(records_to_frame(other)).weights_changed is None


def test_a_failing_comparison_says_when_the_weights_are_not_the_baselines(tmp_path):
    recs = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.6, 0.6)]})
    store_dir = tmp_path
    BaselineStore(store_dir).update_from(records_to_frame(recs))
    changed = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.2, 0.2), (0.3, 0.3)]})
    for r in changed:
        r["weights"] = {**r["weights"], "weights_sha256": "f" * 64}
    cmp = BaselineStore(store_dir).compare(records_to_frame(changed))
    assert not cmp.ok
    assert re.search(
        r"m/pretrained on gb1_sampled: \d+ of \d+ values outside tolerance of .*m--pretrained.json; the weights differ "
        r"from the baseline's \(run sha256:[0-9a-f]{12}, baseline sha256:[0-9a-f]{12}\): a new model version",
        cmp.summary(),
    )


def test_shipped_baselines_carry_no_host_name_or_absolute_path():
    shipped = sorted(
        (Path(__file__).parents[1] / "pytest_plmtransfer" / "judge" / "baselines_default").glob("*/*--*.json")
    )
    assert shipped
    for path in shipped:
        doc = json.loads(path.read_text())
        assert "host" not in doc["provenance"], path
        assert not re.search(r'": "(/|\.\./|~)', path.read_text()), path
