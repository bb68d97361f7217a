"""Benchmark: ridge alpha sweep from one factorization vs sklearn ``Ridge`` refit per alpha.

Run explicitly (it is not part of ``tests/``)::

    python -m pytest perf/test_ridge_sweep.py -p no:cacheprovider
    python -m pytest perf -s                      # -s also shows the printed speed-up inline

The problem is GB1-sized (gb1_sampled: 6,289 train / 699 val / 1,745 test sequences) with
ESM-1b-width features (1,280), standardized on train as the probe does. Features are seeded
random data with embedding-like structure (a 64-dimensional latent factor plus noise, so columns
are strongly correlated) and the target is a planted linear function of them plus noise. Both
sides sweep the same grid (:data:`DEFAULT_ALPHAS`) and choose alpha by validation Spearman with
ties going to the larger alpha; the test asserts they choose the same alpha and predict the same
values, and records the speed ratio in ``benchmark.extra_info`` (visible in
``--benchmark-json``) and prints it.

Both sides run with one BLAS thread. On a shared machine (CI runners, xdist workers, the
embedding jobs this plugin runs) OpenBLAS's spinning threads can slow LAPACK calls by 10x or more
depending on the neighbours' load, which made multi-threaded ratios swing between 3x and 18x
from run to run; pinned, the ratio measures the algorithm.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from pytest_plmtransfer import metrics as M
from pytest_plmtransfer.heads.ridge import DEFAULT_ALPHAS, RidgeProbe

N_TRAIN, N_VAL, N_TEST, N_FEATURES, LATENT = 6289, 699, 1745, 1280, 64
BLAS_THREADS = 1
GROUP = "ridge-sweep gb1_sampled-size 6289x1280"

# Timings of the one-factorization sweep, so the sklearn test can report the ratio.
_OURS: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _pinned_blas_threads() -> Any:
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def problem() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240501)
    n = N_TRAIN + N_VAL + N_TEST
    latent = rng.normal(size=(n, LATENT))
    X = latent @ rng.normal(size=(LATENT, N_FEATURES)) + 2.0 * rng.normal(size=(n, N_FEATURES))
    y = X @ (rng.normal(size=N_FEATURES) * (rng.random(N_FEATURES) < 0.2)) * 0.05
    y += rng.normal(size=n) * y.std()  # signal-to-noise ~1, so alpha matters
    train = slice(0, N_TRAIN)
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    X = (X - mean) / std
    val, test = slice(N_TRAIN, N_TRAIN + N_VAL), slice(N_TRAIN + N_VAL, n)
    return {
        "Xtr": np.ascontiguousarray(X[train]), "ytr": y[train],
        "Xva": np.ascontiguousarray(X[val]), "yva": y[val],
        "Xte": np.ascontiguousarray(X[test]), "yte": y[test],
    }  # fmt: skip


def one_factorization_sweep(p: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    probe = RidgeProbe(DEFAULT_ALPHAS, "val_spearman").fit(p["Xtr"], p["ytr"], p["Xva"], p["yva"])
    return probe.alpha_, probe.predict(p["Xte"])


def sklearn_refit_sweep(p: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """The straightforward approach: one ``Ridge(alpha).fit`` per grid point."""
    best: tuple[float, float, Ridge] | None = None
    for alpha in DEFAULT_ALPHAS:  # ascending; ">=" sends ties to the larger alpha
        model = Ridge(alpha=alpha).fit(p["Xtr"], p["ytr"])
        score = M.spearman(p["yva"], model.predict(p["Xva"]))
        if np.isfinite(score) and (best is None or score >= best[0]):
            best = (score, float(alpha), model)
    assert best is not None
    return best[1], best[2].predict(p["Xte"])


def _best_seconds(benchmark: Any, fn: Callable[[], Any]) -> float:
    """Fastest round from pytest-benchmark, or one manual timing when benchmarking is disabled
    (``--benchmark-disable``, xdist)."""
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        return float(stats.stats.min)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.mark.benchmark(group=GROUP)
def test_ridge_sweep_one_factorization(benchmark: Any, problem: dict[str, np.ndarray]) -> None:
    alpha, pred = benchmark.pedantic(
        one_factorization_sweep, args=(problem,), rounds=3, iterations=1, warmup_rounds=1
    )
    seconds = _best_seconds(benchmark, lambda: one_factorization_sweep(problem))
    _OURS.update(seconds=seconds, alpha=alpha, pred=pred)
    benchmark.extra_info.update(n_alphas=len(DEFAULT_ALPHAS), chosen_alpha=alpha)
    assert np.isfinite(pred).all()


@pytest.mark.benchmark(group=GROUP)
def test_ridge_sweep_sklearn_refit(
    benchmark: Any, problem: dict[str, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    alpha, pred = benchmark.pedantic(
        sklearn_refit_sweep, args=(problem,), rounds=1, iterations=1, warmup_rounds=0
    )
    sk_seconds = _best_seconds(benchmark, lambda: sklearn_refit_sweep(problem))
    if not _OURS:  # this test selected alone: time our sweep here (best of 3)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            our_alpha, our_pred = one_factorization_sweep(problem)
            times.append(time.perf_counter() - start)
        _OURS.update(seconds=min(times), alpha=our_alpha, pred=our_pred)

    # Same choice, same predictions.
    assert _OURS["alpha"] == alpha
    np.testing.assert_allclose(_OURS["pred"], pred, rtol=1e-6, atol=1e-8 * np.abs(pred).max())

    ratio = sk_seconds / _OURS["seconds"]
    benchmark.extra_info.update(
        n_alphas=len(DEFAULT_ALPHAS),
        chosen_alpha=alpha,
        sklearn_refit_seconds=sk_seconds,
        one_factorization_seconds=_OURS["seconds"],
        speedup=ratio,
        blas_threads=BLAS_THREADS,
    )
    with capsys.disabled():
        print(
            f"\nridge sweep, {len(DEFAULT_ALPHAS)} alphas on {N_TRAIN}x{N_FEATURES} "
            f"(val {N_VAL}, {BLAS_THREADS} BLAS thread): sklearn refit per alpha "
            f"{sk_seconds:.2f} s, one factorization {_OURS['seconds']:.2f} s -> "
            f"{ratio:.1f}x faster; chosen alpha {alpha:g}"
        )
    assert ratio > 1.0
