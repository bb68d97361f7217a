"""The JSON results ledger: every per-layer result and every claim outcome, with provenance.

File layout (schema 2)::

    {"schema_version": 2, "records": [{"kind": "layer", ...}, {"kind": "claim", ...}]}

Schema 1 (the first builds) was a bare JSON list of layer records with no ``kind``; it is
migrated on load, so old ledgers keep loading. Writes take a file lock, re-read the file, append
and atomically replace it, so concurrent pytest-xdist workers never lose a record and an
interrupted write never leaves a half-written ledger.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_plmtransfer.errors import PlmTransferError
from pytest_plmtransfer.locks import LockPolicy, PatientLock
from pytest_plmtransfer.tempfiles import make_temp

SCHEMA_VERSION = 2
#: the fields that identify one (model, task, layer, init, seed) measurement
LAYER_KEY = ("model", "task", "layer", "init", "seed")


class LedgerError(PlmTransferError):
    pass


def _migrate(doc: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(doc, list):  # schema 1: a bare list of layer records
        return [{"kind": "layer", **rec} for rec in _checked(doc, path)]
    if not isinstance(doc, dict) or "records" not in doc:
        raise LedgerError(f"{path}: not a plmtransfer ledger (no 'records' list)")
    if not isinstance(doc["records"], list):
        raise LedgerError(f"{path}: 'records' is {type(doc['records']).__name__}, not a list of records")
    version = doc.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise LedgerError(
            f"{path}: schema_version {version!r} is newer than this plugin reads ({SCHEMA_VERSION}); "
            "upgrade pytest-plmtransfer"
        )
    return _checked(list(doc["records"]), path)


def _checked(records: list[Any], path: Path) -> list[dict[str, Any]]:
    bad = next((i for i, rec in enumerate(records) if not isinstance(rec, dict)), None)
    if bad is not None:
        raise LedgerError(f"{path}: record {bad} is {records[bad]!r}, not an object; not a plmtransfer ledger")
    return records


def read_records(path: Path | str) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LedgerError(f"{path}: not valid JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise LedgerError(f"{path}: not UTF-8 text (byte {exc.start}); not a plmtransfer ledger") from None
    return _migrate(doc, path)


def atomic_write_json(path: Path, doc: Any) -> None:
    """Write JSON to a temp file in the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = make_temp(path)  # named by host and pid (stale ones are swept), umask's mode
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, sort_keys=False, default=_json_default)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths appear in metrics/provenance; store them as plain JSON values
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in the ledger")


class Ledger:
    """Append-only access to one ledger file, safe across processes."""

    def __init__(self, path: Path | str, lock_policy: LockPolicy | None = None) -> None:
        self.path = Path(path)
        self._lock = PatientLock(str(self.path) + ".lock", lock_policy, what="ledger")

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        new = list(records)
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            existing = read_records(self.path)
            atomic_write_json(
                self.path, {"schema_version": SCHEMA_VERSION, "records": existing + new}
            )

    def records(self, *, run_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            recs = read_records(self.path)
        return [
            r
            for r in recs
            if (run_id is None or r.get("run_id") == run_id) and (kind is None or r.get("kind") == kind)
        ]


def records_to_frame(records: list[dict[str, Any]]):
    """Flatten records into a DataFrame: one row per record, metrics as plain columns."""
    import pandas as pd

    rows = []
    for rec in records:
        row = {k: v for k, v in rec.items() if k != "metrics"}
        row.update(rec.get("metrics") or {})
        rows.append(row)
    return pd.DataFrame(rows)


def load_ledger(path: Path | str, *, kind: str | None = "layer", latest: bool = False):
    """Load a ledger into a pandas DataFrame in one call.

    ``kind`` selects layer results (default), claim outcomes (``"claim"``) or everything (None).
    ``latest=True`` keeps only the newest record per (model, task, layer, init, seed).
    """
    recs = read_records(path)
    if kind is not None:
        recs = [r for r in recs if r.get("kind") == kind]
    frame = records_to_frame(recs)
    if latest and not frame.empty and kind == "layer":
        frame = (
            frame.sort_values("timestamp", kind="stable")
            .drop_duplicates(subset=list(LAYER_KEY), keep="last")
            .reset_index(drop=True)
        )
    return frame
