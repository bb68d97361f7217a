"""The authors' results table (paper/reference.json), ``plmtransfer paper`` and ``matches_paper``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_plmtransfer.judge.baselines import BaselineStore
from pytest_plmtransfer.judge.claims import ClaimCase, evaluate
from pytest_plmtransfer.judge.paper import PaperReference, PaperReferenceError
from pytest_plmtransfer.report.cli import main
from pytest_plmtransfer.results.ledger import records_to_frame
from pytest_plmtransfer.testing import curve_records, write_ledger

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "baselines" / "paper" / "reference.json"
PLMS = (
    "carp_600k",
    "carp_38M",
    "carp_76M",
    "carp_640M",
    "esm1_t6_43M_UR50S",
    "esm1_t12_85M_UR50S",
    "esm1_t34_670M_UR50S",
    "esm1b_t33_650M_UR50S",
)


def authors(records, protocol="authors"):
    for r in records:
        r["protocol"] = protocol
    return records


@pytest.fixture(scope="module")
def ref() -> PaperReference:
    return PaperReference.load(SHIPPED)


def test_the_whole_table_with_a_source_for_every_value(ref):
    tasks = {r.task for r in ref.rows}
    assert len(tasks) == 10 and {"ss3_cb513", "ss3_ts115", "ss3_casp12", "meltome_mixed", "scl_balanced"} <= tasks
    for task in tasks:
        metric = "test_spearman" if task.startswith(("gb1", "aav", "meltome")) else "test_accuracy"
        for model in PLMS:
            assert {i for i in ("pretrained", "random", "stat") if ref.value(task, model, i, metric)} == {
                "pretrained",
                "random",
                "stat",
            }, (task, model)
        assert ref.value(task, "onehot", "none", metric) is not None
    assert len(ref.rows) == 10 * (1 + 8 * 3) + 10  # + one-hot's NDCG / ROC-AUC
    for source in ref.sources.values():
        assert source["repository"] == "microsoft/protein-transfer" and len(source["commit"]) == 40
        assert source["file"].startswith("sandbox/") and isinstance(source["cell"], int)
    assert "results_reorg_baselines.ipynb cell 10" in ref.source_of(ref.rows[0])
    assert len(ref.best_layers) == 80 and ref.best_layers[("aav_one_vs_many", "carp_640M")] == 44


@pytest.mark.parametrize(
    ("task", "model", "init", "expected"),
    [  # the table in SPEC.md, and the one-hot 0.190 on aav_one_vs_many
        ("gb1_sampled", "onehot", "none", 0.789),
        ("gb1_low_vs_high", "onehot", "none", 0.322),
        ("gb1_two_vs_rest", "onehot", "none", 0.543),
        ("gb1_sampled", "carp_640M", "random", 0.831),
        ("gb1_low_vs_high", "esm1_t6_43M_UR50S", "stat", 0.346),
        ("gb1_two_vs_rest", "esm1b_t33_650M_UR50S", "stat", 0.411),
        ("aav_one_vs_many", "onehot", "none", 0.190),
    ],
)
def test_values_agree_with_the_spec(ref, task, model, init, expected):
    assert round(ref.value(task, model, init, "test_spearman").value, 3) == expected


def test_aav_one_vs_many_every_plm_beats_onehot(ref):
    plms = [ref.value("aav_one_vs_many", m, "pretrained", "test_spearman").value for m in PLMS]
    assert (
        min(plms) > 0.36
        and max(plms) < 0.52
        and ref.value("aav_one_vs_many", "onehot", "none", "test_spearman").value < 0.2
    )


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d.update(format="x/1"), "'format' must be 'plmtransfer-paper-reference/2'"),
        (lambda d: d["values"][3].update(value="0.5"), "values[3]: 'value' must be a finite number, got '0.5'"),
        (lambda d: d["values"][4].update(source="nowhere"), "values[4]: source 'nowhere' is not a key of 'sources'"),
        (lambda d: d["values"][5].pop("metric"), "values[5]: needs the keys task, model, init, metric, value, source"),
    ],
)
def test_a_malformed_table_is_one_line_naming_file_and_row(tmp_path, mutate, problem):
    doc = json.loads(SHIPPED.read_text())
    mutate(doc)
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PaperReferenceError) as exc:
        PaperReference.load(path)
    assert str(exc.value) == f"{path}: {problem}"


def test_only_the_last_layer_of_the_tables_protocol_is_compared(ref):
    carp = curve_records("carp_600k", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.8, 0.77)]})
    rand = curve_records(
        "carp_600k", "gb1_sampled", "random", {42: [(0.5, 0.5), (0.6, 0.60)], 0: [(0.5, 0.5), (0.6, 0.1)]}
    )
    ours = curve_records("carp_640M", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.8, 0.87)]})
    rows = ref.compare(records_to_frame(authors(carp + rand) + authors(ours, "plmtransfer")))
    got = [(r.ref.model, r.ref.init, r.ref.metric, r.status) for r in rows]
    assert got == [("carp_600k", "pretrained", "test_spearman", "OK"), ("carp_600k", "random", "test_spearman", "FAIL")]
    assert rows[1].seed_used == "42" and rows[1].current == pytest.approx(0.60) and rows[1].layer == 1
    assert (
        ref.compare(records_to_frame(curve_records("carp_600k", "gb1_sampled", "pretrained", {None: [(0.5, 0.5)]})))
        == []
    )


def test_paper_command(tmp_path, capsys):
    recs = authors(curve_records("carp_600k", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.8, 0.70)]}))
    recs += authors(curve_records("onehot", "gb1_sampled", "none", {None: [(0.8, 0.789)]}))
    recs += curve_records("antiberty", "gb1_sampled", "pretrained", {None: [(0.5, 0.5)]})  # plmtransfer
    path = write_ledger(tmp_path / "l.json", recs)
    baselines = ["--baselines", str(REPO / "baselines")]
    assert main(["paper", str(path), *baselines]) == 1
    out = capsys.readouterr().out
    assert "carp_600k" in out and "-0.086" in out and "FAIL" in out and "0.789" in out
    assert "1 record(s) of protocol plmtransfer not compared" in out
    assert "3 of 260 reference values compared; 1 outside ±0.05: FAIL" in out
    assert main(["paper", str(path), *baselines, "--tolerance", "0.1"]) == 0
    assert "MISSING" not in capsys.readouterr().out
    assert main(["paper", str(path), *baselines, "--all"]) == 1
    out = capsys.readouterr().out
    assert out.count("MISSING") == 257 and "ss3_casp12" in out


def test_paper_command_errors_are_one_line(tmp_path, capsys):
    assert main(["paper", str(tmp_path / "absent.json")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    bad = tmp_path / "b" / "paper"
    bad.mkdir(parents=True)
    (bad / "reference.json").write_text('{"format": "plmtransfer-paper-reference/2", "values": [{"task": 1}]}')
    path = write_ledger(tmp_path / "l.json", curve_records("m", "gb1_sampled", "pretrained", {None: [(0.5, 0.5)]}))
    assert main(["paper", str(path), "--baselines", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reference.json: values[0]: needs the keys" in err


def case(model, init="pretrained", protocol="authors", **params):
    return ClaimCase("matches_paper", "matches_paper", model, "gb1_sampled", init, params, protocol=protocol)


def test_matches_paper():
    store = BaselineStore(REPO / "baselines")
    carp = authors(curve_records("carp_600k", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.8, 0.77)]}))
    out = evaluate(case("carp_600k"), records_to_frame(carp), store)
    assert out.passed and "the authors' 0.786" in out.message and "results_reorg_baselines.ipynb cell 10" in out.message
    far = authors(curve_records("carp_600k", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.8, 0.70)]}))
    out = evaluate(case("carp_600k"), records_to_frame(far), store)
    assert not out.passed and "FAIL" in out.message and "-0.086" in out.message
    # the table's protocol only: plmtransfer records of the same model are not judged against it
    ours = authors(
        curve_records("carp_600k", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.8, 0.70)]}), "plmtransfer"
    )
    out = evaluate(case("carp_600k"), records_to_frame(ours), store)
    assert out.missing and "--plm-protocol authors" in out.message
    assert evaluate(case("carp_600k", protocol=None), records_to_frame(ours), store).missing
    other = authors(curve_records("antiberty", "gb1_sampled", "pretrained", {None: [(0.5, 0.5)]}))
    assert evaluate(case("antiberty"), records_to_frame(other), store).missing
