"""Usage under pytester: selection by -k/-m, the suite from any directory, ``plmtransfer init`` and
the gate end to end, fixtures for users' own heads, progress under capture, identity hashing,
hf aliases, the all-skip explanation, bind's headline, baseline churn, threads, --plm-list.

Runs are in-process on the one harness (testing.PlmPytester); in a process of their own only where
a test needs one (a signal, a terminal).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap

import pytest

from pytest_plmtransfer.report.cli import main as cli_main

try:
    from . import flip_files
except ImportError:  # tests/ is not a package
    import flip_files

SMOKE = {"gb1_sampled", "gb1_low_vs_high", "gb1_two_vs_rest"}


@pytest.fixture(autouse=True)
def _not_on_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture
def scaffolded(plm):
    """The harness over a project ``plmtransfer init`` is to write (its own conftest and suite)."""
    return plm(suite_dir=None)


def _ids(result, name="test_layer"):
    return [line.split("[", 1)[1].rstrip("]") for line in result.outlines if f"{name}[" in line]


def _task(case_id: str) -> str:
    return case_id.split("-")[1]


# ------------------------------------------------------------------------- selection (10.1, 13.6)
@pytest.mark.slow
def test_k_scl_selects_every_scl_task_skips_with_instructions_then_runs_on_scl_files(bench, tmp_path):
    plain = bench.run("--plm-models=onehot,toy", "--collect-only", "-q")
    assert {_task(i) for i in _ids(plain)} == SMOKE
    plain.stdout.fnmatch_lines(["plmtransfer: default selection is the smoke suite's tasks*-k scl*--plm-tasks*"])

    args = ["--plm-models=onehot,toy", "--plm-inits=pretrained", "-k", "scl", "--plm-offline", "-rs"]
    collected = bench.run(*args, "--collect-only", "-q")
    scl = {"scl_balanced", "scl_mixed_soft", "scl_mixed_hard", "scl_human_soft", "scl_human_hard"}
    assert {_task(i) for i in _ids(collected)} == scl
    assert len(_ids(collected)) == 5 * (1 + 3)  # one-hot's one layer + toy's three

    skipped = bench.run(*args)
    skipped.assert_outcomes(skipped=20)
    out = skipped.stdout.str()
    from pytest_plmtransfer.tasks.catalog import DATASETS

    assert DATASETS["scl"].url in out  # the pinned commit
    assert "plmtransfer: all 20 benchmark test(s) skipped, so nothing was measured" in out
    assert "20 x FLIP archive splits/scl/splits.zip is not available" in out
    assert "--plm-data-dir" in out.split("nothing was measured", 1)[1]

    data = tmp_path / "with_scl"
    flip_files.write_scl(data, n=40, seed=1)
    ran = bench.run(*args, f"--plm-data-dir={data}")
    ran.assert_outcomes(passed=20)
    assert {r["task"] for r in bench.records()} == scl
    assert "nothing was measured" not in ran.stdout.str()


@pytest.mark.slow
def test_markers_select_per_residue_tasks_and_layer_tests(plm, pytester):
    bench = plm(claims=True)
    base = ["--plm-models=onehot", "--collect-only", "-q"]
    per_residue = bench.run(*base, "-m", "per_residue")
    tasks = {_task(i) for i in _ids(per_residue)}
    assert tasks == {
        "ss3",
        "ss3_casp12",
        "ss3_cb513",
        "ss3_ts115",
        "conservation",
        "bind",
        "bind_two_vs_many",
        "bind_from_publication",
        "bind_one_vs_sm",
        "bind_one_vs_mn",
        "bind_one_vs_sn",
    }
    assert _ids(per_residue, "test_claim")  # claims carry the family/kind markers too
    layers = bench.run(*base, "-m", "plm_layer")
    assert {_task(i) for i in _ids(layers)} == SMOKE and not _ids(layers, "test_claim")
    claims = bench.run(*base, "-m", "plm_claim and gb1")
    assert _ids(claims, "test_claim") and not _ids(claims)
    markers = pytester.runpytest("--markers")
    for name in ("gb1:", "scl:", "per_residue:", "regression:", "pretrained:", "plm_layer:", "plm_claim:"):
        markers.stdout.fnmatch_lines([f"@pytest.mark.{name}*"])


# ------------------------------------------------------------------------- the suite anywhere (10.2)
@pytest.mark.slow
def test_shipped_suite_runs_from_an_empty_directory_with_the_shipped_claims(scaffolded):
    bench = scaffolded
    result = bench.run("--pyargs", "pytest_plmtransfer.benchmarks", "--plm-models=onehot", "--collect-only", "-q")
    claims = _ids(result, "test_claim")
    assert "matches_paper-onehot-gb1_sampled-none" in claims  # the authors' numbers, shipped
    assert "no_regression-onehot-gb1_two_vs_rest-none" in claims
    layers = bench.run("--pyargs", "pytest_plmtransfer.benchmarks", "--plm-models=onehot", "-m", "plm_layer")
    layers.assert_outcomes(passed=3)


GATE_CLAIMS = [
    # a toy stand-in is not expected to beat one-hot or saturate; generated data are not the
    # paper's: the user overrides those shipped claims by name (not strict: either outcome is fine)
    {
        "name": "beats_onehot",
        "kind": "beats_onehot",
        "expected_failures": [{"models": "my_plm", "reason": "toy stand-in", "strict": False}],
    },
    {
        "name": "saturates_by",
        "kind": "saturates_by",
        "params": {"fraction": 0.5, "tolerance": 0.03},
        "expected_failures": [{"models": "my_plm", "reason": "toy stand-in", "strict": False}],
    },
    {
        "name": "pretrained_beats_random",
        "kind": "pretrained_beats_random",
        "expected_failures": [{"models": "my_plm", "reason": "toy stand-in", "strict": False}],
    },
    {"name": "matches_paper", "kind": "matches_paper", "models": ["esm1b_t33_650M_UR50S"], "tasks": ["gb1_sampled"]},
]


@pytest.mark.slow
def test_init_then_baselines_then_gate_passes_then_a_perturbed_model_fails(scaffolded, pytester):
    bench = scaffolded
    assert cli_main(["init"]) == 0
    for path in (
        "conftest.py",
        "benchmarks/test_plmtransfer.py",
        "baselines/claims.json",
        ".github/workflows/plm-gate.yml",
        "pytest.ini",
    ):
        assert (pytester.path / path).is_file(), path
    claims_path = pytester.path / "baselines" / "claims.json"
    doc = json.loads(claims_path.read_text())
    doc["claims"] = GATE_CLAIMS
    claims_path.write_text(json.dumps(doc))
    args = ["benchmarks", "--plm-models=my_plm,onehot", "--plm-tasks=gb1_sampled"]

    update = bench.run(*args, "--plm-update-baselines")
    assert update.ret == 0, update.stdout.str()
    update.stdout.fnmatch_lines(["--plm-update-baselines: wrote 3 baseline file(s) under *baselines"])
    stored = sorted(p.name for p in (pytester.path / "baselines" / "gb1_sampled").iterdir())
    assert stored == ["my_plm--pretrained.json", "my_plm--random.json", "onehot--none.json"]

    gate = bench.run(*args, "--plm-gate", "-rA")
    assert gate.ret == 0, gate.stdout.str()
    gate.stdout.fnmatch_lines(["*PASSED*test_claim[[]no_regression-my_plm-gb1_sampled-pretrained[]]*"])

    conftest = pytester.path / "conftest.py"
    conftest.write_text(
        conftest.read_text().replace(
            "self.net = TinyPLM().eval()",
            "self.net = TinyPLM().eval()\n        self.net.blocks[0].weight.data.mul_(3.0)  # the change under review",
        )
    )
    broken = bench.run(*args, "--plm-gate")
    assert broken.ret == 1
    out = broken.stdout.str()
    assert "FAILED benchmarks/test_plmtransfer.py::test_claim[no_regression-my_plm-gb1_sampled-pretrained]" in out
    assert "values outside tolerance" in out
    broken.stdout.fnmatch_lines(["*layer*metric*baseline*current*diff*tolerance*status*", "*FAIL*"])
    # the stale-cache trap: with the identity hashing the weights, the changed model was re-embedded
    assert "no_regression-onehot-gb1_sampled-none" not in "".join(
        line for line in broken.outlines if line.startswith("FAILED")
    )


@pytest.mark.slow
def test_a_reference_run_whose_claims_fail_says_the_gate_will_fail_too(scaffolded, pytester):
    bench = scaffolded
    assert cli_main(["init"]) == 0
    claims_path = pytester.path / "baselines" / "claims.json"
    doc = json.loads(claims_path.read_text())
    # no model beats one-hot by a whole unit of Spearman: this claim fails on any reference run
    doc["claims"] = [{"name": "beats_onehot", "kind": "beats_onehot", "params": {"margin": 1.0}}]
    claims_path.write_text(json.dumps(doc))
    update = bench.run(
        "benchmarks",
        "--plm-models=my_plm,onehot",
        "--plm-tasks=gb1_sampled",
        "--plm-inits=pretrained",
        "--plm-update-baselines",
        "-p",
        "no:randomly",
    )
    update.stdout.fnmatch_lines(
        [
            "--plm-update-baselines: wrote * baseline file(s) under *baselines",
            # (the shipped matches_paper claim is of protocol authors: skipped in this plmtransfer run)
            "plmtransfer: 1 claim(s) failed on this reference run (*test_claim[[]beats_onehot-my_plm-gb1_sampled-pretrained[]]*);"
            ' --plm-gate will fail on them too. Fix the model, or declare them in *claims.json as "expected_failures"*',
        ]
    )


# ------------------------------------------------------------------------- fixtures (10.3)
MLP_TEST = """
import numpy as np
from scipy.stats import spearmanr
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler


