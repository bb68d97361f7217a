"""The results ledger: every per-layer result and every claim outcome, with provenance.

Layout (schema 3): a ledger is a **directory** of JSON Lines parts, one part per writing process::

    <ledger>/<run_id>--<shard>--<worker>.jsonl

The first line of a part is its header (``{"kind": "ledger_part", "schema_version": 3, "run_id",
"shard", "worker", "plan": {...}}``), every further line one record. A process only ever appends
to its own part (pytest-xdist workers and the shards of a Slurm array each have their own), so an
append is one ``write`` of one line whatever the ledger holds: no lock, no re-read, no rewrite.
A process killed mid-write can leave a torn last line; the next append to that part cuts it off
first, and readers ignore it (with a warning), so no complete record is ever lost. A write the
disk cuts short (full) is undone before the error reaches the caller, which keeps the records.
Parts are opened with ``O_NOFOLLOW`` and must be regular files: a link planted at a part's
(predictable) name is refused, never written through.

Every record carries ``digest``, the sha256 of its content as written (:func:`record_digest`);
``plmtransfer merge`` and ``--plm-from-ledger`` check it, so what they use is what the runs wrote.

``--plm-ledger PATH`` names the directory (default ``.plmtransfer/ledger``). Reading
(:func:`read_records`, :func:`load_ledger`) accepts a ledger directory or a single file:

* schema 1 (the first builds): a bare JSON list of layer records, no ``kind``;
* schema 2: ``{"schema_version": 2, "records": [...]}``, written whole under a lock;
* schema 3 single file: the same shape with ``"plans"``, as ``plmtransfer merge`` writes it;
* a ``.jsonl`` part.

An old single-file ledger at PATH is moved, on the first append, to ``PATH/legacy.json`` inside
the new directory (so PATH keeps naming all of its records); legacy files in a ledger directory
are read with the parts.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_plmtransfer import __version__
from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.locks import LockPolicy, PatientLock
from pytest_plmtransfer.infra.tempfiles import atomic_write, open_append, write_all

SCHEMA_VERSION = 3
#: the fields that identify one (model, task, layer, init, seed, protocol) measurement
LAYER_KEY = ("model", "task", "layer", "init", "seed", "protocol")
PART_SUFFIX = ".jsonl"
HEADER_KIND = "ledger_part"
LEGACY_NAME = "legacy.json"
_SAFE_NAME = re.compile(r"[A-Za-z0-9._=+-]+")


class LedgerError(PlmTransferError):
    pass


# --------------------------------------------------------------------------- reading
def _migrate(doc: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(doc, list):  # schema 1: a bare list of layer records
        return [{"kind": "layer", **rec} for rec in _checked(doc, path)]
    if not isinstance(doc, dict) or "records" not in doc:
        raise LedgerError(f"{path}: not a plmtransfer ledger (no 'records' list)")
    if not isinstance(doc["records"], list):
        raise LedgerError(f"{path}: 'records' is {type(doc['records']).__name__}, not a list of records")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise LedgerError(f"{path}: no integer 'schema_version' ({version!r}); not a plmtransfer ledger")
    if version > SCHEMA_VERSION:
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


def _read_json_file(path: Path) -> tuple[list[Entry], list[dict[str, Any]]]:
    """(records, part headers) of a single-file ledger (schema 1, 2 or 3)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LedgerError(f"{path}: not valid JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise LedgerError(f"{path}: not UTF-8 text (byte {exc.start}); not a plmtransfer ledger") from None
    headers = list(doc.get("plans") or []) if isinstance(doc, dict) else []
    # schema 1 and 2 files predate record digests; a schema 3 file (merge's) carries them
    signed = isinstance(doc, dict) and doc.get("schema_version") == SCHEMA_VERSION
    return [Entry(rec, f"{path}: record {i}", signed) for i, rec in enumerate(_migrate(doc, path))], headers


def _read_part(path: Path) -> tuple[list[Entry], list[dict[str, Any]]]:
    """(records, headers) of one JSON Lines part. A torn last line (no newline: its writer was
    killed mid-write) is skipped with a warning; a bad line anywhere else is an error."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    records: list[Entry] = []
    headers: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # last line, no trailing newline: an interrupted append
                warnings.warn(
                    f"{path}: line {number} is an incomplete record (interrupted write); skipped", stacklevel=2
                )
                continue
            raise LedgerError(f"{path}: line {number} is not valid JSON ({exc})") from exc
        if not isinstance(rec, dict):
            raise LedgerError(f"{path}: line {number} is not a JSON object")
        if rec.get("kind") == HEADER_KIND:
            version = rec.get("schema_version")
            if not isinstance(version, int) or isinstance(version, bool):
                raise LedgerError(
                    f"{path}: line {number}: no integer 'schema_version' ({version!r}) in the part's header"
                )
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"{path}: line {number}: schema_version {version} is newer than this plugin reads "
                    f"({SCHEMA_VERSION}); upgrade pytest-plmtransfer"
                )
            headers.append({**rec, "file": path.name})
        else:
            records.append(Entry(rec, f"{path}: line {number}", True))
    return records, headers


@dataclass
class Entry:
    """A record as read, with where it is (file and line) and whether its format carries a digest."""

    record: dict[str, Any]
    where: str
    signed: bool = True

    def checked(self, *, digest: bool) -> dict[str, Any]:
        """The record after checking that its key fields have their types (every read: a
        malformed record is one line naming file and line, never a crash later) and, with
        ``digest``, that it is what the plugin wrote."""
        rec = self.record
        if digest and self.signed and rec.get("digest") != record_digest(rec):
            what = "has no digest" if "digest" not in rec else "does not match its digest (edited or damaged)"
            raise LedgerError(f"{self.where}: the record {what}; it is not what pytest-plmtransfer wrote")
        if rec.get("kind", "layer") == "layer":
            for name, ok in _KEY_TYPES.items():
                if not ok(rec.get(name)):
                    raise LedgerError(f"{self.where}: layer record with a bad or missing {name!r}: {rec.get(name)!r}")
        return rec


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_KEY_TYPES: dict[str, Callable[[Any], bool]] = {
    "model": lambda v: isinstance(v, str) and bool(v),
    "task": lambda v: isinstance(v, str) and bool(v),
    "layer": _is_int,
    "init": lambda v: isinstance(v, str),
    "seed": lambda v: v is None or _is_int(v),
    "metrics": lambda v: isinstance(v, dict),
}


def record_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """The record's :data:`LAYER_KEY` values (records written before ``protocol`` share a key)."""
    return tuple(record.get(k) for k in LAYER_KEY)


def ledger_files(path: Path | str, *, run_id: str | None = None) -> list[Path]:
    """The files holding a ledger's records: the file itself, or a directory's legacy files and
    parts (only the parts of ``run_id`` when given), in a stable order."""
    path = Path(path)
    if not path.exists():
        return []
    if path.is_file():
        return [path]
    legacy = sorted(p for p in path.glob("*.json") if p.is_file())
    pattern = f"{run_id}--*{PART_SUFFIX}" if run_id else f"*{PART_SUFFIX}"
    files = legacy + sorted(path.glob(pattern))
    planted = next((p for p in files if p.is_symlink() or not p.is_file()), None)
    if planted is not None:  # the plugin writes only regular files here: someone else put this there
        raise LedgerError(
            f"{planted}: a symbolic link or special file in a ledger directory, not a part this plugin wrote"
        )
    return files


def read_entries(path: Path | str, *, run_id: str | None = None) -> tuple[list[Entry], list[dict[str, Any]]]:
    """(records with where they are, part headers) of a ledger directory or file."""
    loaded = []
    for file in ledger_files(path, run_id=run_id):
        recs, heads = _read_part(file) if file.suffix == PART_SUFFIX else _read_json_file(file)
        # chronological across parts (a part's creation time is in its header; legacy files
        # and merged files first): "the last record" keeps meaning "the newest run's"
        created = heads[0].get("created", "") if file.suffix == PART_SUFFIX and heads else ""
        loaded.append((created, recs, heads))
    loaded.sort(key=lambda item: item[0])  # stable: file order within equal times
    return [r for _c, recs, _h in loaded for r in recs], [h for _c, _r, heads in loaded for h in heads]


def read_ledger(
    path: Path | str, *, run_id: str | None = None, verify: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(records, part headers) of a ledger directory or file; ``verify``: every record checked
    against its digest and its key fields (what ``merge`` and ``--plm-from-ledger`` rely on)."""
    entries, headers = read_entries(path, run_id=run_id)
    return [_unsigned(e.checked(digest=verify)) for e in entries], headers


def read_records(path: Path | str, *, verify: bool = False) -> list[dict[str, Any]]:
    return read_ledger(path, verify=verify)[0]


# --------------------------------------------------------------------------- writing
def atomic_write_json(path: Path, doc: Any) -> None:
    """Write JSON to a temp file in the same directory, fsync, then rename over ``path``."""
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths appear in metrics/provenance; store them as plain JSON values
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):  # typed records (pytest_plmtransfer.results.records)
        return obj.to_dict()
    raise TypeError(f"cannot store {type(obj).__name__} in the ledger")


def _unsigned(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "digest"}


def record_digest(record: dict[str, Any]) -> str:
    """sha256 of a record's content (its ``digest`` field aside) as sorted-key JSON: written with
    the record, checked by ``merge`` and ``--plm-from-ledger`` (an edit or a damaged copy shows)."""
    text = json.dumps(_unsigned(record), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def signed(record: Any) -> dict[str, Any]:
    """The record as stored: plain JSON values (read back exactly as they are digested here) and
    its digest."""
    plain = json.loads(json.dumps(record, default=_json_default))
    return {**_unsigned(plain), "digest": record_digest(plain)}


def _line(record: Any) -> bytes:
    return (json.dumps(record, default=_json_default, separators=(",", ":")) + "\n").encode("utf-8")


def ledger_document(records: Iterable[Any], plans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A single-file ledger (schema 3), as ``merge`` and the unsaved-records file write it."""
    return {"schema_version": SCHEMA_VERSION, "plans": plans or [], "records": [signed(r) for r in records]}


def check_name(value: str, what: str) -> str:
    """Run ids, shard and worker tags become file names: keep them to a safe alphabet."""
    if not _SAFE_NAME.fullmatch(value):
        raise LedgerError(f"{what} {value!r}: use only letters, digits and . _ = + -")
    return value


def migrate_single_file(path: Path, lock_policy: LockPolicy | None = None) -> None:
    """Turn an old single-file ledger at ``path`` into a ledger directory holding it, so that
    ``path`` keeps naming every record. Safe to call concurrently and after an interruption."""
    staging = path.with_name(path.name + ".migrating")
    with PatientLock(str(path) + ".lock", lock_policy, what="ledger"):
        if path.is_file():
            _read_json_file(path)  # a damaged ledger is refused (LedgerError), never moved or rewritten
            os.replace(path, staging)
        if staging.exists():
            path.mkdir(parents=True, exist_ok=True)
            os.replace(staging, path / LEGACY_NAME)


def _cut_torn_tail(fd: int) -> int:
    """A previous writer of this part was killed mid-line: drop the incomplete line. Returns the
    part's size after."""
    pos = size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    while pos > 0:  # back to the last newline, in chunks
        start = max(0, pos - (1 << 16))
        nl = os.pread(fd, pos - start, start).rfind(b"\n")
        if nl >= 0:
            os.ftruncate(fd, start + nl + 1)
            return start + nl + 1
        pos = start
    os.ftruncate(fd, 0)
    return 0


class Ledger:
    """One process's writer to a ledger directory, and reader of the whole ledger."""

    def __init__(
        self,
        path: Path | str,
        *,
        run_id: str = "run",
        shard: str = "all",
        worker: str = "main",
        header: dict[str, Any] | None = None,
        lock_policy: LockPolicy | None = None,
    ) -> None:
        self.path = Path(path)
        self.run_id = check_name(run_id, "run id")
        self.part_name = f"{self.run_id}--{check_name(shard, 'shard')}--{check_name(worker, 'worker')}{PART_SUFFIX}"
        #: extra header fields (the shard plan); may be set until the first append
        self.header: dict[str, Any] = dict(header or {})
        self.lock_policy = lock_policy

    @property
    def part(self) -> Path:
        return self.path / self.part_name

    def append(self, records: Iterable[Any]) -> None:
        """Append records to this process's part: O(1) in the ledger's size. All or nothing: a
        write the disk cuts short (full) is undone and raises OSError, so the caller keeps the
        records and no torn line is left behind."""
        data = b"".join(_line(signed(r)) for r in records)
        if not data:
            return
        if self.path.is_file() or self.path.with_name(self.path.name + ".migrating").exists():
            migrate_single_file(self.path, self.lock_policy)
        self.path.mkdir(parents=True, exist_ok=True)
        fd = open_append(self.part)
        try:
            size = _cut_torn_tail(fd)
            if size == 0:
                data = _line(self._header()) + data
            try:
                write_all(fd, data)
            except BaseException:
                os.ftruncate(fd, size)  # shrinking needs no free space
                raise
        finally:
            os.close(fd)

    def _header(self) -> dict[str, Any]:
        return {
            "kind": HEADER_KIND,
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "part": self.part_name,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
            "plugin_version": __version__,
            **self.header,
        }

    def records(self, *, run_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        recs = read_ledger(self.path, run_id=run_id)[0]
        return [
            r for r in recs if (run_id is None or r.get("run_id") == run_id) and (kind is None or r.get("kind") == kind)
        ]


def records_to_frame(records: list[dict[str, Any]]):
    """Flatten records into a DataFrame: one row per record, metrics as plain columns, and the
    columns one groups by as strings: ``weights`` (the weights' identity, see
    :func:`identity.weights_label`; the whole identity stays in the ledger) and ``head`` (its
    name). Structured provenance (``intervals``, ``data``, ``versions``, ...) stays as dicts."""
    import pandas as pd

    from pytest_plmtransfer.infra.identity import weights_label

    rows = []
    for rec in records:
        rec = rec.to_dict() if hasattr(rec, "to_dict") else rec
        row = {k: v for k, v in rec.items() if k != "metrics"}
        if isinstance(row.get("weights"), dict):
            row["weights"] = weights_label(row["weights"])
        if isinstance(row.get("head"), dict):
            row["head"] = row["head"].get("head")
        row.update(rec.get("metrics") or {})
        rows.append(row)
    return pd.DataFrame(rows)


def load_ledger(path: Path | str, *, kind: str | None = "layer", latest: bool = False):
    """Load a ledger (directory or file) into a pandas DataFrame in one call.

    ``kind`` selects layer results (default), claim outcomes (``"claim"``) or everything (None).
    ``latest=True`` keeps only the newest record per (model, task, layer, init, seed, protocol).
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


# --------------------------------------------------------------------------- describing
def _schema_of(path: Path) -> str:
    if path.is_dir():
        return f"{SCHEMA_VERSION} (directory, {len(ledger_files(path))} file(s))"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "unreadable"
    if isinstance(doc, list):
        return "1 (bare list, migrated on load)"
    if isinstance(doc, dict):
        return str(doc.get("schema_version"))
    return "unknown"


def describe_ledger(path: Path) -> str:
    """What ``plmtransfer show`` prints: the schema, record counts, and per run its time span,
    commit, models, tasks, inits, seeds and claim outcomes."""
    import pandas as pd

    from pytest_plmtransfer.results.aggregate import seed_key, sorted_seeds

    records = load_ledger(path, kind=None)
    lines = [f"ledger {path}: schema {_schema_of(path)}, {len(records)} record(s)"]
    if records.empty:
        return "\n".join(lines) + "\n"
    kinds = records["kind"].fillna("layer").value_counts() if "kind" in records.columns else pd.Series()
    lines.append("records: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    if "run_id" not in records.columns:
        return "\n".join(lines) + "\n"
    lines.append("runs:")
    for run_id, sub in records.groupby(records["run_id"].fillna("(none)"), sort=False):
        kind = sub.get("kind", pd.Series("layer", index=sub.index))
        layer, claim = sub[kind.fillna("layer") == "layer"], sub[kind == "claim"]
        stamps = sub["timestamp"].dropna().astype(str) if "timestamp" in sub.columns else pd.Series(dtype=str)
        when = f"{stamps.min()} .. {stamps.max()}" if not stamps.empty else "?"
        has_commit = "git_commit" in sub.columns and sub["git_commit"].notna().any()
        commit = sub["git_commit"].dropna().iloc[-1] if has_commit else "?"
        lines.append(f"  {run_id}: {when}, commit {commit}, {len(layer)} layer / {len(claim)} claim record(s)")
        if not layer.empty:
            models = ", ".join(dict.fromkeys(layer["model"].astype(str)))
            tasks = ", ".join(dict.fromkeys(layer["task"].astype(str)))
            inits = ", ".join(dict.fromkeys(layer["init"].fillna("none").astype(str))) if "init" in layer else "?"
            seeds = sorted_seeds(seed_key(s) for s in layer["seed"]) if "seed" in layer.columns else []
            lines += [f"    models: {models}", f"    tasks: {tasks}", f"    inits: {inits}; seeds: {', '.join(seeds)}"]
        if not claim.empty and "outcome" in claim.columns:
            counts = claim["outcome"].value_counts()
            lines.append("    claims: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return "\n".join(lines) + "\n"
