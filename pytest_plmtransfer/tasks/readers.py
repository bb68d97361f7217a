"""Read task archives into ``TaskData``, refusing bad input with errors that say where.

FLIP's two formats, both exactly as FLIP publishes them inside ``splits/<dataset>/splits.zip``,
and TAPE's secondary structure (its JSON release, see ``_read_tape_json``):

* **CSV** (GB1, AAV, Meltome, SCL): columns ``sequence,target,set,validation``. ``set`` is
  ``train`` / ``test`` / empty; ``validation`` is ``True`` for validation rows and empty otherwise.
  train = ``set == "train"`` and not validation; val = ``set == "train"`` and validation;
  test = ``set == "test"``; rows with an empty ``set`` (e.g. AAV's sequences outside a split's
  pool) are dropped and counted in ``notes["n_dropped_no_set"]``.
* **FASTA labels** (secondary structure, Bind, Conservation; also GB1's ``.fasta`` twins): a
  label file whose headers are ``>ID SET=train VALIDATION=False`` (and ``TARGET=`` for
  per-sequence targets). For per-residue tasks the record's "sequence" is one label per residue
  and the amino acids come from ``sequences_member`` by id; an optional ``mask_member`` holds a
  0/1 string per protein (0 = unresolved residue: embedded, never scored).

Row numbers in errors are file line numbers for CSV (the header is row 1, as in a spreadsheet)
and 1-based record numbers for FASTA (the record's id and line are in the message too).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pytest_plmtransfer.infra.errors import InputError
from pytest_plmtransfer.infra.hashing import sha256_file_once
from pytest_plmtransfer.tasks.catalog import DUPLICATE_LABEL_IDS_TOLERATED, UNSEEN_TEST_LABELS_ALLOWED, tape_ss_member
from pytest_plmtransfer.tasks.spec import TaskData, TaskSpec

#: the 20 standard amino acids
STANDARD_RESIDUES = "ACDEFGHIKLMNPQRSTVWY"
#: ambiguity / rare codes that FLIP files contain and the models' alphabets accept
EXTRA_RESIDUES = "XBZUO"
ALLOWED_RESIDUES: frozenset[str] = frozenset(STANDARD_RESIDUES + EXTRA_RESIDUES)
_ALLOWED_BYTES = (STANDARD_RESIDUES + EXTRA_RESIDUES).encode("ascii")

CSV_COLUMNS: tuple[str, ...] = ("sequence", "target", "set", "validation")

_TRUE = frozenset({"true", "1", "1.0", "yes", "t"})
_FALSE = frozenset({"", "false", "0", "0.0", "no", "f", "nan", "none"})
_FLAGS = _TRUE | _FALSE
# ``KEY=value`` pairs in a FASTA header; a value runs up to the next `` KEY=`` so that values with
# spaces (a class name such as "Cell membrane") survive
_ATTR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*?)(?=\s+[A-Za-z_][A-Za-z0-9_]*=|\s*$)")


def member_path(archive_path: Path | str, member: str) -> str:
    """How errors name a file inside an archive: ``/path/splits.zip:splits/sampled.csv``."""
    return f"{archive_path}:{member}"


# --------------------------------------------------------------------------------------- FASTA


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA record: the id (first header word), ``KEY=value`` header attributes, the
    concatenated sequence lines, its 1-based record number, the line of its header and the file
    it is in (as errors name it)."""

    id: str
    attributes: dict[str, str]
    sequence: str
    number: int
    line: int
    path: str = ""

    def where(self) -> str:
        return f"record '{self.id}' (line {self.line})"

    def location(self) -> tuple[str, int, str]:
        """The record as a row location of :class:`_Rows`."""
        return self.path, self.number, f"{self.where()}: "

    def error(self, problem: str) -> InputError:
        return InputError(f"{self.where()}: {problem}", path=self.path, row=self.number)


def parse_header(header: str) -> tuple[str, dict[str, str]]:
    """Split ``>ID KEY=value KEY=value`` into the id and the attributes."""
    body = header[1:].strip() if header.startswith(">") else header.strip()
    if not body:
        return "", {}
    parts = body.split(None, 1)
    if len(parts) == 1 or "=" not in parts[1]:  # sequences/mask files: a bare id, no attributes
        return parts[0], {}
    return parts[0], {m.group(1).upper(): m.group(2).strip() for m in _ATTR.finditer(parts[1])}


