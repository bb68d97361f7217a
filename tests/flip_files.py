"""Write small, synthetic FLIP split archives in FLIP's exact formats, for tests.

Every writer puts its archive where FLIP keeps it under a FLIP-root directory
(``<root>/splits/<dataset>/splits.zip``, members under ``splits/``) and returns the archive path,
so ``root`` can be handed to ``--plm-data-dir`` / ``DataResolver(data_dir=root)`` directly.
Output is a deterministic function of the arguments (fixed seeds, fixed zip timestamps), so the
archive bytes, and therefore their SHA-256, are stable across runs.

No FLIP data is copied: sequences are random; only the layout, column names, header syntax and
label alphabets follow FLIP.

* CSV datasets (GB1, AAV, Meltome, SCL): ``splits/<split>.csv`` with columns
  ``sequence,target,set,validation``; ``validation`` is ``True`` or empty, ``set`` is ``train``,
  ``test`` or empty (AAV rows outside a split's pool).
* FASTA datasets (secondary structure, Bind, Conservation): ``splits/sequences.fasta`` plus one
  label file per split with headers ``>ID SET=train VALIDATION=False``; secondary structure
  also has ``splits/mask.fasta``.

Each writer takes ``edit``, a hook to damage or tweak a member before it is written (for tests of
bad input): CSV writers call ``edit(member, DataFrame) -> DataFrame``; FASTA writers call
``edit(member, records) -> records`` where ``records`` is a list of ``[header, sequence]`` pairs
(header without the ``>``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: a fixed timestamp for zip entries so archive bytes are reproducible
_ZIP_TIME = (2021, 9, 25, 14, 16, 0)

GB1_SPLITS = ("one_vs_rest", "two_vs_rest", "three_vs_rest", "low_vs_high", "sampled")
#: 0-based GB1 sites FLIP mutates (V39, D40, G41, V54), all inside the 56-residue domain
GB1_SITES = (38, 39, 40, 53)
GB1_LENGTH = 265
AAV_SPLITS = ("des_mut", "mut_des", "one_vs_many", "two_vs_many", "seven_vs_many", "low_vs_high", "sampled")
MELTOME_SPLITS = ("mixed_split", "human", "human_cell")
SCL_SPLITS = ("balanced", "mixed_soft", "mixed_hard", "human_soft", "human_hard")
SCL_CLASSES = (
    "Cytoplasm",
    "Nucleus",
    "Cell membrane",
    "Mitochondrion",
    "Endoplasmic reticulum",
    "Lysosome/Vacuole",
    "Golgi apparatus",
    "Peroxisome",
    "Extracellular",
    "Plastid",
)
BIND_SPLITS = ("one_vs_many", "two_vs_many", "from_publication", "one_vs_sm", "one_vs_mn", "one_vs_sn")

CsvEdit = Callable[[str, pd.DataFrame], pd.DataFrame]
FastaEdit = Callable[[str, list[list[str]]], list[list[str]]]


# ------------------------------------------------------------------------------------ writing


def archive_path(root: Path | str, dataset: str) -> Path:
    """``<root>/splits/<dataset>/splits.zip``."""
    return Path(root) / "splits" / dataset / "splits.zip"


def write_zip(path: Path | str, members: Mapping[str, str | bytes]) -> Path:
    """Write a zip with a ``splits/`` directory entry (as FLIP's archives have) and ``members``
    (name -> text or bytes), deterministically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        dirs = sorted({name.rsplit("/", 1)[0] + "/" for name in members if "/" in name})
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d, date_time=_ZIP_TIME), b"")
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data.encode("utf-8") if isinstance(data, str) else data)
    return path


def frame_to_csv(frame: pd.DataFrame) -> str:
    """CSV text as FLIP writes it (pandas, no index; missing values as empty cells)."""
    return frame.to_csv(index=False)


