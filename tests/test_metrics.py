"""Metrics: agreement with scipy/sklearn where they are defined, nan where they are not."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import log_loss, ndcg_score, precision_recall_fscore_support, roc_auc_score

from pytest_plmtransfer.measure import metrics as M


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- regression --------------------------------------------------------------------------------


def test_mse() -> None:
    assert M.mse([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / 3)
    assert math.isnan(M.mse([], []))


def test_correlations_match_scipy_including_ties(rng: np.random.Generator) -> None:
    y = rng.integers(0, 5, size=50).astype(float)  # many ties
    p = y + rng.normal(size=50)
    assert M.spearman(y, p) == pytest.approx(spearmanr(y, p).statistic, abs=1e-12)
    assert M.pearson(y, p) == pytest.approx(pearsonr(y, p).statistic, abs=1e-12)
    assert M.spearman(y, -p) == pytest.approx(-M.spearman(y, p))


def test_degenerate_inputs_give_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(M.spearman([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))  # constant predictions
        assert math.isnan(M.pearson([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
        assert math.isnan(M.spearman([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))  # constant targets
        assert math.isnan(M.spearman([1.0], [1.0]))  # a single point
        assert math.isnan(M.ndcg([1.0], [1.0]))
        assert math.isnan(M.ndcg([3.0, 3.0, 3.0], [1.0, 2.0, 3.0]))  # 0/0 after the shift
        assert math.isnan(M.ndcg([1.0, 2.0], [np.nan, 1.0]))
        assert math.isnan(M.spearman([1.0, 2.0], [np.inf, 1.0]))
        assert math.isnan(M.macro_ovr_auc(np.full((3, 2), 0.5), [0, 0, 0]))  # one class only
        assert math.isnan(M.cross_entropy(np.zeros((0, 2)), np.zeros(0, dtype=int)))


def test_ndcg_matches_sklearn_for_nonnegative_targets(rng: np.random.Generator) -> None:
    y = rng.random(40) * 3
    p = y + rng.normal(size=40)
    assert M.ndcg(y, p) == pytest.approx(ndcg_score(y[None], p[None]), abs=1e-12)
    assert M.ndcg(y, y) == pytest.approx(1.0)


def test_ndcg_shifts_negative_targets_to_zero_minimum(rng: np.random.Generator) -> None:
    y = rng.normal(size=40) - 1.0  # some negative
    p = y + rng.normal(size=40)
    shifted = y - y.min()
    assert M.ndcg(y, p) == pytest.approx(ndcg_score(shifted[None], p[None]), abs=1e-12)
    # The shift is only applied when needed: non-negative targets are used as they are,
    # so adding a constant to them changes the score.
    assert M.ndcg(shifted + 1.0, p) != pytest.approx(M.ndcg(shifted, p))


@pytest.mark.parametrize(
    "name",
    ["val_loss", "test_loss", "train_mse", "test_mse", "test_rmse", "my_mae", "test_spearman", "val_ndcg",
     "test_auc", "test_q3", "test_f1_macro", "test_mcc", "test_f1_bind", "test_unseen_fraction"],
)  # fmt: skip
def test_the_direction_comes_from_the_table_and_keeps_the_suffix_rule(name: str) -> None:
    table = {**M.REGRESSION, **M.CLASSIFICATION}
    assert M.lower_is_better(name) == name.endswith(("_loss", "_mse", "_rmse", "_mae"))
    short = name.removeprefix("test_")
    if short in table:
        assert M.lower_is_better(name) == (not table[short].higher_is_better)


def test_metric_for_names_what_it_cannot_score() -> None:
    assert M.metric_for("test_spearman", "regression") is M.REGRESSION["spearman"]
    assert M.metric_for("q3", "per_residue").fn is M.CLASSIFICATION["accuracy"].fn
    with pytest.raises(ValueError, match="no bootstrap for regression metric 'test_auc'"):
        M.metric_for("test_auc", "regression")
    with pytest.raises(ValueError, match="no bootstrap for metric 'test_mse'"):
        M.metric_for("test_mse", "classification")
    # unseen test labels (< 0) are left out of the loss, counted as wrong by accuracy
    probs, target = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, -1])
    assert M.CLASSIFICATION["loss"].fn(target, probs) == pytest.approx(-np.log(0.9))
    assert M.CLASSIFICATION["accuracy"].fn(target, probs) == 0.5


# -- classification ----------------------------------------------------------------------------


def test_cross_entropy_and_accuracy_match_sklearn(rng: np.random.Generator) -> None:
    probs = _softmax(rng.normal(size=(30, 4)))
    y = rng.integers(0, 4, size=30)
    assert M.cross_entropy(probs, y) == pytest.approx(log_loss(y, probs, labels=range(4)))
    assert M.accuracy(probs, y) == pytest.approx(np.mean(probs.argmax(1) == y))
    # A confidently wrong prediction is large but finite (clipped).
    assert np.isfinite(M.cross_entropy(np.array([[1.0, 0.0]]), [1]))


def test_macro_auc_equals_sklearn_when_all_classes_present(rng: np.random.Generator) -> None:
    probs = _softmax(rng.normal(size=(60, 3)))
    y = np.arange(60) % 3
    expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert M.macro_ovr_auc(probs, y) == pytest.approx(expected, abs=1e-12)


def test_macro_auc_skips_classes_absent_from_the_split(rng: np.random.Generator) -> None:
    probs = _softmax(rng.normal(size=(40, 4)))
    y = np.where(np.arange(40) % 2 == 0, 0, 2)  # classes 1 and 3 never occur
    expected = np.mean([roc_auc_score(y == k, probs[:, k]) for k in (0, 2)])
    assert M.macro_ovr_auc(probs, y) == pytest.approx(expected, abs=1e-12)


def test_macro_auc_binary_is_ordinary_auc(rng: np.random.Generator) -> None:
    probs = _softmax(rng.normal(size=(50, 2)))
    y = rng.integers(0, 2, size=50)
    assert M.macro_ovr_auc(probs, y) == pytest.approx(roc_auc_score(y, probs[:, 1]), abs=1e-12)


def test_per_class_prf(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, size=100)
    pred = rng.integers(0, 3, size=100)
    p, r, f = M.per_class_prf(pred, y, 3)
    ep, er, ef, _ = precision_recall_fscore_support(y, pred, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose(p, ep)
    np.testing.assert_allclose(r, er)
    np.testing.assert_allclose(f, ef)


def test_per_class_prf_undefined_cases() -> None:
    # class 2 occurs but is never predicted; class 3 neither occurs nor is predicted
    y = np.array([0, 1, 2, 2])
    pred = np.array([0, 1, 1, 0])
    p, r, f = M.per_class_prf(pred, y, 4)
    assert math.isnan(p[2]) and r[2] == 0.0 and f[2] == 0.0
    assert math.isnan(p[3]) and math.isnan(r[3]) and math.isnan(f[3])


def test_per_class_metric_names() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    out = M.per_class_metrics(probs, [0, 1], ["E", "H"], "test")
    assert out == {
        "test_f1_E": 1.0, "test_precision_E": 1.0, "test_recall_E": 1.0,
        "test_f1_H": 1.0, "test_precision_H": 1.0, "test_recall_H": 1.0,
        "test_f1_macro": 1.0, "test_mcc": 1.0,
    }  # fmt: skip


def test_macro_f1_and_mcc_see_through_a_majority_class_predictor() -> None:
    # Bind-like imbalance: 89 of 100 residues bind nothing (class 0); a probe that always says 0
    # has accuracy 0.89 but neither macro-F1 nor MCC credit it.
    y = np.array([0] * 89 + [1] * 6 + [4] * 5)
    always_zero = np.tile([1.0, 0.0, 0.0], (100, 1))
    out = M.per_class_metrics(always_zero, np.searchsorted([0, 1, 4], y), ["0", "1", "4"], "test")
    assert out["test_mcc"] == 0.0
    assert out["test_f1_macro"] == pytest.approx((2 * 89 / (2 * 89 + 11)) / 3)
    # a probe that gets the binders right scores higher on both
    perfect = np.eye(3)[np.searchsorted([0, 1, 4], y)]
    good = M.per_class_metrics(perfect, np.searchsorted([0, 1, 4], y), ["0", "1", "4"], "test")
    assert good["test_mcc"] == 1.0 and good["test_f1_macro"] == 1.0
