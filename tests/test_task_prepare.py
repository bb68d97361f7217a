"""Per-model truncation: first/last halves, labels and masks cut at the same positions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pytest_plmtransfer.tasks.catalog import get_task
from pytest_plmtransfer.tasks.prepare import prepare_for_model, truncate_middle, truncation_halves, truncation_rule
from pytest_plmtransfer.tasks.readers import load_task

try:  # tests/ as a package or as a plain directory on sys.path (pytest's default)
    from . import flip_files as ff
except ImportError:
    import flip_files as ff  # type: ignore[no-redef]


def test_truncate_middle_keeps_first_and_last_halves():
    seq = "".join(ff.AMINO_ACIDS[i % 20] for i in range(1500))
    cut = truncate_middle(seq, 1022)
    assert len(cut) == 1022
    assert cut == seq[:511] + seq[-511:]
    assert truncation_rule(1022) == "first 511 + last 511 residues"


def test_sequences_that_fit_are_untouched():
    assert truncate_middle("ACDE", 4) == "ACDE"
    assert truncate_middle("ACDE", 10) == "ACDE"
    assert truncate_middle("ACDEF", 4) == "ACEF"


def test_odd_limits_and_arrays():
    assert truncation_halves(7) == (4, 3)
    assert truncate_middle("ABCDEFGHIJ", 7) == "ABCDHIJ"
    assert truncate_middle("ABCDEFGHIJ", 1) == "A"
    arr = np.arange(10)
    assert truncate_middle(arr, 4).tolist() == [0, 1, 8, 9]
    assert truncate_middle([1, 2, 3, 4, 5], 2) == [1, 5]
    for length in (1, 5, 9, 10, 30):
        for limit in (1, 2, 3, 9, 10):
            head, tail = truncation_halves(limit)
            kept = range(length) if length <= limit else [*range(head), *range(length - tail, length)]
            assert truncate_middle(list(range(length)), limit) == list(kept)
    with pytest.raises(ValueError):
        truncate_middle("ACDE", 0)


# A per-residue labelling that is a pure function of the residue: after any cut, every label
# must still be the function of the residue it sits on, which proves alignment.
_CLASS = {a: "HEC"[i % 3] for i, a in enumerate(ff.AMINO_ACIDS)}


@pytest.fixture
def long_ss3(tmp_path):
    records = ff.ss3_records(n=12, seed=3, lengths=(20, 60))
    seqs = {r[0]: r[1] for r in records["sequences.fasta"]}

    def edit(member, recs):
        for r in recs:
            rid = r[0].split()[0]
            if member.endswith("sampled.fasta"):
                r[1] = "".join(_CLASS[a] for a in seqs[rid])
            elif member.endswith("mask.fasta"):
                r[1] = "".join("0" if a in "GP" else "1" for a in seqs[rid])
        return recs

    return load_task(get_task("ss3"), ff.write_ss3(tmp_path, n=12, seed=3, lengths=(20, 60), edit=edit))


def test_per_residue_labels_and_masks_stay_aligned(long_ss3):
    data = long_ss3
    limit = 30
    out = prepare_for_model(data, limit)
    n_long = sum(len(s) > limit for s in data.sequences)
    assert n_long > 0
    for before, seq, label, mask in zip(data.sequences, out.sequences, out.targets, out.residue_masks):
        assert len(seq) == len(label) == len(mask) == min(len(before), limit)
        assert seq == truncate_middle(before, limit)
        assert label == "".join(_CLASS[a] for a in seq)
        assert mask.tolist() == [a not in "GP" for a in seq]
    assert out.notes["truncation"] == {
        "rule": "first 15 + last 15 residues",
        "max_residues": 30,
        "n_truncated": n_long,
        "n_residues_removed": sum(len(s) - limit for s in data.sequences if len(s) > limit),
    }
    assert out.splits.tolist() == data.splits.tolist() and out.ids == data.ids


def test_prepare_does_not_modify_its_input(long_ss3):
    data = long_ss3
    before = (list(data.sequences), list(data.targets), [m.copy() for m in data.residue_masks], dict(data.notes))
    out = prepare_for_model(data, 25)
    out.residue_masks[0][:] = False
    out.notes["x"] = 1
    assert data.sequences == before[0] and data.targets == before[1]
    assert all(np.array_equal(a, b) for a, b in zip(data.residue_masks, before[2]))
    assert data.notes == before[3] and "truncation" not in data.notes


def test_no_limit_copies_and_records_no_truncation(long_ss3):
    out = prepare_for_model(long_ss3, None)
    assert out.sequences == long_ss3.sequences and out.targets == long_ss3.targets
    assert out.notes["truncation"] == {"rule": "none", "max_residues": None, "n_truncated": 0, "n_residues_removed": 0}


def test_per_sequence_targets_are_untouched(tmp_path):
    data = load_task(get_task("meltome_mixed"), ff.write_meltome(tmp_path, "mixed_split", lengths=(30, 200)))
    out = prepare_for_model(data, 100)
    assert out.targets == data.targets
    assert max(map(len, out.sequences)) == 100
    assert out.notes["truncation"]["n_truncated"] == sum(len(s) > 100 for s in data.sequences) > 0


def test_esm1b_limit_on_long_sequences_keeps_the_last_residue(tmp_path):
    data = load_task(get_task("meltome_mixed"), ff.write_meltome(tmp_path, "mixed_split", n=12, lengths=(900, 1400)))
    out = prepare_for_model(data, 1022)
    for before, after in zip(data.sequences, out.sequences):
        assert after[-1] == before[-1] and after[0] == before[0]
        assert len(after) == min(len(before), 1022)
    assert out.notes["truncation"]["rule"] == "first 511 + last 511 residues"


def test_window_then_truncation(tmp_path):
    data = load_task(get_task("gb1_sampled"), ff.write_gb1(tmp_path, "sampled", n=20))
    out = prepare_for_model(data, 40)
    frame = ff.gb1_frame("sampled", 20)
    for full, seq in zip(frame["sequence"], out.sequences):
        assert seq == full[:20] + full[36:56]


def test_prepare_rejects_a_nonsense_limit(long_ss3):
    with pytest.raises(ValueError):
        prepare_for_model(long_ss3, 0)


def test_prepare_works_on_a_hand_built_taskdata():
    spec = dataclasses.replace(get_task("conservation"), task_id="tiny")
    from pytest_plmtransfer.tasks.spec import TaskData

    data = TaskData(
        spec=spec,
        ids=["a", "b"],
        sequences=["ACDEFGHIK", "AC"],
        targets=["123456789", "12"],
        splits=np.array(["train", "test"]),
        source="x",
        sha256="0",
    )
    out = prepare_for_model(data, 4)
    assert out.sequences == ["ACIK", "AC"] and out.targets == ["1289", "12"]
    assert out.residue_masks is None
