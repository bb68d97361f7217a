"""The claim kinds the papers' findings need, and every kind under the authors' protocol
(last layers, repstat.py's t-test), on synthetic records from the record factory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scipy import stats

from pytest_plmtransfer.judge.claims import ClaimCase, evaluate, resolve
from pytest_plmtransfer.judge.claims.evaluate import protocol_skip
from pytest_plmtransfer.results.ledger import records_to_frame
from pytest_plmtransfer.testing import curve_records

T = "gb1_sampled"


def curve(model, init, tests, seed=None, protocol="authors", **extra):
    """Records whose test value at layer i is tests[i] (validation = test)."""
    recs = curve_records(model, T, init, {seed: [(v, v) for v in tests]})
    for r in recs:
        r.update(protocol=protocol, **extra)
    return recs


def frame(*groups):
    return records_to_frame([r for g in groups for r in g])


def case(kind, model="m", init="pretrained", protocol="authors", xfail=None, **params):
    return ClaimCase(kind, kind, model, T, init, params, xfail_reason=xfail, protocol=protocol)


def outcome(c, *groups):
    out = evaluate(c, frame(*groups))
    assert not out.missing, out.message
    return out


def check(c, *groups, passed):
    """The claim passes or fails as expected, and a declared expected failure of a failing claim is XFAIL."""
    out = outcome(c, *groups)
    assert out.passed is passed, out.message
    if not passed:
        xf = ClaimCase(c.name, c.kind, c.model, c.task, c.init, c.params, xfail_reason="known", protocol=c.protocol)
        assert resolve(xf, out)[0] == "xfailed"
    return out


ONEHOT = curve("onehot", "none", [0.50])


# ------------------------------------------------------------------------------ protocols


def test_a_claim_reads_only_records_of_its_protocol():
    mine = curve("m", "pretrained", [0.4, 0.6])
    other = curve("m", "pretrained", [0.4, 0.4], protocol="plmtransfer")
    out = evaluate(case("beats_onehot"), frame(mine, ONEHOT))
    assert out.passed and out.detail["protocol"] == "authors"
    out = evaluate(case("beats_onehot"), frame(other, curve("onehot", "none", [0.5], protocol="plmtransfer")))
    assert out.missing and "no records of protocol 'authors'" in out.message and "--plm-protocol authors" in out.message
    # a claim naming no protocol takes the records' own, and refuses to mix two
    assert evaluate(case("beats_onehot", protocol=None), frame(mine, ONEHOT)).passed
    mixed = evaluate(case("beats_onehot", protocol=None), frame(mine, ONEHOT, other))
    assert mixed.missing and "mix the protocols authors, plmtransfer" in mixed.message
    # the same (model, task, layer, init, seed) under both protocols: the newer one does not hide the other
    newer = [dict(r, timestamp="2025-01-01T00:00:00+00:00") for r in other]
    assert evaluate(case("beats_onehot"), frame(mine, ONEHOT, newer)).passed
    # records written before the field existed are plmtransfer
    old = [{k: v for k, v in r.items() if k != "protocol"} for r in other]
    assert evaluate(case("saturates_by", protocol="plmtransfer", layer=1), frame(old)).passed


def test_a_claim_of_another_protocol_than_the_run_skips():
    c = case("beats_onehot")
    assert "--plm-protocol authors" in protocol_skip(c, SimpleNamespace(protocol="plmtransfer", from_ledger=None))
    assert protocol_skip(c, SimpleNamespace(from_ledger=None))  # before --plm-protocol existed: plmtransfer
    assert protocol_skip(c, SimpleNamespace(protocol="authors", from_ledger=None)) is None
    assert protocol_skip(c, SimpleNamespace(protocol="plmtransfer", from_ledger="ledger/")) is None
    assert protocol_skip(case("beats_onehot", protocol=None), SimpleNamespace(protocol="x", from_ledger=None)) is None


# ------------------------------------------------------------------------------ the authors' protocol


def test_beats_onehot_compares_last_layers_under_authors():
    peaked = curve("m", "pretrained", [0.4, 0.7, 0.45])  # the chosen layer beats one-hot, the last does not
    out = check(case("beats_onehot"), peaked, ONEHOT, passed=False)
    assert "L2 0.450 vs one-hot 0.500" in out.message and "last layer (authors' protocol)" in out.message
    assert evaluate(
        case("beats_onehot", protocol="plmtransfer"),
        frame(
            curve("m", "pretrained", [0.4, 0.7, 0.45], protocol="plmtransfer"),
            curve("onehot", "none", [0.5], protocol="plmtransfer"),
        ),
    ).passed


def test_pretrained_beats_random_is_repstats_one_sided_t_test_at_the_last_layer():
    pre = curve("m", "pretrained", [0.3, 0.9, 0.60])
    seeds = {42: 0.55, 0: 0.52, 12345: 0.54}
    rand = [r for s, v in seeds.items() for r in curve("m", "random", [0.3, 0.95, v], seed=s)]
    out = check(case("pretrained_beats_random"), pre, rand, passed=True)
    expected = stats.ttest_1samp(list(seeds.values()), 0.60, alternative="less")
    assert out.detail["p_value"] == pytest.approx(expected.pvalue) and out.detail["at_layer"] == "last"
    assert "one-sided one-sample t-test" in out.message and "paired bootstrap" not in out.message
    close = [
        r for s, v in {42: 0.58, 0: 0.62, 12345: 0.59}.items() for r in curve("m", "random", [0.3, 0.5, v], seed=s)
    ]
    check(case("pretrained_beats_random"), pre, close, passed=False)


def test_saturates_by_under_authors_is_what_the_layers_after_k_add():
    rising = curve("m", "pretrained", [0.1, 0.5, 0.52, 0.53, 0.60])
    out = check(case("saturates_by", layer={"carp_*": 3, "*": 2}, tolerance=0.05), rising, passed=False)
    assert "layer 2 0.520, last layer 4 0.600" in out.message and "+0.080" in out.message
    check(case("saturates_by", layer=3, tolerance=0.1), rising, passed=True)
    carp = curve("carp_x", "pretrained", [0.1, 0.5, 0.52, 0.58, 0.60])
    out = check(case("saturates_by", model="carp_x", layer={"carp_*": 3, "*": 1}, tolerance=0.05), carp, passed=True)
    assert out.detail["k"] == 3


# ------------------------------------------------------------------------------ the new kinds


def _seeded(model, init, lasts, head=(0.3, 0.5)):
    return [r for s, v in zip((42, 0, 12345), lasts) for r in curve(model, init, [*head, v], seed=s)]


def test_stat_beats_random():
    stat = _seeded("m", "stat", [0.70, 0.72, 0.71])
    rand = _seeded("m", "random", [0.50, 0.52, 0.49])
    out = check(case("stat_beats_random", init="stat"), stat, rand, passed=True)
    assert "one-sided Welch t-test" in out.message and "stat significantly better" in out.message
    check(case("stat_beats_random", init="stat"), _seeded("m", "stat", [0.50, 0.51, 0.49]), rand, passed=False)


def test_equivalent_within_a_margin():
    pre = curve("m", "pretrained", [0.3, 0.80])
    check(
        case("equivalent", init="stat", other_init="pretrained", margin=0.03),
        _seeded("m", "stat", [0.79, 0.78, 0.80]),
        pre,
        passed=True,
    )
    out = check(
        case("equivalent", init="stat", other_init="pretrained", margin=0.03),
        _seeded("m", "stat", [0.70, 0.71, 0.69]),
        pre,
        passed=False,
    )
    assert "difference -0.100" in out.message and "outside ±0.03" in out.message


def test_similar_across_models():
    models = {"s": 0.84, "m": 0.85, "l": 0.86}
    groups = [curve(name, "pretrained", [0.3, v]) for name, v in models.items()]
    out = check(case("similar_across_models", model="l", models=["s", "m"], margin=0.03), *groups, passed=True)
    assert "spread 0.020" in out.message
    groups[-1] = curve("l", "pretrained", [0.3, 0.95])
    check(case("similar_across_models", model="l", models=["s", "m"], margin=0.03), *groups, passed=False)
    missing = evaluate(case("similar_across_models", model="l", models=["s", "xl"]), frame(*groups))
    assert missing.missing and "xl" in missing.message


def test_not_always_beats_onehot_needs_one_witness():
    family = {"a": 0.70, "b": 0.45, "c": 0.80}
    groups = [curve(name, "random", [0.3, v], seed=42) for name, v in family.items()]
    c = case("not_always_beats_onehot", model="a", init="random", models=["b", "c"])
    out = check(c, *groups, ONEHOT, passed=True)
    assert (
        out.detail["witnesses"] == ["b"] and "random test_spearman at the last layer (authors' protocol)" in out.message
    )
    groups[1] = curve("b", "random", [0.3, 0.55], seed=42)
    out = check(c, *groups, ONEHOT, passed=False)
    assert "every model's random beats one-hot" in out.message


def test_declines_after_peak():
    check(case("declines_after_peak", margin=0.05), curve("m", "pretrained", [0.3, 0.7, 0.6, 0.5]), passed=True)
    out = check(
        case("declines_after_peak", margin=0.05), curve("m", "pretrained", [0.3, 0.7, 0.69, 0.68]), passed=False
    )
    assert "peak layer 1 (best test value) 0.700, last layer 3 0.680: drop +0.020" in out.message


def test_trend_along_layers_checkpoints_and_sizes():
    rising = curve("m", "pretrained", [0.1, 0.2, 0.3, 0.4, 0.5])
    check(case("trend", axis="layer"), rising, passed=True)
    check(
        case("trend", axis="layer", expect="not_increasing"),
        curve("m", "pretrained", [0.1, 0.5, 0.4, 0.5, 0.45]),
        passed=True,
    )
    out = check(case("trend", axis="layer", expect="not_increasing"), rising, passed=False)
    assert "Spearman rho +1.000 >= 0.9" in out.message
    # pretraining checkpoints: carp@0.125 ... carp (1.0), fraction from the records or the name
    points = {"carp@0.125": 0.60, "carp@0.25": 0.62, "carp@0.5": 0.61, "carp": 0.60}
    cps = [curve(name, "pretrained", [0.3, v]) for name, v in points.items()]
    flat = case("trend", model="carp", axis="checkpoint", fractions=[0.125, 0.25, 0.5], expect="not_increasing")
    out = check(flat, *cps, passed=True)
    assert [p[2] for p in out.detail["points"]] == list(points)
    assert "along checkpoint (at the last layer (authors' protocol): carp@0.125 0.600" in out.message
    cps = [
        curve(name, "pretrained", [0.3, 0.5 + i / 10], checkpoint_fraction=f)
        for i, (name, f) in enumerate(zip(points, (0.125, 0.25, 0.5, 1.0)))
    ]
    check(flat, *cps, passed=False)
    # model sizes from the records' model_params
    sizes = [
        curve(n, "pretrained", [0.3, v], model_params=p)
        for n, v, p in (("s", 0.5, 8e6), ("m", 0.6, 35e6), ("l", 0.7, 650e6))
    ]
    check(case("trend", model="l", axis="size", models=["s", "m"]), *sizes, passed=True)
    no_size = [curve(n, "pretrained", [0.3, v]) for n, v in (("s", 0.5), ("m", 0.6), ("l", 0.7))]
    out = evaluate(case("trend", model="l", axis="size", models=["s", "m"]), frame(*no_size))
    assert out.missing and "model_params" in out.message


@pytest.mark.parametrize(
    ("kind", "params", "problem"),
    [
        ("equivalent", {}, "equivalent needs 'other_init'"),
        ("equivalent", {"other_init": "x"}, "'other_init' must be one of"),
        ("similar_across_models", {}, "similar_across_models needs 'models'"),
        ("similar_across_models", {"models": []}, "'models' must be a non-empty list of model names"),
        ("trend", {}, "trend needs 'axis'"),
        ("trend", {"axis": "checkpoint"}, "trend along checkpoint needs 'fractions'"),
        ("trend", {"axis": "size", "models": ["a"], "expect": "up"}, "'expect' must be increasing or not_increasing"),
        ("trend", {"axis": "checkpoint", "fractions": [1.5]}, "'fractions' must list fractions in (0, 1)"),
        ("saturates_by", {"layer": {"carp_*": -1}}, "'layer' must map model globs to layer indices >= 0"),
    ],
)
def test_new_kinds_check_their_parameters(kind, params, problem):
    from pytest_plmtransfer.judge.claims import get_kind

    _, problems = get_kind(kind).validate_params(params)
    assert any(problem in p for p in problems), problems


def test_the_session_computes_what_the_new_kinds_compare_with():
    from pytest_plmtransfer.judge.claims import get_kind

    assert get_kind("trend").comparators(case("trend", model="carp", axis="checkpoint", fractions=[0.125, 0.5])) == (
        "carp@0.125",
        "carp@0.5",
    )
    assert get_kind("not_always_beats_onehot").comparators(case("x", model="a", models=["b"])) == ("b", "onehot")
    assert get_kind("similar_across_models").comparators(case("x", model="a", models=["a", "b"])) == ("b",)
    assert get_kind("stat_beats_random").applies_to("m", {"stat", "random"})
    assert not get_kind("stat_beats_random").applies_to("m", {"pretrained", "random"})