def parse_fasta(text: str, where: str) -> list[FastaRecord]:
    """Parse FASTA text (single- or multi-line records). ``where`` names the file in errors."""
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if lines and not lines[0][1].startswith(">"):
        raise InputError(f"line {lines[0][0]}: text before the first '>' header; not a FASTA file?", path=where)
    starts = [i for i, (_, line) in enumerate(lines) if line.startswith(">")]
    records: list[FastaRecord] = []
    for number, (start, stop) in enumerate(zip(starts, [*starts[1:], len(lines)]), start=1):
        header_line, header = lines[start]
        rid, attrs = parse_header(header)
        if not rid:
            raise InputError(f"record at line {header_line} has an empty id", path=where, row=number)
        records.append(
            FastaRecord(rid, attrs, "".join(line for _, line in lines[start + 1 : stop]), number, header_line, where)
        )
    return records


def _by_id(records: list[FastaRecord], tolerate: bool = False) -> tuple[dict[str, FastaRecord], dict]:
    """The records by id. A repeated id is an error unless ``tolerate``: then the first record of
    each id is kept, and the second value describes what was dropped (identical vs conflicting)."""
    index: dict[str, FastaRecord] = {}
    identical = 0
    conflicting: list[str] = []
    for rec in records:
        first = index.setdefault(rec.id, rec)
        if first is rec:
            continue
        if not tolerate:
            raise rec.error(f"duplicate FASTA id '{rec.id}' (first at record {first.number}, line {first.line})")
        if first.sequence == rec.sequence and first.attributes == rec.attributes:
            identical += 1
        else:
            conflicting.append(rec.id)
    dropped = {
        "rule": "kept the first record of each id",
        "n_dropped_identical": identical,
        "n_dropped_conflicting": len(conflicting),
        "conflicting_ids": conflicting,
    }
    return index, dropped


# --------------------------------------------------------------------------------------- loading


@dataclass
class _Rows:
    """Rows kept from a split file, before the checks shared by both formats."""

    ids: list[str]
    sequences: list[str]
    targets: list
    splits: list[str]
    #: (file name for errors, row number, extra location text) of each row's sequence, and label
    seq_where: list[tuple[str, int, str]]
    label_where: list[tuple[str, int, str]]
    notes: dict = field(default_factory=dict)
    masks: list[np.ndarray] | None = None

    @classmethod
    def of(cls, rows: list[tuple], notes: dict, masks: list[np.ndarray] | None = None) -> _Rows:
        """From one (id, sequence, target, split, sequence location, label location) tuple per row."""
        columns = [list(column) for column in zip(*rows)] or [[] for _ in range(6)]
        ids, sequences, targets, splits, seq_where, label_where = columns
        return cls(ids, sequences, targets, splits, seq_where, label_where, notes, masks)

    def sequence_error(self, i: int, problem: str) -> InputError:
        path, row, loc = self.seq_where[i]
        return InputError(f"{loc}{problem}", path=path, row=row)


