"""Reliability (issue 9) through the plugin, under pytester: what the user sees, and that nothing
is lost. Real faults where this machine allows them (a 4 MiB tmpfs for a full disk, a read-only
remount for an unwritable cache: these need root and are skipped otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pandas as pd
import pytest

from pytest_plmtransfer.infra.tempfiles import _HOST
from pytest_plmtransfer.report.cli import main as cli_main
from pytest_plmtransfer.results.ledger import read_records

try:
    from . import flip_files
except ImportError:  # tests/ is not a package
    import flip_files  # type: ignore[no-redef]

# A wide model (20,000 features per sequence: ~14 MiB for three layers of 60 GB1 sequences, more
# than the tiny filesystem holds), an unsafe checkpoint on request, and a switch that hides the
# free-space check so that the write itself meets the full disk.
EXTRA_CONFTEST = """
import os
import numpy as np
from pytest_plmtransfer.models.base import EmbeddingBatch, ModelAdapter

if os.environ.get("PLM_TEST_STARTED"):  # says when a run has started
    open(os.environ["PLM_TEST_STARTED"], "w").close()

class WideUserModel(ModelAdapter):
    name = "wide_user"
    num_layers = 2
    embed_dim = 20000

    def identity(self):
        return {"model": self.name, "weights": "v1"}

    def embed(self, sequences, layers, *, per_residue):
        for i, seq in enumerate(sequences):
            yield EmbeddingBatch(indices=np.array([i]),
                                 per_layer={l: np.full((1, 20000), float(len(seq) + l), np.float32) for l in layers})

if os.environ.get("PLM_TEST_HIDE_FREE_SPACE"):
    import pytest_plmtransfer.infra.diskspace as diskspace
    diskspace.free_bytes = lambda directory: 1 << 40

_layer_records = []

def pytest_plmtransfer_layer_record(record, case):
    # issue 17: another process fills the ledger's filesystem once the run's first record is down
    _layer_records.append(record)
    if os.environ.get("PLM_TEST_FILL") and len(_layer_records) == 2:
        import subprocess
        subprocess.run(["dd", "if=/dev/zero", "of=" + os.environ["PLM_TEST_FILL"], "bs=4k"], capture_output=True)

def _evil(name, init, seed, options):
    from pytest_plmtransfer.models.weights import load_checkpoint
    load_checkpoint(os.environ["PLM_TEST_EVIL_PT"])

_register_toy = pytest_plmtransfer_register_models

def pytest_plmtransfer_register_models(registry):
    _register_toy(registry)
    registry.register("wide_user", lambda name, init, seed, options: WideUserModel(),
                      inits=("pretrained",), needs_weights=())
    registry.register("evil_user", _evil, inits=("pretrained",), needs_weights=())
"""


@pytest.fixture
def bench(plm):
    return plm(conftest=EXTRA_CONFTEST)


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 4 MiB filesystem (tmpfs); skipped where mounting is not permitted."""
    mounted: list[Path] = []

    def make(size: str = "4m") -> Path:
        point = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _failure_lines(result, needle: str) -> list[str]:
    return [line for line in result.outlines if needle in line]


