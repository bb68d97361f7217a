"""Content-addressed, per-layer, memory-mapped embedding cache.

An entry holds every computed layer of one (model identity, pooling, sequence set), keyed by a
hash of what determines the numbers -- the adapter's identity (weights checksum, init, seed,
config, dtype), pooling and the sequences after window and truncation -- never a task name: GB1's
five splits are the same 8,733 sequences and share one entry.

Layout::

    <root>/<key[:2]>/<key>/manifest.json     what was hashed, shapes, per-layer sha256
    <root>/<key[:2]>/<key>/L005.npy           one array per layer (np.load mmap-able), float32
                                              or, with ``dtype="float16"``, float16 (half the size)

Each layer is written into a memory-mapped temp file batch by batch (no layer is ever held whole
in RAM), then checksummed and renamed; the manifest is replaced atomically last. A layer is read
only if the manifest lists it and the file's size and sha256 match, so a truncated or corrupt
entry is rebuilt. A file lock per entry means concurrent xdist workers never compute the same
entry twice; a complete entry is read without the lock, so a warm read-only cache still serves.

Before the model runs, the entry's size is checked against the free space, and every layer file's
blocks are reserved before the first store into its memory map (:mod:`~pytest_plmtransfer.infra.diskspace`):
a full disk is a ``CacheSpaceError`` naming the cache, the size and the ways out, never a SIGBUS.
Temp files carry the writer's host and pid and are swept when that writer is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_plmtransfer.infra.diskspace import (
    CacheSpaceError,
    check_free_space,
    is_out_of_space,
    layer_bytes,
    preallocate,
    space_message,
)
from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.hashing import payload_key, sha256_file
from pytest_plmtransfer.infra.locks import LockPolicy, PatientLock
from pytest_plmtransfer.infra.tempfiles import atomic_write_json, make_temp, sweep_stale_temps
from pytest_plmtransfer.models.base import ModelAdapter
from pytest_plmtransfer.results.records import CACHE_DTYPES

STORE_FORMAT = 1


class CacheNotWritable(PlmTransferError):
    """An entry must be computed but the cache directory cannot be written."""


def sequences_digest(sequences: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for seq in sequences:
        digest.update(seq.encode("ascii", "replace"))
        digest.update(b"\n")
    return digest.hexdigest()


def entry_key(
    identity: dict[str, Any], sequences: Sequence[str], *, per_residue: bool, pooling: str, dtype: str = "float32"
) -> str:
    payload = {
        "store_format": STORE_FORMAT,
        "model": identity,
        "pooling": "per_residue" if per_residue else pooling,
        "n": len(sequences),
        "sequences_sha256": sequences_digest(sequences),
    }
    if dtype != "float32":  # float32 keys stay what they were, so existing caches stay warm
        payload["dtype"] = dtype
    return payload_key(payload)


@dataclass
class EmbeddingEntry:
    """A complete cache entry: per-layer arrays in the entry's sequence order."""

    key: str
    path: Path
    sequences: list[str]
    per_residue: bool
    #: per-residue entries: residues of sequence i are rows offsets[i]:offsets[i+1]
    offsets: np.ndarray | None
    layers: list[int]
    computed: bool  # True if this call ran the model (for some layer), False on a pure cache hit
    embed_seconds: float
    dtype: str = "float32"

    def layer(self, layer: int) -> np.ndarray:
        """The layer's array, memory-mapped read-only."""
        return np.load(self.path / _layer_file(layer), mmap_mode="r")

    def rows(self, layer: int, sequences: Sequence[str]) -> np.ndarray:
        """A pooled layer's rows in the order of ``sequences`` (a task's rows: the entry holds each
        distinct sequence once, sorted)."""
        row_of = {seq: i for i, seq in enumerate(self.sequences)}
        return np.asarray(self.layer(layer)[np.fromiter((row_of[s] for s in sequences), dtype=np.int64)])


def _layer_file(layer: int) -> str:
    return f"L{layer:03d}.npy"


def _offsets(sequences: Sequence[str]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)


