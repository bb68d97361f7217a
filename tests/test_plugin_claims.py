"""Claims, baselines, gating and reports end to end, under pytester.

Each test gets its own harness (testing.PlmPytester) with the suite under ``benchmarks/``, the toy
(2 layers, three inits) and a small ``baselines/claims.json`` written for that test. Claims whose outcome does not depend on the numbers are used where the outcome
matters (``saturates_by`` at the last layer always holds; ``beats_onehot`` by a margin of 5 on a
Spearman correlation never does), so the tests are deterministic whatever the probe fits.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pytest_plmtransfer.infra.identity import weights_label
from pytest_plmtransfer.report.cli import main as cli_main
from pytest_plmtransfer.results.ledger import read_records
from pytest_plmtransfer.testing import write_ledger

#: a claim that always holds: saturation by the last layer (the early choice is the best choice)
HOLDS = {"kind": "saturates_by", "models": "toy", "params": {"layer": 2, "tolerance": 0.0}}
#: a claim that never holds: beating one-hot's test Spearman by more than 5
BROKEN = {"kind": "beats_onehot", "models": "toy", "params": {"margin": 5.0}}
NO_REGRESSION = {"kind": "no_regression", "models": "*", "tasks": "*", "inits": "*"}

SELECT = ["--plm-models=onehot,toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained"]


def claim(name: str, base: dict, **extra) -> dict:
    return {"name": name, **base, **extra}


def claim_records(claims_bench, ledger: Path | None = None) -> dict[str, dict]:
    """claim id -> the newest claim record of that id."""
    return {r["claim_id"]: r for r in claims_bench.records(ledger) if r.get("kind") == "claim"}


def outcomes_by_test(result) -> dict[str, str]:
    """'test_claim[...]' / 'test_layer[...]' -> PASSED/FAILED/SKIPPED/XFAIL/XPASS (from -rA)."""
    out = {}
    for line in result.outlines:
        m = re.match(r"^(PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR) \S*::(test_\w+\[[^\]]+\])", line)
        if m:
            out[m[2]] = m[1]
    return out


# ---------------------------------------------------------------------------------- baselines


@pytest.mark.slow
def test_update_baselines_then_no_regression_passes_and_a_perturbed_baseline_fails(claims_bench):
    claims_bench.claims(claim("no_regression", NO_REGRESSION))

    # 1. --plm-update-baselines writes one reviewable file per (task, model, init) of the run
    update = claims_bench.run(*SELECT, "--plm-update-baselines", "-rs")
    update.assert_outcomes(passed=4, skipped=2)  # the comparisons are skipped: the baselines are rewritten
    update.stdout.fnmatch_lines(["*--plm-update-baselines: wrote 2 baseline file(s) under*baselines*"])
    assert "this run rewrites the baselines it would compare with" in update.stdout.str()
    run_id = claims_bench.records()[-1]["run_id"]
    layer_recs = [r for r in read_records(claims_bench.ledger) if r["kind"] == "layer"]
    tiny_path = claims_bench.root / "baselines" / "gb1_sampled" / "toy--pretrained.json"
    onehot_path = claims_bench.root / "baselines" / "gb1_sampled" / "onehot--none.json"
    assert tiny_path.is_file() and onehot_path.is_file()
    text = tiny_path.read_text()
    assert len(text.splitlines()) > 20, "a baseline is indented JSON, one value per line, for review"
    doc = json.loads(text)
    assert doc["format"] == "plmtransfer-baseline/1"
    assert (doc["task"], doc["model"], doc["init"]) == ("gb1_sampled", "toy", "pretrained")
    assert doc["test_metric"] == "test_spearman" and doc["num_layers"] == 2 and doc["seeds"] == [None]
    assert sorted(doc["layers"]) == ["0", "1", "2"]
    prov = doc["provenance"]
    assert prov["run_id"] == run_id
    assert prov["data_sha256"] == layer_recs[0]["data"]["sha256"]
    tiny_pretrained = next(r for r in layer_recs if r["model"] == "toy" and r["init"] == "pretrained")
    # the adapter's identity (the toy's content hash) as the ledger frame names it; the whole
    # identity stays in the ledger
    assert set(tiny_pretrained["weights"]) == {"model", "init", "seed", "weights_sha256"}
    assert prov["weights"] == weights_label(tiny_pretrained["weights"])
    by_layer = {r["layer"]: r["metrics"] for r in layer_recs if r["model"] == "toy"}
    for layer in (0, 1, 2):
        stored = doc["layers"][str(layer)]
        assert stored["mean"]["test_spearman"] == pytest.approx(by_layer[layer]["test_spearman"])
        assert stored["per_seed"]["none"]["test_spearman"] == pytest.approx(by_layer[layer]["test_spearman"])
    assert "*_spearman" in doc["tolerances"]["defaults"] and doc["tolerances"]["overrides"] == {}
    assert sorted(json.loads(onehot_path.read_text())["layers"]) == ["0"]

    # 2. a second run without it (fresh embedding cache: numbers recomputed) holds the baselines
    again = claims_bench.run(*SELECT, "-rA", cache=claims_bench.cache.with_name("cache2"))
    again.assert_outcomes(passed=6)
    assert outcomes_by_test(again)["test_claim[no_regression-toy-gb1_sampled-pretrained]"] == "PASSED"
    assert outcomes_by_test(again)["test_claim[no_regression-onehot-gb1_sampled-none]"] == "PASSED"
    recs = claim_records(claims_bench)
    assert recs["no_regression[toy-gb1_sampled-pretrained]"]["outcome"] == "passed"

    # 3. a stored per-layer test_spearman moved by +0.2 breaks no_regression with a readable diff
    base = doc["layers"]["1"]["mean"]["test_spearman"]
    doc["layers"]["1"]["mean"]["test_spearman"] = base + 0.2
    doc["layers"]["1"]["per_seed"]["none"]["test_spearman"] = base + 0.2
    # 11 test sequences: a 0.2 change of Spearman is inside the bootstrap noise the baseline
    # stores, which would (rightly) pass; without the stored interval the tolerance alone decides
    doc["layers"]["1"].pop("intervals")
    tiny_path.write_text(json.dumps(doc, indent=1))
    broken = claims_bench.run(*SELECT)
    broken.assert_outcomes(passed=5, failed=1)
    out = broken.stdout.str()
    assert "FAILED benchmarks/test_plm_claims.py::test_claim[no_regression-toy-gb1_sampled-pretrained]" in out
    assert "toy/pretrained on gb1_sampled: 1 of " in out and str(tiny_path) in out
    header = next(l for l in broken.outlines if re.search(r"\blayer\s+metric\s+baseline\s+current\b", l))
    assert header.split()[-7:] == ["layer", "metric", "baseline", "current", "diff", "tolerance", "status"]
    row = next(l for l in broken.outlines if l.rstrip().endswith("FAIL") and "test_spearman" in l)
    cells = row.split()
    assert cells[-7:-5] == ["1", "test_spearman"]
    assert cells[-5:] == [f"{base + 0.2:.4f}", f"{base:.4f}", "-0.2000", "±0.02", "FAIL"]
    # only the failing value is listed
    # only the failing row is shown (pytest may print the message more than once, e.g. with CI=true)
    rows = {l.lstrip("E").strip() for l in broken.outlines if l.rstrip().endswith(("FAIL", " OK"))}
    assert len(rows) == 1 and next(iter(rows)).endswith("FAIL"), rows
    rec = claim_records(claims_bench)["no_regression[toy-gb1_sampled-pretrained]"]
    assert rec["outcome"] == "failed" and rec["detail"]["n_failed"] == 1
    assert rec["detail"]["failures"][0]["layer"] == 1


@pytest.mark.slow
def test_missing_baseline_skips_with_the_command_and_fails_under_strict(claims_bench):
    claims_bench.claims(claim("no_regression", NO_REGRESSION, models="toy"))
    command = "pytest benchmarks --plm-models toy --plm-tasks gb1_sampled --plm-inits pretrained --plm-update-baselines"
    result = claims_bench.run(*SELECT, "-rs")
    result.assert_outcomes(passed=4, skipped=1)
    assert result.ret == 0
    assert command in result.stdout.str()
    rec = claim_records(claims_bench)["no_regression[toy-gb1_sampled-pretrained]"]
    assert rec["outcome"] == "skipped" and rec["detail"]["command"] == command

    strict = claims_bench.run(*SELECT, "--plm-strict")
    # the failure is raised by the plm_claim_outcome fixture, so pytest reports it as an error
    # (as for a layer test whose data is missing under --plm-strict)
    strict.assert_outcomes(passed=4, errors=1)
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    out = strict.stdout.str()
    assert command in out and "(--plm-strict/--plm-gate)" in out
    assert claim_records(claims_bench)["no_regression[toy-gb1_sampled-pretrained]"]["outcome"] == "failed"


# ---------------------------------------------------------------------------------- expected failures


@pytest.mark.slow
def test_expected_failures_strict_xpass_fails_xfail_and_loose_xpass(claims_bench):
    claims_bench.claims(
        claim("holds", HOLDS),
        claim(
            "strict_but_holds", HOLDS, expected_failures=[{"reason": "declared false, yet it holds", "strict": True}]
        ),
        claim(
            "strict_and_broken", BROKEN, expected_failures=[{"reason": "one-hot cannot be beaten by 5", "strict": True}]
        ),
        claim("loose_and_holds", HOLDS, expected_failures=[{"reason": "a tie in the paper", "strict": False}]),
    )
    result = claims_bench.run(*SELECT, "-rA")
    result.assert_outcomes(passed=4 + 1, failed=1, xfailed=1, xpassed=1)
    assert result.ret == 1
    tests = outcomes_by_test(result)
    assert tests["test_claim[holds-toy-gb1_sampled-pretrained]"] == "PASSED"
    assert tests["test_claim[strict_but_holds-toy-gb1_sampled-pretrained]"] == "FAILED"
    assert tests["test_claim[strict_and_broken-toy-gb1_sampled-pretrained]"] == "XFAIL"
    assert tests["test_claim[loose_and_holds-toy-gb1_sampled-pretrained]"] == "XPASS"
    # which claim held where, with its numbers, and the two ways to declare it
    result.stdout.fnmatch_lines(
        [
            "[[]XPASS(strict)[]] strict_but_holds[[]toy-gb1_sampled-pretrained[]] holds on toy/gb1_sampled/pretrained,"
            " but *claims.json declares it an expected failure there (declared false, yet it holds): toy/pretrained*"
            'If it now holds, narrow that entry\'s expected_failures*give the expected failure "strict": false.'
        ]
    )

    recs = claim_records(claims_bench)
    outcome = {cid.split("[")[0]: (r["outcome"], r["strict"], r["expected_failure"]) for cid, r in recs.items()}
    assert outcome == {
        "holds": ("passed", True, None),
        "strict_but_holds": ("failed", True, "declared false, yet it holds"),
        "strict_and_broken": ("xfailed", True, "one-hot cannot be beaten by 5"),
        "loose_and_holds": ("xpassed", False, "a tie in the paper"),
    }
    assert recs["strict_but_holds[toy-gb1_sampled-pretrained]"]["message"].startswith("XPASS(strict)")
    assert recs["strict_and_broken[toy-gb1_sampled-pretrained]"]["passed"] is False
    assert all(
        r["run_id"] == claims_bench.records()[-1]["run_id"]
        and r["test_id"].startswith("benchmarks/test_plm_claims.py::")
        for r in recs.values()
    )


# ---------------------------------------------------------------------------------- gating


@pytest.mark.slow
def test_gate_exit_codes(claims_bench):
    claims_bench.claims(
        claim("holds", HOLDS),
        claim("broken", BROKEN),
        claim("needs_baseline", NO_REGRESSION, models="toy"),
        # an expected failure covers the claim's verdict, not its inputs: missing, it still fails
        claim(
            "declared_but_missing",
            NO_REGRESSION,
            models="toy",
            expected_failures=[{"reason": "known to regress", "strict": False}],
        ),
    )
    ok = claims_bench.run(*SELECT, "--plm-gate", "-k", "not broken and not needs_baseline and not declared_but_missing")
    ok.assert_outcomes(passed=4 + 1)
    assert ok.ret == pytest.ExitCode.OK == 0

    gated = claims_bench.run(*SELECT, "--plm-gate", "-rA")
    gated.assert_outcomes(passed=4 + 1, failed=1, errors=2)
    assert gated.ret == pytest.ExitCode.TESTS_FAILED == 1
    tests = outcomes_by_test(gated)
    assert tests["test_claim[broken-toy-gb1_sampled-pretrained]"] == "FAILED"
    # a missing input (no stored baseline) fails under --plm-gate instead of skipping (raised by
    # the fixture, so pytest counts it as an error)
    assert tests["test_claim[needs_baseline-toy-gb1_sampled-pretrained]"] == "ERROR"
    assert tests["test_claim[declared_but_missing-toy-gb1_sampled-pretrained]"] == "ERROR"
    out = gated.stdout.str()
    assert "does not beat one-hot by more than the margin 5" in out
    assert "no stored baseline for model 'toy'" in out and "(--plm-strict/--plm-gate)" in out
    recs = claim_records(claims_bench)
    assert recs["needs_baseline[toy-gb1_sampled-pretrained]"]["outcome"] == "failed"
    assert recs["declared_but_missing[toy-gb1_sampled-pretrained]"]["outcome"] == "failed"  # as pytest says
    assert recs["broken[toy-gb1_sampled-pretrained]"]["outcome"] == "failed"


# ---------------------------------------------------------------------------------- reporting


def report_section(result) -> list[str]:
    """The lines of the plmtransfer report section, without timings and file locations."""
    lines = result.outlines
    start = next(i for i, l in enumerate(lines) if re.match(r"^=+ plmtransfer report =+$", l))
    section = []
    for line in lines[start + 1 :]:
        if line.startswith("="):  # pytest's final "N passed in X s" line
            break
        written = (
            "plmtransfer: report written to",
            "  html:",
            "  markdown:",
            "  csv:",
            "  png:",
            "  svg:",
            "  figures:",
        )
        if line.startswith(written) or re.search(r"\bin \d+(\.\d+)?s\b", line):
            continue
        section.append(line.rstrip())
    return section


@pytest.mark.slow
def test_report_under_xdist_matches_serial_and_report_dir_writes_files(claims_bench, tmp_path):
    claims_bench.claims(
        claim("holds", HOLDS),
        claim(
            "saturates_half", {"kind": "saturates_by", "models": "toy", "params": {"fraction": 0.5, "tolerance": 1.0}}
        ),
    )
    select = ["--plm-models=onehot,toy", "--plm-tasks=gb1_sampled,gb1_two_vs_rest", "--plm-inits=pretrained,random"]
    out_dir = tmp_path / "report"
    serial = claims_bench.run(*select, "--plm-report", f"--plm-report-dir={out_dir}")
    serial.assert_outcomes(passed=2 + 2 * 2 * 3 + 4)
    section = report_section(serial)
    text = "\n".join(section)
    for task in ("gb1_sampled", "gb1_two_vs_rest"):
        assert any(l.startswith(f"{task}: test_spearman by layer") for l in section)
    assert any(l.split()[:5] == ["model/init", "seeds", "L00", "L01", "L02"] for l in section)
    assert sum(1 for l in section if l.startswith("onehot ")) == 2
    assert sum(1 for l in section if l.startswith("toy/pretrained ")) == 2
    assert sum(1 for l in section if l.startswith("toy/random ")) == 2
    for line in section:  # one best layer marked per row
        if line.startswith(("onehot ", "toy/")):
            assert sum(cell.endswith("*") for cell in line.split()) == 1, line
    assert "claims: 4 passed" in text
    assert sum(1 for l in section if l.startswith("PASSED ")) == 4

    parallel = claims_bench.run(
        *select, "--plm-report", "-n", "2", ledger=tmp_path / "ledger-n2", cache=tmp_path / "cache-n2", subprocess=True
    )
    parallel.assert_outcomes(passed=2 + 2 * 2 * 3 + 4)
    assert report_section(parallel) == section

    # --plm-report-dir: the page, Markdown, CSV, one PNG (SVG beside) per task plus the overview, and
    # the papers' figures that a toy model allows (no family, size or checkpoints)
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "figures",
        "layers_all.png",
        "layers_all.svg",
        "layers_gb1_sampled.png",
        "layers_gb1_sampled.svg",
        "layers_gb1_two_vs_rest.png",
        "layers_gb1_two_vs_rest.svg",
        "report.html",
        "report.md",
        "results.csv",
    ]
    drawn = ["icml_ablation_gaps", "icml_best_layer", "icml_pretrained_vs_onehot", "workshop_grid_toy"]
    assert sorted(p.name for p in (out_dir / "figures").iterdir()) == [
        f"{n}_paper.{e}" for n in drawn for e in ("png", "svg")
    ]
    md = (out_dir / "report.md").read_text()
    assert "## gb1_sampled" in md and "## gb1_two_vs_rest" in md
    assert "## Claims" in md and "![gb1_sampled layer curves](layers_gb1_sampled.png)" in md
    csv = pd.read_csv(out_dir / "results.csv")
    assert len(csv) == 2 * (1 + 2 * 3)
    assert {"task", "model", "init", "layer", "best", "test_spearman"} <= set(csv.columns)
    assert set(csv["model"]) == {"onehot", "toy"}
    assert csv.groupby(["task", "model", "init"])["best"].sum().eq(1).all()
    for png in out_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


# ---------------------------------------------------------------------------------- report and compare


def _layer_records(delta: float = 0.0) -> list[dict]:
    """Hand-written layer records of one-hot and toy on GB1 (toy's layer 1 moved by ``delta``)."""
    out = []
    for model, init, layers, level in (("onehot", "none", 1, 0.50), ("toy", "pretrained", 3, 0.60)):
        for layer in range(layers):
            test = level + 0.05 * layer + (delta if (model, layer) == ("toy", 1) else 0.0)
            out.append(
                {
                    "kind": "layer",
                    "run_id": "old-run",
                    "model": model,
                    "init": init,
                    "seed": None,
                    "task": "gb1_sampled",
                    "task_kind": "regression",
                    "layer": layer,
                    "num_layers": layers - 1,
                    "metrics": {"val_spearman": test + 0.01, "test_spearman": test, "test_mse": 1.0 - test},
                    "selection_metric": "val_spearman",
                    "test_metric": "test_spearman",
                    "timestamp": f"2024-01-01T00:00:0{layer}+00:00",
                }
            )
    return out


@pytest.mark.slow
def test_report_and_compare_read_a_ledger_and_exit_with_the_verdict(tmp_path, capsys):
    old = write_ledger(tmp_path / "old.jsonl", _layer_records())

    assert cli_main(["report", str(old), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "gb1_sampled: test_spearman by layer" in out and "toy/pretrained" in out and "onehot" in out
    assert (tmp_path / "rep" / "report.md").is_file() and (tmp_path / "rep" / "results.csv").is_file()
    assert (tmp_path / "rep" / "layers_gb1_sampled.png").is_file()

    # the new ledger (with a claim record) moves toy's layer 1 by +0.1
    records = [{**r, "run_id": "new-run"} for r in _layer_records(delta=0.1)]
    records.append(
        {
            "kind": "claim",
            "claim": "holds",
            "claim_id": "holds[toy-gb1_sampled-pretrained]",
            "model": "toy",
            "task": "gb1_sampled",
            "init": "pretrained",
            "outcome": "passed",
            "run_id": "new-run",
        }
    )
    new = write_ledger(tmp_path / "new.jsonl", records)

    assert cli_main(["compare", str(old), str(old), "--fail-above", "0"]) == 0
    assert "4 row(s) compared; max |diff| 0.0000" in capsys.readouterr().out

    assert cli_main(["compare", str(old), str(new), "--fail-above", "0.05"]) == 1
    out = capsys.readouterr().out
    fail = [l for l in out.splitlines() if l.split()[-1:] == ["FAIL"] and l.startswith(("toy", "onehot"))]
    assert len(fail) == 1 and fail[0].split()[:5] == ["toy", "gb1_sampled", "pretrained", "1", "test_spearman"]
    assert "+0.1000" in fail[0]
    assert "1 above 0.05: FAIL" in out

    assert cli_main(["compare", str(old), str(new), "--fail-above", "0.2"]) == 0
    assert "none above 0.2: OK" in capsys.readouterr().out

    # the console entry point exits with the same status
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_plmtransfer.report.cli", "compare", str(new), str(old), "--fail-above", "0.05"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "-0.1000" in proc.stdout


# ---------------------------------------------------------------------------------- a claim kind of one's own

#: the README's example ("Writing a claim kind"), appended to the benchmarks' conftest.py: the
#: test keeps the README's code working
README = (Path(__file__).parents[1] / "README.md").read_text()
REACHES_KIND = "\n" + re.search(r"### Writing a claim kind\n.*?```python\n(.*?)```", README, re.S)[1]


@pytest.mark.slow
def test_a_claim_kind_written_in_a_conftest_runs_as_claim_tests(claims_bench):
    conftest = claims_bench.root / "benchmarks" / "conftest.py"
    conftest.write_text(conftest.read_text() + REACHES_KIND)
    claims_bench.claims(
        {"name": "reaches_low", "kind": "reaches", "models": "*", "params": {"minimum": -1}},
        {"name": "reaches_high", "kind": "reaches", "models": "toy", "params": {"minimum": 2}},
        {
            "name": "reaches_high_known",
            "kind": "reaches",
            "models": "toy",
            "params": {"minimum": 2},
            "expected_failures": [{"reason": "no correlation exceeds 1"}],
        },
        claim("holds", HOLDS),  # a built-in kind beside it
    )
    result = claims_bench.run(*SELECT, "-rA")
    # 4 layer tests (onehot L0, toy L0-L2); one-hot is excluded from reaches_low (for_onehot)
    result.assert_outcomes(passed=4 + 2, failed=1, xfailed=1)
    tests = outcomes_by_test(result)
    assert tests["test_claim[reaches_low-toy-gb1_sampled-pretrained]"] == "PASSED"
    assert tests["test_claim[reaches_high-toy-gb1_sampled-pretrained]"] == "FAILED"
    assert tests["test_claim[reaches_high_known-toy-gb1_sampled-pretrained]"] == "XFAIL"
    assert tests["test_claim[holds-toy-gb1_sampled-pretrained]"] == "PASSED"
    assert not any("onehot" in t for t in tests if t.startswith("test_claim[reaches"))
    assert re.search(
        r"toy/pretrained on gb1_sampled: layer \d has test_spearman -?\d\.\d{3}, below 2", result.stdout.str()
    )
    recs = claim_records(claims_bench)
    low, high = recs["reaches_low[toy-gb1_sampled-pretrained]"], recs["reaches_high[toy-gb1_sampled-pretrained]"]
    assert (low["claim_kind"], low["outcome"], high["outcome"]) == ("reaches", "passed", "failed")
    assert recs["reaches_high_known[toy-gb1_sampled-pretrained]"]["outcome"] == "xfailed"
    assert high["detail"]["kind"] == "reaches" and high["detail"]["layer"] in (0, 1, 2)

    # the kind's parameter declarations validate the claims file like the built-in kinds'
    claims_bench.claims({"kind": "reaches", "models": "toy", "params": {"minimum": "high", "maximum": 1}})
    bad = claims_bench.run(*SELECT)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    err = bad.stderr.str() + bad.stdout.str()
    assert "claims[0] (reaches): parameter 'minimum' must be int/float, got 'high'" in err
    assert "claims[0] (reaches): unknown parameter 'maximum' for reaches; known: metric, minimum" in err

    # without the conftest's hook the kind is unknown, and the message lists the known ones
    conftest.write_text(conftest.read_text().replace(REACHES_KIND, ""))
    claims_bench.claims({"kind": "reaches", "models": "toy"})
    unknown = claims_bench.run(*SELECT)
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    assert "claims[0]: 'kind' is 'reaches'; must be one of beats_onehot, saturates_by" in (
        unknown.stderr.str() + unknown.stdout.str()
    )


# ---------------------------------------------------------------------------------- skipped inputs
NO_WEIGHTS_CONFTEST = """
from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.testing import ToyAdapter


def factory(name, init, seed, options):
    if init == "pretrained":
        raise ResourceUnavailable("toy.pt", "checkpoint not found; put it in --plm-weights-dir")
    return ToyAdapter(init, seed, name="toy", num_layers=2, embed_dim=8)


def pytest_plmtransfer_register_models(registry):
    registry.register("toy", factory, inits=("pretrained", "random"), needs_weights=(), num_layers=2, embed_dim=8)
"""


def test_some_skipped_are_explained_and_claims_quote_the_cause_not_a_command_that_skips_again(claims_bench):
    (claims_bench.root / "benchmarks" / "conftest.py").write_text(NO_WEIGHTS_CONFTEST)
    claims_bench.claims(claim("pr", {"kind": "pretrained_beats_random", "models": "toy"}))
    result = claims_bench.run("--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained,random")
    result.assert_outcomes(passed=3, skipped=4)  # random L0-L2 ran; pretrained L0-L2 and the claim skipped
    # without -rs, pytest would list no reason: the plugin groups them
    result.stdout.fnmatch_lines(
        [
            "plmtransfer: 4 of 7 benchmark test(s) skipped. Why:",
            "  3 x toy.pt is not available: checkpoint not found; put it in --plm-weights-dir",
            "  1 x pr[[]toy-gb1_sampled-pretrained[]] cannot be judged here: toy.pt is not available: *",
            "To run them: weights: --plm-weights-dir=DIR*",
        ]
    )
    message = claim_records(claims_bench)["pr[toy-gb1_sampled-pretrained]"]["message"]
    assert message == (
        "pr[toy-gb1_sampled-pretrained] cannot be judged here: "
        "toy.pt is not available: checkpoint not found; put it in --plm-weights-dir"
    )