def test_mlp_head(plm_layer_case, plm_embeddings, plm_task, plm_record):
    X, y = plm_embeddings.X, np.asarray(plm_task.targets, dtype=float)
    assert X.shape[0] == len(plm_task.sequences) and plm_embeddings.layer == plm_layer_case.layer
    train, test = plm_embeddings.split("train"), plm_embeddings.split("test")
    scaler = StandardScaler().fit(X[train])
    mlp = MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
    mlp.fit(scaler.transform(X[train]), y[train])
    pred = mlp.predict(scaler.transform(X[test]))
    rho = spearmanr(pred, y[test])[0]
    record = plm_record({"test_spearman": float(rho)}, head="mlp", settings={"hidden": [16]}, predictions=pred)
    assert record["model"] == plm_layer_case.model + "+mlp" and record["layer"] == plm_layer_case.layer
    ci = record["intervals"]["test_spearman"]  # the head's band in tables and plots
    assert ci["low"] < ci["high"] and abs(ci["estimate"] - rho) < 1e-12 and ci["n_resamples"] == 50


def test_explicit_request(plm_embeddings_of):
    embedded = plm_embeddings_of("toy", "gb1_sampled", init="pretrained")
    assert embedded.layers == [0, 1, 2] and embedded.layer is None
    assert embedded.features(2).shape == (len(embedded.data.sequences), 8)