def load_task(
    spec: TaskSpec,
    archive_path: Path | str,
    *,
    allow_unseen_test_labels: bool | None = None,
    tolerate_duplicate_ids: bool | None = None,
) -> TaskData:
    """Load one FLIP split from its archive, validated, with the task's residue window applied.

    ``None`` for either option follows the catalog (``UNSEEN_TEST_LABELS_ALLOWED``,
    ``DUPLICATE_LABEL_IDS_TOLERATED``: Bind for both). ``allow_unseen_test_labels``
    (classification and per-residue tasks): ``True`` records a test label never seen in training
    in ``notes["unseen_test_labels"]``, ``False`` refuses it; a *validation* label unseen in
    training is always an error. ``tolerate_duplicate_ids`` (FASTA label files): ``True`` keeps the
    first record of each id and reports the rest in ``notes["duplicate_ids"]``, ``False`` refuses
    a repeated id.
    """
    archive_path = Path(archive_path)
    if allow_unseen_test_labels is None:
        allow_unseen_test_labels = spec.dataset in UNSEEN_TEST_LABELS_ALLOWED
    if tolerate_duplicate_ids is None:
        tolerate_duplicate_ids = spec.dataset in DUPLICATE_LABEL_IDS_TOLERATED
    sha = sha256_file_once(archive_path)  # once per file version: the resolver's digest check read it too
    if spec.format == "tape_json":
        rows = _read_tape_json(spec, archive_path)
    else:
        rows = _read_zip(spec, archive_path, tolerate_duplicate_ids)

    _apply_window(spec, rows)
    _check_residues(rows)
    _check_split_sizes(rows, member_path(archive_path, spec.member))
    if spec.kind in ("classification", "per_residue"):
        _check_labels_seen(rows, spec.kind == "per_residue", allow_unseen_test_labels)

    rows.notes.update(
        {"member": spec.member, "format": spec.format, "window": list(spec.window) if spec.window else None}
    )
    return TaskData(
        spec=spec,
        ids=rows.ids,
        sequences=rows.sequences,
        targets=rows.targets,
        splits=np.asarray(rows.splits, dtype="<U5"),
        source=str(archive_path),
        sha256=sha,
        residue_masks=rows.masks,
        notes=rows.notes,
    )


def _read_zip(spec: TaskSpec, archive_path: Path, tolerate_duplicate_ids: bool) -> _Rows:
    try:
        zf = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile:
        raise InputError("not a zip archive (corrupt or incomplete download?)", path=archive_path) from None
    with zf:
        if spec.format == "csv":
            return _read_csv(spec, zf, archive_path)
        if spec.format == "fasta":
            return _read_fasta(spec, zf, archive_path, tolerate_duplicate_ids)
    # TaskSpec's Literal forbids it, but specs can come from users
    raise InputError(f"unknown task format {spec.format!r}", path=archive_path)


def _read_member(zf: zipfile.ZipFile, archive_path: Path, member: str) -> bytes:
    try:
        return zf.read(member)
    except (zipfile.BadZipFile, zlib.error) as exc:  # e.g. a CRC mismatch in a damaged download
        raise InputError(f"archive member {member!r} is corrupt: {exc}", path=archive_path) from None
    except KeyError:
        members = ", ".join(n for n in zf.namelist() if not n.endswith("/")) or "none"
        raise InputError(f"archive has no member {member!r} (its members: {members})", path=archive_path) from None


def _read_text(zf: zipfile.ZipFile, archive_path: Path, member: str) -> str:
    raw = _read_member(zf, archive_path, member)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte {exc.start}): {exc.reason}", path=member_path(archive_path, member)
        ) from None


def _read_csv(spec: TaskSpec, zf: zipfile.ZipFile, archive_path: Path) -> _Rows:
    where = member_path(archive_path, spec.member)
    raw = _read_member(zf, archive_path, spec.member)
    try:
        # Everything as text, no NA guessing: an empty cell stays "", so that "missing" and
        # "non-numeric" can be told apart and reported precisely.
        df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot parse as CSV: {exc}", path=where) from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"(expected {','.join(CSV_COLUMNS)}; found {','.join(df.columns)})",
            path=where,
            row=1,
        )
    n_rows = len(df)
    lines = np.arange(n_rows) + 2  # the header is line 1

    def refuse_first(bad: np.ndarray, problem: Callable[[int], str]) -> None:
        """Refuse the first row flagged ``bad``; ``problem(i)`` says what is wrong with row ``i``."""
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(problem(i), path=where, row=int(lines[i]))

    set_col = df["set"].str.strip().str.lower().to_numpy(dtype=object)
    bad = ~np.isin(set_col, ["train", "test", ""])
    refuse_first(bad, lambda i: f"'set' is {df['set'].iloc[i]!r}; expected 'train', 'test' or empty")
    keep = set_col != ""
    df, lines, set_col = df.loc[keep], lines[keep], set_col[keep]

    flags = df["validation"].str.strip().str.lower()
    bad = ~flags.isin(_FLAGS).to_numpy()
    refuse_first(bad, lambda i: f"'validation' is {df['validation'].iloc[i]!r}; expected True, False or empty")
    splits = np.where(set_col == "test", "test", np.where(flags.isin(_TRUE).to_numpy(), "val", "train"))

    sequences = df["sequence"].str.strip()
    refuse_first((sequences == "").to_numpy(), lambda i: "empty sequence")

    text = df["target"].str.strip()
    if spec.kind == "regression":
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        refuse_first(
            ~np.isfinite(values),
            lambda i: (
                f"non-numeric regression target {text.iloc[i]!r}" if text.iloc[i] else "missing regression target"
            ),
        )
        targets: list = values.tolist()
    else:
        refuse_first((text == "").to_numpy(), lambda i: "missing class label in 'target'")
        targets = text.tolist()

    locs = [(where, int(line), "") for line in lines]
    return _Rows(
        ids=[f"row{int(line)}" for line in lines],
        sequences=sequences.tolist(),
        targets=targets,
        splits=splits.tolist(),
        seq_where=locs,
        label_where=locs,
        notes={"n_rows": n_rows, "n_dropped_no_set": int((~keep).sum())},
    )


