"""Fit a loaded task to one model's length limit, keeping per-residue labels aligned.

A model that cannot embed more than ``max_residues`` residues (ESM-1b: 1022) gets every longer
sequence cut to its first and last halves (511 + 511), the rule the FLIP / ESM-1b literature uses.
Per-residue labels and masks are cut at exactly the same positions, so residue *i* of the prepared
sequence still carries its own label. Nothing else is removed here: the last residue of a sequence
is kept (the authors' code dropped it for every non-GB1 sequence; ``--plm-protocol authors`` does
that before this, in :meth:`pytest_plmtransfer.measure.protocol.Protocol.prepare`).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from pytest_plmtransfer.tasks.spec import TaskData


def truncation_halves(max_residues: int) -> tuple[int, int]:
    """How many leading and trailing residues a cut keeps: ``(head, tail)``, ``head + tail ==
    max_residues``. For even limits this is ``max//2 + max//2`` (511 + 511 for 1022); an odd limit
    gives the extra residue to the head so that the cut is exactly ``max_residues`` long."""
    if max_residues < 1:
        raise ValueError(f"max_residues must be at least 1, got {max_residues}")
    tail = max_residues // 2
    return max_residues - tail, tail


def truncation_rule(max_residues: int | None) -> str:
    """The rule as recorded with every result, e.g. ``"first 511 + last 511 residues"``."""
    if max_residues is None:
        return "none"
    head, tail = truncation_halves(max_residues)
    return f"first {head} + last {tail} residues"


def truncate_middle(seq, max_residues: int):
    """Cut ``seq`` (a string, list or array) to its first and last halves if it is longer than
    ``max_residues``; otherwise return it unchanged. Works on labels and masks alike, so that
    applying it to a sequence and its labels keeps them aligned."""
    if len(seq) <= max_residues:
        return seq
    head, tail = truncation_halves(max_residues)
    if isinstance(seq, np.ndarray):
        return np.concatenate([seq[:head], seq[len(seq) - tail :]])
    # ``seq[-0:]`` would be the whole sequence, hence ``len(seq) - tail`` rather than ``-tail``
    return seq[:head] + seq[len(seq) - tail :]


def prepare_for_model(data: TaskData, max_residues: int | None) -> TaskData:
    """A copy of ``data`` fitted to a model that embeds at most ``max_residues`` residues (None: no
    limit): sequences, per-residue labels and residue masks cut identically by :func:`truncate_middle`,
    per-sequence targets untouched, the cut recorded in ``notes["truncation"]``. The input is not modified.
    """
    long: set[int] = set()
    removed = 0
    if max_residues is not None:
        truncation_halves(max_residues)  # validates the limit before any work
        long = {i for i, s in enumerate(data.sequences) if len(s) > max_residues}
        removed = sum(len(data.sequences[i]) - max_residues for i in long)

    def cut(values: list) -> list:
        return [truncate_middle(v, max_residues) if i in long and max_residues else v for i, v in enumerate(values)]

    notes = copy.deepcopy(data.notes)
    notes["truncation"] = {
        "rule": truncation_rule(max_residues),
        "max_residues": None if max_residues is None else int(max_residues),
        "n_truncated": len(long),
        "n_residues_removed": int(removed),
    }
    return dataclasses.replace(
        data,
        ids=list(data.ids),
        sequences=cut(data.sequences),
        targets=cut(data.targets) if data.spec.per_residue else list(data.targets),
        splits=data.splits.copy(),
        residue_masks=None if data.residue_masks is None else [m.copy() for m in cut(data.residue_masks)],
        notes=notes,
    )


def limit_per_split(data: TaskData, n: int) -> TaskData:
    """A copy of ``data`` with at most ``n`` sequences of each split (``--plm-limit``): a fixed
    random choice (seed 0) within each split, in the file's order, so every run of the same
    limit sees the same sequences. ``notes["limit"]`` records it."""
    rng = np.random.default_rng(0)
    keep: list[int] = []
    for split in ("train", "val", "test"):
        idx = data.indices(split)
        keep += sorted(rng.permutation(idx)[:n].tolist()) if len(idx) > n else idx.tolist()
    keep.sort()
    notes = {**copy.deepcopy(data.notes), "limit": {"per_split": int(n), "of": data.sizes()}}
    return dataclasses.replace(
        data,
        ids=[data.ids[i] for i in keep],
        sequences=[data.sequences[i] for i in keep],
        targets=[data.targets[i] for i in keep],
        splits=data.splits[keep],
        residue_masks=None if data.residue_masks is None else [data.residue_masks[i] for i in keep],
        notes=notes,
    )
