"""The catalog and the readers: every FLIP format, every kind of bad input, the real mirror."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from pytest_plmtransfer.infra.errors import InputError
from pytest_plmtransfer.tasks.catalog import CATALOG, GB1_WINDOW, UnknownTaskError, get_task
from pytest_plmtransfer.tasks.readers import ALLOWED_RESIDUES, load_task, parse_fasta
from pytest_plmtransfer.tasks.spec import TaskSpec

try:  # tests/ as a package or as a plain directory on sys.path (pytest's default)
    from . import flip_files as ff
except ImportError:
    import flip_files as ff  # type: ignore[no-redef]

# ------------------------------------------------------------------------------------ catalog

SPEC_TASKS = {
    "gb1_one_vs_rest": ("gb1", "regression"),
    "gb1_two_vs_rest": ("gb1", "regression"),
    "gb1_three_vs_rest": ("gb1", "regression"),
    "gb1_low_vs_high": ("gb1", "regression"),
    "gb1_sampled": ("gb1", "regression"),
    "aav_des_mut": ("aav", "regression"),
    "aav_mut_des": ("aav", "regression"),
    "aav_one_vs_many": ("aav", "regression"),
    "aav_two_vs_many": ("aav", "regression"),
    "aav_seven_vs_many": ("aav", "regression"),
    "aav_low_vs_high": ("aav", "regression"),
    "aav_sampled": ("aav", "regression"),
    "meltome_mixed": ("meltome", "regression"),
    "meltome_human": ("meltome", "regression"),
    "meltome_human_cell": ("meltome", "regression"),
    "scl_balanced": ("scl", "classification"),
    "scl_mixed_soft": ("scl", "classification"),
    "scl_mixed_hard": ("scl", "classification"),
    "scl_human_soft": ("scl", "classification"),
    "scl_human_hard": ("scl", "classification"),
    "ss3": ("secondary_structure", "per_residue"),
    "bind": ("bind", "per_residue"),
    "bind_two_vs_many": ("bind", "per_residue"),
    "bind_from_publication": ("bind", "per_residue"),
    "bind_one_vs_sm": ("bind", "per_residue"),
    "bind_one_vs_mn": ("bind", "per_residue"),
    "bind_one_vs_sn": ("bind", "per_residue"),
    "conservation": ("conservation", "per_residue"),
}


def test_catalog_has_every_spec_task_with_its_kind_and_metrics():
    assert set(SPEC_TASKS) <= set(CATALOG)
    for task_id, (dataset, kind) in SPEC_TASKS.items():
        spec = get_task(task_id)
        assert spec.task_id == task_id and spec.dataset == dataset and spec.kind == kind
        assert spec.archive == f"splits/{dataset}/splits.zip"
        if kind == "regression":
            assert (spec.selection_metric, spec.test_metric) == ("val_spearman", "test_spearman")
            assert spec.format == "csv"
        elif dataset == "bind":  # imbalanced (~89% non-binding): macro-F1, as FLIP's biotrainer
            assert (spec.selection_metric, spec.test_metric) == ("val_loss", "test_f1_macro")
        else:
            assert (spec.selection_metric, spec.test_metric) == ("val_loss", "test_accuracy")
        if kind == "per_residue":
            assert spec.format == "fasta" and spec.sequences_member == "splits/sequences.fasta"
        assert (spec.window == GB1_WINDOW) == (dataset == "gb1")


def test_catalog_member_names_are_flips():
    assert get_task("gb1_sampled").member == "splits/sampled.csv"
    assert get_task("aav_seven_vs_many").member == "splits/seven_vs_many.csv"
    assert get_task("meltome_mixed").member == "splits/mixed_split.csv"
    assert get_task("meltome_human_cell").member == "splits/human_cell.csv"
    assert get_task("scl_balanced").member == "splits/balanced.csv"
    assert get_task("ss3").member == "splits/sampled.fasta"
    assert get_task("ss3").mask_member == "splits/mask.fasta"
    assert get_task("bind").member == "splits/one_vs_many.fasta"
    assert get_task("bind_one_vs_sn").member == "splits/one_vs_sn.fasta"
    assert get_task("conservation").mask_member is None


def test_catalog_sizes_say_where_they_come_from():
    paper = {
        "gb1_sampled": (6289, 699, 1745),
        "gb1_low_vs_high": (4580, 509, 3644),
        "gb1_two_vs_rest": (381, 43, 8309),
        "aav_two_vs_many": (28626, 3181, 50776),
        "aav_one_vs_many": (1053, 117, 81413),
        "meltome_mixed": (22335, 2482, 3134),
        "scl_balanced": (9503, 1678, 385),
    }
    for task_id, sizes in paper.items():
        assert (get_task(task_id).sizes, get_task(task_id).sizes_source) == (sizes, "workshop paper, Table A2")
    # FLIP's secondary structure: the papers report no sizes for it; these are FLIP's own files'
    assert get_task("ss3").sizes == (9712, 1080, 364) and get_task("ss3").sizes_source == "FLIP's split files"
    assert all(t.sizes_source != "workshop paper, Table A2" for t in CATALOG.values() if t.task_id not in paper)


def test_unknown_task_lists_known_ids():
    with pytest.raises(UnknownTaskError) as info:
        get_task("gb1_sampeld")
    message = str(info.value)
    assert "gb1_sampeld" in message and "gb1_sampled" in message and "ss3" in message
    assert isinstance(info.value, KeyError)


def test_aliases():
    assert get_task("bind_one_vs_many") is get_task("bind")
    assert get_task("meltome_mixed_split") is get_task("meltome_mixed")


# ------------------------------------------------------------------------------------ formats

WRITERS = {
    "gb1": ff.write_gb1,
    "aav": ff.write_aav,
    "meltome": ff.write_meltome,
    "scl": ff.write_scl,
    "secondary_structure": ff.write_ss3,
    "bind": ff.write_bind,
    "conservation": ff.write_conservation,
}


@pytest.fixture(scope="module")
def flip_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flip")
    ff.write_all(root)
    return root


@pytest.mark.parametrize("task_id", sorted(SPEC_TASKS))
def test_every_task_loads_from_a_file_in_flips_format(flip_root, task_id):
    spec = get_task(task_id)
    path = flip_root / spec.archive
    data = load_task(spec, path)
    sizes = data.sizes()
    assert min(sizes.values()) > 0
    n = len(data.sequences)
    assert len(data.ids) == len(data.targets) == len(data.splits) == n == sum(sizes.values())
    assert len(set(data.ids)) == n
    assert data.source == str(path)
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert all(set(s) <= ALLOWED_RESIDUES for s in data.sequences)
    if spec.kind == "regression":
        assert all(isinstance(t, float) and np.isfinite(t) for t in data.targets)
    elif spec.kind == "classification":
        assert all(isinstance(t, str) and t for t in data.targets)
        assert set(data.targets) <= set(data.notes["classes"])
    else:
        assert all(len(t) == len(s) for t, s in zip(data.targets, data.sequences))
    if spec.mask_member:
        assert data.residue_masks is not None
        assert all(m.dtype == bool and len(m) == len(s) for m, s in zip(data.residue_masks, data.sequences))
    else:
        assert data.residue_masks is None
    if spec.dataset == "gb1":
        assert {len(s) for s in data.sequences} == {56}
    assert data.notes["member"] == spec.member


def test_csv_split_rules_follow_set_and_validation(tmp_path):
    frame = ff.gb1_frame("sampled", 80, 0)
    data = load_task(get_task("gb1_sampled"), ff.write_gb1(tmp_path, "sampled"))
    expected = np.where(
        frame["set"] == "test",
        "test",
        np.where(frame["validation"] == True, "val", "train"),  # noqa: E712
    )
    assert data.splits.tolist() == expected.tolist()
    assert data.targets == pytest.approx(frame["target"].tolist())
    assert data.sequences == [s[:56] for s in frame["sequence"]]
    assert data.ids[0] == "row2"  # file line numbers: the header is row 1


def test_rows_with_empty_set_are_dropped_and_counted(tmp_path):
    frame = ff.aav_frame("one_vs_many", 120, 0)
    data = load_task(get_task("aav_one_vs_many"), ff.write_aav(tmp_path, "one_vs_many"))
    n_empty = int(frame["set"].isna().sum())
    assert n_empty > 0
    assert data.notes["n_dropped_no_set"] == n_empty
    assert len(data.sequences) == len(frame) - n_empty
    assert data.notes["n_rows"] == len(frame)


def test_validation_column_accepts_true_false_and_empty(tmp_path):
    def edit(member, df):
        df["validation"] = ["True" if v is True else ("False" if i % 2 else "") for i, v in enumerate(df["validation"])]
        return df

    path = ff.write_meltome(tmp_path, "mixed_split", edit=edit)
    data = load_task(get_task("meltome_mixed"), path)
    expected = ff.meltome_frame("mixed_split")
    assert data.sizes()["val"] == int((expected["validation"] == True).sum())  # noqa: E712


def test_fasta_labels_with_target_headers(tmp_path):
    """GB1's archive also has FASTA twins (``>SequenceN TARGET= SET= VALIDATION=``): a spec
    pointing at one reads the same rows as the CSV."""
    path = ff.write_gb1(tmp_path, "sampled")
    csv_spec = get_task("gb1_sampled")
    fasta_spec = dataclasses.replace(
        csv_spec, task_id="gb1_sampled_fasta", member="splits/sampled.fasta", format="fasta"
    )
    a, b = load_task(csv_spec, path), load_task(fasta_spec, path)
    assert a.sequences == b.sequences
    assert a.targets == pytest.approx(b.targets)
    assert a.splits.tolist() == b.splits.tolist()
    assert b.ids[0] == "Sequence0"


def test_per_residue_labels_and_masks_match_by_id(tmp_path):
    path = ff.write_ss3(tmp_path)
    records = ff.ss3_records()
    data = load_task(get_task("ss3"), path)
    seqs = {r[0]: r[1] for r in records["sequences.fasta"]}
    masks = {r[0]: r[1] for r in records["mask.fasta"]}
    for rid, seq, label, mask in zip(data.ids, data.sequences, data.targets, data.residue_masks):
        assert seq == seqs[rid]
        assert mask.tolist() == [c == "1" for c in masks[rid]]
        assert len(label) == len(seq)
    assert data.notes["n_unscored_residues"] == sum(m.count("0") for m in masks.values())
    assert data.notes["classes"] == ["C", "E", "H"]


def test_bind_unseen_test_labels_are_recorded_not_refused(tmp_path):
    data = load_task(get_task("bind"), ff.write_bind(tmp_path, "one_vs_many"))
    assert data.notes["classes"] == ["0", "1", "2", "4"]
    assert set(data.notes["unseen_test_labels"]) <= set("3567")
    assert data.notes["n_unused_sequences"] == 5


def test_fasta_parser_handles_multiline_records_and_attributes():
    recs = parse_fasta(">a SET=train VALIDATION=True\nAC\nDE\n\n>b TARGET=Cell membrane SET=test\nK\n", "x.fasta")
    assert [(r.id, r.sequence, r.number, r.line) for r in recs] == [("a", "ACDE", 1, 1), ("b", "K", 2, 5)]
    assert recs[0].attributes == {"SET": "train", "VALIDATION": "True"}
    assert recs[1].attributes == {"TARGET": "Cell membrane", "SET": "test"}


# ------------------------------------------------------------------------------------ bad input


def _raises(spec: TaskSpec, path: Path, *fragments: str, **kwargs) -> str:
    """Load must fail with an InputError whose message holds every fragment."""
    with pytest.raises(InputError) as info:
        load_task(spec, path, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def _set_cell(row: int, column: str, value):
    """An ``edit`` hook that sets one cell (``row`` is the 0-based data row, file line row+2)."""

    def edit(member, df):
        df[column] = df[column].astype(object)
        df.iloc[row, df.columns.get_loc(column)] = value
        return df

    return edit


def test_unknown_residue_letters_name_file_row_and_letters(tmp_path):
    seq = ff.meltome_frame()["sequence"][4]
    path = ff.write_meltome(tmp_path, "mixed_split", edit=_set_cell(4, "sequence", seq[:10] + "J" + seq[11:-1] + "a"))
    message = _raises(
        get_task("meltome_mixed"),
        path,
        str(path),
        "splits/mixed_split.csv",
        "row 6",
        "unknown residue letters",
        "'J'",
        "'a'",
        "lowercase",
    )
    assert "XBZUO" not in message and "X B Z U O" in message


def test_unknown_residues_outside_gb1_window_are_not_embedded_so_not_refused(tmp_path):
    seq = ff.gb1_frame()["sequence"][3]
    path = ff.write_gb1(tmp_path, "sampled", edit=_set_cell(3, "sequence", seq[:100] + "*" + seq[101:]))
    load_task(get_task("gb1_sampled"), path)  # residue 100 is outside [0, 56)
    path = ff.write_gb1(tmp_path, "sampled", edit=_set_cell(3, "sequence", seq[:10] + "*" + seq[11:]))
    _raises(get_task("gb1_sampled"), path, "splits/sampled.csv", "row 5", "'*'")


def test_extra_residue_codes_are_accepted(tmp_path):
    seq = ff.meltome_frame()["sequence"][2]
    path = ff.write_meltome(tmp_path, "mixed_split", edit=_set_cell(2, "sequence", "XBZUO" + seq))
    data = load_task(get_task("meltome_mixed"), path)
    assert data.sequences[2].startswith("XBZUO")


def test_unknown_residue_in_sequences_fasta_names_that_file(tmp_path):
    def edit(member, records):
        if member.endswith("sequences.fasta"):
            records[2][1] = records[2][1][:5] + "1" + records[2][1][6:]
        return records

    path = ff.write_conservation(tmp_path, edit=edit)
    rid = ff.conservation_records()["sequences.fasta"][2][0]
    _raises(
        get_task("conservation"), path, f"{path}:splits/sequences.fasta", "row 3", rid, "unknown residue letters '1'"
    )


def test_empty_sequence(tmp_path):
    path = ff.write_scl(tmp_path, "balanced", edit=_set_cell(7, "sequence", ""))
    _raises(get_task("scl_balanced"), path, f"{path}:splits/balanced.csv", "row 9", "empty sequence")


def test_empty_sequence_in_fasta(tmp_path):
    def edit(member, records):
        if member.endswith("sequences.fasta"):
            records[1][1] = ""
        return records

    path = ff.write_bind(tmp_path, "one_vs_many", edit=edit)
    _raises(get_task("bind"), path, "splits/sequences.fasta", "row 2", "empty sequence")


def test_missing_column(tmp_path):
    path = ff.write_gb1(tmp_path, "sampled", edit=lambda m, df: df.drop(columns=["validation"]))
    _raises(get_task("gb1_sampled"), path, f"{path}:splits/sampled.csv", "row 1", "missing column 'validation'")


def test_split_without_validation_rows(tmp_path):
    def edit(member, df):
        df["validation"] = None
        return df

    path = ff.write_aav(tmp_path, "two_vs_many", edit=edit)
    _raises(get_task("aav_two_vs_many"), path, f"{path}:splits/two_vs_many.csv", "no validation rows")


def test_split_without_train_or_test_rows(tmp_path):
    def only_test(member, df):
        df["set"] = "test"
        return df

    path = ff.write_gb1(tmp_path, "sampled", edit=only_test)
    _raises(get_task("gb1_sampled"), path, "splits/sampled.csv", "no training rows")

    def no_test(member, df):
        df["set"] = "train"
        return df

    path = ff.write_gb1(tmp_path, "sampled", edit=no_test)
    _raises(get_task("gb1_sampled"), path, "splits/sampled.csv", "no test rows")


def test_fasta_split_without_validation_records(tmp_path):
    def edit(member, records):
        if member.endswith("sampled.fasta"):
            for r in records:
                r[0] = r[0].replace("VALIDATION=True", "VALIDATION=False")
        return records

    path = ff.write_ss3(tmp_path, edit=edit)
    _raises(get_task("ss3"), path, f"{path}:splits/sampled.fasta", "no validation rows")


def test_bad_set_and_validation_values(tmp_path):
    path = ff.write_gb1(tmp_path, "sampled", edit=_set_cell(10, "set", "valid"))
    _raises(get_task("gb1_sampled"), path, "splits/sampled.csv", "row 12", "'set' is 'valid'")
    path = ff.write_gb1(tmp_path, "sampled", edit=_set_cell(11, "validation", "maybe"))
    _raises(get_task("gb1_sampled"), path, "splits/sampled.csv", "row 13", "'validation' is 'maybe'")


def test_non_numeric_and_missing_regression_targets(tmp_path):
    path = ff.write_meltome(tmp_path, "human", edit=_set_cell(3, "target", "hot"))
    _raises(get_task("meltome_human"), path, f"{path}:splits/human.csv", "row 5", "non-numeric regression target 'hot'")
    path = ff.write_meltome(tmp_path, "human", edit=_set_cell(4, "target", None))
    _raises(get_task("meltome_human"), path, "splits/human.csv", "row 6", "missing regression target")


def test_non_numeric_target_in_fasta_header(tmp_path):
    path = ff.write_gb1(tmp_path, "sampled")
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    text = members["splits/sampled.fasta"].decode()
    members["splits/sampled.fasta"] = text.replace("Sequence2 TARGET=", "Sequence2 TARGET=x", 1)
    ff.write_zip(path, members)
    spec = dataclasses.replace(get_task("gb1_sampled"), member="splits/sampled.fasta", format="fasta")
    _raises(spec, path, "splits/sampled.fasta", "row 3", "Sequence2", "non-numeric regression target")


def test_class_label_unseen_in_training(tmp_path):
    frame = ff.scl_frame("mixed_soft")
    row = int(np.flatnonzero(frame["set"] == "test")[0])
    path = ff.write_scl(tmp_path, "mixed_soft", edit=_set_cell(row, "target", "Nucleolus"))
    _raises(
        get_task("scl_mixed_soft"),
        path,
        f"{path}:splits/mixed_soft.csv",
        f"row {row + 2}",
        "'Nucleolus'",
        "test split never occurs in the training split",
    )
    val_row = int(np.flatnonzero(frame["validation"] == True)[0])  # noqa: E712
    path = ff.write_scl(tmp_path, "mixed_soft", edit=_set_cell(val_row, "target", "Centrosome"))
    _raises(get_task("scl_mixed_soft"), path, f"row {val_row + 2}", "'Centrosome'", "val split")


def test_residue_label_unseen_in_training(tmp_path):
    records = ff.ss3_records()["sampled.fasta"]
    idx = next(i for i, r in enumerate(records) if "SET=test" in r[0])

    def edit(member, recs):
        if member.endswith("sampled.fasta"):
            label = recs[idx][1]
            recs[idx][1] = label[:10] + "G" + label[11:]  # position 10 is resolved in every mask
        return recs

    path = ff.write_ss3(tmp_path, edit=edit)
    rid = records[idx][0].split()[0]
    _raises(
        get_task("ss3"),
        path,
        f"{path}:splits/sampled.fasta",
        f"row {idx + 1}",
        rid,
        "'G'",
        "never occurs in the training split",
    )


def test_residue_label_at_unscored_position_is_not_checked(tmp_path):
    records = ff.ss3_records()
    idx = next(i for i, r in enumerate(records["sampled.fasta"]) if "SET=test" in r[0])

    def edit(member, recs):
        if member.endswith("sampled.fasta"):
            recs[idx][1] = recs[idx][1][:5] + "G" + recs[idx][1][6:]
        if member.endswith("mask.fasta"):
            recs[idx][1] = recs[idx][1][:5] + "0" + recs[idx][1][6:]
        return recs

    load_task(get_task("ss3"), ff.write_ss3(tmp_path, edit=edit))


def test_bind_validation_labels_must_be_seen_and_strict_mode_refuses_test_ones(tmp_path):
    path = ff.write_bind(tmp_path, "one_vs_many")
    _raises(get_task("bind"), path, "splits/one_vs_many.fasta", "never occur", allow_unseen_test_labels=False)
    records, _ = ff.bind_records("one_vs_many")
    idx = next(i for i, r in enumerate(records) if "VALIDATION=True" in r[0])

    def edit(member, recs):
        if member.endswith("one_vs_many.fasta"):
            recs[idx][1] = "7" + recs[idx][1][1:]
        return recs

    path = ff.write_bind(tmp_path, "one_vs_many", edit=edit)
    _raises(get_task("bind"), path, f"row {idx + 1}", "'7'", "val split")


def test_label_length_differs_from_sequence(tmp_path):
    def edit(member, records):
        if member.endswith("sampled.fasta"):
            records[4][1] = records[4][1][:-1]
        return records

    path = ff.write_conservation(tmp_path, edit=edit)
    rid = ff.conservation_records()["sampled.fasta"][4][0].split()[0]
    _raises(
        get_task("conservation"),
        path,
        f"{path}:splits/sampled.fasta",
        "row 5",
        rid,
        "label string has",
        "residues but the sequence",
    )


def test_duplicate_fasta_ids(tmp_path):
    def dup_labels(member, records):
        if member.endswith("sampled.fasta"):
            records.append(list(records[3]))
        return records

    path = ff.write_ss3(tmp_path, edit=dup_labels)
    rid = ff.ss3_records()["sampled.fasta"][3][0].split()[0]
    _raises(
        get_task("ss3"),
        path,
        f"{path}:splits/sampled.fasta",
        "row 41",
        f"duplicate FASTA id '{rid}'",
        "first at record 4",
    )

    def dup_sequences(member, records):
        if member.endswith("sequences.fasta"):
            records.insert(0, list(records[5]))
        return records

    path = ff.write_ss3(tmp_path, edit=dup_sequences)
    _raises(get_task("ss3"), path, "splits/sequences.fasta", "row 7", "duplicate FASTA id")


def test_missing_fasta_ids(tmp_path):
    def drop_sequence(member, records):
        if member.endswith("sequences.fasta"):
            del records[6]
        return records

    path = ff.write_ss3(tmp_path, edit=drop_sequence)
    rid = ff.ss3_records()["sampled.fasta"][6][0].split()[0]
    _raises(
        get_task("ss3"),
        path,
        f"{path}:splits/sampled.fasta",
        "row 7",
        f"id '{rid}' has no record in splits/sequences.fasta",
    )

    def drop_mask(member, records):
        if member.endswith("mask.fasta"):
            del records[8]
        return records

    path = ff.write_ss3(tmp_path, edit=drop_mask)
    _raises(get_task("ss3"), path, "splits/sampled.fasta", "row 9", "has no record in splits/mask.fasta")


def test_bad_masks(tmp_path):
    def short_mask(member, records):
        if member.endswith("mask.fasta"):
            records[2][1] = records[2][1][:-3]
        return records

    path = ff.write_ss3(tmp_path, edit=short_mask)
    _raises(get_task("ss3"), path, f"{path}:splits/mask.fasta", "row 3", "mask has")

    def bad_char(member, records):
        if member.endswith("mask.fasta"):
            records[2][1] = "2" + records[2][1][1:]
        return records

    path = ff.write_ss3(tmp_path, edit=bad_char)
    _raises(get_task("ss3"), path, "splits/mask.fasta", "row 3", "only hold 0 and 1", "'2'")


def test_fasta_header_without_set(tmp_path):
    def edit(member, records):
        if member.endswith("sampled.fasta"):
            records[0][0] = records[0][0].split()[0]
        return records

    path = ff.write_conservation(tmp_path, edit=edit)
    _raises(get_task("conservation"), path, "splits/sampled.fasta", "row 1", "no SET=")


def test_bind_repeated_ids_keep_the_first_record(tmp_path):
    path = ff.write_bind(tmp_path, "one_vs_many", repeat_ids=3, conflicting_ids=2)
    data = load_task(get_task("bind"), path)
    records, _ = ff.bind_records("one_vs_many", repeat_ids=3, conflicting_ids=2)
    assert len(set(data.ids)) == len(data.ids) == len(records) - 5
    info = data.notes["duplicate_ids"]
    assert (info["n_dropped_identical"], info["n_dropped_conflicting"]) == (3, 2)
    assert len(info["conflicting_ids"]) == 2
    assert all(data.splits[data.ids.index(rid)] != "test" for rid in info["conflicting_ids"])
    _raises(get_task("bind"), path, "duplicate FASTA id", tolerate_duplicate_ids=False)


def test_missing_member_and_not_a_zip(tmp_path):
    path = ff.write_gb1(tmp_path, "sampled")
    _raises(get_task("gb1_low_vs_high"), path, str(path), "no member 'splits/low_vs_high.csv'", "splits/sampled.csv")
    bad = tmp_path / "splits.zip"
    bad.write_bytes(b"<html>not found</html>")
    _raises(get_task("gb1_sampled"), bad, str(bad), "not a zip archive")


def test_window_longer_than_sequence(tmp_path):
    path = ff.write_gb1(tmp_path, "sampled", edit=_set_cell(5, "sequence", "ACDEFGHIK"))
    _raises(
        get_task("gb1_sampled"), path, "splits/sampled.csv", "row 7", "too short for the task's residue window [0, 56)"
    )


def test_window_applies_to_labels_and_masks(tmp_path):
    spec = dataclasses.replace(get_task("ss3"), window=(2, 20))
    full = load_task(get_task("ss3"), ff.write_ss3(tmp_path, lengths=(30, 60)))
    cut = load_task(spec, ff.write_ss3(tmp_path, lengths=(30, 60)))
    for a, b in zip(full.sequences, cut.sequences):
        assert b == a[2:20]
    for a, b in zip(full.targets, cut.targets):
        assert b == a[2:20]
    for a, b in zip(full.residue_masks, cut.residue_masks):
        assert b.tolist() == a[2:20].tolist()


# ------------------------------------------------------------------------------------ real FLIP


def _real_root() -> Path | None:
    # the project's read-only mirror beside the checkout, never the user's PLMTRANSFER_DATA
    candidate = Path(__file__).resolve().parents[2] / "shared" / "flip"
    return candidate if (candidate / "splits" / "gb1" / "splits.zip").is_file() else None


REAL = _real_root()
needs_real = pytest.mark.skipif(REAL is None, reason="FLIP mirror not present (../shared/flip)")


@needs_real
@pytest.mark.parametrize(
    "task_id, sizes",
    [("gb1_sampled", (6289, 699, 1745)), ("gb1_two_vs_rest", (381, 43, 8309)), ("gb1_low_vs_high", (4580, 509, 3644))],
)
def test_real_gb1_sizes_and_window(task_id, sizes):
    spec = get_task(task_id)
    data = load_task(spec, REAL / spec.archive)
    assert tuple(data.sizes().values()) == sizes == spec.sizes
    assert {len(s) for s in data.sequences} == {56}
    assert data.notes["n_dropped_no_set"] == 0


@needs_real
def test_real_ss3_sizes_and_alignment():
    spec = get_task("ss3")
    data = load_task(spec, REAL / spec.archive)
    assert tuple(data.sizes().values()) == (9712, 1080, 364) == spec.sizes
    assert data.notes["classes"] == ["C", "E", "H"]
    assert all(len(s) == len(t) == len(m) for s, t, m in zip(data.sequences, data.targets, data.residue_masks))


@needs_real
def test_real_bind_and_conservation_load():
    bind = load_task(get_task("bind"), REAL / get_task("bind").archive)
    # FLIP's one_vs_many repeats 46 ids; 13 of them also appear in test: first records are kept
    assert bind.notes["duplicate_ids"]["n_dropped_conflicting"] == 13
    assert tuple(bind.sizes().values()) == (966, 111, 237)
    assert set(bind.notes["unseen_test_labels"]) == {"3", "6", "7"}
    cons = load_task(get_task("conservation"), REAL / get_task("conservation").archive)
    assert tuple(cons.sizes().values()) == (9392, 555, 519)


# ------------------------------------------------------------------------------------ TAPE


def test_tape_tasks_share_train_and_valid_and_test_each_set(tmp_path):
    archive = ff.write_tape_ss(tmp_path)
    loaded = {t: load_task(get_task(f"ss3_{t}"), archive) for t in ("casp12", "cb513", "ts115")}
    for test_set, data in loaded.items():
        spec = data.spec
        assert (spec.kind, spec.format, spec.archive) == ("per_residue", "tape_json", "tape/secondary_structure.tar.gz")
        assert spec.member == f"secondary_structure/secondary_structure_{test_set}.json"
        assert data.sizes() == {"train": 12, "val": 12, "test": 12}
        assert data.notes["classes"] == ["C", "E", "H"] and data.residue_masks is None
    expected = {split: ff.tape_ss_records(12, seed=k) for k, split in enumerate(ff.TAPE_SS_SPLITS)}
    cb513 = loaded["cb513"]
    want = [*expected["train"], *expected["valid"], *expected["cb513"]]
    assert cb513.sequences == [r["primary"] for r in want]
    assert cb513.ids == [r["id"] for r in want]
    # TAPE's codes 0/1/2 are helix/strand/coil: the letters FLIP's ss3 uses
    assert cb513.targets == ["".join("HEC"[v] for v in r["ss3"]) for r in want]
    train = cb513.indices("train")
    for other in ("casp12", "ts115"):
        assert [loaded[other].sequences[i] for i in train] == [cb513.sequences[i] for i in train]
        assert loaded[other].sequences[-1] == expected[other][-1]["primary"]


def _tape_with(tmp_path, split: str, edit):
    records = ff.tape_ss_records(12, seed=ff.TAPE_SS_SPLITS.index(split))
    edit(records)
    return ff.write_tape_ss(tmp_path, records={split: records})


@pytest.mark.parametrize(
    "split, edit, problem",
    [
        ("valid", lambda r: r[1]["ss3"].pop(), "'ss3' has"),
        ("train", lambda r: r[1]["ss3"].__setitem__(0, 3), "3-state codes 0 (helix), 1 (strand), 2 (coil)"),
        ("cb513", lambda r: r[1].pop("primary"), "'primary' (the amino-acid sequence) is missing"),
        ("train", lambda r: r[1].__setitem__("protein_length", 5), "'protein_length' is 5"),
        ("cb513", lambda r: r[1]["ss3"].__setitem__(0, "H"), "3-state codes"),
    ],
)
@pytest.mark.slow
def test_tape_format_errors_name_file_and_record(tmp_path, split, edit, problem):
    archive = _tape_with(tmp_path, split, edit)
    rid = ff.tape_ss_records(12, seed=ff.TAPE_SS_SPLITS.index(split))[1]["id"]
    with pytest.raises(InputError) as info:
        load_task(get_task("ss3_cb513"), archive)
    message = str(info.value)
    assert message.startswith(f"{archive}:secondary_structure/secondary_structure_{split}.json: row 2: ")
    assert f"record 2 (id '{rid}')" in message and problem in message


def test_tape_residue_letters_are_checked_like_flips(tmp_path):
    archive = _tape_with(tmp_path, "ts115", lambda r: r[3].__setitem__("primary", "mk" + r[3]["primary"][2:]))
    with pytest.raises(InputError, match=r"secondary_structure_ts115\.json: row 4: record 4 .*lowercase"):
        load_task(get_task("ss3_ts115"), archive)


@pytest.mark.parametrize(
    "raw, problem",
    [
        ('[{"primary": "MK", "ss3": [0, 1]', "not readable as TAPE's JSON"),
        ('{"primary": "MK"}', "expected a JSON list of records, found dict"),
        ('["MK"]', "row 1: record 1: expected an object with primary and ss3, found str"),
    ],
)
@pytest.mark.slow
def test_tape_file_level_errors_name_the_file(tmp_path, raw, problem):
    archive = ff.write_tape_ss(tmp_path, raw={"valid": raw})
    with pytest.raises(InputError) as info:
        load_task(get_task("ss3_casp12"), archive)
    assert str(info.value).startswith(f"{archive}:secondary_structure/secondary_structure_valid.json: ")
    assert problem in str(info.value)


def test_tape_missing_member_and_not_a_tar(tmp_path):
    import io
    import tarfile

    path = tmp_path / "tape" / "secondary_structure.tar.gz"
    path.parent.mkdir()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("secondary_structure/secondary_structure_train.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"[]"))
    with pytest.raises(InputError, match="has no file 'secondary_structure/secondary_structure_valid.json'"):
        load_task(get_task("ss3_cb513"), path)
    path.write_bytes(b"not an archive")
    with pytest.raises(InputError, match="not a tar archive"):
        load_task(get_task("ss3_cb513"), path)
