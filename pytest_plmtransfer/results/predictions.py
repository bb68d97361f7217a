"""Test-split predictions of one probe, kept so that intervals and paired tests can be recomputed
from a ledger without refitting.

A :class:`TestPredictions` holds, per test *row* of one (model, task, layer, init, seed):

* ``target``: regression targets (float64) or class indices (int64; ``-1``: a test label never
  seen in training, scored as an error);
* ``pred``: regression predictions, float64 (float32 would create ties that change Spearman in
  the 7th digit), or ``(rows, K)`` class probabilities, float32 (millions of residues; plenty for
  argmax and log);
* ``units``: ``None`` (a row is a resampling unit), or for per-residue tasks ``N+1`` offsets of
  each test protein's scored residues: a bootstrap resamples proteins, never residues.

On disk one uncompressed ``.npz`` per probe result, next to the cached result JSON under the same
key; the ledger record refers to it by ``{"key", "path", "sha256"}``. Two predictions can be
compared pairwise only when their ``fingerprint`` (kind, targets, units) is equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.hashing import sha256_file
from pytest_plmtransfer.infra.tempfiles import atomic_write

SUFFIX = ".predictions.npz"
FORMAT = "plmtransfer-predictions/1"


class PredictionsError(PlmTransferError):
    pass


@dataclass
class TestPredictions:
    __test__: ClassVar[bool] = False  # a data class, not a pytest test class

    kind: str  # "regression" | "classification" | "per_residue"
    target: np.ndarray
    pred: np.ndarray
    units: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = np.asarray(self.target)
        self.pred = np.asarray(self.pred)
        if self.kind not in ("regression", "classification", "per_residue"):
            raise ValueError(f"unknown task kind {self.kind!r}")
        if self.pred.shape[0] != self.target.shape[0]:
            raise ValueError(f"{self.pred.shape[0]} predictions but {self.target.shape[0]} targets")
        if self.kind == "regression" and self.pred.ndim != 1:
            raise ValueError("regression predictions must be 1-D")
        if self.kind != "regression" and self.pred.ndim != 2:
            raise ValueError("classification predictions must be (rows, classes) probabilities")
        if self.units is not None:
            self.units = np.asarray(self.units, dtype=np.int64)
            if self.units[0] != 0 or self.units[-1] != self.target.shape[0] or np.any(np.diff(self.units) < 0):
                raise ValueError("units must be non-decreasing offsets from 0 to the number of rows")

    @property
    def n_units(self) -> int:
        return self.target.shape[0] if self.units is None else self.units.size - 1

    @property
    def unit_name(self) -> str:
        return "sequence" if self.units is None else "protein"

    def fingerprint(self) -> str:
        """sha256 of what defines the test set: kind, targets and unit boundaries."""
        h = hashlib.sha256(self.kind.encode())
        h.update(np.ascontiguousarray(self.target).tobytes())
        h.update(b"|units|")
        if self.units is not None:
            h.update(np.ascontiguousarray(self.units).tobytes())
        return h.hexdigest()


def predictions_path(results_dir: Path, key: str) -> Path:
    return Path(results_dir) / key[:2] / f"{key}{SUFFIX}"


def save_predictions(path: Path, preds: TestPredictions) -> dict[str, Any]:
    """Write atomically (temp file + rename); return the reference stored with the result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pred = preds.pred.astype(np.float64 if preds.kind == "regression" else np.float32, copy=False)
    arrays: dict[str, Any] = {
        "format": np.array(FORMAT),
        "kind": np.array(preds.kind),
        "target": preds.target,
        "pred": pred,
        "classes": np.array(preds.classes, dtype=str),
    }
    if preds.units is not None:
        arrays["units"] = preds.units
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return {"file": path.name, "sha256": sha256_file(path), "fingerprint": preds.fingerprint()}


def load_predictions(path: Path | str, sha256: str | None = None) -> TestPredictions:
    """Read a predictions file; with ``sha256``, a file that changed is an error, not a result."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: predictions file not found")
    if sha256 is not None and sha256_file(path) != sha256:
        raise PredictionsError(f"{path}: checksum differs from the one recorded; the file changed")
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT:
                raise PredictionsError(f"{path}: not a {FORMAT} file")
            return TestPredictions(
                kind=str(z["kind"]),
                target=z["target"],
                pred=z["pred"],
                units=z["units"] if "units" in z.files else None,
                classes=[str(c) for c in z["classes"]],
            )
    except (OSError, ValueError, KeyError) as exc:
        raise PredictionsError(f"{path}: unreadable predictions file ({exc})") from exc
