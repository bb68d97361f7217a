"""Claims: the file format, its validation, expansion, each kind's evaluation and xfail handling."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from scipy import stats

from pytest_plmtransfer.judge.baselines import BaselineStore
from pytest_plmtransfer.judge.claims import (
    ClaimCase,
    ClaimsError,
    claim_record,
    evaluate,
    expand_claims,
    load_claims,
    parse_claims,
    resolve,
)
from pytest_plmtransfer.results.ledger import records_to_frame
from pytest_plmtransfer.testing import curve_records

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SUITE = [("onehot", t, "none") for t in ("gb1_sampled", "gb1_low_vs_high", "gb1_two_vs_rest")] + [
    (m, t, i)
    for m in ("antiberty", "carp_600k", "esm2_t6_8M_UR50D")
    for t in ("gb1_sampled", "gb1_low_vs_high", "gb1_two_vs_rest")
    for i in ("pretrained", "random", "stat")
]


def case(kind: str, model: str = "m", task: str = "gb1_sampled", init: str = "pretrained", **params) -> ClaimCase:
    spec = parse_claims({"claims": [{"kind": kind, "params": params}]}).claims[0]
    return ClaimCase(kind, kind, model, task, init, dict(spec.params))


def frame(*groups):
    return records_to_frame([r for g in groups for r in g])


ONEHOT_07 = curve_records("onehot", "gb1_sampled", "none", {None: [(0.71, 0.70)]})


# ------------------------------------------------------------------------------ the file


def test_repository_claims_file_is_valid_and_expands_for_the_default_suite():
    claims = load_claims(REPO / "baselines" / "claims.json")
    cases = expand_claims(claims, DEFAULT_SUITE)
    ids = {c.id for c in cases}
    assert "beats_onehot[antiberty-gb1_sampled-pretrained]" in ids
    assert "pretrained_beats_random[carp_600k-gb1_two_vs_rest-pretrained]" in ids
    assert "no_regression[onehot-gb1_sampled-none]" in ids
    assert not any(c.id.startswith("beats_onehot[onehot") for c in cases)
    # one test per id
    assert len(ids) == len(cases)
    # every expected failure carries a reason
    assert all(c.xfail_reason for c in cases if c.expected_to_fail)


def test_expand_selects_by_globs_lists_and_inits_and_assigns_expected_failures():
    claims = parse_claims(
        {
            "claims": [
                {
                    "kind": "beats_onehot",
                    "models": ["carp_*", "antiberty"],
                    "tasks": "gb1_*",
                    "expected_failures": [
                        {"models": "carp_600k", "tasks": ["gb1_low_vs_high"], "reason": "paper: .241 < .322"},
                        {"models": "*", "tasks": "gb1_two_vs_rest", "reason": "tie", "strict": False},
                    ],
                }
            ]
        }
    )
    avail = DEFAULT_SUITE + [("carp_600k", "scl_balanced", "pretrained")]
    cases = expand_claims(claims, avail)
    assert [c.id for c in cases][:3] == [
        "beats_onehot[antiberty-gb1_sampled-pretrained]",
        "beats_onehot[antiberty-gb1_low_vs_high-pretrained]",
        "beats_onehot[antiberty-gb1_two_vs_rest-pretrained]",
    ]
    assert len(cases) == 6  # 2 models x 3 GB1 tasks, pretrained only; scl not selected
    by_id = {c.id: c for c in cases}
    low = by_id["beats_onehot[carp_600k-gb1_low_vs_high-pretrained]"]
    assert low.xfail_reason == "paper: .241 < .322" and low.strict
    two = by_id["beats_onehot[antiberty-gb1_two_vs_rest-pretrained]"]
    assert two.xfail_reason == "tie" and not two.strict
    assert by_id["beats_onehot[antiberty-gb1_sampled-pretrained]"].pytest_marks() == []
    assert low.param().id == "carp_600k-gb1_low_vs_high-pretrained"


def test_validation_lists_every_problem_with_file_entry_and_problem(tmp_path):
    path = tmp_path / "claims.json"
    path.write_text(
        json.dumps(
            {
                "claims": [
                    {"kind": "beats_onehot", "params": {"margin": -1}},
                    {"kind": "saturates_by", "params": {"layer": 2, "fraction": 0.5, "tol": 0.1}},
                    {"kind": "no_such_claim"},
                    {"kind": "pretrained_beats_random", "inits": ["random"], "expected_failures": [{"tasks": "x"}]},
                    {"kind": "beats_onehot", "models": []},
                ]
            }
        )
    )
    with pytest.raises(ClaimsError) as err:
        load_claims(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "claims[0] (beats_onehot): 'margin' must be >= 0" in msg
    assert "claims[1] (saturates_by): unknown parameter 'tol'" in msg
    assert "exactly one of 'layer'" in msg
    assert "claims[2]: 'kind' is 'no_such_claim'" in msg
    assert "claims[3] (pretrained_beats_random).expected_failures[0]: a 'reason'" in msg
    assert "always compares init 'pretrained'" in msg
    assert "claims[4] (beats_onehot): name 'beats_onehot' is already used by claims[0]" in msg
    assert "'models' must be a glob string or a non-empty list" in msg
    assert len(err.value.problems) >= 8


def test_invalid_json_and_missing_file_name_the_file(tmp_path):
    bad = tmp_path / "claims.json"
    bad.write_text("{not json")
    with pytest.raises(ClaimsError, match="(?s)claims.json.*not valid JSON"):
        load_claims(bad)
    with pytest.raises(ClaimsError, match="file not found"):
        load_claims(tmp_path / "nope.json")


# ------------------------------------------------------------------------------ beats_onehot


def test_beats_onehot_passes_and_fails_on_the_validation_chosen_layer():
    # layer 2 has the best validation score (0.80) but a lower test score than layer 1
    model = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.6, 0.6), (0.75, 0.76), (0.80, 0.72)]})
    out = evaluate(case("beats_onehot"), frame(model, ONEHOT_07))
    assert out.passed and not out.missing
    assert out.detail["model"]["layer"] == 2
    assert "layer 2" in out.message and "0.720" in out.message and "one-hot 0.700" in out.message
    out = evaluate(case("beats_onehot", margin=0.05), frame(model, ONEHOT_07))
    assert not out.passed
    assert "+0.020" in out.message and "does not beat one-hot" in out.message


def test_beats_onehot_averages_seeds_and_handles_lower_is_better_selection():
    seeds = {
        1: [(0.9, 0.70), (0.5, 0.80)],
        2: [(0.9, 0.72), (0.6, 0.78)],
    }  # val_loss: layer 1 is best (lower); test_accuracy there averages 0.79
    model = curve_records("m", "scl", "random", seeds, classification=True)
    one = curve_records("onehot", "scl", "none", {None: [(0.7, 0.75)]}, classification=True)
    out = evaluate(case("beats_onehot", task="scl", init="random"), frame(model, one))
    assert out.passed
    assert out.detail["model"]["layer"] == 1
    assert out.detail["model"]["test_value"] == pytest.approx(0.79)
    assert "mean of 2 seeds" in out.message and "val_loss" in out.message


def test_beats_onehot_without_onehot_says_what_to_run():
    model = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.6, 0.6)]})
    out = evaluate(case("beats_onehot"), frame(model))
    assert out.missing and not out.passed
    assert "no one-hot result for task gb1_sampled" in out.message
    assert "--plm-models m,onehot" in out.message
    out = evaluate(case("beats_onehot", model="other"), frame(model, ONEHOT_07))
    assert out.missing and "pytest benchmarks --plm-models other --plm-tasks gb1_sampled" in out.message


# ------------------------------------------------------------------------------ saturates_by

SATURATING = curve_records(
    "m",
    "gb1_sampled",
    "pretrained",
    {
        None: [
            (0.40, 0.40),
            (0.70, 0.69),
            (0.72, 0.71),
            (0.73, 0.72),
            (0.74, 0.73),
            (0.73, 0.72),
            (0.72, 0.71),
            (0.71, 0.70),
            (0.70, 0.70),
        ]
    },
)


def test_saturates_by_relative_and_absolute_layer():
    out = evaluate(case("saturates_by", fraction=0.5, tolerance=0.02), frame(SATURATING))
    assert out.passed, out.message
    assert out.detail["k"] == 4 and out.detail["last_layer"] == 8
    out = evaluate(case("saturates_by", layer=2, tolerance=0.02), frame(SATURATING))
    assert out.passed  # layer 2: 0.71 vs best (layer 4) 0.73, gap 0.02
    out = evaluate(case("saturates_by", layer=1, tolerance=0.02), frame(SATURATING))
    assert not out.passed
    assert "gap +0.040 vs tolerance 0.02" in out.message and "does not saturate by layer 1" in out.message


def test_saturates_by_reports_missing_early_layers():
    late = [r for r in SATURATING if r["layer"] >= 5]
    out = evaluate(case("saturates_by", layer=2), frame(late))
    assert out.missing and "no results for layers 0..2" in out.message


# ------------------------------------------------------------------------------ pretrained_beats_*

PRE = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.80, 0.80), (0.78, 0.79)]})


def _random(values_at_layer1: list[float], init: str = "random"):
    return curve_records(
        "m",
        "gb1_sampled",
        init,
        {seed: [(0.3, 0.3), (v, v), (v - 0.01, v - 0.01)] for seed, v in zip((42, 0, 12345, 7), values_at_layer1)},
    )


def test_pretrained_beats_random_one_sample_t_test_with_replicates():
    rnd = [0.74, 0.76, 0.75]
    out = evaluate(case("pretrained_beats_random"), frame(PRE, _random(rnd)))
    expected = stats.ttest_1samp(rnd, popmean=0.80, alternative="less")
    assert out.passed
    assert out.detail["test"] == "one-sided one-sample t-test"
    assert out.detail["p_value"] == pytest.approx(expected.pvalue)
    assert out.detail["p_value"] < 0.05
    assert "p=" in out.message and "< 0.05" in out.message and "significantly better" in out.message
    assert "over 3 seed(s)" in out.message


def test_pretrained_beats_random_not_significant_when_seeds_overlap():
    # random's mean (0.78) is below pretrained (0.80) but the spread makes it non-significant
    rnd = [0.70, 0.84, 0.80]
    out = evaluate(case("pretrained_beats_random"), frame(PRE, _random(rnd)))
    assert not out.passed
    assert out.detail["p_value"] > 0.05
    assert "not significant" in out.message
    # a stricter level on a clear difference fails too
    out = evaluate(case("pretrained_beats_random", level=0.001), frame(PRE, _random([0.74, 0.76, 0.75])))
    assert not out.passed and ">= 0.001" in out.message


def test_pretrained_beats_stat_single_seed_is_a_plain_comparison():
    out = evaluate(case("pretrained_beats_stat"), frame(PRE, _random([0.6], init="stat")))
    assert out.passed
    assert out.detail["test"] == "none (single seed)"
    assert "single seed: plain comparison, no significance test" in out.message
    out = evaluate(case("pretrained_beats_stat", margin=0.25), frame(PRE, _random([0.6], init="stat")))
    assert not out.passed and "NOT better" in out.message


def test_seeds_without_variance_are_decided_by_the_comparison():
    out = evaluate(case("pretrained_beats_random"), frame(PRE, _random([0.7, 0.7, 0.7])))
    assert out.passed and out.detail["p_value"] == 0.0 and "no variance" in out.detail["test"]
    out = evaluate(case("pretrained_beats_random"), frame(PRE, _random([0.9, 0.9])))
    assert not out.passed and out.detail["p_value"] == 1.0


def test_pretrained_beats_random_welch_when_pretrained_is_replicated():
    pre = curve_records("m", "gb1_sampled", "pretrained", {1: [(0.8, 0.80)], 2: [(0.8, 0.82)], 3: [(0.8, 0.81)]})
    rnd = curve_records("m", "gb1_sampled", "random", {1: [(0.7, 0.70)], 2: [(0.7, 0.74)], 3: [(0.7, 0.72)]})
    out = evaluate(case("pretrained_beats_random"), frame(pre, rnd))
    expected = stats.ttest_ind([0.80, 0.82, 0.81], [0.70, 0.74, 0.72], equal_var=False, alternative="greater")
    assert out.detail["test"] == "one-sided Welch t-test"
    assert out.detail["p_value"] == pytest.approx(expected.pvalue)
    assert out.passed


def test_pretrained_beats_random_missing_random_says_what_to_run():
    out = evaluate(case("pretrained_beats_random"), frame(PRE))
    assert out.missing
    assert "--plm-inits pretrained,random --plm-seeds 42,0,12345" in out.message


# ------------------------------------------------------------------------------ no_regression (matches_paper: test_paper.py)


def test_no_regression_through_the_baseline_store(tmp_path):
    store = BaselineStore(tmp_path / "baselines")
    c = case("no_regression", model="m", init="pretrained")
    out = evaluate(c, frame(PRE), store)
    assert out.missing and "--plm-update-baselines" in out.message
    store.update_from(frame(PRE))
    assert evaluate(c, frame(PRE), store).passed
    worse = curve_records("m", "gb1_sampled", "pretrained", {None: [(0.5, 0.5), (0.80, 0.70), (0.78, 0.79)]})
    out = evaluate(c, frame(worse), store)
    assert not out.passed
    assert "test_spearman" in out.message and "FAIL" in out.message and "-0.1000" in out.message


# ------------------------------------------------------------------------------ outcomes, strict xfail


def test_resolve_flips_strict_expected_failures():
    from pytest_plmtransfer.judge.claims import ClaimOutcome

    ok, bad, miss = ClaimOutcome(True, "fine"), ClaimOutcome(False, "worse"), ClaimOutcome(False, "run X", missing=True)
    plain = ClaimCase("beats_onehot", "beats_onehot", "m", "t", "pretrained")
    strict = ClaimCase("beats_onehot", "beats_onehot", "m", "t", "pretrained", xfail_reason="paper says no")
    lax = ClaimCase("beats_onehot", "beats_onehot", "m", "t", "pretrained", xfail_reason="tie", strict=False)
    assert resolve(plain, ok)[0] == "passed"
    assert resolve(plain, bad)[0] == "failed"
    assert resolve(strict, bad) == ("xfailed", "XFAIL (paper says no): worse")
    outcome, msg = resolve(strict, ok)
    assert outcome == "failed" and msg.startswith("XPASS(strict)") and "paper says no" in msg
    assert resolve(lax, ok)[0] == "xpassed"
    assert resolve(strict, miss)[0] == "skipped"
    assert resolve(plain, miss, strict_missing=True)[0] == "failed"
    rec = claim_record(strict, ok)
    assert rec["kind"] == "claim" and rec["outcome"] == "failed" and rec["claim_id"] == strict.id


@pytest.mark.slow
def test_strict_xfail_marks_make_pytest_report_xpass_strict(pytester):
    pytester.makepyfile(
        textwrap.dedent("""
        import pytest
        from pytest_plmtransfer.judge.claims import ClaimCase

        CASES = [
            ClaimCase("beats_onehot", "beats_onehot", "m", "t", "pretrained", xfail_reason="paper: no", strict=True),
            ClaimCase("beats_onehot", "beats_onehot", "n", "t", "pretrained", xfail_reason="paper: no", strict=True),
            ClaimCase("beats_onehot", "beats_onehot", "o", "t", "pretrained"),
        ]
        PASSES = {"m": True, "n": False, "o": True}

        @pytest.mark.parametrize("case", [c.param() for c in CASES])
        def test_claim(case):
            assert PASSES[case.model]
    """)
    )
    result = pytester.runpytest("-rxX", "-p", "no:cacheprovider", "-p", "no:plmtransfer", "-p", "no:benchmark")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*paper: no*"])


def test_the_claims_modules_import_downwards_only():
    """base <- kinds <- spec <- evaluate, counting every import, inside functions too."""
    import ast

    package = REPO / "pytest_plmtransfer" / "judge" / "claims"
    order = ["base", "paired", "kinds", "spec", "evaluate"]

    def imported(name: str) -> set[str]:
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        return {m.rsplit(".", 1)[1] for m in found if m.startswith("pytest_plmtransfer.judge.claims")}

    for i, name in enumerate(order):
        assert imported(name) <= set(order[:i]), (name, imported(name))
    assert imported("evaluate") == {"base", "kinds"} and imported("spec") == {"base", "kinds"}