class EmbeddingStore:
    def __init__(self, root: Path | str, *, dtype: str = "float32", lock_policy: LockPolicy | None = None) -> None:
        if dtype not in CACHE_DTYPES:
            raise ValueError(f"cache dtype {dtype!r}: use one of {', '.join(CACHE_DTYPES)}")
        self.root = Path(root)
        self.dtype = dtype
        self.lock_policy = lock_policy
        #: entries whose files were verified in this process (checksums are read once)
        self._verified: set[tuple[str, int]] = set()

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _read_manifest(self, key: str) -> dict[str, Any] | None:
        path = self.entry_dir(key) / "manifest.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def _valid_layers(self, key: str, manifest: dict[str, Any] | None, wanted: Sequence[int]) -> set[int]:
        """Layers of ``wanted`` whose files exist and match the manifest's size and checksum."""
        good: set[int] = set()
        for layer in wanted:
            meta = (manifest or {}).get("layers", {}).get(str(layer))
            if meta is None:
                continue
            if (key, layer) not in self._verified:
                file = self.entry_dir(key) / meta["file"]
                try:
                    if file.stat().st_size != meta["bytes"] or sha256_file(file) != meta["sha256"]:
                        continue
                except OSError:
                    continue
                self._verified.add((key, layer))
            good.add(layer)
        return good

    def get_or_compute(
        self, adapter: ModelAdapter, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool
    ) -> EmbeddingEntry:
        """Return an entry with at least ``layers``, computing only the missing ones (in one pass)."""
        sequences = list(sequences)
        key = entry_key(
            adapter.identity(), sequences, per_residue=per_residue, pooling=adapter.pooling, dtype=self.dtype
        )
        entry_dir = self.entry_dir(key)
        wanted = sorted(set(int(x) for x in layers))
        # A complete entry needs no lock: its files were renamed into place whole and are checked
        # against the manifest (this is what lets a warm read-only cache serve).
        missing = [x for x in wanted if x not in self._valid_layers(key, self._read_manifest(key), wanted)]
        seconds = 0.0
        if missing:
            lock = PatientLock(str(entry_dir) + ".lock", self.lock_policy, what=f"embedding cache entry {key}")
            try:
                entry_dir.parent.mkdir(parents=True, exist_ok=True)
                lock.acquire()
            except OSError as exc:
                raise CacheNotWritable(
                    f"the embedding cache {self.root} is not writable ({exc.strerror or exc}) and does not "
                    f"hold layer(s) {missing} of {adapter.name} for these {len(sequences)} sequences; "
                    "choose a writable --plm-cache-dir (or PLMTRANSFER_CACHE)"
                ) from None
            try:
                sweep_stale_temps(entry_dir)  # what a killed writer of this entry left behind
                manifest = self._read_manifest(key)
                have = self._valid_layers(key, manifest, wanted)
                missing = [layer for layer in wanted if layer not in have]
                if missing:
                    manifest, seconds = self._compute(adapter, key, sequences, missing, per_residue, manifest, have)
            finally:
                lock.release()
        offsets = _offsets(sequences) if per_residue else None
        return EmbeddingEntry(
            key, entry_dir, sequences, per_residue, offsets, wanted, bool(missing), seconds, self.dtype
        )

    def _compute(
        self,
        adapter: ModelAdapter,
        key: str,
        sequences: list[str],
        layers: list[int],
        per_residue: bool,
        manifest: dict[str, Any] | None,
        keep: set[int],
    ) -> tuple[dict[str, Any], float]:
        entry_dir = self.entry_dir(key)
        entry_dir.mkdir(parents=True, exist_ok=True)
        n_rows = sum(len(s) for s in sequences) if per_residue else len(sequences)
        dim = adapter.feature_dim(sequences, per_residue=per_residue)
        offsets = _offsets(sequences)
        tmp_files: dict[int, Path] = {}
        arrays: dict[int, np.ndarray] = {}
        filled = np.zeros(len(sequences), dtype=bool)
        dtype = np.dtype(self.dtype)
        needed = len(layers) * layer_bytes(n_rows, dim, dtype)
        what = f"{adapter.name} (entry {key}: {len(layers)} layer(s) x {n_rows} rows x {dim} values, {self.dtype})"
        check_free_space(entry_dir, needed, what, shown=self.root)
        start = time.perf_counter()
        try:
            try:
                for layer in layers:
                    fd, tmp = make_temp(entry_dir / _layer_file(layer))
                    os.close(fd)
                    tmp_files[layer] = tmp
                    arrays[layer] = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n_rows, dim))
                    # reserve the blocks now: a store into an unbacked page of a full disk is SIGBUS
                    preallocate(tmp, arrays[layer].offset + arrays[layer].nbytes, arrays[layer].offset)
            except OSError as exc:
                if is_out_of_space(exc):
                    raise CacheSpaceError(space_message(self.root, needed, None, what)) from None
                raise
            for batch in adapter.embed(sequences, layers, per_residue=per_residue):
                idx = np.asarray(batch.indices)
                if filled[idx].any():
                    raise RuntimeError(f"{adapter.name}: a sequence was embedded twice in one pass")
                filled[idx] = True
                for layer in layers:
                    out = batch.per_layer[layer]
                    if dtype != np.float32:
                        out = _narrow(out, dtype, adapter.name, layer)
                    if per_residue:
                        pos = 0
                        for i in idx:
                            length = int(offsets[i + 1] - offsets[i])
                            arrays[layer][offsets[i] : offsets[i + 1]] = out[pos : pos + length]
                            pos += length
                        if pos != len(out):
                            raise RuntimeError(f"{adapter.name}: per-residue batch has {len(out)} rows, expected {pos}")
                    else:
                        arrays[layer][idx] = out
            if not filled.all():
                raise RuntimeError(f"{adapter.name}: {int((~filled).sum())} sequences were never embedded")
            seconds = time.perf_counter() - start
            new_meta = {}
            for layer in layers:
                arrays[layer].flush()
                del arrays[layer]  # close the memmap before renaming (and on Windows, before replacing)
                final = entry_dir / _layer_file(layer)
                os.replace(tmp_files[layer], final)
                new_meta[str(layer)] = {
                    "file": final.name,
                    "shape": [n_rows, dim],
                    "bytes": final.stat().st_size,
                    "sha256": sha256_file(final),
                }
                self._verified.add((key, layer))
        finally:
            arrays.clear()
            for tmp in tmp_files.values():
                tmp.unlink(missing_ok=True)
        old_layers = (manifest or {}).get("layers", {})
        merged = {k: v for k, v in old_layers.items() if int(k) in keep}
        merged.update(new_meta)
        manifest = {
            "store_format": STORE_FORMAT,
            "key": key,
            "model": adapter.identity(),
            "per_residue": per_residue,
            "pooling": "per_residue" if per_residue else adapter.pooling,
            "n_sequences": len(sequences),
            "sequences_sha256": sequences_digest(sequences),
            "dtype": self.dtype,
            "layers": dict(sorted(merged.items(), key=lambda kv: int(kv[0]))),
            "embed_seconds": seconds + float((manifest or {}).get("embed_seconds", 0.0)),
        }
        atomic_write_json(entry_dir / "manifest.json", manifest)
        return manifest, seconds


def _narrow(out: np.ndarray, dtype: np.dtype, model: str, layer: int) -> np.ndarray:
    """``out`` cast to a narrower float type, refusing values it cannot hold (float16 tops out at
    65504: a silently infinite feature would poison every probe of the layer)."""
    with np.errstate(over="ignore"):  # checked right below
        narrow = np.asarray(out).astype(dtype)
    if not np.isfinite(narrow).all() and np.isfinite(out).all():
        raise PlmTransferError(
            f"{model} layer {layer}: values up to {float(np.abs(out).max()):.3g} do not fit in "
            f"{dtype.name}; use --plm-cache-dtype float32 for this model"
        )
    return narrow
