"""The tasks this package knows, as ``TaskSpec`` records (FLIP's, and TAPE's secondary structure),
and the archives they read, as ``Dataset`` records: each archive's path, pinned URL and published
digest declared once, for the resolver and ``--plm-flip-sha256`` to derive from.

Archive and member names are FLIP's own (https://github.com/J-SNACKKB/FLIP, ``splits/``; SCL's
target is the class name); :mod:`pytest_plmtransfer.tasks.readers` describes the formats.

GB1 is declared with the residue window (0, 56): FLIP's GB1 sequence is the 265-residue 5LDE
construct, but all four mutated sites (V39, D40, G41, V54) lie in the 56-residue GB1 domain,
which is what the papers embedded.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.tasks.spec import TaskKind, TaskSpec

FLIP_REPOSITORY = "https://github.com/J-SNACKKB/FLIP"


@dataclass(frozen=True)
class Dataset:
    """One published archive of task data, pinned: its path under a data directory laid out like
    FLIP's repository root, the URL it is downloaded from, and its SHA-256 as published."""

    name: str
    archive: str
    #: FLIP's raw URL at a pinned commit (a branch URL would change under us), or the publisher's
    url: str
    #: measured on the published file; None: recorded at the first download, with a warning
    sha256: str | None = None

    @property
    def flip(self) -> bool:
        """FLIP's own archive, which a FLIP mirror (``--plm-flip-url``) also holds."""
        return self.url.startswith(FLIP_REPOSITORY)


def _flip(name: str, commit: str, sha256: str | None = None) -> Dataset:
    """A FLIP archive at ``commit``: that of the newest version of ``splits/<name>/splits.zip``
    found in FLIP's history."""
    archive = f"splits/{name}/splits.zip"
    return Dataset(name, archive, f"{FLIP_REPOSITORY}/raw/{commit}/{archive}", sha256)


#: TAPE's secondary structure as the ICML paper used it (the authors' task list, scr/params/vis.py:
#: structure_ss3_casp12/cb513/ts115): one training set (TAPE's train; valid for validation) and
#: three test sets. The archive is TAPE's JSON release (songlab-cal/tape README, "Raw Data":
#: ``data_raw_pytorch/secondary_structure.tar.gz``), the JSON-ified records of its LMDB files:
#: ``secondary_structure/secondary_structure_<split>.json``, a list of records with ``primary`` (the
#: sequence) and ``ss3`` (0 helix, 1 strand, 2 coil per residue), among others. The JSON release is
#: used rather than the LMDB one so that reading it needs no ``lmdb`` package and unpickles nothing.
TAPE_SS_DATASET = "tape_secondary_structure"
TAPE_SS_TESTS = ("casp12", "cb513", "ts115")

#: every archive the catalog's tasks read, by dataset name (``--plm-flip-sha256 <name>=<hex>``)
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        _flip(
            "gb1",
            "0a3cf047f63e70c14f7af29e88de256222fe9ee7",
            "00a3c3d5be56ce35adfbec838db8ff549be369525e151a6978133da34b9fd86f",
        ),
        _flip("aav", "0a3cf047f63e70c14f7af29e88de256222fe9ee7"),
        _flip("meltome", "0a3cf047f63e70c14f7af29e88de256222fe9ee7"),
        _flip("scl", "0a3cf047f63e70c14f7af29e88de256222fe9ee7"),
        _flip(
            "secondary_structure",
            "afea570175d6ce049ca9388f870a6a20c549948f",
            "2e9bbbfd18a055bcac7edd4e059a6bf4bb35ca3ad8f8fa4fc3106422652a4726",
        ),
        _flip(
            "bind",
            "4cc2cd7ab56a3e34ce9ae0a651cda2f6f1963b20",
            "f742c8b3e4521d7e771ca03096484451287026fe433b34463cbfcf767e0a7417",
        ),
        _flip(
            "conservation",
            "42a51d7ac932d5e30ac5fd7e3509d8d2175ff839",
            "9b364ba2a378a7abd9b8cf992d38c61b33dff17854fe37997760c8972ce921c5",
        ),
        # TAPE publishes no digest
        Dataset(
            TAPE_SS_DATASET,
            "tape/secondary_structure.tar.gz",
            "http://s3.amazonaws.com/proteindata/data_raw_pytorch/secondary_structure.tar.gz",
        ),
    )
}

#: What the sizes of the papers' tasks are quoted from.
PAPER_SIZES = "workshop paper, Table A2"


def tape_ss_member(split: str) -> str:
    """The file of one TAPE secondary-structure split inside its archive."""
    return f"secondary_structure/secondary_structure_{split}.json"


