"""probe(): metric names, train-only standardization, label checks, per-residue masks, memmaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from pytest_plmtransfer.measure import metrics as M
from pytest_plmtransfer.measure.probe import ProbeInput, ProbeSettings, probe, standardization_stats

REGRESSION_METRICS = {
    "train_mse", "val_mse", "test_mse", "val_spearman", "test_spearman",
    "val_ndcg", "test_ndcg", "test_pearson",
}  # fmt: skip
CLASSIFICATION_METRICS = {
    "train_loss", "val_loss", "test_loss", "train_accuracy", "val_accuracy",
    "test_accuracy", "val_auc", "test_auc",
}  # fmt: skip
FAST = ProbeSettings(lr=0.05, batch_size=64, max_epochs=15, patience=3)


def _splits(n_train: int, n_val: int, n_test: int) -> np.ndarray:
    return np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)


def _regression(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(200, 12)) * rng.uniform(0.1, 10, size=12) + 3.0).astype(np.float32)
    X[:, 5] = 7.0  # constant column
    y = X @ rng.normal(size=12) + rng.normal(size=200)
    return X, y, _splits(120, 40, 40)


def _per_residue(seed: int = 0, n: int = 60) -> tuple:
    """Residues labelled H/E/C by a linear rule on their features, ragged lengths, masks."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 25, size=n)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    X = rng.normal(size=(int(offsets[-1]), 6)).astype(np.float32)
    labels = np.array(list("CEH"))[X[:, :3].argmax(axis=1)]
    targets = ["".join(labels[offsets[i] : offsets[i + 1]]) for i in range(n)]
    masks = [rng.random(int(k)) > 0.2 for k in lengths]
    return X, offsets, targets, masks, _splits(n - 20, 10, 10)


# -- standardization ---------------------------------------------------------------------------


def test_streaming_stats_match_numpy_and_zero_variance_is_zero_scale() -> None:
    X, _, _ = _regression()
    rows = np.arange(0, 150, 2)
    mean, std, scale = standardization_stats(X, rows, chunk_rows=7)  # many uneven chunks
    ref = X[rows].astype(np.float64)
    np.testing.assert_allclose(mean, ref.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std(axis=0), rtol=1e-9, atol=1e-12)
    assert scale[5] == 0.0 and std[5] == 0.0
    assert np.all(np.isfinite(scale))


# -- regression --------------------------------------------------------------------------------


def test_regression_metrics_match_sklearn_with_train_only_standardization() -> None:
    X, y, splits = _regression()
    result = probe(ProbeInput("regression", X, None, list(y), splits, None, "val_spearman"))
    assert set(result.metrics) == REGRESSION_METRICS
    assert result.head["head"] == "ridge" and result.head["alpha"] in result.head["alphas"]
    assert result.fit_seconds > 0

    tr, va, te = (splits == s for s in ("train", "val", "test"))
    Xd = X.astype(np.float64)
    mu, sd = Xd[tr].mean(axis=0), Xd[tr].std(axis=0)
    Z = np.where(sd > 0, (Xd - mu) / np.where(sd > 0, sd, 1), 0.0)
    ref = Ridge(alpha=result.head["alpha"]).fit(Z[tr], y[tr])
    m = result.metrics
    assert m["train_mse"] == pytest.approx(M.mse(y[tr], ref.predict(Z[tr])), rel=1e-6)
    assert m["test_mse"] == pytest.approx(M.mse(y[te], ref.predict(Z[te])), rel=1e-6)
    assert m["test_spearman"] == pytest.approx(M.spearman(y[te], ref.predict(Z[te])), rel=1e-9)
    assert m["val_ndcg"] == pytest.approx(M.ndcg(y[va], ref.predict(Z[va])), rel=1e-9)
    assert m["test_pearson"] > 0.9


def test_test_rows_do_not_leak_into_standardization_or_fit() -> None:
    X, y, splits = _regression()
    base = probe(ProbeInput("regression", X, None, list(y), splits, None, "val_spearman"))
    X2 = X.copy()
    X2[splits == "test"] = X2[splits == "test"] * 100.0 + 50.0  # wildly different test features
    moved = probe(ProbeInput("regression", X2, None, list(y), splits, None, "val_spearman"))
    assert moved.head["alpha"] == base.head["alpha"]
    for k in ("train_mse", "val_mse", "val_spearman", "val_ndcg"):
        assert moved.metrics[k] == base.metrics[k]
    assert moved.metrics["test_mse"] != base.metrics["test_mse"]