# ------------------------------------------------------------------ 1: a full cache disk
@pytest.mark.parametrize("where", ["free-space check", pytest.param("write", marks=pytest.mark.slow)])
def test_full_cache_disk_fails_its_tests_in_one_line_and_the_run_finishes(bench, pytester, tiny_fs, monkeypatch, where):
    cache = tiny_fs("4m")
    if where == "write":  # the check is blind (a concurrent writer, a quota): the write meets ENOSPC
        monkeypatch.setenv("PLM_TEST_HIDE_FREE_SPACE", "1")
    # a claim that needs the wide model's layers computes them too: it fails in one line as well
    pytester.makepyfile(
        test_plm_claims="from pytest_plmtransfer.benchmarks.test_claims import test_claim  # noqa: F401"
    )
    bench.claims({"kind": "beats_onehot", "models": "wide_user", "tasks": "gb1_sampled"})
    # the blind check is the conftest's patch of the package: a process of its own
    args = ["--plm-models=onehot,wide_user", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained"]
    result = bench.run(*args, cache=cache, subprocess=where == "write")
    out = result.stdout.str() + result.stderr.str()
    assert "Bus error" not in out and "Fatal Python error" not in out
    result.assert_outcomes(passed=1, errors=4)  # a summary: the session survived
    # one failure line per test (3 layers, 1 claim); newer pytest repeats it in the short summary
    bodies = [line for line in result.outlines if line.startswith("not enough disk space for wide_user")]
    assert len(bodies) == 4, bodies
    lines = _failure_lines(result, "not enough disk space for wide_user")
    assert len(lines) >= 3 and f"in the embedding cache {cache}/embeddings" in lines[0]
    assert ("MiB free" if where == "free-space check" else "the filesystem ran out of space") in lines[0]
    assert "--plm-cache-dir" in lines[0] and "--plm-cache-dtype float16" in lines[0]
    assert "Traceback" not in out
    # nothing lost: one-hot's record is in the ledger, and no temp file fills the disk
    assert [(r["model"], r["layer"]) for r in bench.records()] == [("onehot", 0)]
    assert [p.name for p in cache.rglob("*.tmp")] == []


# ------------------------------------------------------------------ issue 17: a full ledger disk, a planted link
def _ledger_and_unsaved(ledger: Path, tmp: Path) -> tuple[list[dict], list[dict]]:
    from pytest_plmtransfer.results.ledger import read_records

    unsaved = [r for f in tmp.glob("plmtransfer-unsaved-*.json") for r in read_records(f, verify=True)]
    return read_records(ledger, verify=True), unsaved


@pytest.mark.slow
def test_ledger_disk_filled_by_another_writer_during_the_run_loses_no_record(bench, tiny_fs, tmp_path, monkeypatch):
    fs = tiny_fs("2m")
    monkeypatch.setenv("PLM_TEST_FILL", str(fs / "filler"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the unsaved records go
    (tmp_path / "tmp").mkdir()
    ledger = fs / "ledger"
    args = ["--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained,random", "--plm-run-id=full"]
    result = bench.run(*args, ledger=ledger)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 1 and "Traceback" not in out
    # the part's last page may still take one record after the filler: 4 or 5 tests meet the full disk
    errors = result.parseoutcomes().get("errors", 0)
    result.assert_outcomes(passed=6 - errors, errors=errors)
    assert errors >= 4
    lines = _failure_lines(result, f"could not write to the ledger {ledger} (No space left on device)")
    assert len(lines) >= errors and f"{errors} record(s) kept in memory" in out
    result.stdout.fnmatch_lines(
        [f"plmtransfer: the ledger {ledger} could not be written; this run's {errors} unsaved record(s) are in *"]
    )
    part = ledger / "full--all--main.jsonl"
    assert part.read_bytes().endswith(b"\n"), "a torn line was left in the ledger"
    kept, unsaved = _ledger_and_unsaved(ledger, tmp_path / "tmp")
    assert len(kept) == 6 - errors and len(unsaved) == errors
    keys = {(r["init"], r["layer"]) for r in kept + unsaved}
    assert keys == {(init, layer) for init in ("pretrained", "random") for layer in range(3)}
    (fs / "filler").unlink()  # space again: the unsaved file merges back into one ledger
    saved = next((tmp_path / "tmp").glob("plmtransfer-unsaved-*.json"))
    assert cli_main(["merge", str(ledger), str(saved), "--out", str(tmp_path / "all.json")]) == 0
    assert len(read_records(tmp_path / "all.json", verify=True)) == 6


def test_a_link_planted_at_the_ledger_part_is_not_written_through(bench, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    (ledger / "fixed--all--main.jsonl").symlink_to(victim)
    result = bench.run("--plm-models=onehot", "--plm-tasks=gb1_sampled", "--plm-run-id=fixed", ledger=ledger)
    # refused before computing; a link planted later, mid-run, is refused at the write (test_reliability.py)
    assert result.ret == 4 and victim.read_text() == "precious\n" and bench.forward_passes() == []
    result.stderr.fnmatch_lines(
        [
            f"ERROR: {ledger}/fixed--all--main.jsonl: a symbolic link or special file in a ledger directory, not a part this "
            "plugin wrote. The file was left as it is; move it aside, or choose another --plm-ledger"
        ]
    )


@pytest.mark.slow
def test_a_gate_that_judged_no_claim_fails(bench):
    result = bench.run("--plm-models=onehot", "--plm-tasks=gb1_sampled", "--plm-gate")
    result.assert_outcomes(passed=1)  # layer tests only: no claim was judged
    assert result.ret == 1
    result.stdout.fnmatch_lines(["plmtransfer: --plm-gate judged no claim (none selected, or all skipped)*"])


# ------------------------------------------------------------------ 5: a read-only cache
@pytest.mark.slow
def test_warm_read_only_cache_serves_and_a_cold_entry_fails_naming_it(bench, tiny_fs):
    cache = tiny_fs("8m")
    args = ["--plm-models=onehot", "--plm-tasks=gb1_sampled"]
    bench.run(*args, cache=cache).assert_outcomes(passed=1)
    subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
    warm = bench.run(*args, cache=cache)
    warm.assert_outcomes(passed=1)
    warm.stdout.fnmatch_lines(
        [f"plmtransfer: the cache {cache} is not writable*only embeddings and results already in it*"]
    )
    assert [r["cache_hit"] for r in bench.records()] == [False, True]
    cold = bench.run(
        "--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-inits=pretrained", "--plm-layers=0", cache=cache
    )
    cold.assert_outcomes(errors=1)
    assert _failure_lines(cold, f"the embedding cache {cache}/embeddings is not writable")


# ------------------------------------------------------------------ 8, 4, 2, 11, 15, 7: usage errors
def _claims_dir(root: Path) -> Path:
    d = root / "claims_typo"
    d.mkdir()
    (d / "claims.json").write_text(
        json.dumps({"claims": [{"kind": "beats_onehot", "models": "toy*", "tasks": "gb1_sampledd"}]})
    )
    return d


def _ledger_dir(root: Path, state: str) -> Path:
    """A ledger directory: empty, or with one record whose metric was edited after it was written."""
    path = root / state
    path.mkdir()
    if state == "edited":
        from pytest_plmtransfer.results.ledger import Ledger
        from pytest_plmtransfer.testing import layer_record

        led = Ledger(path, run_id="r")
        led.append([layer_record("toy", "gb1_sampled", 0, "pretrained", None, {"test_spearman": 0.2}, num_layers=2)])
        led.part.write_text(led.part.read_text().replace('"test_spearman":0.2', '"test_spearman":0.9'))
    return path


class Evil:
    """Unpickled, it would run a command: what a checkpoint must never be allowed to do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "case",
    [
        "seeds",
        "token_budget",
        "device",
        "layers_range",
        "layers_backwards",
        "claims_typo",
        "unsafe_checkpoint",
        "data_dir",
        "alias_update_baselines",
        "from_ledger_missing",
        "from_ledger_empty",
        "from_ledger_edited",
        "cuda_twice",
        "cuda_abc",
    ],
)
@pytest.mark.slow
def test_bad_options_and_config_files_are_one_line_usage_errors(bench, pytester, tmp_path, monkeypatch, case):
    args = ["--plm-models=toy", "--plm-tasks=gb1_sampled"]
    expected = {
        "seeds": (["--plm-seeds=abc"], "ERROR: --plm-seeds: 'abc' is not a seed; give non-negative integers*"),
        "token_budget": (["--plm-token-budget=0"], "ERROR: --plm-token-budget: '0' is not a positive integer"),
        "device": (
            ["--plm-device=gpu"],
            "ERROR: --plm-device: unknown device 'gpu' (accepted: auto, cpu, cuda, cuda:N, mps)",
        ),
        "layers_range": (
            ["--plm-layers=99,0"],
            "ERROR: --plm-layers 99,0: layer 99 is out of range; toy has layers 0..2*",
        ),
        "layers_backwards": (["--plm-layers=2-1"], "ERROR: --plm-layers 2-1: the range 2-1 is empty*"),
        "claims_typo": (
            [f"--plm-baselines-dir={_claims_dir(tmp_path)}"],
            "ERROR: *claims.json: invalid claims file: claims?0? (beats_onehot): task 'gb1_sampledd' matches no known task*",
        ),
        "unsafe_checkpoint": (["--plm-models=evil_user"], "ERROR: *evil.pt: refused as unsafe: it references *system*"),
        "data_dir": (
            [f"--plm-data-dir={tmp_path / 'typo'}"],
            f"ERROR: --plm-data-dir: {tmp_path / 'typo'} does not exist",
        ),
        # issue 17: a bad alias stays one line when baselines are to be written
        "alias_update_baselines": (
            ["--plm-models=my=bogus:./x", "--plm-update-baselines"],
            "ERROR: unknown model 'bogus:./x'. Known models: *",
        ),
        # issue 17: a gate on claims from a ledger that holds nothing, or not what was written, cannot pass
        "from_ledger_missing": (
            [f"--plm-from-ledger={tmp_path / 'typo'}", "--plm-gate"],
            f"ERROR: --plm-from-ledger {tmp_path / 'typo'}: no such ledger (directory or file)",
        ),
        "from_ledger_empty": (
            [f"--plm-from-ledger={_ledger_dir(tmp_path, 'empty')}", "--plm-gate"],
            f"ERROR: --plm-from-ledger {tmp_path / 'empty'}: the ledger holds no layer records; no claim can be judged",
        ),
        "from_ledger_edited": (
            [f"--plm-from-ledger={_ledger_dir(tmp_path, 'edited')}", "--plm-gate"],
            f"ERROR: --plm-from-ledger {tmp_path / 'edited'}/r--all--main.jsonl: line 2: the record does not match "
            "its digest (edited or damaged); it is not what pytest-plmtransfer wrote",
        ),
        # issue 17: GPUs the workers would be pinned to
        "cuda_twice": (
            ["-n", "2", "--plm-dist=group"],
            "ERROR: CUDA_VISIBLE_DEVICES='0,0': GPU '0' is listed twice; --plm-dist group gives each worker its own GPU",
        ),
        "cuda_abc": (
            ["-n", "2", "--plm-dist=group"],
            "ERROR: CUDA_VISIBLE_DEVICES='abc': 'abc' is not a GPU index or UUID (GPU-..., MIG-...)",
        ),
    }[case]
    if case.startswith("cuda"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", {"cuda_twice": "0,0", "cuda_abc": "abc"}[case])
    if case == "claims_typo":
        pytester.makepyfile(
            test_plm_claims="from pytest_plmtransfer.benchmarks.test_claims import test_claim  # noqa: F401"
        )
    if case == "unsafe_checkpoint":
        import torch

        torch.save({"model": Evil(tmp_path / "pwned")}, tmp_path / "evil.pt")
        monkeypatch.setenv("PLM_TEST_EVIL_PT", str(tmp_path / "evil.pt"))
    result = bench.run(*args, *expected[0])
    assert result.ret == 4, result.stdout.str()
    result.stderr.fnmatch_lines([expected[1]])
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert bench.forward_passes() == [] and not bench.ledger.exists()
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------ 6, 5: the ledger up front
@pytest.mark.parametrize("damage", ["binary", "records_object", "unwritable"])
@pytest.mark.slow
def test_damaged_or_unwritable_ledger_refuses_the_run_before_computing(bench, tmp_path, damage):
    if damage == "unwritable":
        (tmp_path / "blocker").write_text("a file where a directory should be")
        ledger = tmp_path / "blocker" / "ledger.json"
        needle = (
            f"ERROR: --plm-ledger {ledger}: the ledger cannot be written ({tmp_path / 'blocker'} is not a directory)*"
        )
    else:
        ledger = tmp_path / "damaged"
        ledger.mkdir()
        part = ledger / "old--all--main.jsonl"
        part.write_bytes(
            {"binary": b"\xff\xfe\x00", "records_object": b'{"schema_version": 2, "records": {"a": 1}}'}[damage]
        )
        before = part.read_bytes()
        needle = f"ERROR: {part}: * The file was left as it is; move it aside, or choose another --plm-ledger"
    result = bench.run("--plm-models=toy", "--plm-tasks=gb1_sampled", ledger=ledger)
    assert result.ret == 4
    result.stderr.fnmatch_lines([needle])
    assert bench.forward_passes() == [], "nothing was computed"
    if damage != "unwritable":
        assert part.read_bytes() == before, "the damaged ledger was rewritten"


# ------------------------------------------------------------------ 3, 9, 13, 16, 17 in one story
def _leaky_root(root: Path) -> Path:
    def leak(member, frame):
        train = frame.index[frame["set"] == "train"]
        test = frame.index[frame["set"] == "test"]
        frame.loc[test[0], "sequence"] = frame.loc[train[0], "sequence"]
        conflict = frame.loc[[train[1]]].assign(target=123.0)  # issue 17: one sequence, two targets
        return pd.concat([frame, conflict], ignore_index=True)

    flip_files.write_gb1(root, n=60, seed=3, edit=leak)
    return root


@pytest.mark.slow
def test_hygiene_provenance_result_integrity_stale_temps_and_modes(bench, tmp_path):
    data = _leaky_root(tmp_path / "leaky")
    args = [
        "--plm-models=onehot,toy",
        "--plm-tasks=gb1_sampled",
        "--plm-inits=pretrained",
        "--plm-device=cuda",
        "--plm-dtype=fp16",
        "-W",
        "always",
    ]
    old_umask = os.umask(0o022)
    try:
        first = bench.run(*args, data=data)
    finally:
        os.umask(old_umask)
    first.assert_outcomes(passed=4)
    # 9: leakage counted in every record and warned about
    first.stdout.fnmatch_lines(
        [
            "*DataLeakageWarning: gb1_sampled (*splits.zip): 1 of * test rows (*) have a sequence that is also in train/val*"
        ]
    )
    first.stdout.fnmatch_lines(  # the row the edit appended is line 62 of the file (header, 60 rows)
        [
            "*DataLeakageWarning: gb1_sampled (*splits.zip, splits/sampled.csv): 1 sequence(s) occur more than "
            "once in one split with different targets: train rows row*, row62"
        ]
    )
    recs = bench.records()
    assert {r["data"]["hygiene"]["train_test_overlap"] for r in recs} == {1}
    # 13: what ran, not what was asked (nothing here runs on CUDA or in half precision)
    assert {(r["device"], r["dtype"]) for r in recs} == {("cpu", "float32")}
    assert {r["requested"]["device"] for r in recs} == {"cuda"} and {r["cache_dtype"] for r in recs} == {"float32"}
    # 17: files renamed into place from temp files have the umask's mode, not 0600
    layer_files = list(bench.cache.rglob("L00*.npy"))
    ledger_files = [bench.ledger] if bench.ledger.is_file() else list(bench.ledger.glob("*.jsonl"))
    assert ledger_files and layer_files
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in [*ledger_files, *layer_files])
    # 3: an edited cached result is caught and recomputed; 16: a dead writer's temp is swept
    result_file = next(p for p in (bench.cache / "results").rglob("*.json"))
    doc = json.loads(result_file.read_text())
    doc["result"]["metrics"]["test_spearman"] = 0.999
    result_file.write_text(json.dumps(doc))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = bench.ledger / f".merged.jsonl.{_HOST}.{int(dead.stdout)}.k1ll3d.tmp"  # a part written whole
    stale.write_text("half a ledger")
    second = bench.run(*args, data=data)
    second.assert_outcomes(passed=4)
    second.stdout.fnmatch_lines(
        [
            f"*CachedResultWarning: cached probe result {result_file}: its content does not match its sha256*recomputing it"
        ]
    )
    assert not stale.exists()
    recs = bench.records()
    key = lambda r: (r["model"], r["layer"])
    run1 = {key(r): r["metrics"]["test_spearman"] for r in recs[:4]}
    run2 = {key(r): r["metrics"]["test_spearman"] for r in recs[4:]}
    assert run1 == run2 and 0.999 not in run2.values()
    # 9: --plm-strict makes leakage an error: one line per test, no traceback
    strict = bench.run(*args, "--plm-strict", data=data)
    strict.assert_outcomes(errors=4)
    assert len(_failure_lines(strict, "have a sequence that is also in train/val")) >= 4
    assert "Traceback" not in strict.stdout.str()
    assert len(bench.records()) == 8


# ------------------------------------------------------------------ 10: a hung lock holder
@pytest.mark.slow
def test_lock_held_by_a_hung_process_is_reported_then_waited_for_or_failed(bench, tmp_path):
    hold = (
        "import sys, time\n"
        "from pytest_plmtransfer.infra.locks import PatientLock\n"
        "with PatientLock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[2]))\n"
    )
    # Appends to the ledger take no lock (one part file per process); computing an embedding
    # cache entry does: the entry a first run made is removed, so the next runs need its lock.
    args = ["--plm-models=onehot", "--plm-tasks=gb1_sampled", "--plm-lock-timeout=1"]
    bench.run(*args).assert_outcomes(passed=1)
    entry = next((bench.cache / "embeddings").rglob("manifest.json")).parent
    lock = f"{entry}.lock"
    shutil.rmtree(entry)
    shutil.rmtree(bench.cache / "results")
    holder = subprocess.Popen([sys.executable, "-c", hold, lock, "600"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        failed = bench.run(*args, "--plm-lock-fail")
        failed.assert_outcomes(errors=1)
        assert _failure_lines(
            failed, f"waited 1 s for the lock {lock} (embedding cache entry {entry.name}), held by pid {holder.pid}"
        )
    finally:
        holder.kill()
        holder.wait()
    # held until the run is about to start (in this process), then 8 s more: it waits at the lock
    started = tmp_path / "started"
    until_started = (
        "import sys, time, pathlib\n"
        "from pytest_plmtransfer.infra.locks import PatientLock\n"
        "with PatientLock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    deadline = time.time() + 300\n"
        "    while not pathlib.Path(sys.argv[2]).exists() and time.time() < deadline:\n"
        "        time.sleep(0.1)\n"
        "    time.sleep(8)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", until_started, lock, str(started)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started.touch()
        waited = bench.run(*args)
    finally:
        holder.wait()
    waited.assert_outcomes(passed=1)
    waited.stdout.fnmatch_lines(
        [f"plmtransfer: waited 1 s for the lock {lock} (embedding cache entry {entry.name}), held by pid {holder.pid}*"]
    )
    assert len(bench.records()) == 2


# ------------------------------------------------------------------ 11: bad data, one line per test
@pytest.mark.slow
def test_bad_data_fails_each_affected_test_in_one_line(bench, tmp_path):
    def bad_residue(member, frame):
        frame.loc[4, "sequence"] = "MJ" + frame.loc[4, "sequence"][2:]
        return frame

    flip_files.write_gb1(tmp_path / "bad", "sampled", n=30, edit=bad_residue)
    result = bench.run(
        "--plm-models=onehot,toy",
        "--plm-tasks=gb1_sampled",
        "--plm-inits=pretrained",
        "-n",
        "2",
        data=tmp_path / "bad",
        subprocess=True,
    )
    result.assert_outcomes(errors=4)
    where = f"{tmp_path / 'bad'}/splits/gb1/splits.zip:splits/sampled.csv: row 6:"
    lines = [line for line in result.outlines if line.startswith(where)]
    assert len(lines) == 4 and "'J'" in lines[0]
    assert "Traceback" not in result.stdout.str() and "readers.py" not in result.stdout.str()


@pytest.mark.slow
def test_bad_selection_under_xdist_fails_in_one_line_instead_of_crashing(bench):
    args = ["--plm-models=toy", "--plm-tasks=gb1_sampled", "--plm-layers=7", "-n", "2"]
    result = bench.run(*args, subprocess=True)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert [
        line
        for line in result.outlines
        if line.startswith("--plm-layers 7: layer 7 is out of range; toy has layers 0..2")
    ]
    assert bench.forward_passes() == []