def fasta_text(records: Iterable[Sequence[str]]) -> str:
    """FASTA text from ``(header, sequence)`` pairs, one line per sequence as in FLIP."""
    return "".join(f">{header}\n{seq}\n" for header, seq in records)


def write_csv_archive(
    root: Path | str, dataset: str, frames: Mapping[str, pd.DataFrame | str], edit: CsvEdit | None = None
) -> Path:
    """Write ``splits/<name>.csv`` members (``frames`` keys are split names such as
    ``"sampled"``; values a DataFrame or raw CSV text) into
    ``<root>/splits/<dataset>/splits.zip``."""
    members: dict[str, str] = {}
    for name, frame in frames.items():
        member = f"splits/{name}.csv"
        if isinstance(frame, pd.DataFrame):
            if edit is not None:
                frame = edit(member, frame.copy())
            members[member] = frame_to_csv(frame)
        else:
            members[member] = frame
    return write_zip(archive_path(root, dataset), members)


def write_fasta_archive(
    root: Path | str, dataset: str, files: Mapping[str, list[list[str]] | str], edit: FastaEdit | None = None
) -> Path:
    """Write FASTA members (``files`` keys are file names such as ``"sequences.fasta"``; values
    lists of ``[header, sequence]`` or raw text) into ``<root>/splits/<dataset>/splits.zip``."""
    members: dict[str, str] = {}
    for name, records in files.items():
        member = f"splits/{name}"
        if isinstance(records, str):
            members[member] = records
            continue
        records = [list(r) for r in records]
        if edit is not None:
            records = edit(member, records)
        members[member] = fasta_text(records)
    return write_zip(archive_path(root, dataset), members)


# ------------------------------------------------------------------------------------ helpers


def random_protein(rng: np.random.Generator, length: int, alphabet: str = AMINO_ACIDS) -> str:
    letters = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
    return letters[rng.integers(0, len(letters), size=length)].tobytes().decode("ascii")


def _pick(rng: np.random.Generator, options: Sequence):
    """One random element (``rng.choice`` is slow for single draws)."""
    return options[int(rng.integers(0, len(options)))]


def _validation_flags(rng: np.random.Generator, sets: Sequence[str], fraction: float = 0.1) -> list:
    """``True`` for about ``fraction`` of the training rows (at least one), ``None`` elsewhere,
    which pandas writes as an empty cell, as in FLIP's CSVs."""
    train = [i for i, s in enumerate(sets) if s == "train"]
    flags: list = [None] * len(sets)
    if len(train) >= 2:
        k = max(1, int(round(fraction * len(train))))
        for i in rng.choice(train, size=min(k, len(train) - 1), replace=False):
            flags[int(i)] = True
    return flags


def _random_sets(rng: np.random.Generator, n: int, test_fraction: float) -> list[str]:
    """Random train/test with at least two train rows and one test row."""
    sets = ["test" if rng.random() < test_fraction else "train" for _ in range(n)]
    if n >= 3:
        sets[0], sets[1], sets[2] = "train", "train", "test"
    return sets


def _csv_frame(sequences, targets, sets, validation) -> pd.DataFrame:
    return pd.DataFrame(
        {"sequence": sequences, "target": targets, "set": sets, "validation": validation},
        columns=["sequence", "target", "set", "validation"],
    )


def _check_n(n: int, minimum: int = 10) -> None:
    # below this, some FLIP split rules can leave train, val or test empty
    if n < minimum:
        raise ValueError(f"n={n} is too small to give every split train, val and test rows; use n >= {minimum}")


def _which(split: str | Sequence[str] | None, known: Sequence[str]) -> list[str]:
    if split is None:
        return list(known)
    names = [split] if isinstance(split, str) else list(split)
    for name in names:
        if name not in known:
            raise ValueError(f"unknown split {name!r}; FLIP has {', '.join(known)}")
    return names


# ------------------------------------------------------------------------------------ GB1


