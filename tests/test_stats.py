"""Bootstrap intervals and paired tests (pytest_plmtransfer.measure.stats) and the predictions store."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_plmtransfer.measure import metrics as M
from pytest_plmtransfer.measure.stats import Bootstrap, interval, paired_test, resample_counts
from pytest_plmtransfer.results.predictions import PredictionsError, TestPredictions, load_predictions, save_predictions

RNG = np.random.default_rng(12)


def regression(n: int = 300, noise: float = 1.0, seed: int = 0, ties: bool = True) -> TestPredictions:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    if ties:
        y[:20] = y[20:40]  # tied targets
    p = y + noise * rng.normal(size=n)
    if ties:
        p = p.round(1)  # many tied predictions
    return TestPredictions("regression", y, p.astype(np.float32))


def per_residue(n_proteins: int = 40, seed: int = 0, classes: int = 3) -> TestPredictions:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, size=n_proteins)
    units = np.r_[0, np.cumsum(lengths)]
    target = rng.integers(0, classes, size=units[-1])
    probs = rng.dirichlet(np.ones(classes), size=units[-1])
    return TestPredictions("per_residue", target, probs.astype(np.float32), units, ["C", "E", "H"][:classes])


def explicit(preds: TestPredictions, boot: Bootstrap, fn) -> np.ndarray:
    """The metric applied to each resample, materialized: what the vectorized code must equal."""
    counts = np.rint(boot.counts).astype(np.int64)
    out = []
    for b in range(counts.shape[1]):
        units = np.repeat(np.arange(preds.n_units), counts[:, b])
        if preds.units is None:
            rows = units
        else:
            rows = np.concatenate([np.arange(preds.units[u], preds.units[u + 1]) for u in units])
        out.append(fn(preds.target[rows], preds.pred[rows].astype(np.float64)))
    return np.array(out)


@pytest.mark.parametrize(
    ("metric", "fn"),
    [("test_spearman", M.spearman), ("test_pearson", M.pearson), ("test_mse", M.mse), ("test_ndcg", M.ndcg)],
)
def test_vectorized_regression_metrics_equal_the_metric_on_each_resample(metric, fn):
    preds = regression()
    boot = Bootstrap(preds, n_resamples=40, seed=3)
    np.testing.assert_allclose(boot.samples(metric, preds), explicit(preds, boot, fn), rtol=0, atol=1e-12)


def test_ndcg_with_non_negative_targets_is_not_shifted():
    base = regression()
    preds = TestPredictions("regression", np.abs(base.target), base.pred)
    boot = Bootstrap(preds, n_resamples=30, seed=1)
    np.testing.assert_allclose(boot.samples("test_ndcg", preds), explicit(preds, boot, M.ndcg), atol=1e-12)


def test_per_residue_resamples_proteins_not_residues():
    preds = per_residue()
    boot = Bootstrap(preds, n_resamples=50, seed=0)
    assert boot.counts.shape == (40, 50)  # one row per protein
    assert np.all(boot.counts.sum(axis=0) == 40)  # each resample draws 40 proteins
    acc = boot.samples("test_accuracy", preds)
    np.testing.assert_allclose(acc, explicit(preds, boot, lambda t, p: M.accuracy(p, t)), atol=1e-12)
    loss = boot.samples("test_loss", preds)
    np.testing.assert_allclose(loss, explicit(preds, boot, lambda t, p: M.cross_entropy(p, t)), atol=1e-12)
    iv = interval(preds, "test_accuracy", n_resamples=200)
    assert (iv.unit, iv.n_units) == ("protein", 40)
    assert iv.estimate == pytest.approx(M.accuracy(preds.pred, preds.target))


def test_protein_resampling_is_wider_than_residue_resampling_when_residues_are_correlated():
    # each protein is either all right or all wrong: residues are not independent
    rng = np.random.default_rng(5)
    lengths = rng.integers(20, 60, size=60)
    units = np.r_[0, np.cumsum(lengths)]
    right = np.repeat(rng.random(60) < 0.6, lengths)
    target = np.zeros(units[-1], dtype=np.int64)
    probs = np.where(right[:, None], [[0.9, 0.1]], [[0.1, 0.9]])
    by_protein = interval(TestPredictions("per_residue", target, probs, units), "test_accuracy", n_resamples=500)
    by_residue = interval(TestPredictions("classification", target, probs), "test_accuracy", n_resamples=500)
    assert by_protein.se > 3 * by_residue.se


def test_bootstrap_recovers_the_standard_error_of_a_known_distribution():
    # MSE of n i.i.d. squared N(0, 1) errors: SE = sd(e^2) / sqrt(n) = sqrt(2 / n)
    n = 2000
    rng = np.random.default_rng(7)
    y = rng.normal(size=n)
    preds = TestPredictions("regression", y + rng.normal(size=n), y.astype(np.float32))
    iv = interval(preds, "test_mse", n_resamples=2000, seed=1)
    assert iv.se == pytest.approx(np.sqrt(2.0 / n), rel=0.10)
    # accuracy of n Bernoulli(0.7) trials: SE = sqrt(0.7 * 0.3 / n)
    correct = rng.random(n) < 0.7
    probs = np.where(correct[:, None], [[0.8, 0.2]], [[0.2, 0.8]])
    iv = interval(
        TestPredictions("classification", np.zeros(n, np.int64), probs), "test_accuracy", n_resamples=2000, seed=1
    )
    assert iv.se == pytest.approx(np.sqrt(correct.mean() * (1 - correct.mean()) / n), rel=0.10)
    assert iv.low < correct.mean() < iv.high
    assert (iv.level, iv.method, iv.n_resamples, iv.seed) == (0.95, "percentile", 2000, 1)


def test_spearman_se_matches_the_sampling_distribution():
    # the bootstrap SE of one sample's Spearman vs the spread of Spearman over fresh samples
    n, rho = 1000, 0.6
    cov = [[1, rho], [rho, 1]]
    rng = np.random.default_rng(11)
    fresh = [M.spearman(*rng.multivariate_normal([0, 0], cov, size=n).T) for _ in range(400)]
    y, p = rng.multivariate_normal([0, 0], cov, size=n).T
    iv = interval(TestPredictions("regression", y, p), "test_spearman", n_resamples=2000)
    assert iv.se == pytest.approx(np.std(fresh, ddof=1), rel=0.10)


def test_resamples_are_a_function_of_the_test_set_and_seed():
    a = resample_counts(100, 20, 0, "ab" * 32)
    np.testing.assert_array_equal(a, resample_counts(100, 20, 0, "ab" * 32))
    assert not np.array_equal(a, resample_counts(100, 20, 1, "ab" * 32))
    assert not np.array_equal(a, resample_counts(100, 20, 0, "cd" * 32))
    preds = regression()
    first = interval(preds, "test_spearman", n_resamples=100, seed=4)
    again = interval(
        TestPredictions("regression", preds.target.copy(), preds.pred.copy()), "test_spearman", n_resamples=100, seed=4
    )
    assert first == again


def test_paired_test_finds_a_planted_difference_and_none_between_identical_predictions():
    n = 1000
    rng = np.random.default_rng(3)
    target = rng.integers(0, 2, size=n)
    right_b = rng.random(n) < 0.8
    right_a = right_b.copy()
    wrong = np.flatnonzero(~right_b)
    right_a[wrong[:20]] = True  # A is right on 20 more examples: +0.02 accuracy
    probs = lambda right: np.where(right, target, 1 - target)[:, None] == np.arange(2)
    a = TestPredictions("classification", target, probs(right_a).astype(np.float32))
    b = TestPredictions("classification", target, probs(right_b).astype(np.float32))
    res = paired_test([a], [b], "test_accuracy", n_resamples=2000)
    assert res.difference == pytest.approx(0.02)
    assert res.significant and res.p_value < 0.01
    assert 0 < res.low < 0.02 < res.high
    same = paired_test([b], [b], "test_accuracy", n_resamples=2000)
    assert same.difference == 0 and same.p_value == 1.0 and not same.significant
    # an unpaired comparison of the same two accuracies could not tell them apart
    se_unpaired = np.sqrt(2 * 0.8 * 0.2 / n)
    assert 0.02 / se_unpaired < 1.2


def test_paired_spearman_difference_and_margin():
    n = 1000
    rng = np.random.default_rng(8)
    y = rng.normal(size=n)
    noise = rng.normal(size=n)
    a = TestPredictions("regression", y, y + 0.9 * noise)
    b = TestPredictions("regression", y, y + 1.0 * noise)
    res = paired_test([a], [b], "test_spearman", n_resamples=1000)
    assert res.difference == pytest.approx(M.spearman(y, a.pred) - M.spearman(y, b.pred))
    assert 0.01 < res.difference < 0.05 and res.significant
    assert not paired_test([a], [b], "test_spearman", margin=0.1, n_resamples=1000).significant
    # lower is better for MSE: A (less noise) is better, so the oriented test is significant
    assert paired_test([a], [b], "test_mse", n_resamples=1000).significant
    assert not paired_test([b], [a], "test_mse", n_resamples=1000).significant


def test_seed_replicates_widen_the_paired_interval():
    n = 800
    rng = np.random.default_rng(9)
    y = rng.normal(size=n)
    a = TestPredictions("regression", y, y + rng.normal(size=n))
    steady = [TestPredictions("regression", y, y + 1.2 * rng.normal(size=n)) for _ in range(3)]
    spread = [TestPredictions("regression", y, y + s * rng.normal(size=n)) for s in (0.6, 1.2, 3.0)]
    narrow = paired_test([a], steady, "test_spearman", n_resamples=1000)
    wide = paired_test([a], spread, "test_spearman", n_resamples=1000)
    assert (narrow.n_seeds_b, wide.n_seeds_b) == (3, 3)
    assert "hierarchical" in wide.seeds_combined
    assert (wide.high - wide.low) > 1.5 * (narrow.high - narrow.low)


def test_paired_test_refuses_different_test_sets():
    a = regression(seed=0)
    b = regression(seed=1)
    with pytest.raises(ValueError, match="same test examples"):
        paired_test([a], [b], "test_spearman", n_resamples=10)


def test_predictions_round_trip_and_tampering_is_detected(tmp_path):
    preds = per_residue()
    path = tmp_path / "ab" / "abcd.predictions.npz"
    ref = save_predictions(path, preds)
    back = load_predictions(path, ref["sha256"])
    assert back.kind == "per_residue" and back.classes == ["C", "E", "H"]
    np.testing.assert_array_equal(back.units, preds.units)
    np.testing.assert_array_equal(back.target, preds.target)
    assert back.pred.dtype == np.float32
    assert back.fingerprint() == preds.fingerprint() == ref["fingerprint"]
    assert not list(path.parent.glob("*.tmp"))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PredictionsError, match="checksum"):
        load_predictions(path, ref["sha256"])
    with pytest.raises(PredictionsError, match="not found"):
        load_predictions(tmp_path / "missing.npz")


def test_other_metrics_fall_back_to_one_resample_at_a_time():
    preds = per_residue(n_proteins=15)
    boot = Bootstrap(preds, n_resamples=20, seed=2)
    auc = boot.samples("test_auc", preds)
    np.testing.assert_allclose(auc, explicit(preds, boot, lambda t, p: M.macro_ovr_auc(p, t)), atol=1e-12)
    with pytest.raises(ValueError, match="no bootstrap"):
        boot.samples("test_f1_H", preds)


@pytest.mark.parametrize("metric", ["f1_macro", "mcc"])
@pytest.mark.parametrize("classes", [2, 3])
def test_bind_headlines_from_resampled_confusion_matrices_equal_the_metric_on_each_resample(metric, classes):
    # Bind's headline is macro-F1 (and MCC beside it): one confusion matrix per resample, never
    # a materialized resample, must give sklearn's numbers on each resample
    from sklearn.metrics import f1_score, matthews_corrcoef

    preds = per_residue(n_proteins=25, seed=7, classes=classes)
    preds.pred[:, 0] += 0.4  # a majority class, as in Bind: some resamples never predict a class
    boot = Bootstrap(preds, n_resamples=30, seed=4)

    def reference(t, p):
        pred = p.argmax(axis=1)
        if metric == "mcc":
            return matthews_corrcoef(t, pred)
        return f1_score(t, pred, average="macro", labels=np.union1d(t, pred))

    np.testing.assert_allclose(boot.samples(f"test_{metric}", preds), explicit(preds, boot, reference), atol=1e-12)
