"""Reliability (issue 9): each bad input or fault gives one clear error and loses nothing.

Plain-function tests here; plugin behaviour under pytester is in test_reliability_plugin.py.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_plmtransfer.infra import diskspace, tempfiles
from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.infra.locks import LockPolicy, LockTimeoutError, PatientLock
from pytest_plmtransfer.infra.provenance import effective_runtime
from pytest_plmtransfer.judge.claims.spec import ClaimsError, check_selectors, parse_claims
from pytest_plmtransfer.options import (
    OptionError,
    check_layer_spec,
    parse_choice,
    parse_device,
    parse_layers,
    parse_positive_int,
    parse_seeds,
    parse_sha256_map,
)
from pytest_plmtransfer.report.cli import main as cli_main
from pytest_plmtransfer.results.ledger import Ledger, LedgerError, read_records, record_digest
from pytest_plmtransfer.results.result_cache import CachedResultWarning, ResultCache
from pytest_plmtransfer.results.store import CacheNotWritable, EmbeddingStore, entry_key
from pytest_plmtransfer.run.preflight import PreflightError, check_cache, check_ledger
from pytest_plmtransfer.tasks.catalog import get_task
from pytest_plmtransfer.tasks.hygiene import leakage_message, measure
from pytest_plmtransfer.tasks.readers import load_task
from pytest_plmtransfer.tasks.resolve import PUBLISHED_SHA256, DataResolver

try:
    from . import flip_files as ff
    from .test_store import SEQS, CountingAdapter
except ImportError:  # tests/ is not a package
    import flip_files as ff  # type: ignore[no-redef]
    from test_store import SEQS, CountingAdapter  # type: ignore[no-redef]


# ------------------------------------------------------------------ 8, 4: options, when read
@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: parse_seeds("abc"), "--plm-seeds: 'abc' is not a seed"),
        (lambda: parse_seeds("1,1"), "--plm-seeds: seed 1 is given twice"),
        (lambda: parse_positive_int("--plm-token-budget", "0"), "--plm-token-budget: '0' is not a positive integer"),
        (lambda: parse_positive_int("--plm-token-budget", "-5"), "--plm-token-budget: '-5'"),
        (lambda: parse_device("gpu"), "--plm-device: unknown device 'gpu' (accepted: auto, cpu, cuda, cuda:N, mps)"),
        (
            lambda: parse_choice("--plm-dtype", "fp8", ("float32", "fp16")),
            "--plm-dtype: unknown value 'fp8' (accepted: float32, fp16)",
        ),
        (lambda: check_layer_spec("1..3"), "--plm-layers: cannot read '1..3'"),
        (lambda: parse_sha256_map("gb2=" + "0" * 64), "--plm-flip-sha256: unknown dataset 'gb2'"),
        (lambda: parse_sha256_map("gb1=abc"), "give DATASET=<64 hex digits"),
    ],
)
def test_bad_option_values_name_the_option_and_what_is_accepted(call, needle):
    with pytest.raises(OptionError) as exc:
        call()
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_good_option_values():
    assert parse_seeds("42, 0,12345") == [42, 0, 12345]
    assert parse_positive_int("--x", "4096") == 4096
    assert parse_device("CUDA:1") == "cuda:1"
    assert parse_sha256_map("gb1=" + "A" * 64) == {"gb1": "a" * 64}


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("99", "layer 99 is out of range; tiny has layers 0..6 (or -7..-1 from the end)"),
        ("-100", "layer -100 is out of range"),
        ("99,0", "layer 99 is out of range"),  # no longer silently dropped
        ("5-2", "the range 5-2 is empty (it runs backwards for tiny)"),
    ],
)
def test_layers_out_of_a_models_range_are_errors_naming_model_and_range(spec, needle):
    with pytest.raises(OptionError) as exc:
        parse_layers(spec, 6, "tiny")
    assert needle in str(exc.value) and str(exc.value).startswith(f"--plm-layers {spec}:")


def test_layers_in_range_ranges_clip_and_one_layer_models_keep_their_layer():
    assert parse_layers("0,5,-1", 6, "m") == [0, 5, 6]
    assert parse_layers("2-99", 6, "m") == [2, 3, 4, 5, 6]  # "from 2 on"
    assert parse_layers("-3:-1", 6, "m") == [4, 5, 6]
    assert parse_layers("5", 0, "onehot") == [0]  # the baseline stays in any selection


# ------------------------------------------------------------------ 1, issue 7.5: disk space
class WideAdapter(CountingAdapter):
    """5000 values per sequence: 60 kB per layer for 3 sequences."""

    def feature_dim(self, sequences, *, per_residue):
        return 5000

    def embed(self, sequences, layers, *, per_residue):
        from pytest_plmtransfer.models.base import EmbeddingBatch

        self.calls.append(sorted(layers))
        for i in range(len(sequences)):
            yield EmbeddingBatch(
                indices=np.array([i]), per_layer={l: np.full((1, 5000), l + 0.5, np.float32) for l in layers}
            )


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.is_file() and not p.name.endswith((".lock", ".holder"))]


def test_injected_enospc_at_the_write_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def full(path, size, data_offset=0):
        calls.append(size)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pytest_plmtransfer.results.store.preallocate", full)
    store = EmbeddingStore(tmp_path)
    with pytest.raises(diskspace.CacheSpaceError) as exc:
        store.get_or_compute(WideAdapter(), SEQS, [0, 1, 2], per_residue=False)
    msg = str(exc.value)
    assert calls, "the write path was reached (the free-space check passed)"
    assert f"embedding cache {tmp_path}" in msg and "needs 187.8 KiB" in msg
    assert "--plm-cache-dir" in msg and "--plm-layers" in msg and "--plm-cache-dtype float16" in msg
    assert _leftovers(tmp_path) == []
    # nothing is poisoned: with room again, the entry is computed normally
    monkeypatch.undo()
    entry = store.get_or_compute(WideAdapter(), SEQS, [0, 1, 2], per_residue=False)
    assert entry.layer(2)[0, 0] == 2.5


def test_free_space_is_checked_before_the_model_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(diskspace, "free_bytes", lambda d: 10_000)
    adapter = WideAdapter()
    with pytest.raises(diskspace.CacheSpaceError, match=r"needs 187.8 KiB, 9.8 KiB free"):
        EmbeddingStore(tmp_path).get_or_compute(adapter, SEQS, [0, 1, 2], per_residue=False)
    assert adapter.calls == [], "no forward pass for an entry that cannot be stored"


def test_preallocate_falls_back_to_writing_zeros(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"HEADER")

    def unsupported(fd, offset, size):
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    diskspace.preallocate(path, 6 + 10_000, data_offset=6)
    data = path.read_bytes()
    assert data[:6] == b"HEADER" and len(data) == 10_006 and set(data[6:]) == {0}
    assert os.stat(path).st_blocks * 512 >= 10_000  # real blocks, not a hole


def test_float16_cache_halves_the_files_and_is_in_the_key(tmp_path):
    adapter = CountingAdapter()
    f32 = EmbeddingStore(tmp_path).get_or_compute(adapter, SEQS, [1], per_residue=True)
    f16 = EmbeddingStore(tmp_path, dtype="float16").get_or_compute(adapter, SEQS, [1], per_residue=True)
    assert f16.key != f32.key and f16.dtype == "float16"
    assert f32.key == entry_key(adapter.identity(), SEQS, per_residue=True, pooling="mean")  # float32 keys unchanged
    a32, a16 = f32.layer(1), f16.layer(1)
    assert a16.dtype == np.float16 and a16.nbytes * 2 == a32.nbytes
    np.testing.assert_allclose(a16.astype(np.float32), a32, rtol=1e-3)
    manifest = json.loads((f16.path / "manifest.json").read_text())
    assert manifest["dtype"] == "float16"


def test_float16_refuses_values_it_cannot_hold(tmp_path):
    class Huge(WideAdapter):
        def embed(self, sequences, layers, *, per_residue):
            from pytest_plmtransfer.models.base import EmbeddingBatch

            for i in range(len(sequences)):
                yield EmbeddingBatch(
                    indices=np.array([i]), per_layer={l: np.full((1, 5000), 1e6, np.float32) for l in layers}
                )

    with pytest.raises(Exception, match=r"do not fit in float16; use --plm-cache-dtype float32"):
        EmbeddingStore(tmp_path, dtype="float16").get_or_compute(Huge(), SEQS, [0], per_residue=False)
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------ 5: read-only cache
def test_warm_cache_is_read_without_a_lock_and_a_cold_one_names_the_cache(tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path)
    adapter = CountingAdapter()
    store.get_or_compute(adapter, SEQS, [0, 1], per_residue=False)

    def no_lock(self):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("pytest_plmtransfer.infra.locks.PatientLock.acquire", no_lock)
    warm = EmbeddingStore(tmp_path).get_or_compute(adapter, SEQS, [0, 1], per_residue=False)
    assert not warm.computed and adapter.calls == [[0, 1]]
    with pytest.raises(
        CacheNotWritable,
        match=rf"the embedding cache {tmp_path} is not writable \(Read-only file system\).*layer\(s\) \[2\]",
    ):
        EmbeddingStore(tmp_path).get_or_compute(adapter, SEQS, [2], per_residue=False)


# ------------------------------------------------------------------ 16, 17: temps and modes
def test_temp_files_carry_host_and_pid_and_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        fd, path = tempfiles.make_temp(tmp_path / "ledger.json")
        os.close(fd)
        assert path.name.startswith(f".ledger.json.{tempfiles._HOST}.{os.getpid()}.")
        assert (path.stat().st_mode & 0o777) == 0o644
        os.umask(0o077)
        fd, private = tempfiles.make_temp(tmp_path / "x")
        os.close(fd)
        assert (private.stat().st_mode & 0o777) == 0o600
    finally:
        os.umask(old)


def test_stale_temps_of_dead_writers_are_swept_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = tempfiles._HOST
    stale = tmp_path / f".L003.npy.{host}.{dead_pid}.abc123.tmp"
    live = tmp_path / f".L004.npy.{host}.{os.getpid()}.abc123.tmp"
    other_host_new = tmp_path / f".ledger.json.otherhost.{dead_pid}.q1w2.tmp"
    other_host_old = tmp_path / f".ledger.json.otherhost.{dead_pid}.q1w3.tmp"
    unrelated = tmp_path / ".hidden-user-file"
    for p in (stale, live, other_host_new, other_host_old, unrelated):
        p.write_text("x")
    old = time.time() - 3 * 24 * 3600
    os.utime(other_host_old, (old, old))
    removed = tempfiles.sweep_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted([stale.name, other_host_old.name])
    assert live.exists() and other_host_new.exists() and unrelated.exists()


def test_a_killed_writer_leaves_a_temp_the_next_compute_removes(tmp_path):
    store = EmbeddingStore(tmp_path)
    key_dir = store.entry_dir(entry_key(CountingAdapter().identity(), SEQS, per_residue=False, pooling="mean"))
    key_dir.mkdir(parents=True)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = key_dir / f".L000.npy.{tempfiles._HOST}.{int(child.stdout)}.zz9.tmp"
    left.write_bytes(b"\0" * 1000)
    store.get_or_compute(CountingAdapter(), SEQS, [0], per_residue=False)
    assert not left.exists()


# ------------------------------------------------------------------ 10: locks
HOLD = """
import sys, time
from pytest_plmtransfer.infra.locks import PatientLock
with PatientLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(lock: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow
def test_lock_timeout_names_the_lock_and_holder_then_fails_or_waits(tmp_path):
    lock = tmp_path / "entry.lock"
    holder = _hold(lock, 4)
    try:
        with pytest.raises(LockTimeoutError) as exc:
            with PatientLock(lock, LockPolicy(report_after=0.3, fail=True), what="embedding cache entry k"):
                pass
        msg = str(exc.value)
        assert f"the lock {lock} (embedding cache entry k), held by pid {holder.pid} on host" in msg
        assert "--plm-lock-fail" in msg
        lines: list[str] = []
        start = time.monotonic()
        with PatientLock(lock, LockPolicy(report_after=0.3, notify=lines.append)):
            waited = time.monotonic() - start
        assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "still waiting" in lines[0]
        assert waited > 1.0, "it kept waiting until the holder let go"
    finally:
        holder.wait(10)
    assert not Path(str(lock) + ".holder").exists()


# ------------------------------------------------------------------ 3: cached results
def test_tampered_or_corrupt_result_is_recomputed_with_a_warning(tmp_path):
    cache = ResultCache(tmp_path)
    result = {
        "metrics": {"test_spearman": np.float64(0.5), "val": float("nan")},
        "head": {"alpha": 1.0},
        "fit_seconds": 0.1,
    }
    cache.put("ab" * 20, result)
    got = cache.get("ab" * 20)
    assert got["metrics"]["test_spearman"] == 0.5
    path = cache.path("ab" * 20)
    doc = json.loads(path.read_text())
    doc["result"]["metrics"]["test_spearman"] = 0.99
    path.write_text(json.dumps(doc))
    with pytest.warns(CachedResultWarning, match=r"does not match its sha256"):
        assert cache.get("ab" * 20) is None
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.warns(CachedResultWarning, match=r"unreadable"):
        assert cache.get("ab" * 20) is None
    path.write_text(json.dumps(result | {"metrics": {"x": 1}}, default=float))  # no digest
    with pytest.warns(CachedResultWarning, match=r"not a cached probe result"):
        assert cache.get("ab" * 20) is None


# ------------------------------------------------------------------ 2: claims naming nothing
def test_claim_patterns_matching_nothing_known_are_errors():
    claims = parse_claims(
        {
            "claims": [
                {"kind": "beats_onehot", "models": ["carp_*"], "tasks": "gb1_sampledd"},
                {
                    "name": "sat",
                    "kind": "saturates_by",
                    "models": "esm3*",
                    "params": {"layer": 2},
                    "expected_failures": [{"tasks": "nope_*", "reason": "r"}],
                },
            ]
        },
        "claims.json",
    )
    with pytest.raises(ClaimsError) as exc:
        check_selectors(claims, models=["carp_600k", "onehot"], tasks=["gb1_sampled"], inits=["pretrained"])
    problems = exc.value.problems
    assert any("claims[0] (beats_onehot): task 'gb1_sampledd' matches no known task" in p for p in problems)
    assert any("claims[1] (sat): model 'esm3*' matches no known model" in p for p in problems)
    assert any("claims[1] (sat).expected_failures[0]: task 'nope_*'" in p for p in problems)
    assert len(problems) == 3
    check_selectors(claims.claims[:1], models=["carp_600k"], tasks=["gb1_sampledd"], inits=["pretrained"])


# ------------------------------------------------------------------ 9: data hygiene
def _leaky_gb1(root: Path) -> Path:
    def edit(member, frame):
        train = frame.index[frame["set"] == "train"]
        test = frame.index[frame["set"] == "test"]
        frame.loc[test[0], "sequence"] = frame.loc[train[0], "sequence"]  # leak
        duplicate = frame.loc[[train[1]]].copy()
        conflict = frame.loc[[train[2]]].copy()
        conflict["target"] = 123.0  # same sequence, other target
        return pd.concat([frame, duplicate, conflict], ignore_index=True)

    return ff.write_gb1(root, "sampled", n=40, edit=edit)


def test_hygiene_counts_duplicates_conflicts_and_overlap(tmp_path):
    # the generator itself repeats a few mutants (2 conflicting pairs at n=40): count relative to it
    base = measure(load_task(get_task("gb1_sampled"), ff.write_gb1(tmp_path / "clean", "sampled", n=40)))
    assert (base.duplicate_rows, base.train_test_overlap) == (0, 0)
    data = load_task(get_task("gb1_sampled"), _leaky_gb1(tmp_path))
    h = measure(data)
    assert h.duplicate_rows == 1 and h.conflicting_duplicates == base.conflicting_duplicates + 1
    assert h.train_test_overlap == 1
    msg = leakage_message("gb1_sampled", data.source, h, 0.0)
    assert msg.startswith(f"gb1_sampled ({data.source}): 1 of {h.n_test} test rows")
    assert leakage_message("gb1_sampled", data.source, h, 0.5) is None


# ------------------------------------------------------------------ 6, 12: damaged ledgers
DAMAGED = {
    "binary": b"\xff\xfe\x00garbage",
    "list_of_ints": b"[1, 2, 3]",
    "not_a_record": b'{"schema_version": 2, "records": [{"a": 1}]}',  # a JSON document, not a part
    "header_without_version": b'{"kind": "ledger_part"}\n',  # not "newer than this plugin": no advice to upgrade
    "pretty_printed": b'{\n "records": []\n}',
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_ledger_one_line_with_path_never_rewritten(tmp_path, name, capsys):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    path = ledger / "old--all--main.jsonl"
    path.write_bytes(DAMAGED[name])
    with pytest.raises(LedgerError, match=str(path)):
        read_records(path)
    with pytest.raises(PreflightError) as exc:
        check_ledger(ledger)
    assert str(exc.value).startswith(str(path)) and "left as it is" in str(exc.value)
    assert "upgrade" not in str(exc.value)
    assert path.read_bytes() == DAMAGED[name], "the damaged file was rewritten"
    for command in (["show", str(ledger)], ["report", str(ledger)], ["compare", str(path), str(ledger)]):
        assert cli_main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(path) in err and "Traceback" not in err


def test_unwritable_ledger_place_is_refused_with_its_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        PreflightError,
        match=rf"--plm-ledger {blocker}/sub/ledger.json: the ledger cannot be written \({blocker} is not a directory\)",
    ):
        check_ledger(blocker / "sub" / "ledger.json")
    check_ledger(tmp_path / "new" / "dir" / "ledger.json")  # creatable: fine, nothing created
    assert not (tmp_path / "new").exists()
    assert "is not writable" in check_cache(blocker / "cache")
    assert check_cache(tmp_path / "cache") is None


# ------------------------------------------------------------------ 13: effective runtime
def test_provenance_records_what_ran_not_what_was_asked():
    import torch

    from pytest_plmtransfer.models.onehot import OneHotAdapter
    from pytest_plmtransfer.models.torch_base import resolve_dtype

    assert effective_runtime(OneHotAdapter()) == {"device": "cpu", "dtype": "float32"}

    class Torchy:
        device = torch.device("cpu")
        with pytest.warns(UserWarning, match="only used on CUDA"):
            dtype = resolve_dtype("fp16", torch.device("cpu"))

    assert effective_runtime(Torchy()) == {"device": "cpu", "dtype": "float32"}


# ------------------------------------------------------------------ 14: pinned, verified downloads
def test_published_digests_are_those_of_the_published_archives():
    shared = Path("/work/shared/flip/splits")
    if not shared.is_dir():
        pytest.skip("the published FLIP archives are not on this machine")
    from pytest_plmtransfer.infra.hashing import sha256_file

    for dataset, digest in PUBLISHED_SHA256.items():
        assert sha256_file(shared / dataset / "splits.zip") == digest


def test_download_with_the_wrong_digest_is_refused_and_nothing_kept(tmp_path):
    src = ff.write_gb1(tmp_path / "mirror", "sampled", n=30)
    resolver = DataResolver(
        None, tmp_path / "cache", base_url=(tmp_path / "mirror").as_uri(), expected_sha256={"gb1": "0" * 64}
    )
    with pytest.raises(
        ResourceUnavailable, match=r"have sha256 [0-9a-f]{64}, not the published 0{64}; nothing was kept"
    ):
        resolver.resolve(get_task("gb1_sampled"))
    assert _leftovers(tmp_path / "cache") == []
    from pytest_plmtransfer.infra.hashing import sha256_file

    ok = DataResolver(
        None, tmp_path / "cache", base_url=(tmp_path / "mirror").as_uri(), expected_sha256={"gb1": sha256_file(src)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified: no warning
        assert ok.resolve(get_task("gb1_sampled")).read_bytes() == src.read_bytes()


def test_download_without_a_known_digest_is_recorded_with_a_warning(tmp_path, monkeypatch):
    from pytest_plmtransfer.infra.hashing import sha256_file
    from pytest_plmtransfer.tasks.resolve import UnverifiedDownloadWarning, read_sidecar

    monkeypatch.setattr("pytest_plmtransfer.tasks.resolve.PUBLISHED_SHA256", {})
    ff.write_gb1(tmp_path / "mirror", "sampled", n=30)
    resolver = DataResolver(None, tmp_path / "cache", base_url=(tmp_path / "mirror").as_uri())
    with pytest.warns(UnverifiedDownloadWarning, match=r"no published sha256 is known.*--plm-flip-sha256"):
        path = resolver.resolve(get_task("gb1_sampled"))
    assert read_sidecar(path) == sha256_file(path)


def test_strict_explicit_data_dir_must_hold_the_archive(tmp_path, monkeypatch):
    monkeypatch.setattr("pytest_plmtransfer.tasks.resolve.PUBLISHED_SHA256", {})  # a generated archive
    (tmp_path / "data").mkdir()
    cache = tmp_path / "cache"
    ff.write_gb1(cache / "flip", "sampled", n=30)  # a cached copy exists
    lenient = DataResolver(tmp_path / "data", cache, allow_download=False)
    assert lenient.resolve(get_task("gb1_sampled")).is_file()
    strict = DataResolver(tmp_path / "data", cache, allow_download=False, require_data_dir=True)
    with pytest.raises(
        ResourceUnavailable, match=rf"the data directory {tmp_path / 'data'} has no splits/gb1/splits.zip"
    ):
        strict.resolve(get_task("gb1_sampled"))


# ------------------------------------------------------------------ 15: unsafe checkpoints
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_unsafe_checkpoint_refused_in_one_line(tmp_path):
    import torch

    from pytest_plmtransfer.models.weights import UnsafeCheckpointError, load_checkpoint

    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil()}, path)
    with pytest.raises(UnsafeCheckpointError) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: refused as unsafe: it references ") and "system" in msg
    assert "weights_only=False" not in msg and "\n" not in msg


# ------------------------------------------------------------------ issue 17: writes that cannot lose a record
def _records(n: int, **kw) -> list[dict]:
    from pytest_plmtransfer.testing import layer_record

    return [
        layer_record(
            "toy", "gb1_sampled", layer, "pretrained", None, {"test_spearman": 0.1 * layer}, num_layers=n, **kw
        )
        for layer in range(n)
    ]


def _fault_writes_to(monkeypatch, target: Path, fault):
    """os.write with ``fault(fd, data, real_write)`` for descriptors open on ``target`` only."""
    real = os.write

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}") == str(target):
            return fault(fd, data, real)
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_a_short_write_then_enospc_undoes_the_append_and_leaves_no_torn_line(tmp_path, monkeypatch):
    led = Ledger(tmp_path / "ledger", run_id="r")
    led.append(_records(1))
    before = led.part.read_bytes()
    calls = []

    def full(fd, data, real):  # the disk takes half, then nothing: what a filling disk does
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    _fault_writes_to(monkeypatch, led.part, full)
    with pytest.raises(OSError) as info:
        led.append(_records(3))
    assert info.value.errno == errno.ENOSPC and len(calls) == 2, "the short write was followed up, not trusted"
    assert led.part.read_bytes() == before, "the half-written records were cut off again"
    monkeypatch.undo()
    led.append(_records(3))  # space again: the same records land whole
    assert [r["layer"] for r in read_records(led.path, verify=True)] == [0, 0, 1, 2]