def _read_fasta(spec: TaskSpec, zf: zipfile.ZipFile, archive_path: Path, tolerate_duplicate_ids: bool) -> _Rows:
    def read(member: str, tolerate: bool = False) -> tuple[list[FastaRecord], dict[str, FastaRecord], dict]:
        records = parse_fasta(_read_text(zf, archive_path, member), member_path(archive_path, member))
        return (records, *_by_id(records, tolerate))

    records, labelled, dropped = read(spec.member, tolerate_duplicate_ids)
    if spec.kind == "per_residue" and not spec.sequences_member:
        raise InputError(
            f"task {spec.task_id}: a per-residue FASTA task needs sequences_member",
            path=member_path(archive_path, spec.member),
        )
    # the members matched by id: the amino acids (else each record holds its own) and the mask
    seq_index = read(spec.sequences_member)[1] if spec.sequences_member else None
    mask_index = read(spec.mask_member)[1] if spec.mask_member else None

    kept: list[tuple] = []
    masks: list[np.ndarray] = []
    n_dropped = 0
    for rec in labelled.values():
        attrs = rec.attributes
        if "SET" not in attrs:
            raise rec.error("header has no SET= attribute")
        set_value = attrs["SET"].strip().lower()
        if set_value in ("", "nan", "none"):
            n_dropped += 1  # same rule as a CSV row with an empty ``set``
            continue
        if set_value not in ("train", "test"):
            raise rec.error(f"SET={attrs['SET']!r}; expected train or test")
        split = "test"
        if set_value == "train":
            if "VALIDATION" not in attrs:
                raise rec.error("training record has no VALIDATION= attribute")
            flag = attrs["VALIDATION"].strip().lower()
            if flag not in _FLAGS:
                raise rec.error(f"VALIDATION={attrs['VALIDATION']!r}; expected True or False")
            split = "val" if flag in _TRUE else "train"

        seq_rec = rec if seq_index is None else _matching(seq_index, rec, spec.sequences_member)
        sequence = seq_rec.sequence
        if not sequence:
            raise seq_rec.error("empty sequence")

        target: str | float
        if spec.kind == "per_residue":
            target = rec.sequence
            if len(target) != len(sequence):
                raise rec.error(
                    f"label string has {len(target)} residues but the sequence in "
                    f"{spec.sequences_member} has {len(sequence)}"
                )
        else:
            target = attrs.get("TARGET", "").strip()
            if not target:
                raise rec.error("header has no TARGET= value")
            if spec.kind == "regression":
                try:
                    value = float(target)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    raise rec.error(f"non-numeric regression target {target!r}")
                target = value

        if mask_index is not None:
            mask_rec = _matching(mask_index, rec, spec.mask_member)
            mask_text = mask_rec.sequence
            if len(mask_text) != len(sequence):
                raise mask_rec.error(f"mask has {len(mask_text)} positions but the sequence has {len(sequence)}")
            bad = sorted(set(mask_text) - {"0", "1"})
            if bad:
                raise mask_rec.error(f"mask may only hold 0 and 1, found {', '.join(map(repr, bad))}")
            masks.append(np.frombuffer(mask_text.encode("ascii"), dtype=np.uint8) == ord("1"))

        kept.append((rec.id, sequence, target, split, seq_rec.location(), rec.location()))

    notes: dict = {"n_rows": len(records), "n_dropped_no_set": n_dropped}
    if dropped["n_dropped_identical"] or dropped["n_dropped_conflicting"]:
        notes["duplicate_ids"] = dropped
    if seq_index is not None:
        notes["n_unused_sequences"] = len(seq_index) - len(kept)
    if mask_index is None:
        return _Rows.of(kept, notes)
    notes["n_unscored_residues"] = int(sum(int((~m).sum()) for m in masks))
    return _Rows.of(kept, notes, masks)