def test_regression_selection_metric_is_used() -> None:
    X, y, splits = _regression(1)
    by = {
        m: probe(ProbeInput("regression", X, None, list(y), splits, None, m)).head for m in ("val_spearman", "val_ndcg")
    }
    for metric, head in by.items():
        assert head["selection_metric"] == metric
        pairs = zip(head["selection_scores"], head["alphas"], strict=True)
        scored = [(s, a) for s, a in pairs if s is not None]
        assert head["alpha"] == max(scored)[1]  # best score, ties to the larger alpha
    with pytest.raises(ValueError, match="cannot choose a ridge alpha"):
        probe(ProbeInput("regression", X, None, list(y), splits, None, "val_accuracy"))


def test_missing_validation_split_is_an_error() -> None:
    X, y, _ = _regression()
    with pytest.raises(ValueError, match="val split has no"):
        probe(ProbeInput("regression", X, None, list(y), _splits(150, 0, 50), None, "val_spearman"))


# -- classification ----------------------------------------------------------------------------


def _classification(seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    names = np.array(["nucleus", "cytoplasm", "membrane"])
    return X, list(names[(X[:, :3] * [1, 2, 3]).argmax(axis=1)]), _splits(240, 80, 80)


def test_classification_metrics_and_determinism() -> None:
    X, y, splits = _classification()
    inp = ProbeInput("classification", X, None, y, splits, None, "val_loss")
    a = probe(inp, seed=3, settings=FAST)
    b = probe(inp, seed=3, settings=FAST)
    assert set(a.metrics) == CLASSIFICATION_METRICS
    assert a.metrics == b.metrics and a.head == b.head
    assert a.head["classes"] == ["cytoplasm", "membrane", "nucleus"]  # sorted training labels
    assert a.head["head"] == "softmax" and 0 <= a.head["best_epoch"] <= a.head["epochs"]
    assert a.metrics["test_accuracy"] > 0.85 and a.metrics["test_auc"] > 0.95


def test_label_unseen_in_training_is_named() -> None:
    X, y, splits = _classification()
    y[300] = "peroxisome"  # a val row
    with pytest.raises(ValueError, match=r"peroxisome.*val split"):
        probe(ProbeInput("classification", X, None, y, splits, None, "val_loss"), settings=FAST)


# -- per-residue -------------------------------------------------------------------------------


def test_per_residue_metric_names_and_q3() -> None:
    X, offsets, targets, masks, splits = _per_residue()
    r = probe(ProbeInput("per_residue", X, offsets, targets, splits, masks, "val_loss"), settings=FAST)
    per_class = {f"test_{m}_{c}" for m in ("f1", "precision", "recall") for c in "CEH"}
    assert set(r.metrics) == CLASSIFICATION_METRICS | {"test_q3", "test_f1_macro", "test_mcc"} | per_class
    assert r.metrics["test_q3"] == r.metrics["test_accuracy"] > 0.8
    assert r.head["classes"] == ["C", "E", "H"]

    # No Q3 for another alphabet.
    other = [t.replace("C", "L") for t in targets]
    r2 = probe(ProbeInput("per_residue", X, offsets, other, splits, masks, "val_loss"), settings=FAST)
    assert "test_q3" not in r2.metrics and "test_f1_L" in r2.metrics


def test_masked_residues_are_neither_trained_on_nor_scored() -> None:
    X, offsets, targets, masks, splits = _per_residue(1)
    # Poison the unscored residues: an unseen label and absurd features.
    Xp = X.copy()
    poisoned = []
    for i, m in enumerate(masks):
        seg = slice(int(offsets[i]), int(offsets[i + 1]))
        Xp[seg][~m] = 1e6
        poisoned.append("".join(c if keep else "X" for c, keep in zip(targets[i], m, strict=True)))
    with_mask = probe(ProbeInput("per_residue", Xp, offsets, poisoned, splits, masks, "val_loss"), settings=FAST)
    # The same data with the unscored residues physically removed.
    keep = np.concatenate(masks)
    lengths = np.array([int(m.sum()) for m in masks])
    kept_labels = ["".join(c for c, k in zip(t, m, strict=True) if k) for t, m in zip(targets, masks, strict=True)]
    stripped = probe(
        ProbeInput("per_residue", X[keep], np.r_[0, np.cumsum(lengths)], kept_labels, splits, None, "val_loss"),
        settings=FAST,
    )
    assert with_mask.metrics == stripped.metrics
    assert with_mask.head == stripped.head


def test_per_residue_memmap_matches_in_memory(tmp_path) -> None:
    X, offsets, targets, masks, splits = _per_residue(2)
    path = tmp_path / "residues.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    settings = ProbeSettings(lr=0.05, batch_size=64, max_epochs=6, patience=3, chunk_bytes=2048)
    a = probe(ProbeInput("per_residue", ro, offsets, targets, splits, masks, "val_loss"), settings=settings)
    b = probe(ProbeInput("per_residue", X, offsets, targets, splits, masks, "val_loss"), settings=settings)
    assert a.metrics == b.metrics
    assert a.metrics["test_accuracy"] > 0.7


def test_per_residue_input_errors() -> None:
    X, offsets, targets, masks, splits = _per_residue(3)
    bad = list(targets)
    bad[0] = bad[0][:-1]
    with pytest.raises(ValueError, match=r"sequence 0 has .* labels"):
        probe(ProbeInput("per_residue", X, offsets, bad, splits, masks, "val_loss"))
    unseen = list(targets)
    i = int(np.flatnonzero(splits == "test")[0])
    j = int(np.flatnonzero(masks[i])[0])
    unseen[i] = unseen[i][:j] + "T" + unseen[i][j + 1 :]
    with pytest.raises(ValueError, match=rf"'T' in the test split \(sequence {i}, residue {j}\)"):
        probe(ProbeInput("per_residue", X, offsets, unseen, splits, masks, "val_loss"))
    with pytest.raises(ValueError, match="offsets"):
        probe(ProbeInput("per_residue", X, None, targets, splits, masks, "val_loss"))


def test_empty_test_split_gives_nan_test_metrics() -> None:
    X, y, _ = _regression()
    r = probe(ProbeInput("regression", X, None, list(y), _splits(150, 50, 0), None, "val_ndcg"))
    assert math.isnan(r.metrics["test_mse"]) and math.isnan(r.metrics["test_spearman"])
    assert not math.isnan(r.metrics["val_ndcg"])


def test_unseen_test_labels_count_as_errors_when_allowed():
    """FLIP Bind tests on label combinations absent from training: kept, scored as errors."""
    rng = np.random.default_rng(0)
    lengths = [20] * 12
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    X = rng.normal(size=(offsets[-1], 4)).astype(np.float32)
    targets = ["".join(rng.choice(list("01"), size=20)) for _ in lengths]
    targets[-1] = "7" * 5 + targets[-1][5:]  # five test residues with a label never trained on
    X[:, 0] += np.array([int(c) for t in targets for c in t.replace("7", "1")]) * 3
    splits = np.array(["train"] * 8 + ["val"] * 2 + ["test"] * 2)
    inp = ProbeInput(kind="per_residue", X=X, offsets=offsets, targets=targets, splits=splits)
    with pytest.raises(ValueError, match="'7' in the test split"):
        probe(inp)
    inp.unseen_test_labels = True
    out = probe(inp).metrics
    assert out["test_unseen_fraction"] == pytest.approx(5 / 40)
    assert out["test_accuracy"] <= 1 - 5 / 40 + 1e-9
    assert np.isfinite(out["test_loss"])


def test_probe_returns_test_predictions_for_intervals() -> None:
    from pytest_plmtransfer.measure.stats import interval

    X, offsets, targets, masks, splits = _per_residue(3)
    out = probe(ProbeInput("per_residue", X, offsets, targets, splits, masks, "val_loss"), settings=FAST)
    preds = out.predictions
    test_proteins = [i for i, s in enumerate(splits) if s == "test" and np.asarray(masks[i]).any()]
    # one resampling unit per test protein with scored residues, each holding its scored residues
    assert preds.kind == "per_residue" and preds.n_units == len(test_proteins)
    assert list(np.diff(preds.units)) == [int(np.asarray(masks[i]).sum()) for i in test_proteins]
    iv = interval(preds, "test_accuracy", n_resamples=200)
    assert iv.unit == "protein" and iv.estimate == pytest.approx(out.metrics["test_accuracy"])

    Xr, yr, sr = _regression()
    out = probe(ProbeInput("regression", Xr, None, list(yr), sr), settings=FAST)
    assert out.predictions.n_units == int((np.asarray(sr) == "test").sum())
    assert interval(out.predictions, "test_spearman", n_resamples=200).estimate == pytest.approx(
        out.metrics["test_spearman"], abs=1e-12
    )