#: GB1's 56-residue domain (0-based, stop exclusive), as embedded by the papers
GB1_WINDOW: tuple[int, int] = (0, 56)

#: Datasets whose *test* labels may legitimately be absent from training. FLIP's Bind splits are
#: built that way on purpose: e.g. ``one_vs_many`` trains on proteins binding one ligand type and
#: tests on proteins whose residues bind several (labels 3, 5, 6, 7 occur only in test). Refusing
#: them as bad input would make every Bind task unusable, so for these datasets the reader records
#: the unseen labels in ``TaskData.notes["unseen_test_labels"]`` instead of raising. Validation
#: labels must still have been seen in training.
UNSEEN_TEST_LABELS_ALLOWED: frozenset[str] = frozenset({"bind"})

#: Datasets whose FLIP label files repeat record ids. FLIP's Bind ``one_vs_many`` and
#: ``two_vs_many`` label files hold 1360 records for 1314 distinct proteins (46 ids appear twice,
#: and 46 proteins of ``sequences.fasta`` appear in neither); ``one_vs_sn`` repeats 5 ids. Most
#: repeats are identical records, but in ``one_vs_many`` 13 proteins appear once in train/val and
#: again in test. For these datasets the reader keeps the *first* record of each id (always the
#: training copy in FLIP's files, so no protein is both trained on and tested on) and reports what
#: it dropped in ``TaskData.notes["duplicate_ids"]``; anywhere else a repeated id is an error.
DUPLICATE_LABEL_IDS_TOLERATED: frozenset[str] = frozenset({"bind"})

_REGRESSION = {"selection_metric": "val_spearman", "test_metric": "test_spearman"}
_CLASSIFICATION = {"selection_metric": "val_loss", "test_metric": "test_accuracy"}


def _csv(
    dataset: str,
    name: str,
    stem: str,
    kind: TaskKind,
    paper_sizes: tuple[int, int, int] | None,
    description: str,
    window: tuple[int, int] | None = None,
) -> TaskSpec:
    """Task ``<dataset>_<name>``, read from FLIP's ``splits/<stem>.csv``."""
    return TaskSpec(
        task_id=f"{dataset}_{name}",
        dataset=dataset,
        split=stem,
        kind=kind,
        archive=DATASETS[dataset].archive,
        member=f"splits/{stem}.csv",
        format="csv",
        window=window,
        description=description,
        sizes=paper_sizes,
        sizes_source=PAPER_SIZES if paper_sizes else None,
        **(_REGRESSION if kind == "regression" else _CLASSIFICATION),
    )


def _per_residue(
    task_id: str,
    dataset: str,
    split: str,
    *,
    test_metric: str = "test_accuracy",
    mask: bool = False,
    flip_sizes: tuple[int, int, int] | None = None,
    description: str = "",
) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        dataset=dataset,
        split=split,
        kind="per_residue",
        archive=DATASETS[dataset].archive,
        member=f"splits/{split}.fasta",
        format="fasta",
        sequences_member="splits/sequences.fasta",
        mask_member="splits/mask.fasta" if mask else None,
        description=description,
        sizes=flip_sizes,
        sizes_source="FLIP's split files" if flip_sizes else None,
        selection_metric=_CLASSIFICATION["selection_metric"],
        test_metric=test_metric,
    )


_GB1_PAPER = {"sampled": (6289, 699, 1745), "low_vs_high": (4580, 509, 3644), "two_vs_rest": (381, 43, 8309)}
#: GB1's splits: what each trains and tests on
_GB1 = {
    "one_vs_rest": "train on wild type and single mutants, test on the rest",
    "two_vs_rest": "train on up to double mutants, test on the rest",
    "three_vs_rest": "train on up to triple mutants, test on the rest",
    "low_vs_high": "train below wild-type fitness, test above",
    "sampled": "random 80/20 split",
}

_AAV_PAPER = {"two_vs_many": (28626, 3181, 50776), "one_vs_many": (1053, 117, 81413)}
_AAV_SPLITS = ("des_mut", "mut_des", "one_vs_many", "two_vs_many", "seven_vs_many", "low_vs_high", "sampled")

# FLIP file stems for Meltome: the mixed split's file is ``mixed_split.csv``
_MELTOME = {"mixed": "mixed_split", "human": "human", "human_cell": "human_cell"}

_SCL_PAPER = {"balanced": (9503, 1678, 385)}
_SCL_SPLITS = ("balanced", "mixed_soft", "mixed_hard", "human_soft", "human_hard")

_BIND_SPLITS = ("one_vs_many", "two_vs_many", "from_publication", "one_vs_sm", "one_vs_mn", "one_vs_sn")