"""


@pytest.mark.slow
def test_mlp_head_on_plm_embeddings_shares_the_forward_pass_and_lands_in_ledger_and_report(bench, pytester):
    pytester.makepyfile(test_mlp=MLP_TEST)
    result = bench.run(
        "--plm-models=toy",
        "--plm-tasks=gb1_sampled",
        "--plm-inits=pretrained",
        "--plm-report",
        f"--plm-report-dir={pytester.path / 'report'}",
        "--plm-bootstrap=50",
        "-W",
        "ignore::UserWarning",
    )
    result.assert_outcomes(passed=7)  # 3 layers x (linear probe, MLP) + the explicit request
    assert len(bench.forward_passes()) == 1, bench.forward_passes()  # one forward pass served both heads, all layers
    recs = bench.records()
    assert sorted(r["model"] for r in recs) == ["toy"] * 3 + ["toy+mlp"] * 3
    mlp = [r for r in recs if r["model"] == "toy+mlp"]
    assert {r["base_model"] for r in mlp} == {"toy"} and {r["head"]["name"] for r in mlp} == {"mlp"}
    linear = {r["layer"]: r["embedding_key"] for r in recs if r["model"] == "toy"}
    assert all(r["embedding_key"] == linear[r["layer"]] for r in mlp)
    table = result.stdout.str().split("plmtransfer report", 1)[1]
    assert "toy+mlp/pretrained" in table and "toy/pretrained" in table
    row = next(line for line in table.splitlines() if line.startswith("toy+mlp/pretrained"))
    assert row.count(" ± ") == 3  # every layer of the head has its interval
    result.stdout.fnmatch_lines(["  html: report/report.html"])
    page = (pytester.path / "report" / "report.html").read_text()
    assert 'id="task-gb1_sampled-figure"' in page and "toy+mlp/pretrained" in page


# ------------------------------------------------------------------------- progress (10.4, 13.1)
@pytest.mark.slow
def test_progress_line_shows_under_capture_when_asked_and_not_in_a_pipe_by_default(bench):
    args = ["--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained"]
    # the line is written past pytest's capture, to the process's own stdout: a process of its own
    shown = bench.run(*args, "--plm-progress", subprocess=True)  # default capture (no -s)
    shown.assert_outcomes(passed=3)
    out = shown.stdout.str()
    assert "toy/pretrained gb1_sampled" in out and "seq/s" in out
    # the progress line did not eat pytest's own result line
    shown.stdout.fnmatch_lines(["*3 passed*"])
    default = bench.run(*args, cache=bench.cache.with_name("other-cache"), subprocess=True)
    default.assert_outcomes(passed=3)
    assert "toy/pretrained gb1_sampled" not in default.stdout.str()  # stdout is a pipe here


def _run_in_pty(args: list[str], cwd, env: dict, columns: int = 100) -> str:
    """Run a command with a pseudo-terminal as its stdout and stderr; everything it wrote."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=child_fd, stderr=child_fd)
    os.close(child_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=300)
    os.close(main_fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: carriage returns, new lines, cursor up/right; other
    escape sequences (colours) dropped. Enough for pytest's and tqdm's output."""
    lines, row, col = [[]], 0, 0
    for token in re.findall(r"\x1b\[(\d*)([A-Za-z])|(\r)|(\n)|([^\x1b\r\n])", raw):
        n, code, cr, nl, char = token
        if cr:
            col = 0
        elif nl:
            row, col = row + 1, 0
            lines += [[] for _ in range(row + 1 - len(lines))]
        elif code == "A":
            row = max(0, row - int(n or 1))
        elif code == "C":
            col += int(n or 1)
        elif code == "K":  # erase to the end of the line
            del lines[row][col:]
        elif char:
            line = lines[row]
            line += [" "] * (col + 1 - len(line))
            line[col] = char
            col += 1
    return ["".join(line).rstrip() for line in lines]


@pytest.mark.slow
def test_progress_shows_by_default_on_a_terminal_and_pytest_keeps_its_line(bench):
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    args = [sys.executable, "-m", "pytest", *bench.options(), "--plm-models=toy", "--plm-tasks=gb1_sampled"]
    raw = _run_in_pty([*args, "--plm-inits=pretrained,random"], bench.root, env)
    # no --plm-progress, no -s: the bar is drawn because the output is a terminal
    assert "toy/pretrained gb1_sampled" in raw and "toy/random/s42 gb1_sampled" in raw, raw
    screen = _screen(raw)
    # once the bars are erased, pytest's own line is whole: file name, one dot per test, [100%]
    assert any(re.fullmatch(r"test_plm_layers\.py \.{6} +\[100%\]", line) for line in screen), "\n".join(screen)
    assert not any(re.fullmatch(r"\.+ *(\[100%\])?", line) for line in screen), "\n".join(screen)


@pytest.mark.slow
def test_fail_on_empty_makes_an_all_skipped_run_a_failure(bench, tmp_path):
    empty = tmp_path / "no_flip"
    empty.mkdir()
    args = ["--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained"]
    args += [f"--plm-data-dir={empty}", "--plm-offline"]
    quiet = bench.run(*args)
    quiet.assert_outcomes(skipped=3)
    assert quiet.ret == 0  # as pytest has it: skips are not failures
    loud = bench.run(*args, "--plm-fail-on-empty")
    loud.assert_outcomes(skipped=3)
    assert loud.ret == 1
    loud.stdout.fnmatch_lines(
        [
            "plmtransfer: all 3 benchmark test(s) skipped, so nothing was measured. Why:",
            "plmtransfer: nothing was measured, and --plm-fail-on-empty makes that a failure (exit 1)",
        ]
    )


@pytest.mark.slow
def test_no_pytest_benchmark_header_or_empty_benchmarks_dir_unless_asked(bench):
    args = ["--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained", "--plm-layers=0"]
    plain = bench.run(*args)
    plain.assert_outcomes(passed=1)
    assert not any(line.startswith("benchmark: ") for line in plain.outlines)
    assert not (bench.root / ".benchmarks").exists()
    # asked for: pytest-benchmark's own line is there (and a directory it saved into is kept)
    asked = bench.run(*args, "--benchmark-disable")
    assert any(line.startswith("benchmark: ") for line in asked.outlines)


SLOW_RANDOM_CONFTEST = """
import time


class SlowRandom(LoggedToy):
    def embed(self, sequences, layers, *, per_residue):
        if self.init == "random":
            time.sleep(120)  # what a CI cancellation interrupts
        yield from super().embed(sequences, layers, per_residue=per_residue)


def pytest_plmtransfer_register_models(registry):
    register_toy(registry, "toy", cls=SlowRandom)
"""


@pytest.mark.slow
def test_sigterm_stops_the_run_saying_what_was_saved(plm):
    import signal
    import subprocess
    import time

    bench = plm(conftest=SLOW_RANDOM_CONFTEST)
    args = [sys.executable, "-m", "pytest", *bench.options(), "--plm-models=toy", "--plm-tasks=gb1_sampled"]
    args += ["--plm-inits=pretrained,random"]
    proc = subprocess.Popen(args, cwd=bench.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len([r for r in bench.records() if r.get("kind") == "layer"]) < 3:
        time.sleep(0.2)
    time.sleep(1.0)  # into the random init's (slow) embedding
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    run_id = bench.records()[-1]["run_id"]
    saved = f"plmtransfer: stopped by SIGTERM; 3 layer result(s) of run {run_id} are saved in {bench.ledger}"
    assert saved in out, out
    assert "3 passed" in out


@pytest.mark.slow
def test_limit_is_a_recorded_subsample_never_mixed_with_the_full_run(bench, capsys):
    args = ["--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained"]
    quick = bench.run(*args, "--plm-limit=4")
    quick.assert_outcomes(passed=3)
    recs = bench.records()
    assert {r["limit"] for r in recs} == {4}
    assert recs[0]["split_sizes"] == {"train": 4, "val": 4, "test": 4}
    full = bench.run(*args, "--plm-report")
    full.assert_outcomes(passed=3)
    assert "limit" not in bench.records()[-1]  # the full run recomputed, nothing served from the subsample
    assert bench.records()[-1]["split_sizes"] == {"train": 44, "val": 5, "test": 11}
    capsys.readouterr()
    assert cli_main(["report", str(bench.ledger)]) == 0
    table = capsys.readouterr().out
    assert "toy/pretrained (limit 4)" in table and "\ntoy/pretrained " in table
    refused = bench.run(*args, "--plm-limit=4", "--plm-update-baselines")
    assert refused.ret == 4
    refused.stderr.fnmatch_lines(["*--plm-limit 4 with --plm-update-baselines: a subsample is a quick look*"])


# ------------------------------------------------------------------------- identity (13.2)
TORCH_USER_CONFTEST = """
import os
import numpy as np
import torch
from pytest_plmtransfer.models.base import EmbeddingBatch, ModelAdapter


class TorchUser(ModelAdapter):
    name, num_layers, embed_dim = "torch_user", 1, 8

    def __init__(self):
        torch.manual_seed(0)
        self.net = torch.nn.Embedding(26, 8)
        with torch.no_grad():
            self.net.weight.mul_(float(os.environ.get("WEIGHT_SCALE", "1")))

    def identity(self):
        return {"model": self.name, "weights": "v1"}  # unchanged when the weights change

    def embed(self, sequences, layers, *, per_residue):
        with open(TOY_LOG, "a") as fh:
            fh.write(f"{len(sequences)}\\n")
        for i, seq in enumerate(sequences):
            h = self.net(torch.tensor([ord(c) - 65 for c in seq])).detach().numpy()
            yield EmbeddingBatch(indices=np.array([i]),
                                 per_layer={l: np.tanh(h * (l + 1)).mean(0, keepdims=True) for l in layers})


_register_toy = pytest_plmtransfer_register_models


def pytest_plmtransfer_register_models(registry):
    _register_toy(registry)
    registry.register("torch_user", lambda name, init, seed, options: TorchUser(),
                      inits=("pretrained",), needs_weights=())
"""


@pytest.mark.slow
def test_changed_torch_weights_are_re_embedded_and_hashless_identities_warn(plm, monkeypatch):
    bench = plm(conftest=TORCH_USER_CONFTEST)
    args = ["--plm-models=torch_user", "--plm-tasks=gb1_sampled", "--plm-layers=1"]
    bench.run(*args).assert_outcomes(passed=1)
    bench.run(*args).assert_outcomes(passed=1)
    assert len(bench.forward_passes()) == 1  # same weights: the cache serves them
    monkeypatch.setenv("WEIGHT_SCALE", "0.25")
    bench.run(*args).assert_outcomes(passed=1)
    assert len(bench.forward_passes()) == 2  # changed weights, same identity() text: re-embedded
    recs = bench.records()
    assert len({r["weights"]["weights_sha256"] for r in recs}) == 2
    assert recs[0]["metrics"] != recs[2]["metrics"]
    # a numpy model with a fixed "v1" cannot be hashed: warned, once per adapter
    (bench.root / "conftest.py").write_text(
        textwrap.dedent("""
        from pytest_plmtransfer.testing import ToyAdapter, register_toy

        class Hashless(ToyAdapter):
            def identity(self):
                return {"model": self.name, "weights": "v1"}

        def pytest_plmtransfer_register_models(registry):
            register_toy(registry, "toy", cls=Hashless)
    """)
    )
    warned = bench.run("--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained")
    warned.stdout.fnmatch_lines(["*IdentityWarning: model 'toy': its identity() carries no content hash*"])


# ------------------------------------------------------------------------- hf alias (13.3)
@pytest.fixture(scope="module")
def tiny_esm(tmp_path_factory):
    """A Hugging Face ESM directory (2 layers, 16 wide), saved as a user's own model would be.
    Module-scoped, so torch is imported before pytester snapshots sys.modules: a second import
    after pytester dropped it crashes the interpreter."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    vocab = ["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO", ".", "-", "<null_1>", "<mask>"]
    reference = tmp_path_factory.mktemp("tiny_esm")
    (reference / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = EsmConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        pad_token_id=1,
        mask_token_id=len(vocab) - 1,
        position_embedding_type="rotary",
        max_position_embeddings=300,
        token_dropout=True,
    )
    torch.manual_seed(0)
    EsmForMaskedLM(config).save_pretrained(reference)
    EsmTokenizer(str(reference / "vocab.txt")).save_pretrained(reference)
    return reference


@pytest.mark.slow
def test_init_for_a_hugging_face_model_runs_the_command_it_prints_and_its_workflow_runs(
    scaffolded, pytester, tiny_esm, capsys
):
    import yaml

    bench = scaffolded
    shutil.copytree(tiny_esm, pytester.path / "tiny_esm")
    assert cli_main(["init", "--hf", "./tiny_esm"]) == 0
    assert not (pytester.path / "conftest.py").exists()  # no stand-in registering the name first
    workflow = yaml.safe_load((pytester.path / ".github" / "workflows" / "plm-gate.yml").read_text())
    gate = next(s["run"] for s in workflow["jobs"]["gate"]["steps"] if s.get("name") == "Gate")
    printed = next(line for line in capsys.readouterr().out.splitlines() if "CI runs:" in line).split("CI runs: ")[1]
    models = "--plm-models my_plm,onehot"
    assert models in gate and models in printed
    data = ["--plm-tasks=gb1_sampled", "--plm-inits=pretrained"]
    result = bench.run("benchmarks", *models.split(), *data, "-k", "test_layer")
    result.assert_outcomes(passed=4)  # my_plm L0-L2 (the hf directory) and one-hot
    # the scaffold's stand-in registers my_plm: the alias says how to get out of the clash
    cli_main(["init", "x"])
    shutil.copy(pytester.path / "x" / "conftest.py", pytester.path / "conftest.py")
    clash = bench.run("benchmarks", *models.split(), *data)
    assert clash.ret == 4
    clash.stderr.fnmatch_lines(["*alias 'my_plm' would hide the model 'my_plm'*plmtransfer init --hf ./tiny_esm*"])


@pytest.mark.slow
def test_hf_alias_keys_baselines_by_name_across_checkouts(plm, pytester, tiny_esm):
    bench = plm(claims=True)
    reference = pytester.path / "reference_machine" / "tiny_esm"
    shutil.copytree(tiny_esm, reference)
    checkout = pytester.path / "ci_checkout" / "models" / "tiny_esm"
    checkout.parent.mkdir(parents=True)
    shutil.copytree(reference, checkout)  # the same model at another path
    bench.claims({"name": "no_regression", "kind": "no_regression"})
    common = ["--plm-tasks=gb1_sampled", "--plm-inits=pretrained"]
    made = bench.run(f"--plm-models=my_plm=hf:{reference}", *common, "--plm-update-baselines")
    assert made.ret == 0, made.stdout.str()
    assert (pytester.path / "baselines" / "gb1_sampled" / "my_plm--pretrained.json").is_file()
    gate = bench.run("--plm-models=my_plm=hf:./ci_checkout/models/tiny_esm", *common, "--plm-gate", "-rA")
    assert gate.ret == 0, gate.stdout.str()
    gate.stdout.fnmatch_lines(["*PASSED*test_claim[[]no_regression-my_plm-gb1_sampled-pretrained[]]*"])


# ------------------------------------------------------------------------- bind, baselines, report, threads, list
@pytest.mark.slow
def test_bind_reports_macro_f1_as_its_headline(bench, tmp_path):
    data = tmp_path / "bind_data"
    flip_files.write_bind(data, split="one_vs_many", n=40, seed=2)
    result = bench.run("--plm-models=onehot", "--plm-tasks=bind", f"--plm-data-dir={data}")
    result.assert_outcomes(passed=1)
    (rec,) = bench.records()
    assert rec["test_metric"] == "test_f1_macro"
    assert 0.0 <= rec["metrics"]["test_f1_macro"] <= 1.0 and -1.0 <= rec["metrics"]["test_mcc"] <= 1.0


@pytest.mark.slow
def test_update_baselines_writes_only_when_values_change_and_report_paths_are_readable(bench):
    args = ["--plm-models=onehot", "--plm-tasks=gb1_sampled"]
    first = bench.run(*args, "--plm-update-baselines")
    first.stdout.fnmatch_lines(["--plm-update-baselines: wrote 1 baseline file(s) under *"])
    stored = bench.root / "baselines" / "gb1_sampled" / "onehot--none.json"
    before = stored.read_text()
    second = bench.run(*args, "--plm-update-baselines", "--plm-report-dir=out")
    second.stdout.fnmatch_lines(
        ["--plm-update-baselines: wrote 0 baseline file(s) under *; 1 unchanged (same values), left as they were"]
    )
    assert stored.read_text() == before  # provenance (run id, timestamp) did not churn the file
    second.stdout.fnmatch_lines(["plmtransfer: report written to out/", "  markdown: out/*.md"])
    assert "{'markdown'" not in second.stdout.str()


@pytest.mark.slow
def test_threads_option_bounds_torch_and_rejects_nonsense(bench):
    args = ["--plm-models=onehot", "--plm-tasks=gb1_sampled"]
    # the bound is process-wide (torch, BLAS pools, their environment): a process of its own
    bench.run(*args, "--plm-threads=1", subprocess=True).assert_outcomes(passed=1)
    (rec,) = bench.records()
    assert rec["machine"]["torch_threads"] == 1
    for value in ("many", "0"):
        bad = bench.run(*args, f"--plm-threads={value}")
        assert bad.ret == pytest.ExitCode.USAGE_ERROR  # one line, not an INTERNALERROR
        out = bad.stdout.str() + bad.stderr.str()
        assert f"--plm-threads: '{value}' is not a positive integer" in out
        assert "INTERNALERROR" not in out


def test_plm_list_shows_models_tasks_suites_and_what_is_local(bench, flip_root, tmp_path):
    result = bench.run("--plm-list", f"--plm-weights-dir={tmp_path / 'w'}")
    assert result.ret == 0
    out = result.stdout.str()
    assert "toy" in out and "no weights needed" in out
    assert f"missing (downloaded on first use) -> {tmp_path / 'w' / 'esm2_t6_8M_UR50D.pt'}" in out
    gb1_line = next(line for line in result.outlines if line.strip().startswith("gb1_sampled "))
    assert "regression" in gb1_line and "6289/699/1745" in gb1_line and f"present: {flip_root}" in gb1_line
    scl_line = next(line for line in result.outlines if line.strip().startswith("scl_balanced "))
    assert "missing ->" in scl_line and "splits/scl/splits.zip" in scl_line
    assert any(line.strip().startswith("smoke ") for line in result.outlines)
    assert "collected" not in out  # listing only: no session ran
    bad = bench.run("--plm-list", "--plm-shard=3/2")  # a bad selection: one line, not a traceback
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: --plm-shard '3/2': need 0 <= K < N" in bad.stderr.str() and "Traceback" not in bad.stderr.str()