def gb1_variants(n: int, seed: int = 0) -> tuple[list[str], list[float], list[int]]:
    """``n`` variants of a random 265-residue GB1-like construct, mutated only at FLIP's four
    sites: (sequences, fitness, number of mutated sites). Row 0 is the wild type (fitness 1.0);
    the number of mutated sites cycles 1..4 so that every ``k_vs_rest`` split has both sides."""
    rng = np.random.default_rng(seed)
    wild = list(random_protein(rng, GB1_LENGTH))
    sequences, targets, n_mut = ["".join(wild)], [1.0], [0]
    for i in range(1, n):
        k = 1 + (i - 1) % 4
        seq = wild.copy()
        for site in rng.choice(GB1_SITES, size=k, replace=False):
            seq[int(site)] = _pick(rng, [a for a in AMINO_ACIDS if a != wild[int(site)]])
        sequences.append("".join(seq))
        targets.append(round(float(rng.gamma(1.0, 1.1)), 10) if i % 7 else 0.0)
        n_mut.append(k)
    # rows 1 and 2 on either side of the wild type, so low_vs_high has train and test at any n
    if n > 2:
        targets[1], targets[2] = min(targets[1], 0.5), max(targets[2], 1.5)
    return sequences, targets, n_mut


def gb1_frame(split: str = "sampled", n: int = 80, seed: int = 0) -> pd.DataFrame:
    """One GB1 split as FLIP lays it out, following FLIP's README rules for each split."""
    sequences, targets, n_mut = gb1_variants(n, seed)
    rng = np.random.default_rng(seed + 1000 + GB1_SPLITS.index(split))
    if split == "sampled":
        sets = _random_sets(rng, n, 0.2)
    elif split == "low_vs_high":
        sets = ["train" if t < 1.0 else "test" for t in targets]  # below wild-type fitness
    else:
        k = {"one_vs_rest": 1, "two_vs_rest": 2, "three_vs_rest": 3}[split]
        sets = ["train" if m <= k else "test" for m in n_mut]
    return _csv_frame(sequences, targets, sets, _validation_flags(rng, sets))


def write_gb1(
    root: Path | str,
    split: str | Sequence[str] | None = None,
    n: int = 80,
    seed: int = 0,
    *,
    fasta: bool = True,
    edit: CsvEdit | None = None,
) -> Path:
    """GB1's ``splits.zip``: ``splits/<split>.csv`` for ``split`` (default: all five FLIP splits)
    and, like FLIP's archive, a ``splits/<split>.fasta`` twin with ``TARGET= SET= VALIDATION=``
    headers. Sequences are 265 residues; the tasks embed residues 0..55."""
    _check_n(n)
    members: dict[str, str] = {}
    for name in _which(split, GB1_SPLITS):
        member = f"splits/{name}.csv"
        frame = gb1_frame(name, n, seed)
        if edit is not None:
            frame = edit(member, frame.copy())
        members[member] = frame_to_csv(frame)
        if fasta:
            members[f"splits/{name}.fasta"] = fasta_text(
                (f"Sequence{i} TARGET={row.target} SET={row.set} VALIDATION={row.validation is True}", row.sequence)
                for i, row in enumerate(gb1_frame(name, n, seed).itertuples(index=False))
            )
    return write_zip(archive_path(root, "gb1"), members)


# ------------------------------------------------------------------------------------ AAV