def _matching(index: dict[str, FastaRecord], rec: FastaRecord, member: str | None) -> FastaRecord:
    """The record of ``member`` (sequences, mask) with the labelled record's id; refused if none."""
    found = index.get(rec.id)
    if found is None:
        raise rec.error(f"id '{rec.id}' has no record in {member}")
    return found


# --------------------------------------------------------------------------------------- TAPE

#: TAPE's 3-state codes (0 helix, 1 strand, 2 coil: tape-neurips2019 ``data_utils/vocabs.py``
#: SS_3_DICT) as the letters FLIP's secondary structure uses, so both read the same way
TAPE_SS3_LETTERS = "HEC"
#: the fields kept from each TAPE record; the others (evolutionary profiles, ss8, angles ...) are
#: dropped as each record is parsed, so the training file never sits whole in memory
_TAPE_FIELDS = ("id", "primary", "ss3", "protein_length")


def _keep_tape_fields(obj: dict) -> dict:
    return {k: obj[k] for k in _TAPE_FIELDS if k in obj}


def _read_tape_json(spec: TaskSpec, archive_path: Path) -> _Rows:
    """TAPE's secondary structure (its JSON release, a ``.tar.gz``): train and valid are shared by
    the three tasks, ``spec.member`` is the test set. Every residue is scored, as TAPE's own
    SecondaryStructureDataset does (its ``valid_mask`` is not applied)."""
    rows: list[tuple] = []
    notes: dict = {}
    try:
        tar = tarfile.open(archive_path, "r:*")  # noqa: SIM115 - closed by the with below; its own error first
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"not a tar archive (corrupt or incomplete download?): {exc}", path=archive_path) from None
    with tar:
        for split, member in zip(
            ("train", "val", "test"), (tape_ss_member("train"), tape_ss_member("valid"), spec.member)
        ):
            where = member_path(archive_path, member)
            fh = tar.extractfile(member) if member in tar.getnames() else None
            if fh is None:  # no such member, or not a file
                members = ", ".join(n for n in tar.getnames() if n.endswith(".json")) or "none"
                raise InputError(f"archive has no file {member!r} (its JSON files: {members})", path=archive_path)
            try:
                records = json.load(fh, object_hook=_keep_tape_fields)
            except (ValueError, EOFError, OSError, tarfile.TarError) as exc:  # bad JSON or a damaged archive
                raise InputError(f"not readable as TAPE's JSON: {exc}", path=where) from None
            if not isinstance(records, list):
                raise InputError(f"expected a JSON list of records, found {type(records).__name__}", path=where)
            rows += [_tape_row(record, split, where, number) for number, record in enumerate(records, start=1)]
            notes[f"n_{split}_records"] = len(records)
    notes["source_format"] = "TAPE JSON"
    return _Rows.of(rows, notes)


def _tape_row(record: object, split: str, where: str, number: int) -> tuple:
    rid = record.get("id", str(number - 1)) if isinstance(record, dict) else None  # TAPE's own default id
    loc = f"record {number}" + (f" (id {rid!r})" if rid is not None else "")

    def bad(problem: str) -> InputError:
        return InputError(f"{loc}: {problem}", path=where, row=number)

    if not isinstance(record, dict):
        raise bad(f"expected an object with primary and ss3, found {type(record).__name__}")
    sequence, labels = record.get("primary"), record.get("ss3")
    if not isinstance(sequence, str) or not sequence:
        raise bad("'primary' (the amino-acid sequence) is missing or not a non-empty string")
    if not isinstance(labels, list) or not all(type(v) is int and 0 <= v < 3 for v in labels):
        raise bad("'ss3' must be a list of 3-state codes 0 (helix), 1 (strand), 2 (coil)")
    if len(labels) != len(sequence):
        raise bad(f"'ss3' has {len(labels)} labels but 'primary' has {len(sequence)} residues")
    length = record.get("protein_length")
    if length is not None and length != len(sequence):
        raise bad(f"'protein_length' is {length!r} but 'primary' has {len(sequence)} residues")
    at = (where, number, f"{loc}: ")
    return str(rid), sequence, "".join(TAPE_SS3_LETTERS[v] for v in labels), split, at, at


