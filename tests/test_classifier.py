"""SoftmaxProbe: learns, is reproducible, early-stops to the best epoch, streams memmaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pytest_plmtransfer.measure.heads.classifier import RowView, SoftmaxProbe


def _separable(seed: int, n: int, d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(k, d))
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X @ W.T).argmax(axis=1)


def _overfitting_problem(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Few noisy training rows in many dimensions: validation loss falls, then rises."""
    rng = np.random.default_rng(seed)
    n, d = 60, 100
    w = np.zeros(d)
    w[0] = 3.0
    X = rng.normal(size=(n + 400, d)).astype(np.float32)
    y = ((X @ w + 2.0 * rng.normal(size=n + 400)) > 0).astype(np.int64)
    return X[:n], y[:n], X[n:], y[n:]


def test_recovers_a_linearly_separable_problem() -> None:
    X, y = _separable(0, 2400, 16, 3)
    clf = SoftmaxProbe(3, lr=0.05, batch_size=64, max_epochs=40, seed=0)
    clf.fit(X[:1600], y[:1600], X[1600:2000], y[1600:2000])
    assert (clf.predict(X[2000:]) == y[2000:]).mean() >= 0.97
    assert clf.predict_proba(X[:5]).sum(axis=1) == pytest.approx(np.ones(5))


def test_same_seed_same_weights_different_seed_differs() -> None:
    X, y = _separable(1, 600, 8, 3)
    args = (X[:400], y[:400], X[400:], y[400:])

    def fit(seed: int) -> SoftmaxProbe:
        return SoftmaxProbe(3, lr=0.01, batch_size=32, max_epochs=5, seed=seed).fit(*args)

    a, b, c = fit(7), fit(7), fit(8)
    assert np.array_equal(a.weight_, b.weight_) and np.array_equal(a.bias_, b.bias_)
    assert a.history_["val_loss"] == b.history_["val_loss"]
    assert a.history_["train_loss"][1:] == b.history_["train_loss"][1:]  # [0] is nan
    assert not np.array_equal(a.weight_, c.weight_)


def test_early_stopping_restores_the_best_epoch() -> None:
    Xt, yt, Xv, yv = _overfitting_problem()
    clf = SoftmaxProbe(2, lr=0.003, batch_size=16, max_epochs=200, patience=5, seed=0)
    clf.fit(Xt, yt, Xv, yv)
    history = clf.history_["val_loss"]
    # The case really does overfit: the loss rose after the best epoch and training stopped.
    assert 0 < clf.best_epoch_ < clf.epochs_run_ < 200
    assert clf.epochs_run_ == clf.best_epoch_ + clf.patience
    assert history[-1] > history[clf.best_epoch_]
    assert clf.best_epoch_ == int(np.argmin(history))
    # The model left behind is the best epoch's, not the last one's.
    with torch.no_grad():
        logits = torch.from_numpy(Xv) @ torch.from_numpy(clf.weight_).T + torch.from_numpy(clf.bias_)
        restored = float(F.cross_entropy(logits, torch.from_numpy(yv)))
    assert restored == pytest.approx(clf.best_val_loss_, rel=1e-5)
    assert restored == pytest.approx(history[clf.best_epoch_], rel=1e-5)


def test_epoch_zero_wins_when_every_epoch_hurts() -> None:
    X, y = _separable(2, 400, 6, 2)
    clf = SoftmaxProbe(2, lr=0.05, batch_size=32, max_epochs=50, patience=3, seed=0)
    clf.fit(X[:200], y[:200], X[200:], 1 - y[200:])  # validation labels inverted
    assert clf.best_epoch_ == 0 and clf.epochs_run_ == 3
    np.testing.assert_array_equal(clf.weight_, 0.0)
    np.testing.assert_allclose(clf.predict_proba(X[:3]), 0.5)


def test_memmap_streamed_in_chunks(tmp_path) -> None:
    X, y = _separable(3, 3000, 8, 3)
    path = tmp_path / "feat.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    train = RowView(ro, np.arange(0, 2000))
    val = RowView(ro, np.arange(2000, 2500))
    # 4 KiB chunks = 128 rows: many chunks per epoch, nothing cached.
    kw = dict(lr=0.05, batch_size=64, max_epochs=8, seed=0, chunk_bytes=4096)
    clf = SoftmaxProbe(3, **kw).fit(train, y[:2000], val, y[2000:2500])
    assert (clf.predict(RowView(ro, np.arange(2500, 3000))) == y[2500:]).mean() >= 0.9
    # Same bytes in RAM give the same model: memmap-ness changes nothing.
    same = SoftmaxProbe(3, **kw).fit(RowView(X, np.arange(0, 2000)), y[:2000], X[2000:2500], y[2000:2500])
    np.testing.assert_array_equal(clf.weight_, same.weight_)


def test_rowview_standardizes_selected_rows() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 4))
    mean, scale = rng.normal(size=4), np.array([1.0, 2.0, 0.0, 0.5])
    view = RowView(X, np.array([3, 5, 7]), mean, scale)
    assert len(view) == 3 and view.n_features == 4
    np.testing.assert_allclose(view.block(0, 3), (X[[3, 5, 7]] - mean) * scale, rtol=1e-6)
    assert np.all(view.block(0, 3)[:, 2] == 0.0)
    X_before = X.copy()
    RowView(X, None, mean, scale).block(0, 20)
    np.testing.assert_array_equal(X, X_before)  # reading never modifies the source


def test_balanced_class_weights() -> None:
    X, _ = _separable(4, 100, 4, 2)
    y = np.r_[np.zeros(75, dtype=int), np.ones(25, dtype=int)]
    clf = SoftmaxProbe(2, class_weight="balanced", max_epochs=1).fit(X, y, X, y)
    np.testing.assert_allclose(clf.class_weight_, [100 / 150, 100 / 50])
    assert SoftmaxProbe(2, max_epochs=1).fit(X, y, X, y).class_weight_ is None


def test_bad_arguments() -> None:
    X, y = _separable(5, 50, 3, 2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        SoftmaxProbe(1)
    with pytest.raises(ValueError, match="labels must lie"):
        SoftmaxProbe(2).fit(X, y + 5, X, y)
    with pytest.raises(RuntimeError):
        SoftmaxProbe(2).predict(X)