def aav_frame(
    split: str = "sampled", n: int = 120, seed: int = 0, length: int = 120, region: tuple[int, int] = (50, 78)
) -> pd.DataFrame:
    """One AAV split. FLIP's real sequences are the 735-residue VP1 (P03135) with residues
    561..588 varied; here a random ``length``-residue protein with ``region`` varied, shorter by
    default so tests stay fast. "des" rows are the experimental partitions, "mut" rows the
    ML-designed ones; splits that use only "des" leave ``set`` empty on "mut" rows, as FLIP does."""
    rng = np.random.default_rng(seed)
    wild = random_protein(rng, length)
    start, stop = region
    sequences, targets, design, distance = [wild], [0.0], ["des"], [0]
    for i in range(1, n):
        edits = 1 + (i - 1) % 10  # Levenshtein distances 1..10 in turn
        mid = list(wild[start:stop])
        for _ in range(edits):
            op = rng.random()
            pos = int(rng.integers(0, len(mid)))
            if op < 0.8 or len(mid) < 5:
                mid[pos] = _pick(rng, AMINO_ACIDS)
            elif op < 0.9:
                mid.insert(pos, _pick(rng, AMINO_ACIDS))
            else:
                del mid[pos]
        sequences.append(wild[:start] + "".join(mid) + wild[stop:])
        targets.append(round(float(rng.normal(-1.0 - 0.3 * edits, 2.0)), 6))
        design.append("mut" if i % 3 == 0 else "des")
        distance.append(edits)
    # the wild type scores at the median of the "des" variants, so low_vs_high has both sides
    des_scores = [t for t, d in zip(targets[1:], design[1:]) if d == "des"]
    if des_scores:
        targets[0] = float(np.median(des_scores))
    split_rng = np.random.default_rng(seed + 1000 + AAV_SPLITS.index(split))
    sets: list[str | None]
    if split == "des_mut":
        sets = ["train" if d == "des" else "test" for d in design]
    elif split == "mut_des":
        sets = ["train" if d == "mut" else "test" for d in design]
    elif split in ("one_vs_many", "two_vs_many", "seven_vs_many"):
        k = {"one_vs_many": 1, "two_vs_many": 2, "seven_vs_many": 7}[split]
        sets = [None if d == "mut" else ("train" if e <= k else "test") for d, e in zip(design, distance)]
    elif split == "low_vs_high":
        sets = [None if d == "mut" else ("train" if t <= targets[0] else "test") for d, t in zip(design, targets)]
    else:  # sampled
        drawn = _random_sets(split_rng, n, 0.2)
        sets = [None if d == "mut" else s for d, s in zip(design, drawn)]
    flags = _validation_flags(split_rng, [s or "" for s in sets])
    return _csv_frame(sequences, targets, sets, flags)