@pytest.mark.parametrize("progress", ["pieces", "none"])
def test_short_writes_are_completed_and_a_write_of_nothing_is_an_error(tmp_path, monkeypatch, progress):
    led = Ledger(tmp_path / "ledger", run_id="r")
    led.append(_records(1))
    fault = {
        "pieces": lambda fd, data, real: real(fd, bytes(data[:100])),  # slow device: 100 bytes at a time
        "none": lambda fd, data, real: 0,
    }[progress]
    _fault_writes_to(monkeypatch, led.part, fault)
    if progress == "none":
        with pytest.raises(OSError, match="No space left"):
            led.append(_records(2))
        assert len(read_records(led.path)) == 1
    else:
        led.append(_records(2))
        assert len(read_records(led.path, verify=True)) == 3


def test_full_ledger_disk_keeps_records_and_saves_them_at_the_end(tmp_path, monkeypatch):
    from pytest_plmtransfer.models.registry import builtin_registry
    from pytest_plmtransfer.options import PlmOptions
    from pytest_plmtransfer.run.recorder import LedgerWriteError
    from pytest_plmtransfer.run.stages import build_stages

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    plm = build_stages(
        PlmOptions(ledger=tmp_path / "ledger", cache_dir=tmp_path / "c"), builtin_registry(), root=tmp_path, run_id="r1"
    ).recorder
    plm.write(_records(1))  # the part exists: the next appends meet the full disk
    recs = _records(3, run_id="r2")
    _fault_writes_to(
        monkeypatch, plm.ledger.part, lambda fd, data, real: real(fd, bytes(data[:10])) if len(data) > 900 else 0
    )
    with pytest.raises(
        LedgerWriteError, match=r"could not write to the ledger .*ledger \(No space left on device\); 1 record"
    ):
        plm.write(recs[1:2])
    with pytest.raises(LedgerWriteError, match="2 record"):
        plm.write(recs[2:3])
    line = plm.save_unsaved()
    saved = tmp_path / "tmp" / f"plmtransfer-unsaved-{plm.run_id}-{os.getpid()}.json"
    assert line is not None and f"2 unsaved record(s) are in {saved}" in line and "plmtransfer merge" in line
    assert [r["layer"] for r in read_records(saved, verify=True)] == [1, 2]
    assert read_records(plm.ledger.path)[-1]["layer"] == 0 and plm.ledger.part.read_bytes().endswith(b"\n")
    monkeypatch.undo()
    # the unsaved file is a ledger: merged with the part, nothing is missing
    assert cli_main(["merge", str(plm.ledger.path), str(saved), "--out", str(tmp_path / "all")]) == 0
    assert sorted(r["layer"] for r in read_records(tmp_path / "all", verify=True)) == [0, 1, 2]


