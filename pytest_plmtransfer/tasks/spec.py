"""Typed records for tasks: what a task is (``TaskSpec``) and what loading it gives (``TaskData``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

TaskKind = Literal["regression", "classification", "per_residue"]
SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class TaskSpec:
    """One task (FLIP's, or TAPE's secondary structure), as a catalog record.

    ``archive`` is relative to the data directory (FLIP's repository root: ``splits/gb1/splits.zip``);
    ``member`` is the file inside the archive that holds the split (``splits/sampled.csv``; for
    TAPE, the test set's JSON file, train and valid being shared).
    """

    task_id: str
    dataset: str
    split: str
    kind: TaskKind
    archive: str
    member: str
    format: Literal["csv", "fasta", "tape_json"]
    #: FASTA label files: the member holding the amino-acid sequences, matched by record id
    sequences_member: str | None = None
    #: per-residue tasks: a member with a 0/1 string per sequence; 0 residues are not scored
    mask_member: str | None = None
    #: residues [start, stop) kept before embedding (GB1: the 56-residue domain, as the papers did)
    window: tuple[int, int] | None = None
    #: the validation metric that chooses head settings (ridge alpha)
    selection_metric: str = "val_spearman"
    #: the headline test metric used by reports and claims
    test_metric: str = "test_spearman"
    description: str = ""
    #: the (train, val, test) sizes known for the task, for reference and cost estimates, and
    #: where they come from (the workshop paper's Table A2, or the published files themselves)
    sizes: tuple[int, int, int] | None = None
    sizes_source: str | None = None

    @property
    def per_residue(self) -> bool:
        return self.kind == "per_residue"


@dataclass
class TaskData:
    """A task loaded from its files, before any model-specific truncation.

    ``sequences`` are after the task's residue window. ``targets`` holds floats for regression,
    class-name strings for classification, and per-residue label strings (same length as the
    sequence) for per-residue tasks. ``residue_masks`` (per-residue tasks with a mask file) holds
    a bool array per sequence: False residues are embedded but never scored.
    """

    spec: TaskSpec
    ids: list[str]
    sequences: list[str]
    targets: list
    splits: np.ndarray  # of "train" / "val" / "test", one per sequence
    source: str  # path of the archive the rows came from
    sha256: str  # checksum of that archive
    residue_masks: list[np.ndarray] | None = None
    notes: dict = field(default_factory=dict)

    def indices(self, split: SplitName) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def sizes(self) -> dict[str, int]:
        return {s: int((self.splits == s).sum()) for s in SPLITS}
