"""The results ledger: every per-layer result and every claim outcome, with provenance.

Layout (schema 3): a ledger is a **directory** of JSON Lines parts, one part per writing process::

    <ledger>/<run_id>--<shard>--<worker>.jsonl

The first line of a part is its header (``{"kind": "ledger_part", "schema_version": 3, "run_id",
"shard", "worker", "plan": {...}}``), every further line one record. A process only appends to
its own part (xdist workers and Slurm array shards each have one), so an append is one ``write``
of one line: no lock, no re-read, no rewrite. A writer killed mid-write leaves a torn last line
that the next append to the part cuts off and readers skip (with a warning); a write the disk
cuts short (full) is undone before the error reaches the caller, which keeps the records. Parts
are opened with ``O_NOFOLLOW`` and must be regular files: a link planted at a part's
(predictable) name is refused, never written through.

Every record carries ``digest`` (:func:`record_digest`), checked by ``plmtransfer merge`` and
``--plm-from-ledger``. Readers take a ledger directory (``--plm-ledger``, default
``.plmtransfer/ledger``) or one part file.
"""

from __future__ import annotations

import datetime
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
from pytest_plmtransfer.infra.hashing import payload_digest, plain_json
from pytest_plmtransfer.infra.tempfiles import atomic_write, json_default, open_append, write_all
from pytest_plmtransfer.results.records import FRAME_COLUMNS, LAYER_KEY, RECORD_KINDS

SCHEMA_VERSION = 3
PART_SUFFIX = ".jsonl"
HEADER_KIND = "ledger_part"
_SAFE_NAME = re.compile(r"[A-Za-z0-9._=+-]+")


class LedgerError(PlmTransferError):
    pass


# --------------------------------------------------------------------------- reading
def _read_part(path: Path) -> tuple[list[Entry], list[dict[str, Any]]]:
    """(records, headers) of one part. A torn last line (no newline, begun as every line written
    here is: its writer was killed mid-write) is skipped with a warning; any other bad line is an
    error."""
    lines = path.read_bytes().split(b"\n")
    records: list[Entry] = []
    headers: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if number == len(lines) and line.startswith(b'{"'):  # no trailing newline: an interrupted append
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
        elif rec.get("kind") not in RECORD_KINDS:
            raise LedgerError(
                f"{path}: line {number} is not a record (kind {rec.get('kind')!r}); not a plmtransfer ledger"
            )
        else:
            records.append(Entry(rec, f"{path}: line {number}"))
    return records, headers


@dataclass
class Entry:
    """A record as read, with where it is (file and line)."""

    record: dict[str, Any]
    where: str

    def checked(self, *, digest: bool) -> dict[str, Any]:
        """The record, its key fields' types checked (a malformed record is one line naming file
        and line, never a crash later) and, with ``digest``, its digest."""
        rec = self.record
        if digest and rec.get("digest") != record_digest(rec):
            what = "has no digest" if "digest" not in rec else "does not match its digest (edited or damaged)"
            raise LedgerError(f"{self.where}: the record {what}; it is not what pytest-plmtransfer wrote")
        if rec.get("kind") == "layer":
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
    """The record's :data:`LAYER_KEY` values."""
    return tuple(record.get(k) for k in LAYER_KEY)


def ledger_files(path: Path | str, *, run_id: str | None = None) -> list[Path]:
    """The files holding a ledger's records: the part file itself, or a directory's parts (only
    those of ``run_id`` when given), in a stable order."""
    path = Path(path)
    if not path.exists():
        return []
    if path.is_file():
        return [path]
    pattern = f"{run_id}--*{PART_SUFFIX}" if run_id else f"*{PART_SUFFIX}"
    files = sorted(path.glob(pattern))
    planted = next((p for p in files if p.is_symlink() or not p.is_file()), None)
    if planted is not None:  # the plugin writes only regular files here: someone else put this there
        raise LedgerError(
            f"{planted}: a symbolic link or special file in a ledger directory, not a part this plugin wrote"
        )
    return files


def read_entries(path: Path | str, *, run_id: str | None = None) -> tuple[list[Entry], list[dict[str, Any]]]:
    """(records with where they are, part headers) of a ledger directory or part file."""
    parts = [_read_part(file) for file in ledger_files(path, run_id=run_id)]
    # chronological across parts by their headers' creation times (stable: file order within equal
    # times), so "the last record" keeps meaning "the newest run's"
    parts.sort(key=lambda part: part[1][0].get("created", "") if part[1] else "")
    return [r for recs, _ in parts for r in recs], [h for _, heads in parts for h in heads]