# --------------------------------------------------------------------------------------- checks


def _apply_window(spec: TaskSpec, rows: _Rows) -> None:
    """Cut sequences (and per-residue labels and masks, identically) to ``spec.window``."""
    if spec.window is None:
        return
    start, stop = spec.window
    if not 0 <= start < stop:
        raise InputError(f"task {spec.task_id}: invalid residue window {spec.window}")
    for i, seq in enumerate(rows.sequences):
        if len(seq) < stop:
            raise rows.sequence_error(
                i, f"sequence has {len(seq)} residues, too short for the task's residue window [{start}, {stop})"
            )
    rows.sequences = [s[start:stop] for s in rows.sequences]
    if spec.kind == "per_residue":
        rows.targets = [t[start:stop] for t in rows.targets]
    if rows.masks is not None:
        rows.masks = [m[start:stop] for m in rows.masks]


def _check_residues(rows: _Rows) -> None:
    """Every residue must be an uppercase letter of :data:`ALLOWED_RESIDUES`."""
    # Fast path: delete every allowed byte from all sequences at once; anything left over
    # (including non-ASCII bytes) means some sequence is bad, and only then do we look row by row.
    if not b"".join(s.encode("utf-8") for s in rows.sequences).translate(None, _ALLOWED_BYTES):
        return
    for i, seq in enumerate(rows.sequences):
        bad = set(seq) - ALLOWED_RESIDUES
        if bad:
            letters = ", ".join(repr(c) for c in sorted(bad))
            hint = " (lowercase is not accepted)" if any(c.islower() for c in bad) else ""
            raise rows.sequence_error(
                i,
                f"unknown residue letters {letters}{hint}; allowed are the 20 standard amino "
                f"acids {STANDARD_RESIDUES} and {' '.join(EXTRA_RESIDUES)}, uppercase",
            )


def _check_split_sizes(rows: _Rows, where: str) -> None:
    counts = Counter(rows.splits)
    for split, what in (
        ("train", "no training rows (set=train without validation=True)"),
        ("val", "no validation rows (set=train with validation=True); FLIP splits mark them"),
        ("test", "no test rows (set=test)"),
    ):
        if not counts[split]:
            raise InputError(f"the split has {what}", path=where)


def _check_labels_seen(rows: _Rows, per_residue: bool, allow_unseen_test: bool) -> None:
    """Class labels, or per-residue labels at scored residues, in val/test must occur in training."""

    def counts(i: int) -> Counter[str]:
        label = rows.targets[i]
        if not per_residue:
            return Counter([label])
        return Counter(label if rows.masks is None else itertools.compress(label, rows.masks[i].tolist()))

    train = sorted({label for i, s in enumerate(rows.splits) if s == "train" for label in counts(i)})
    unseen: Counter[str] = Counter()
    for i, s in enumerate(rows.splits):
        if s == "train":
            continue
        new = {label: n for label, n in sorted(counts(i).items()) if label not in train}
        if not new:
            continue
        if s == "test" and allow_unseen_test:
            unseen.update(new)
            continue
        path, row, loc = rows.label_where[i]
        what = f"{loc}residue label" if per_residue else "label"
        plural = len(new) > 1
        raise InputError(
            f"{what}{'s' if plural else ''} {', '.join(map(repr, new))} in the {s} split never "
            f"occur{'' if plural else 's'} in the training split (training labels: {', '.join(map(repr, train))})",
            path=path,
            row=row,
        )
    rows.notes["classes"] = train
    if unseen:
        rows.notes["unseen_test_labels"] = dict(sorted(unseen.items()))