def test_unsaved_records_are_printed_when_no_file_takes_them(tmp_path, monkeypatch):
    from pytest_plmtransfer.models.registry import builtin_registry
    from pytest_plmtransfer.options import PlmOptions
    from pytest_plmtransfer.run.stages import build_stages

    plm = build_stages(
        PlmOptions(ledger=tmp_path / "ledger", cache_dir=tmp_path / "c"), builtin_registry(), root=tmp_path, run_id="r1"
    ).recorder
    plm.unsaved = _records(2)
    monkeypatch.setattr(Ledger, "append", lambda self, records: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no" / "such"))
    (tmp_path / "no").write_text("a file where the temp directory should be")
    line = plm.save_unsaved()
    assert "could not be written, nor" in line and "2 unsaved record(s):" in line
    assert [json.loads(x)["layer"] for x in line.splitlines()[1:]] == [0, 1]


def test_no_write_goes_through_a_planted_link_or_over_a_non_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    led = Ledger(tmp_path / "ledger", run_id="fixed")
    led.path.mkdir()
    led.part.symlink_to(victim)
    with pytest.raises(OSError, match="is a link or not a regular file; refusing") as info:
        led.append(_records(1))
    assert info.value.filename == str(led.part)
    with pytest.raises(LedgerError, match="fixed--all--main.jsonl: a symbolic link or special file in a ledger dir"):
        read_records(led.path)  # nor read through: the run stops before computing (preflight)
    led.part.unlink()
    os.mkfifo(tmp_path / "ledger" / "fixed--all--gw0.jsonl")  # a FIFO would block the run
    with pytest.raises(OSError, match="not a regular file"):
        Ledger(led.path, run_id="fixed", worker="gw0").append(_records(1))
    with pytest.raises(LedgerError, match="gw0.jsonl: a symbolic link or special file"):
        read_records(led.path)
    # parts written whole (merge's merged.jsonl, unsaved records)
    for target in (tmp_path / "link.json", tmp_path / "dir.json"):
        if target.name == "link.json":
            target.symlink_to(victim)
        else:
            target.mkdir()
        with pytest.raises(OSError, match="refusing to write through or over it"):
            tempfiles.atomic_write(target, "x")
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{target.name}.")], "temp file left"
    assert victim.read_text() == "precious\n"


def test_atomic_write_errors_name_the_target_not_the_temp_and_leave_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        tempfiles.atomic_write(tmp_path / "out.json", "{}")
    assert info.value.filename == str(tmp_path / "out.json") and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ issue 17: merge
def _shard(path: Path, records: list[dict], run_id: str = "r") -> Path:
    Ledger(path, run_id=run_id).append(records)
    return path


def _cli(*args) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main([*map(str, args)])
    return code, err.getvalue()


def _merge(*args) -> tuple[int, str]:
    return _cli("merge", *args)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda r: r["metrics"].update(test_spearman=0.99), "the record does not match its digest (edited or damaged)"),
        (lambda r: r.pop("digest"), "the record has no digest"),
        (lambda r: r.pop("model"), "layer record with a bad or missing 'model': None"),
        (lambda r: r.update(layer="x"), "layer record with a bad or missing 'layer': 'x'"),
    ],
    ids=["edited", "no-digest", "no-model", "layer-not-int"],
)
def test_merge_refuses_edited_or_malformed_records_in_one_line(tmp_path, edit, problem):
    part = next(_shard(tmp_path / "a", _records(3)).glob("*.jsonl"))
    lines = part.read_text().splitlines()
    rec = json.loads(lines[2])
    edit(rec)
    if "digest" not in problem:  # malformed, yet signed: the key check catches what the digest cannot
        rec["digest"] = record_digest(rec)
    lines[2] = json.dumps(rec)
    part.write_text("\n".join(lines) + "\n")
    code, err = _merge(tmp_path / "a", "--out", tmp_path / "m")
    tail = "; it is not what pytest-plmtransfer wrote" if "digest" in problem else ""
    assert (code, err) == (2, f"plmtransfer merge: error: {part}: line 3: {problem}{tail}\n")
    assert not (tmp_path / "m").exists()
    if "digest" not in problem:  # every command reading the ledger: the same line, never a crash
        for command in ("show", "report", "compare"):
            code, err = _cli(command, tmp_path / "a", *([tmp_path / "a"] if command == "compare" else []))
            assert (code, err) == (2, f"plmtransfer {command}: error: {part}: line 3: {problem}\n")


