"""The faster probes give the same answers as the paths they replace.

* SoftmaxProbe's fused training step (closed-form gradient, packed [W | b], one Adam tensor)
  against the autograd step, same seed: same batches, so the same accuracy (within 0.002) and
  nearly the same weights, with and without class weights, in memory and chunked.
* RidgeProbe's factorizations (tridiagonal reduction, Cholesky per alpha, eigendecomposition)
  and its torch backend against each other and sklearn, within 1e-6.
* Probes run on the embedding device: CUDA when the embeddings were made on CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from pytest_plmtransfer.measure.heads.classifier import SoftmaxProbe
from pytest_plmtransfer.measure.heads.ridge import (
    TRIDIAGONAL_COST_IN_CHOLESKY,
    RidgeProbe,
    choose_method,
    solve_shifted,
)
from pytest_plmtransfer.measure.probe import ProbeInput, ProbeSettings, probe, settings_for_run

CUDA = torch.cuda.is_available()


def _classification(seed: int, n: int, d: int, k: int, noise: float = 1.5):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(k, d))
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ W.T + noise * rng.gumbel(size=(n, k))).argmax(axis=1)
    return X, y


@pytest.mark.parametrize("class_weight", [None, "balanced"])
@pytest.mark.parametrize("chunk_bytes", [256 * 2**20, 40 * 1024], ids=["in-memory", "chunked"])
def test_fused_step_matches_autograd_step(class_weight, chunk_bytes):
    X, y = _classification(0, 3000, 12, 3)
    y[:200] = 0  # unbalanced classes, so "balanced" weights differ from 1
    parts = (X[:2000], y[:2000], X[2000:2500], y[2000:2500])
    fits = {}
    for engine in ("autograd", "fused"):
        fits[engine] = SoftmaxProbe(
            3, lr=0.01, batch_size=64, max_epochs=8, patience=3, seed=5,
            class_weight=class_weight, chunk_bytes=chunk_bytes, engine=engine,
        ).fit(*parts)  # fmt: skip
    a, f = fits["autograd"], fits["fused"]
    acc = {k: (v.predict(X[2500:]) == y[2500:]).mean() for k, v in fits.items()}
    assert abs(acc["fused"] - acc["autograd"]) <= 0.002
    assert f.epochs_run_ == a.epochs_run_ and f.best_epoch_ == a.best_epoch_
    np.testing.assert_allclose(f.weight_, a.weight_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(f.bias_, a.bias_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(f.history_["val_loss"], a.history_["val_loss"], rtol=1e-4)
    np.testing.assert_allclose(f.history_["train_loss"][1:], a.history_["train_loss"][1:], rtol=1e-4)


def test_fused_step_with_weight_decay_matches_autograd():
    X, y = _classification(1, 1200, 6, 4)
    parts = (X[:800], y[:800], X[800:1000], y[800:1000])
    a = SoftmaxProbe(4, lr=0.02, batch_size=50, max_epochs=4, weight_decay=0.1, engine="autograd").fit(*parts)
    f = SoftmaxProbe(4, lr=0.02, batch_size=50, max_epochs=4, weight_decay=0.1, engine="fused").fit(*parts)
    np.testing.assert_allclose(f.weight_, a.weight_, rtol=1e-3, atol=1e-4)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine"):
        SoftmaxProbe(2, engine="lbfgs")


# --------------------------------------------------------------------------- ridge
def _regression(seed: int, n: int, d: int, n_val: int = 80):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_val, 6)) @ rng.normal(size=(6, d)) + 0.5 * rng.normal(size=(n + n_val, d)) + 3.0
    y = X @ rng.normal(size=d) * 0.2 + rng.normal(size=n + n_val) + 1.0
    return X[:n], y[:n], X[n:], y[n:]


@pytest.mark.parametrize(("n", "d"), [(300, 40), (50, 120), (1, 5), (200, 1)])
def test_ridge_factorizations_agree_with_sklearn(n, d):
    Xt, yt, Xv, yv = _regression(2, n, d)
    alphas = np.logspace(-3, 6, 19)
    ref = np.array([Ridge(alpha=a).fit(Xt, yt).predict(Xv) for a in alphas])
    scale = np.abs(ref).max()
    for method in ("tridiagonal", "cholesky", "eigh"):
        fitted = RidgeProbe(alphas, method=method).fit(Xt, yt, Xv, yv)
        assert fitted.method_ == method
        np.testing.assert_allclose(fitted.predict_path(Xv), ref, rtol=1e-6, atol=1e-6 * scale)


def test_ridge_method_follows_grid_size():
    assert choose_method(1) == choose_method(TRIDIAGONAL_COST_IN_CHOLESKY) == "cholesky"
    assert choose_method(TRIDIAGONAL_COST_IN_CHOLESKY + 1) == "tridiagonal"
    assert choose_method(50, "eigh") == "eigh"
    Xt, yt, Xv, yv = _regression(3, 100, 10)
    assert RidgeProbe([1.0, 10.0]).fit(Xt, yt, Xv, yv).method_ == "cholesky"
    assert RidgeProbe().fit(Xt, yt, Xv, yv).method_ == "tridiagonal"
    with pytest.raises(ValueError, match="method"):
        RidgeProbe(method="svd")


def test_solve_shifted_refuses_non_finite_input():
    gram = np.array([[1.0, np.nan], [np.nan, 1.0]])
    with pytest.raises(ValueError, match="NaN|positive definite"):
        solve_shifted(gram.copy(), np.ones(2), np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), "tridiagonal")


@pytest.mark.parametrize(("n", "d"), [(400, 30), (40, 90)], ids=["primal", "dual"])
def test_ridge_torch_backend_equals_numpy_on_cpu(n, d):
    Xt, yt, Xv, yv = _regression(4, n, d)
    Xt32 = Xt.astype(np.float32)  # embeddings arrive as float32; both paths widen to float64
    a = RidgeProbe().fit(Xt32, yt, Xv, yv)
    b = RidgeProbe(backend="torch", device="cpu").fit(Xt32, yt, Xv, yv)
    assert a.alpha_ == b.alpha_
    pa, pb = a.predict(Xv), b.predict(Xv)
    np.testing.assert_allclose(pb, pa, rtol=1e-6, atol=1e-6 * np.abs(pa).max())
    np.testing.assert_allclose(b.predict_path(Xv), a.predict_path(Xv), rtol=1e-6, atol=1e-6 * np.abs(pa).max())


# --------------------------------------------------------------------------- probes on the device
def test_probe_settings_follow_the_embedding_device():
    assert settings_for_run({}, "cpu").device == "cpu"
    assert settings_for_run({"max_epochs": 3}, "cuda").device == "cuda"
    assert settings_for_run({}, "cuda:1").device == "cuda:1"
    s = settings_for_run({"lr": 0.01, "alphas": [1.0, 2.0]}, "cpu")
    assert s.lr == 0.01 and list(s.alphas) == [1.0, 2.0]


def _small_inputs():
    rng = np.random.default_rng(0)
    n = 240
    X = rng.normal(size=(n, 16)).astype(np.float32)
    y_reg = X[:, 0] * 2 + rng.normal(size=n)
    labels = np.where(X[:, 1] > 0, "a", "b")
    splits = np.array(["train"] * 160 + ["val"] * 40 + ["test"] * 40)
    reg = ProbeInput(kind="regression", X=X, offsets=None, targets=list(y_reg), splits=splits)
    clf = ProbeInput(kind="classification", X=X, offsets=None, targets=list(labels), splits=splits,
                     selection_metric="val_loss")  # fmt: skip
    return reg, clf


def test_cpu_probes_record_cpu():
    reg, clf = _small_inputs()
    for inp in (reg, clf):
        result = probe(inp, seed=0, settings=settings_for_run({}, "cpu"))
        assert result.head["device"] == "cpu"


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_probes_are_chosen_and_agree_with_cpu():
    reg, clf = _small_inputs()
    for inp, tol in ((reg, 1e-6), (clf, 0.002)):
        on_gpu = probe(inp, seed=0, settings=settings_for_run({}, "cuda"))
        on_cpu = probe(inp, seed=0, settings=settings_for_run({}, "cpu"))
        assert on_gpu.head["device"].startswith("cuda")
        if inp.kind == "regression":
            assert on_gpu.head["alpha"] == on_cpu.head["alpha"]
            assert on_gpu.metrics["test_mse"] == pytest.approx(on_cpu.metrics["test_mse"], rel=tol)
        else:
            assert abs(on_gpu.metrics["test_accuracy"] - on_cpu.metrics["test_accuracy"]) <= tol


def test_head_settings_are_recorded():
    reg, clf = _small_inputs()
    r = probe(clf, seed=0, settings=ProbeSettings(max_epochs=2, patience=1, batch_size=32, lr=0.01))
    assert (r.head["max_epochs"], r.head["patience"], r.head["batch_size"], r.head["lr"]) == (2, 1, 32, 0.01)
    r = probe(reg, seed=0, settings=ProbeSettings(alphas=[0.5, 5.0]))
    assert r.head["alphas"] == [0.5, 5.0] and r.head["method"] == "cholesky"