def read_ledger(
    path: Path | str, *, run_id: str | None = None, verify: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(records, part headers) of a ledger directory or part file; ``verify``: every record checked
    against its digest and its key fields (what ``merge`` and ``--plm-from-ledger`` rely on)."""
    entries, headers = read_entries(path, run_id=run_id)
    return [_unsigned(e.checked(digest=verify)) for e in entries], headers


def read_records(path: Path | str, *, verify: bool = False) -> list[dict[str, Any]]:
    return read_ledger(path, verify=verify)[0]


# --------------------------------------------------------------------------- writing
def _unsigned(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "digest"}


def record_digest(record: dict[str, Any]) -> str:
    """sha256 of a record's content (its ``digest`` aside): an edit or a damaged copy shows."""
    return "sha256:" + payload_digest(_unsigned(record))


def signed(record: Any) -> dict[str, Any]:
    """The record as stored: plain JSON values (read back exactly as digested) and its digest."""
    plain = plain_json(record)
    return {**_unsigned(plain), "digest": record_digest(plain)}


def _line(record: Any) -> bytes:
    return (json.dumps(record, default=json_default, separators=(",", ":")) + "\n").encode("utf-8")


def part_header(**fields: Any) -> dict[str, Any]:
    """A part's first line: its kind, schema, creation time and plugin version, then ``fields``."""
    return {
        "kind": HEADER_KIND,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
        "plugin_version": __version__,
        **fields,
    }


def write_part(path: Path, records: Iterable[Any], header: dict[str, Any]) -> None:
    """A whole part atomically (``merge``'s output, a run's records the ledger refused)."""
    atomic_write(path, b"".join([_line(header), *(_line(signed(r)) for r in records)]))


def check_name(value: str, what: str) -> str:
    """Run ids, shard and worker tags become file names: keep them to a safe alphabet."""
    if not _SAFE_NAME.fullmatch(value):
        raise LedgerError(f"{what} {value!r}: use only letters, digits and . _ = + -")
    return value


def _cut_torn_tail(fd: int) -> int:
    """Drop the incomplete line a writer killed mid-line left; returns the part's size after."""
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
    ) -> None:
        self.path = Path(path)
        self.run_id = check_name(run_id, "run id")
        self.part_name = f"{self.run_id}--{check_name(shard, 'shard')}--{check_name(worker, 'worker')}{PART_SUFFIX}"
        #: extra header fields (the shard plan); may be set until the first append
        self.header: dict[str, Any] = dict(header or {})

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
        self.path.mkdir(parents=True, exist_ok=True)
        fd = open_append(self.part)
        try:
            size = _cut_torn_tail(fd)
            if size == 0:
                data = _line(self.part_header()) + data
            try:
                write_all(fd, data)
            except BaseException:
                os.ftruncate(fd, size)  # shrinking needs no free space
                raise
        finally:
            os.close(fd)

    def part_header(self) -> dict[str, Any]:
        return part_header(**{"run_id": self.run_id, "part": self.part_name, **self.header})

    def records(self, *, run_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        recs = read_ledger(self.path, run_id=run_id)[0]
        return [
            r for r in recs if (run_id is None or r.get("run_id") == run_id) and (kind is None or r.get("kind") == kind)
        ]


def records_to_frame(records: Iterable[Any]):
    """One row per record: every column of :data:`~pytest_plmtransfer.results.records.FRAME_COLUMNS`
    (NaN/None where a record has none), then the metrics. ``weights`` (as
    :func:`identity.weights_label`) and ``head`` (its name) are strings to group by; structured
    provenance (``intervals``, ``data``, ...) stays as dicts."""
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
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[*FRAME_COLUMNS, *(c for c in frame.columns if c not in FRAME_COLUMNS)])


def load_ledger(path: Path | str, *, kind: str | None = "layer", latest: bool = False):
    """A ledger (directory or part file) as a DataFrame of its ``kind`` of records ("layer",
    "claim" or None: all); ``latest`` keeps only the newest record per :data:`LAYER_KEY`."""
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
def describe_ledger(path: Path) -> str:
    """What ``plmtransfer show`` prints: the schema, record counts, and per run its time span,
    commit, models, tasks, inits, seeds and claim outcomes."""
    from pytest_plmtransfer.results.aggregate import seed_key, sorted_seeds

    records = load_ledger(path, kind=None)
    layout = f"directory, {len(ledger_files(path))} file(s)" if path.is_dir() else "one part"
    lines = [f"ledger {path}: schema {SCHEMA_VERSION} ({layout}), {len(records)} record(s)"]
    if records.empty:
        return "\n".join(lines) + "\n"
    lines.append("records: " + ", ".join(f"{n} {k}" for k, n in records["kind"].value_counts().items()))
    lines.append("runs:")
    for run_id, sub in records.groupby(records["run_id"].fillna("(none)"), sort=False):
        layer, claim = sub[sub["kind"] == "layer"], sub[sub["kind"] == "claim"]
        stamps = sub["timestamp"].dropna().astype(str)
        when = f"{stamps.min()} .. {stamps.max()}" if not stamps.empty else "?"
        commits = sub["git_commit"].dropna()
        commit = commits.iloc[-1] if not commits.empty else "?"
        lines.append(f"  {run_id}: {when}, commit {commit}, {len(layer)} layer / {len(claim)} claim record(s)")
        if not layer.empty:
            models = ", ".join(dict.fromkeys(layer["model"].astype(str)))
            tasks = ", ".join(dict.fromkeys(layer["task"].astype(str)))
            inits = ", ".join(dict.fromkeys(layer["init"].fillna("none").astype(str)))
            seeds = sorted_seeds(seed_key(s) for s in layer["seed"])
            lines += [f"    models: {models}", f"    tasks: {tasks}", f"    inits: {inits}; seeds: {', '.join(seeds)}"]
        if not claim.empty:
            counts = claim["outcome"].value_counts()
            lines.append("    claims: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return "\n".join(lines) + "\n"