def test_merge_lists_and_refuses_conflicts_unless_told_to_keep_the_newest(tmp_path):
    first = _records(2, timestamp="2026-01-01T00:00:00+00:00")
    second = _records(2, run_id="run-2", timestamp="2026-01-02T00:00:00+00:00")
    second[1]["metrics"]["test_spearman"] = 0.5
    same = _records(2, run_id="run-3", timestamp="2026-01-03T00:00:00+00:00")[:1]  # layer 0 again, same values
    _shard(tmp_path / "a", first)
    _shard(tmp_path / "b", second + same, run_id="r2")
    out = tmp_path / "m"
    code, err = _merge(tmp_path / "a", tmp_path / "b", "--out", out)
    assert code == 2 and not out.exists()
    assert (
        "1 (model, task, layer, init, seed, protocol) key(s) have records with different values; nothing written" in err
    )
    assert (
        f"model=toy task=gb1_sampled layer=1 init=pretrained seed=None protocol=plmtransfer: test_spearman=0.1 "
        f"({tmp_path / 'a' / 'r--all--main.jsonl'}: line 3, 2026-01-01T00:00:00+00:00) vs test_spearman=0.5 "
        f"({tmp_path / 'b' / 'r2--all--main.jsonl'}: line 3, 2026-01-02T00:00:00+00:00)"
    ) in err
    # a forged timestamp cannot settle it silently either: the default refuses whatever the times
    assert (
        cli_main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--on-conflict", "newest"]) == 0
    )
    merged = {r["layer"]: r for r in read_records(out, verify=True)}
    assert merged[1]["metrics"]["test_spearman"] == 0.5 and merged[0]["run_id"] == "run-3"