def _build() -> dict[str, TaskSpec]:
    gb1 = "GB1 fitness; {} (56-residue GB1 domain embedded)"
    tasks = [
        _csv("gb1", split, split, "regression", _GB1_PAPER.get(split), gb1.format(what), GB1_WINDOW)
        for split, what in _GB1.items()
    ]
    # (dataset, kind, task name -> FLIP split file stem, the papers' sizes by task name, what)
    families: list[tuple[str, TaskKind, dict[str, str], dict[str, tuple[int, int, int]], str]] = [
        ("aav", "regression", {s: s for s in _AAV_SPLITS}, _AAV_PAPER, "AAV capsid viability score"),
        ("meltome", "regression", _MELTOME, {"mixed": (22335, 2482, 3134)}, "Meltome melting temperature"),
        ("scl", "classification", {s: s for s in _SCL_SPLITS}, _SCL_PAPER, "subcellular localization (10 classes)"),
    ]
    tasks += [
        _csv(dataset, name, stem, kind, sizes.get(name), f"{what}, FLIP split {stem}")
        for dataset, kind, splits, sizes, what in families
        for name, stem in splits.items()
    ]
    tasks.append(
        _per_residue(
            "ss3",
            "secondary_structure",
            "sampled",
            mask=True,
            flip_sizes=(9712, 1080, 364),
            description=(
                "3-state secondary structure (H/E/C) per residue, FLIP's NetSurfP-2.0 sampled split; "
                "unresolved residues not scored"
            ),
        )
    )
    tasks += [
        TaskSpec(
            task_id=f"ss3_{test}",
            dataset=TAPE_SS_DATASET,
            split=test,
            kind="per_residue",
            archive=DATASETS[TAPE_SS_DATASET].archive,
            member=tape_ss_member(test),
            format="tape_json",
            description=(
                f"3-state secondary structure (H/E/C) per residue, TAPE's release: train and valid, "
                f"test {test.upper()} (as the ICML paper)"
            ),
            selection_metric=_CLASSIFICATION["selection_metric"],
            test_metric="test_accuracy",
        )
        for test in TAPE_SS_TESTS
    ]
    tasks += [
        _per_residue(
            "bind" if split == "one_vs_many" else f"bind_{split}",
            "bind",
            split,
            # ~89% of residues bind nothing: accuracy is the majority share for every model.
            # Macro-F1 is what the FLIP authors' biotrainer recommends for Bind.
            test_metric="test_f1_macro",
            description=f"binding residues (0-7, small/nuclear/metal bit pattern), FLIP split {split}",
        )
        for split in _BIND_SPLITS
    ]
    tasks.append(
        _per_residue("conservation", "conservation", "sampled", description="per-residue conservation class 1-9")
    )
    return {t.task_id: t for t in tasks}


CATALOG: dict[str, TaskSpec] = _build()

#: other spellings accepted by :func:`get_task` (they return the canonical spec)
ALIASES: dict[str, str] = {
    "bind_one_vs_many": "bind",
    "meltome_mixed_split": "meltome_mixed",
    "secondary_structure": "ss3",
    "ss3_sampled": "ss3",
    "conservation_sampled": "conservation",
}


class UnknownTaskError(PlmTransferError, KeyError):
    """A task id that is neither in the catalog nor an alias.

    A ``KeyError`` so that ``except KeyError`` callers keep working; ``__str__`` is overridden
    because ``KeyError`` would otherwise print the message as a quoted repr.
    """

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        known = ", ".join(sorted(CATALOG))
        families = ", ".join(sorted({spec.dataset for spec in CATALOG.values()}))
        self.message = f"unknown task id {task_id!r}; known task ids: {known}; or a family: {families}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def get_task(task_id: str) -> TaskSpec:
    """The catalog's spec for ``task_id`` (or one of its :data:`ALIASES`)."""
    key = task_id.strip()
    key = ALIASES.get(key, key)
    try:
        return CATALOG[key]
    except KeyError:
        raise UnknownTaskError(task_id) from None


def task_ids() -> list[str]:
    """All canonical task ids, sorted."""
    return sorted(CATALOG)


def expand_tasks(names: list[str]) -> list[str]:
    """Task ids and family names (a FLIP dataset, e.g. ``scl``: each of its tasks, as ``-k scl``
    selects them) -> canonical task ids, in order, each once. A name that is a task id or an
    alias is that task (``bind`` is a task); anything else is an :class:`UnknownTaskError`."""
    out: list[str] = []
    for name in names:
        key = ALIASES.get(name.strip(), name.strip())
        family = [tid for tid, spec in sorted(CATALOG.items()) if spec.dataset == key]
        out += [key] if key in CATALOG else family or [get_task(name).task_id]
    return list(dict.fromkeys(out))