def write_aav(
    root: Path | str,
    split: str | Sequence[str] | None = None,
    n: int = 120,
    seed: int = 0,
    *,
    length: int = 120,
    edit: CsvEdit | None = None,
) -> Path:
    """AAV's ``splits.zip`` with ``splits/<split>.csv`` (default: all seven FLIP splits)."""
    _check_n(n)
    region = (length * 5 // 12, length * 5 // 12 + 28)
    frames = {name: aav_frame(name, n, seed, length, region) for name in _which(split, AAV_SPLITS)}
    return write_csv_archive(root, "aav", frames, edit)


# ------------------------------------------------------------------------------------ Meltome


def meltome_frame(
    split: str = "mixed_split", n: int = 60, seed: int = 0, lengths: tuple[int, int] = (30, 200)
) -> pd.DataFrame:
    """One Meltome split: unrelated proteins of varied length, melting temperature in °C."""
    rng = np.random.default_rng(seed + 17 * MELTOME_SPLITS.index(split))
    sequences = [random_protein(rng, int(rng.integers(lengths[0], lengths[1] + 1))) for _ in range(n)]
    targets = [round(float(rng.uniform(35.0, 90.0)), 6) for _ in range(n)]
    sets = _random_sets(rng, n, 0.2)
    return _csv_frame(sequences, targets, sets, _validation_flags(rng, sets))


def write_meltome(
    root: Path | str,
    split: str | Sequence[str] | None = None,
    n: int = 60,
    seed: int = 0,
    *,
    lengths: tuple[int, int] = (30, 200),
    edit: CsvEdit | None = None,
) -> Path:
    """Meltome's ``splits.zip``: ``splits/mixed_split.csv``, ``splits/human.csv``,
    ``splits/human_cell.csv`` (FLIP's names; the ``meltome_mixed`` task reads ``mixed_split``)."""
    _check_n(n)
    frames = {name: meltome_frame(name, n, seed, lengths) for name in _which(split, MELTOME_SPLITS)}
    return write_csv_archive(root, "meltome", frames, edit)


# ------------------------------------------------------------------------------------ SCL


def scl_frame(
    split: str = "balanced", n: int = 80, seed: int = 0, lengths: tuple[int, int] = (40, 160)
) -> pd.DataFrame:
    """One SCL split: the class name (FLIP's 10 localizations) as ``target``. Every class occurs
    in training (the first 20 rows cover them all twice) so val/test labels are all seen."""
    rng = np.random.default_rng(seed + 31 * SCL_SPLITS.index(split))
    sequences = [random_protein(rng, int(rng.integers(lengths[0], lengths[1] + 1))) for _ in range(n)]
    targets = [SCL_CLASSES[i % len(SCL_CLASSES)] for i in range(n)]
    sets = ["train" if i < 2 * len(SCL_CLASSES) else ("test" if rng.random() < 0.2 else "train") for i in range(n)]
    if "test" not in sets:
        sets[-1] = "test"
    # validation rows are drawn after the class-covering block, so training keeps every class
    flags: list = [None] * n
    pool = [i for i in range(2 * len(SCL_CLASSES), n) if sets[i] == "train"]
    for i in rng.choice(pool, size=max(1, len(pool) // 8), replace=False) if pool else []:
        flags[int(i)] = True
    if not pool:  # tiny n: take one row of the covering block's second round
        flags[len(SCL_CLASSES)] = True
    return _csv_frame(sequences, targets, sets, flags)


def write_scl(
    root: Path | str,
    split: str | Sequence[str] | None = None,
    n: int = 80,
    seed: int = 0,
    *,
    edit: CsvEdit | None = None,
) -> Path:
    """SCL's ``splits.zip``: FLIP publishes SCL as CSV, ``splits/<split>.csv`` with the class
    name (e.g. ``Cell membrane``) in ``target``."""
    _check_n(n, 12)
    frames = {name: scl_frame(name, n, seed) for name in _which(split, SCL_SPLITS)}
    return write_csv_archive(root, "scl", frames, edit)


# ------------------------------------------------------------------------------------ FASTA sets


def _fasta_sets(rng: np.random.Generator, n: int, test_fraction: float = 0.1) -> list[tuple[str, bool]]:
    """(SET, VALIDATION) per record, with train, val and test all present."""
    sets = _random_sets(rng, n, test_fraction)
    flags = _validation_flags(rng, sets)
    return [(s, bool(f)) for s, f in zip(sets, flags)]


def _header(rid: str, set_and_val: tuple[str, bool]) -> str:
    return f"{rid} SET={set_and_val[0]} VALIDATION={set_and_val[1]}"


def ss3_records(n: int = 40, seed: int = 0, lengths: tuple[int, int] = (30, 150)) -> dict[str, list[list[str]]]:
    """Records of secondary structure's three files: labels (H/E/C in runs), sequences, masks
    (a few unresolved residues, mostly at the ends, as in FLIP's ``mask.fasta``)."""
    rng = np.random.default_rng(seed)
    labels, seqs, masks = [], [], []
    for i, sv in enumerate(_fasta_sets(rng, n)):
        rid = f"{1 + i % 9}{'abcdefghjk'[i % 10]}{i:02d}-{'ABCD'[i % 4]}"
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        runs: list[str] = []
        while sum(map(len, runs)) < length:
            runs.append(str(rng.choice(list("HEC"), p=[0.4, 0.25, 0.35])) * int(rng.integers(2, 12)))
        label = "".join(runs)[:length]
        if i == 0:  # make sure the training split sees all three classes
            label = ("HEC" * length)[:length]
        mask = ["1"] * length
        for j in range(int(rng.integers(0, 3))):
            mask[j] = "0"
        for j in range(int(rng.integers(0, 4))):
            mask[length - 1 - j] = "0"
        labels.append([_header(rid, sv), label])
        seqs.append([rid, random_protein(rng, length)])
        masks.append([rid, "".join(mask)])
    return {"sampled.fasta": labels, "sequences.fasta": seqs, "mask.fasta": masks}


def write_ss3(
    root: Path | str, n: int = 40, seed: int = 0, *, lengths: tuple[int, int] = (30, 150), edit: FastaEdit | None = None
) -> Path:
    """Secondary structure's ``splits.zip``: ``splits/sampled.fasta`` (labels with SET= and
    VALIDATION=), ``splits/sequences.fasta``, ``splits/mask.fasta``."""
    _check_n(n)
    return write_fasta_archive(root, "secondary_structure", ss3_records(n, seed, lengths), edit)


def bind_records(
    split: str = "one_vs_many",
    n: int = 40,
    seed: int = 0,
    *,
    lengths: tuple[int, int] = (30, 120),
    repeat_ids: int = 0,
    conflicting_ids: int = 0,
) -> tuple[list[list[str]], list[list[str]]]:
    """(label records of one Bind split, all sequences). Labels are digits 0-7 (the SNM bit
    pattern). Like FLIP's, training proteins carry single-ligand labels (0, 1, 2, 4) while test
    proteins may carry combinations (3, 5, 6, 7) never seen in training. ``repeat_ids`` /
    ``conflicting_ids`` append that many repeated records (identical, or the training record again
    with ``SET=test``), as FLIP's ``one_vs_many.fasta`` has."""
    rng = np.random.default_rng(seed)
    seqs, lengths_by_id = [], {}
    for i in range(n + 5):  # a few sequences no split uses, as in FLIP
        rid = f"P{10000 + i:05d}"
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        seqs.append([rid, random_protein(rng, length)])
        lengths_by_id[rid] = length
    split_rng = np.random.default_rng(seed + 1000 + BIND_SPLITS.index(split))
    labels = []
    for i, sv in enumerate(_fasta_sets(split_rng, n, 0.2)):
        rid = seqs[i][0]
        length = lengths_by_id[rid]
        alphabet = "0124" if sv[0] == "train" else "01234567"
        codes = ["0"] * length
        for pos in split_rng.choice(length, size=max(1, length // 8), replace=False):
            codes[int(pos)] = _pick(split_rng, alphabet[1:])
        if i == 0:
            codes[:4] = list("0124")  # training sees every single-ligand class
        labels.append([_header(rid, sv), "".join(codes)])
    train = [r for r in labels if "SET=train" in r[0]]
    labels += [list(r) for r in train[:repeat_ids]]
    for r in train[repeat_ids : repeat_ids + conflicting_ids]:
        labels.append([r[0].split()[0] + " SET=test VALIDATION=False", r[1]])
    return labels, seqs


def write_bind(
    root: Path | str,
    split: str | Sequence[str] | None = None,
    n: int = 40,
    seed: int = 0,
    *,
    repeat_ids: int = 0,
    conflicting_ids: int = 0,
    edit: FastaEdit | None = None,
) -> Path:
    """Bind's ``splits.zip``: ``splits/sequences.fasta`` plus ``splits/<split>.fasta`` label files
    (default: all six FLIP splits)."""
    _check_n(n)
    files: dict[str, list[list[str]]] = {}
    for name in _which(split, BIND_SPLITS):
        labels, seqs = bind_records(name, n, seed, repeat_ids=repeat_ids, conflicting_ids=conflicting_ids)
        files[f"{name}.fasta"] = labels
        files["sequences.fasta"] = seqs
    return write_fasta_archive(root, "bind", files, edit)


def conservation_records(
    n: int = 40, seed: int = 0, lengths: tuple[int, int] = (30, 150)
) -> dict[str, list[list[str]]]:
    """Records of conservation's files: labels are classes 1..9 per residue; a few sequences in
    ``sequences.fasta`` have no label record, as in FLIP."""
    rng = np.random.default_rng(seed)
    labels, seqs = [], []
    sets = _fasta_sets(rng, n)
    for i in range(n + 3):
        rid = f"{1 + i % 9}c{i:02d}-{'ABC'[i % 3]}"
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        seqs.append([rid, random_protein(rng, length)])
        if i < n:
            label = "".join(rng.choice(list("123456789"), size=length))
            if i == 0:
                label = ("123456789" * length)[:length]
            labels.append([_header(rid, sets[i]), label])
    return {"sampled.fasta": labels, "sequences.fasta": seqs}


def write_conservation(
    root: Path | str, n: int = 40, seed: int = 0, *, lengths: tuple[int, int] = (30, 150), edit: FastaEdit | None = None
) -> Path:
    """Conservation's ``splits.zip``: ``splits/sampled.fasta`` + ``splits/sequences.fasta``."""
    _check_n(n)
    return write_fasta_archive(root, "conservation", conservation_records(n, seed, lengths), edit)


def write_all(root: Path | str, seed: int = 0) -> dict[str, Path]:
    """Every dataset's archive under one FLIP root; returns dataset -> archive path."""
    return {
        "gb1": write_gb1(root, seed=seed),
        "aav": write_aav(root, seed=seed),
        "meltome": write_meltome(root, seed=seed),
        "scl": write_scl(root, seed=seed),
        "secondary_structure": write_ss3(root, seed=seed),
        "bind": write_bind(root, seed=seed),
        "conservation": write_conservation(root, seed=seed),
    }


# ------------------------------------------------------------------------------------ TAPE

#: TAPE's secondary-structure splits, each a JSON file in its release
TAPE_SS_SPLITS = ("train", "valid", "casp12", "cb513", "ts115")


def tape_ss_records(n: int = 12, seed: int = 0, lengths: tuple[int, int] = (20, 60)) -> list[dict]:
    """Records shaped like TAPE's JSON release (the JSON-ified LMDB items of its
    SecondaryStructureDataset): ``primary`` a string, ``ss3``/``ss8``/``disorder`` integer lists,
    ``evolutionary`` 30 floats per residue, ``protein_length``, ``id``. Labels follow the residues
    (helix-prone letters H, strand-prone E) so that a probe can learn something."""
    rng = np.random.default_rng(seed)
    helix, strand = set("AELMQKRH"), set("VIYFWT")
    records = []
    for i in range(n):
        seq = random_protein(rng, int(rng.integers(*lengths)))
        ss3 = [0 if c in helix else 1 if c in strand else 2 for c in seq]
        records.append(
            {
                "id": f"{seed}{i:03d}A",
                "primary": seq,
                "protein_length": len(seq),
                "ss3": ss3,
                "ss8": [{0: 1, 1: 4, 2: 7}[v] for v in ss3],
                "disorder": [1] * len(seq),
                "evolutionary": rng.random((len(seq), 30)).round(3).tolist(),
            }
        )
    return records


def write_tape_ss(
    root: Path | str, records: Mapping[str, object] | None = None, n: int = 12, raw: Mapping[str, str] | None = None
) -> Path:
    """TAPE's ``secondary_structure.tar.gz`` (``secondary_structure/secondary_structure_<split>.json``)
    at ``<root>/tape/``; ``records`` (split -> list) replaces generated records, ``raw`` (split ->
    text) writes a member's text as given (for bad input). Deterministic bytes (fixed mtimes)."""
    import gzip
    import io
    import json
    import tarfile

    path = Path(root) / "tape" / "secondary_structure.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for k, split in enumerate(TAPE_SS_SPLITS):
            if raw is not None and split in raw:
                text = raw[split]
            else:
                chosen = records.get(split) if records is not None else None
                text = json.dumps(chosen if chosen is not None else tape_ss_records(n, seed=k))
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"secondary_structure/secondary_structure_{split}.json")
            info.size, info.mtime = len(data), 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path