def test_merge_keys_include_the_protocol(tmp_path):
    recs = _records(1)
    _shard(tmp_path / "a", [{**recs[0], "protocol": "authors"}])
    _shard(tmp_path / "b", [{**recs[0], "protocol": "plmtransfer", "metrics": {"test_spearman": 0.7}}], run_id="r2")
    assert _merge(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")[0] == 0
    assert len(read_records(tmp_path / "m")) == 2


def test_merge_checks_the_versions_in_parts_headers(tmp_path, monkeypatch):
    import pytest_plmtransfer.results.ledger as ledger_module

    recs = [{k: v for k, v in r.items() if k != "plugin_version"} for r in _records(2)]
    _shard(tmp_path / "a", recs[:1])
    monkeypatch.setattr(ledger_module, "__version__", "9.9")
    _shard(tmp_path / "b", recs[1:], run_id="r2")
    code, err = _merge(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")
    assert (
        code == 2
        and "different plugin versions: 0.1.0 (" in err
        and f"9.9 ({tmp_path / 'b'}/r2--all--main.jsonl)" in err
    )


def test_merge_out_refuses_a_non_ledger_sweeps_its_temp_and_names_the_users_file(tmp_path, monkeypatch):
    from pytest_plmtransfer.report.merge import MERGED_PART

    _shard(tmp_path / "a", _records(2))
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code, err = _merge(tmp_path / "a", "--out", notes)
    assert (code, err) == (
        2,
        f"plmtransfer merge: error: {notes}: exists and is not a directory; --out writes a new ledger directory\n",
    )
    assert notes.read_text() == "my notes\n"
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert "exists and is not a directory" in _merge(tmp_path / "a", "--out", tmp_path / "link")[1]
    # a ledger's parts are never mixed with a merge of them, nor a file the merge did not write overwritten
    code, err = _merge(tmp_path / "a", "--out", tmp_path / "a")
    assert code == 2 and f"{tmp_path / 'a'}: holds r--all--main.jsonl, not only an earlier merge's output" in err
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / MERGED_PART).write_text("my notes\n")
    assert f"holds {MERGED_PART}, not only" in _merge(tmp_path / "a", "--out", tmp_path / "m")[1]
    (tmp_path / "m" / MERGED_PART).unlink()
    stale = tmp_path / "m" / f".{MERGED_PART}.{tempfiles._HOST}.999999999.abc.tmp"  # a merge killed mid-write
    stale.write_bytes(b"x" * 1000)
    assert _merge(tmp_path / "a", "--out", tmp_path / "m")[0] == 0
    assert not stale.exists() and len(read_records(tmp_path / "m", verify=True)) == 2
    assert _merge(tmp_path / "a", "--out", tmp_path / "m")[0] == 0  # an earlier merge is replaced
    assert [p.name for p in (tmp_path / "m").iterdir()] == [MERGED_PART]

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code, err = _merge(tmp_path / "a", "--out", tmp_path / "m2")
    assert (code, err) == (2, f"plmtransfer merge: error: {tmp_path / 'm2' / MERGED_PART}: No space left on device\n")
    assert not list((tmp_path / "m2").iterdir())


# ------------------------------------------------------------------ issue 17: item 7
def test_errors_in_a_claims_file_that_extends_the_shipped_one_name_the_users_file(tmp_path):
    from pytest_plmtransfer.judge.defaults import load_effective_claims

    own = tmp_path / "claims.json"
    own.write_text(json.dumps({"extends": "default", "claims": [{"kind": "beats_onehot", "tasks": "gb1_sampledd"}]}))
    from pytest_plmtransfer.models.base import INITS
    from pytest_plmtransfer.models.registry import builtin_registry
    from pytest_plmtransfer.tasks.catalog import task_ids

    claims = load_effective_claims(own)  # the shipped claims first, then the user's
    with pytest.raises(ClaimsError) as info:
        check_selectors(claims, models=builtin_registry().names(), tasks=task_ids(), inits=[*INITS, "none"])
    assert str(info.value).startswith(f"{own}: invalid claims file: claims[0] (beats_onehot): task 'gb1_sampledd'")


@pytest.mark.parametrize("value", ["Infinity", "NaN", "-Infinity"])
def test_non_finite_tolerances_and_margins_are_refused(tmp_path, value):
    from pytest_plmtransfer.judge.baselines import FORMAT, BaselineError, BaselineStore
    from pytest_plmtransfer.judge.claims.spec import load_claims
    from pytest_plmtransfer.judge.paper import FORMAT as PAPER_FORMAT

    number = float(value)  # json.dumps writes it as the token a user would type
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps({"claims": [{"kind": "beats_onehot", "params": {"margin": number}}]}))
    assert value in claims.read_text()
    with pytest.raises(ClaimsError, match=r"claims\[0\] \(beats_onehot\): parameter 'margin' must be a finite number"):
        load_claims(claims)
    store = BaselineStore(tmp_path / "b")
    store.paper_path.parent.mkdir(parents=True)
    store.paper_path.write_text(json.dumps({"format": PAPER_FORMAT, "tolerance": number, "values": {}}))
    with pytest.raises(BaselineError, match=f"{store.paper_path}: 'tolerance' must be a finite number"):
        store.paper()
    row = {"task": "gb1_sampled", "model": "m", "init": "pretrained", "metric": "test_spearman", "source": "s"}
    doc = {
        "format": PAPER_FORMAT,
        "sources": {"s": {}},
        "tasks": {"gb1_sampled": {}},
        "values": [{**row, "value": number}],
    }
    store.paper_path.write_text(json.dumps(doc))
    with pytest.raises(BaselineError, match=r"values\[0\]: 'value' must be a finite number"):
        store.paper()
    base = tmp_path / "b" / "gb1_sampled" / "m--pretrained.json"
    base.parent.mkdir()
    overrides = {"overrides": {"test_spearman": {"atol": number}}}
    base.write_text(json.dumps({"format": FORMAT, "layers": {}, "tolerances": overrides}))
    with pytest.raises(BaselineError, match=f"{base}: 'tolerances' holds a non-finite number"):
        store._read(base)


