"""Claim kinds as classes: parameter validation through each kind, what a kind applies to and
reads, and the registry (built-in kinds, plugin kinds through the hook, refusals)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_plmtransfer.judge.claims import ClaimCase, ClaimsError, parse_claims
from pytest_plmtransfer.judge.claims.base import ClaimKind, ClaimOutcome, Param, non_negative
from pytest_plmtransfer.judge.claims.kinds import (
    BUILTIN_KINDS,
    ClaimKindError,
    get_kind,
    kind_names,
    register_kind,
    register_plugin_kinds,
    unregister_kind,
)
from pytest_plmtransfer.testing import check_claim_kind


def validate(kind: str, params) -> tuple[dict, list[str]]:
    return get_kind(kind).validate_params(params)


# ------------------------------------------------------------------------------ parameters


def test_defaults_are_filled_in_and_optional_parameters_stay_absent():
    assert validate("beats_onehot", None) == ({"margin": 0.0, "level": 0.05}, [])
    assert validate("pretrained_beats_stat", {"at_layer": 3}) == ({"at_layer": 3, "level": 0.05, "margin": 0.0}, [])
    params, problems = validate("saturates_by", {"fraction": 0.5})
    assert params == {"fraction": 0.5, "tolerance": 0.02, "level": 0.05} and problems == []
    assert validate("matches_paper", {}) == ({}, [])
    assert validate("no_regression", {"metrics": ["test_*"]}) == ({"metrics": ["test_*"], "level": 0.05}, [])


@pytest.mark.parametrize(
    ("kind", "params", "problem"),
    [
        ("beats_onehot", {"margin": -0.1}, "'margin' must be >= 0, got -0.1"),
        ("beats_onehot", {"margin": True}, "parameter 'margin' must be int/float, got True"),
        ("beats_onehot", {"level": 0.5}, "'level' must be in (0, 0.5), got 0.5"),
        ("beats_onehot", {"level": 0}, "'level' must be in (0, 0.5), got 0"),
        ("beats_onehot", {"metric": 3}, "parameter 'metric' must be str, got 3"),
        (
            "beats_onehot",
            {"tolerance": 1},
            "unknown parameter 'tolerance' for beats_onehot; known: level, margin, metric, selection_metric",
        ),
        ("saturates_by", {"layer": 1.5}, "parameter 'layer' must be int/dict, got 1.5"),
        ("saturates_by", {"layer": -1}, "'layer' must be >= 0, got -1"),
        ("saturates_by", {"fraction": 0}, "'fraction' must be in (0, 1], got 0"),
        ("saturates_by", {"fraction": 1.2}, "'fraction' must be in (0, 1], got 1.2"),
        ("saturates_by", {"layer": 2, "tolerance": -0.01}, "'tolerance' must be >= 0, got -0.01"),
        ("saturates_by", {}, "saturates_by needs exactly one of 'layer'"),
        ("saturates_by", {"layer": 2, "fraction": 0.5}, "saturates_by needs exactly one of 'layer'"),
        (
            "pretrained_beats_random",
            {"at_layer": "first"},
            "'at_layer' must be \"selected\", \"last\" or a layer index, got 'first'",
        ),
        ("pretrained_beats_random", {"at_layer": 1.0}, "parameter 'at_layer' must be str/int, got 1.0"),
        ("pretrained_beats_random", {"margin": -1}, "'margin' must be >= 0, got -1"),
        ("no_regression", {"metrics": ["a", 1]}, "'metrics' must be a list of metric-key globs"),
        ("no_regression", {"metrics": "test_*"}, "parameter 'metrics' must be list, got 'test_*'"),
        ("matches_paper", {"tolerance": -0.5}, "'tolerance' must be >= 0, got -0.5"),
        ("matches_paper", [], "'params' must be an object, got list"),
    ],
)
def test_each_kind_checks_its_parameters(kind, params, problem):
    _params, problems = validate(kind, params)
    assert any(p.startswith(problem) for p in problems), problems


def test_every_problem_is_reported_and_prefixed_with_the_entry_in_the_file():
    _params, problems = validate("saturates_by", {"layer": -1, "tolerance": -1, "level": 0.9, "x": 1})
    assert len(problems) == 4
    with pytest.raises(ClaimsError) as err:
        parse_claims({"claims": [{"kind": "saturates_by", "params": {"layer": -1, "tolerance": -1}}]}, "f.json")
    assert err.value.problems == [
        "claims[0] (saturates_by): 'layer' must be >= 0, got -1",
        "claims[0] (saturates_by): 'tolerance' must be >= 0, got -1",
    ]


def test_inits_defaults_and_fixed_inits_come_from_the_kind():
    specs = parse_claims(
        {
            "claims": [
                {"kind": "beats_onehot"},
                {"kind": "no_regression"},
                {"kind": "matches_paper"},
                {"kind": "pretrained_beats_random", "inits": "pretrained"},
            ]
        }
    ).claims
    assert [s.inits for s in specs] == [("pretrained",), ("*",), ("pretrained", "none"), ("pretrained",)]
    assert get_kind("pretrained_beats_stat").check_inits(("pretrained", "stat")) == (
        "pretrained_beats_stat always compares init 'pretrained'; drop 'inits' or set it to [\"pretrained\"]"
    )
    assert get_kind("beats_onehot").check_inits(("random",)) is None


# ------------------------------------------------------------------------------ what a kind applies to and reads


def test_what_each_kind_applies_to_compares_with_and_skips():
    case = ClaimCase("c", "beats_onehot", "m", "t", "pretrained")
    with_onehot = ("beats_onehot", "not_always_beats_onehot")
    assert all(get_kind(k).comparators(case) == ("onehot",) for k in with_onehot)
    assert all(get_kind(k).comparators(case) == () for k in kind_names() if k not in with_onehot)
    assert [k for k in kind_names() if get_kind(k).for_onehot] == ["no_regression", "matches_paper"]
    assert get_kind("pretrained_beats_random").applies_to("m", {"pretrained", "random"})
    assert not get_kind("pretrained_beats_random").applies_to("m", {"pretrained", "stat"})
    assert not get_kind("pretrained_beats_stat").applies_to("m", ())
    assert get_kind("beats_onehot").applies_to("m", ())
    updating, comparing = SimpleNamespace(update_baselines=True), SimpleNamespace(update_baselines=False)
    assert "rewrites the baselines" in get_kind("no_regression").skip_reason(updating)
    assert get_kind("no_regression").skip_reason(comparing) is None
    assert all(get_kind(k).skip_reason(updating) is None for k in kind_names() if k != "no_regression")


# ------------------------------------------------------------------------------ the registry


class Always(ClaimKind):
    name = "always_test_kind"
    params = {"value": Param((bool,), None)}

    def evaluate(self, case, frame, baselines):
        return ClaimOutcome(True, "always")


@pytest.fixture
def always():
    yield Always
    unregister_kind(Always.name)


def test_builtin_kinds_in_their_order():
    assert kind_names()[:12] == (
        "beats_onehot",
        "saturates_by",
        "pretrained_beats_random",
        "pretrained_beats_stat",
        "stat_beats_random",
        "equivalent",
        "similar_across_models",
        "not_always_beats_onehot",
        "declines_after_peak",
        "trend",
        "no_regression",
        "matches_paper",
    )
    assert [type(get_kind(c.name)) for c in BUILTIN_KINDS] == list(BUILTIN_KINDS)


def test_a_registered_kind_is_accepted_by_claims_files_and_forgotten_when_unregistered(always):
    with pytest.raises(ClaimsError, match="'kind' is 'always_test_kind'; must be one of beats_onehot"):
        parse_claims({"claims": [{"kind": "always_test_kind"}]})
    register_kind(always)
    register_kind(always)  # the same class again (a conftest seen twice) is no error
    assert kind_names()[-1] == "always_test_kind"
    spec = parse_claims({"claims": [{"kind": "always_test_kind"}]}).claims[0]
    assert spec.inits == ("pretrained",) and spec.params == {}
    with pytest.raises(ClaimsError, match="'kind' is 'x'; must be one of .*matches_paper, always_test_kind"):
        parse_claims({"claims": [{"kind": "x"}]})
    unregister_kind(always.name)
    assert "always_test_kind" not in kind_names()
    unregister_kind("beats_onehot")  # built-in kinds stay
    assert "beats_onehot" in kind_names()


def test_registration_refuses_what_is_not_a_usable_kind(always):
    register_kind(always)
    other = type("Other", (Always,), {})  # another class under the same name
    with pytest.raises(ClaimKindError, match="'always_test_kind' of .*Other is already registered by .*Always"):
        register_kind(other)
    with pytest.raises(ClaimKindError, match="subclass of ClaimKind"):
        register_kind(object)
    with pytest.raises(ClaimKindError, match="'name' must be a non-empty string"):
        register_kind(type("NoName", (Always,), {"name": "has space"}))
    with pytest.raises(ClaimKindError, match=r"params \['value'\] must be Param"):
        register_kind(type("BadParams", (Always,), {"name": "bad_params", "params": {"value": (int,)}}))
    with pytest.raises(ClaimKindError, match="does not implement evaluate"):
        register_kind(type("NoEvaluate", (ClaimKind,), {"name": "no_evaluate"}))
    with pytest.raises(ClaimKindError, match="already registered"):
        register_kind(type("Shadow", (Always,), {"name": "beats_onehot"}))
    assert "bad_params" not in kind_names() and "no_evaluate" not in kind_names()


def test_plugin_kinds_come_from_every_hook_implementation(always, monkeypatch):
    monkeypatch.setattr("pytest_plmtransfer.judge.claims.kinds.entry_points", lambda group: [])
    hook = SimpleNamespace(
        pytest_plmtransfer_claim_kinds=lambda: [[always], None, [get_kind("beats_onehot").__class__]]
    )
    # only the new name is reported, for unregistering at the end of the session
    assert register_plugin_kinds(hook) == ["always_test_kind"]
    assert register_plugin_kinds(hook) == []
    assert isinstance(get_kind("always_test_kind"), Always)


def test_a_hook_returning_something_else_than_a_list_is_refused(always, monkeypatch):
    monkeypatch.setattr("pytest_plmtransfer.judge.claims.kinds.entry_points", lambda group: [])
    hook = SimpleNamespace(pytest_plmtransfer_claim_kinds=lambda: [always])  # the class, not [class]
    with pytest.raises(ClaimKindError, match="must return a list of ClaimKind classes, got <class"):
        register_plugin_kinds(hook)


# ------------------------------------------------------------------------------ the contract (testing.check_claim_kind)

#: a valid "params" object for the built-in kinds that need one
CONTRACT_PARAMS = {
    "saturates_by": {"layer": 2},
    "equivalent": {"other_init": "random"},
    "similar_across_models": {"models": ["tiny_carp"]},
    "not_always_beats_onehot": {"models": ["tiny_carp"]},
    "trend": {"axis": "layer"},
}


@pytest.mark.parametrize("cls", BUILTIN_KINDS, ids=lambda cls: cls.name)
def test_every_builtin_kind_keeps_the_contract(cls):
    outcome = check_claim_kind(cls, CONTRACT_PARAMS.get(cls.name))
    # the two kinds that compare with stored numbers have none here: missing, and saying so
    assert outcome.missing == (cls.name in ("no_regression", "matches_paper")), outcome.message
    assert cls.name in kind_names()  # a built-in kind stays registered


def test_the_contract_names_what_a_broken_kind_breaks(always):
    with pytest.raises(AssertionError, match="always_test_kind: with no records the outcome must be missing"):
        check_claim_kind(always)  # it passes even on nothing: it never says what is missing
    assert always.name not in kind_names()  # registered for the check only

    class Lenient(Always):
        name = "lenient_test_kind"

        def validate_params(self, raw):
            return dict(raw or {}), []

    with pytest.raises(AssertionError, match="lenient_test_kind: value='text' is accepted"):
        check_claim_kind(Lenient)

    class BadDefault(Always):
        name = "bad_default_test_kind"
        params = {"k": Param((int,), -1, non_negative)}

    with pytest.raises(AssertionError, match="the default of 'k' fails its own check"):
        check_claim_kind(BadDefault)


@pytest.mark.slow
def test_a_kind_a_conftest_registers_through_the_hook_keeps_the_contract(pytester):
    """The README's example kind, registered by the plugin from a conftest's hook, checked by a
    user's test with check_claim_kind."""
    pytester.makeconftest(
        """
        from pytest_plmtransfer.judge.claims import ClaimKind, ClaimOutcome, Param
        from pytest_plmtransfer.results.aggregate import select


        class Reaches(ClaimKind):
            name = "reaches"
            params = {"minimum": Param((int, float), 0.0), "metric": Param((str,))}
            for_onehot = False

            def evaluate(self, case, frame, baselines):
                mine = self.own(case, frame)
                if isinstance(mine, ClaimOutcome):
                    return mine
                sel_m, test_m = self.metrics(case, mine)
                best = select(mine, sel_m, test_m)
                passed = best.test_value >= case.params["minimum"]
                return ClaimOutcome(passed, f"{test_m} {best.test_value:.3f}", {"layer": best.layer})


        def pytest_plmtransfer_claim_kinds():
            return [Reaches]
        """
    )
    pytester.makepyfile(
        """
        from pytest_plmtransfer.judge.claims import get_kind
        from pytest_plmtransfer.testing import check_claim_kind


        def test_reaches(plm_stages):
            kind = get_kind("reaches")  # registered by the plugin from the conftest's hook
            outcome = check_claim_kind(type(kind), {"minimum": 0.5})
            assert outcome.passed and not outcome.missing, outcome.message
            assert check_claim_kind(type(kind), {"minimum": 0.99}).passed is False
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "reaches" not in kind_names()  # forgotten when that session ended
