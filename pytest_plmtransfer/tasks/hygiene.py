"""Data hygiene of a loaded task: duplicates and train/test overlap, counted, never silent.

Counted on the sequences a model actually sees (after the task's residue window and any length
cut), per split:

* ``duplicate_rows``: rows identical to an earlier row of the same split (sequence and target);
* ``conflicting_duplicates``: sequences that occur more than once in one split with different
  targets (the same input asked to predict two values);
* ``train_test_overlap``: test rows whose sequence also occurs in train or validation (leakage: the
  probe is scored on inputs it was fitted on); ``val_train_overlap`` likewise for validation rows
  (it biases the choice of head settings).

The counts go into every ledger record (``data.hygiene``). Leakage above ``max_fraction`` of the
test rows is reported (a warning; an error under ``--plm-strict``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.tasks.spec import TaskData


class DataLeakageWarning(UserWarning):
    """Test sequences also occur in training data (or other hygiene problems) above the threshold."""


class DataLeakageError(PlmTransferError):
    """``--plm-strict``: leakage above the threshold is an error."""


@dataclass(frozen=True)
class Hygiene:
    n_train: int
    n_val: int
    n_test: int
    duplicate_rows: int
    conflicting_duplicates: int
    train_test_overlap: int
    val_train_overlap: int
    #: (split, row ids) of each sequence with conflicting targets, for the warning (not recorded)
    conflicts: tuple[tuple[str, tuple[str, ...]], ...] = field(default=(), compare=False)

    @property
    def leakage_fraction(self) -> float:
        return self.train_test_overlap / self.n_test if self.n_test else 0.0

    def as_record(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "conflicts"}


def _target_key(target: object) -> object:
    if isinstance(target, float):
        return repr(target)
    if isinstance(target, np.ndarray):
        return target.tobytes()
    return target


def measure(data: TaskData) -> Hygiene:
    splits = data.splits.tolist()
    keys = [_target_key(t) for t in data.targets]
    duplicate_rows = len(keys) - len(set(zip(splits, data.sequences, keys)))
    # split -> sequence -> (its row ids, the distinct targets they carry), in the file's order
    by_seq: dict[str, dict[str, tuple[list[str], set]]] = defaultdict(dict)
    for row, seq, key, split in zip(data.ids, data.sequences, keys, splits):
        ids, targets = by_seq[split].setdefault(seq, ([], set()))
        ids.append(row)
        targets.add(key)
    conflicts = tuple(
        (split, tuple(ids))
        for split, per_seq in by_seq.items()
        for ids, targets in per_seq.values()
        if len(targets) > 1
    )
    train = set(by_seq["train"])
    seen = train | set(by_seq["val"])
    test_overlap = sum(1 for seq, split in zip(data.sequences, splits) if split == "test" and seq in seen)
    val_overlap = sum(1 for seq, split in zip(data.sequences, splits) if split == "val" and seq in train)
    sizes = data.sizes()
    return Hygiene(
        n_train=sizes["train"],
        n_val=sizes["val"],
        n_test=sizes["test"],
        duplicate_rows=duplicate_rows,
        conflicting_duplicates=len(conflicts),
        train_test_overlap=test_overlap,
        val_train_overlap=val_overlap,
        conflicts=conflicts,
    )


def conflict_message(data: TaskData, hygiene: Hygiene, shown: int = 3) -> str | None:
    """A one-line warning naming the rows of sequences that one split gives different targets
    (the probe is fitted, or scored, on contradictory labels), else None."""
    if not hygiene.conflicts:
        return None
    examples = "; ".join(f"{split} rows {', '.join(rows)}" for split, rows in hygiene.conflicts[:shown])
    more = f"; and {len(hygiene.conflicts) - shown} more" if len(hygiene.conflicts) > shown else ""
    return (
        f"{data.spec.task_id} ({data.source}, {data.spec.member}): {len(hygiene.conflicts)} sequence(s) occur "
        f"more than once in one split with different targets: {examples}{more}"
    )


def leakage_message(task_id: str, source: str, hygiene: Hygiene, max_fraction: float) -> str | None:
    """A one-line report when leakage exceeds ``max_fraction`` of the test rows, else None."""
    if hygiene.train_test_overlap == 0 or hygiene.leakage_fraction <= max_fraction:
        return None
    return (
        f"{task_id} ({source}): {hygiene.train_test_overlap} of {hygiene.n_test} test rows "
        f"({hygiene.leakage_fraction:.1%}) have a sequence that is also in train/val (tolerated: "
        f"{max_fraction:.1%}, --plm-leakage-max); also {hygiene.duplicate_rows} duplicate row(s), "
        f"{hygiene.conflicting_duplicates} sequence(s) with conflicting targets within a split"
    )