def test_cuda_visible_devices_that_name_no_gpu_or_one_twice_are_refused():
    from pytest_plmtransfer.infra.errors import PlmTransferError
    from pytest_plmtransfer.plan.xdist import visible_devices

    assert visible_devices({"CUDA_VISIBLE_DEVICES": "GPU-8f2a-11aa,MIG-GPU-1/2/0, 3"}) == [
        "GPU-8f2a-11aa",
        "MIG-GPU-1/2/0",
        "3",
    ]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    with pytest.raises(PlmTransferError, match="GPU '0' is listed twice"):
        visible_devices({"CUDA_VISIBLE_DEVICES": "0,1,0"})
    with pytest.raises(PlmTransferError, match="'abc' is not a GPU index or UUID"):
        visible_devices({"CUDA_VISIBLE_DEVICES": "0,abc"})


def test_conflicting_targets_within_a_split_are_a_warning_naming_file_and_rows(tmp_path):
    from pytest_plmtransfer.tasks.hygiene import conflict_message

    data = load_task(get_task("gb1_sampled"), _leaky_gb1(tmp_path))
    h = measure(data)
    line = conflict_message(data, h, shown=10)
    assert line.startswith(f"gb1_sampled ({data.source}, splits/sampled.csv): {h.conflicting_duplicates} sequence(s)")
    # the conflict the edit appended (row 43 of the file: header, 40 rows, the duplicate, then it)
    assert "row43" in line and all(f"{split} rows " in line for split, _ in h.conflicts)
    assert "conflicts" not in h.as_record()
