"""Ridge regression whose whole alpha grid comes from one factorization of the training matrix.

For centred features ``Xc`` (n x d) and centred targets ``yc``, ridge with penalty ``alpha`` has

    coef(alpha) = (Xc^T Xc + alpha I)^-1 Xc^T yc.

With the eigendecomposition of the smaller Gram matrix, every alpha is a diagonal rescaling:

* ``n >= d`` ("primal"): ``Xc^T Xc = V diag(lam) V^T`` gives
  ``coef(alpha) = V diag(1 / (lam + alpha)) V^T Xc^T yc``;
* ``n < d`` ("dual"): ``Xc Xc^T = U diag(mu) U^T`` gives, by the push-through identity,
  ``coef(alpha) = Xc^T U diag(1 / (mu + alpha)) U^T yc``.

Both are ``W @ (g / (lam + alpha))`` for a fixed ``W`` (d x r) and ``g`` (r), so after the one
``O(n d min(n, d))`` Gram product and one ``O(min(n, d)^3)`` eigendecomposition, each extra alpha
costs ``O(d r)`` for its coefficients and -- because ``Xval_c @ W`` is formed once -- ``O(n_val r)``
for its validation predictions. sklearn's ``Ridge`` (cholesky solver) recomputes the Gram matrix
and a factorization for every alpha.

We eigendecompose the Gram matrix rather than take the SVD of ``Xc``: it solves exactly the
normal equations sklearn's default solver solves (so results agree to rounding), and a symmetric
``min(n, d)``-square ``eigh`` is several times faster than an SVD of the tall matrix. The
intercept is fitted the way sklearn does it: centre X and y, solve, then
``intercept = mean(y) - mean(X) @ coef``. Everything is float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits  # a scikit-learn dependency, so always present

from .. import metrics as M

__all__ = ["DEFAULT_ALPHAS", "RIDGE_SELECTION_METRICS", "RidgeProbe"]

#: Default penalty grid: 10^-3 .. 10^6 in half-decade steps (19 values).
#:
#: The probe standardizes features on the training split, so each feature contributes n to
#: ``trace(Xc^T Xc)`` and the Gram eigenvalues that carry signal are of order n (hundreds to tens
#: of thousands on FLIP: 381 train rows for gb1_two_vs_rest, 28,626 for aav_two_vs_many).
#: ``alpha = 1e-3`` is then effectively unpenalized least squares (the min-norm fit when
#: n < d), while ``alpha = 1e6`` shrinks even an eigen-direction with eigenvalue 3e4 by 97%, i.e.
#: close to predicting the training mean -- so the grid spans the whole bias/variance path for
#: every FLIP size, not just the small ones (the common ``logspace(-3, 4)`` stops short of strong
#: shrinkage for the larger regression splits, where PLM embeddings with highly correlated
#: dimensions need it). Half-decade spacing keeps neighbouring fits close: validation scores
#: change little between grid points, so the choice is not an artefact of a coarse grid. With one
#: factorization the extra grid points are nearly free.
DEFAULT_ALPHAS: np.ndarray = np.logspace(-3, 6, 19)

#: Validation metrics a ridge probe can select alpha by: name -> (function, higher is better).
RIDGE_SELECTION_METRICS: dict[str, tuple[Callable[[object, object], float], bool]] = {
    "val_spearman": (M.spearman, True),
    "val_ndcg": (M.ndcg, True),
    "val_pearson": (M.pearson, True),
    "val_mse": (M.mse, False),
    "val_loss": (M.mse, False),  # a regression task's "loss" is its MSE
}

# Rows per block when streaming a big (possibly memory-mapped, float32) matrix into float64.
_CHUNK_ROWS = 4096

#: BLAS threads for the eigendecomposition. LAPACK's symmetric eigensolver synchronizes its
#: threads many times per call; when other processes compete for the cores (xdist workers, a model
#: embedding the next layer) OpenBLAS's spinning threads make it collapse: measured on a loaded
#: 2-core machine, a 1280 x 1280 ``eigh`` took 1.3 s on 1 thread and 32 s on 2. On an idle
#: machine a second thread saves little, so one thread is the robust default.
EIGH_THREADS: int | None = 1


def _eigh(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if EIGH_THREADS is None:
        return np.linalg.eigh(a)
    with threadpool_limits(limits=EIGH_THREADS, user_api="blas"):
        return np.linalg.eigh(a)


def _blocks(n: int, size: int = _CHUNK_ROWS) -> range:
    return range(0, n, size)


def _as_2d(X: object, name: str) -> np.ndarray:
    # np.asarray keeps an np.memmap a memmap (no copy); blocks are converted to float64 lazily.
    a = X if isinstance(X, np.ndarray) else np.asarray(X)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {a.shape}")
    return a


def _column_mean(X: np.ndarray) -> np.ndarray:
    total = np.zeros(X.shape[1], dtype=np.float64)
    for a in _blocks(X.shape[0]):
        total += np.asarray(X[a : a + _CHUNK_ROWS], dtype=np.float64).sum(axis=0)
    return total / max(X.shape[0], 1)


class RidgeProbe:
    """Ridge regression with intercept, alpha chosen on validation from one factorization.

    Parameters
    ----------
    alphas:
        Penalties to try (all > 0); defaults to :data:`DEFAULT_ALPHAS`. Stored sorted ascending.
    selection_metric:
        One of :data:`RIDGE_SELECTION_METRICS` (``val_spearman``, ``val_ndcg``, ``val_pearson``,
        ``val_mse``/``val_loss``). Ties go to the larger alpha (the simpler model); a ``nan``
        score (e.g. constant predictions) never wins; if every score is ``nan`` the largest alpha
        is chosen.

    After :meth:`fit`: ``alpha_``, ``coef_`` (d,), ``intercept_``, ``alphas_``, ``val_scores_``
    (one per alpha, ``nan`` where undefined; ``None`` without validation data), ``solver_``
    (``"primal"`` or ``"dual"``), ``x_mean_`` and ``y_mean_``.
    """

    def __init__(
        self,
        alphas: Sequence[float] | np.ndarray | None = None,
        selection_metric: str = "val_spearman",
    ) -> None:
        grid = np.asarray(DEFAULT_ALPHAS if alphas is None else alphas, dtype=np.float64)
        grid = np.unique(grid.reshape(-1))  # sorted ascending, duplicates dropped
        if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ValueError(f"alphas must be finite and > 0, got {grid!r}")
        if selection_metric not in RIDGE_SELECTION_METRICS:
            raise ValueError(
                f"unknown selection metric {selection_metric!r} for a ridge probe; "
                f"expected one of {sorted(RIDGE_SELECTION_METRICS)}"
            )
        self.alphas_ = grid
        self.selection_metric = selection_metric

    # -- fitting -------------------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        y: object,
        X_val: np.ndarray | None = None,
        y_val: object | None = None,
    ) -> RidgeProbe:
        """Factorize once, score every alpha on ``(X_val, y_val)``, keep the best.

        ``X`` may be float32 or a memmap; in the primal case it is streamed in blocks and never
        copied whole (only ``d x d`` float64 is held). Validation data is required when the grid
        has more than one alpha.
        """
        X = _as_2d(X, "X")
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        n, d = X.shape
        if y.size != n:
            raise ValueError(f"X has {n} rows but y has {y.size} values")
        if n == 0:
            raise ValueError("cannot fit a ridge probe on zero training rows")
        if not np.all(np.isfinite(y)):
            raise ValueError("training targets contain NaN or infinity")

        self.x_mean_ = _column_mean(X)
        self.y_mean_ = float(y.mean())
        yc = y - self.y_mean_

        if n >= d:
            self.solver_ = "primal"
            gram = np.zeros((d, d), dtype=np.float64)
            xty = np.zeros(d, dtype=np.float64)
            for a in _blocks(n):
                block = np.asarray(X[a : a + _CHUNK_ROWS], dtype=np.float64) - self.x_mean_
                gram += block.T @ block  # numpy dispatches A.T @ A to a symmetric rank-k update
                xty += block.T @ yc[a : a + _CHUNK_ROWS]
            lam, V = _eigh(gram)
            del gram
            self._W = V
            self._g = V.T @ xty
        else:
            self.solver_ = "dual"
            Xc = np.asarray(X, dtype=np.float64) - self.x_mean_
            mu, U = _eigh(Xc @ Xc.T)
            self._W = Xc.T @ U
            self._g = U.T @ yc
            lam = mu
        if not np.all(np.isfinite(lam)):
            raise ValueError("training features contain NaN or infinity")
        # eigh can return tiny negative eigenvalues for a PSD matrix; they are rounding noise.
        self._lam = np.maximum(lam, 0.0)

        self.val_scores_: np.ndarray | None = None
        if self.alphas_.size == 1:
            best = 0
            if X_val is not None and y_val is not None:
                self.val_scores_ = self._score_path(X_val, y_val)
        else:
            if X_val is None or y_val is None:
                raise ValueError(f"choosing among {self.alphas_.size} alphas needs validation data")
            self.val_scores_ = self._score_path(X_val, y_val)
            best = self._select(self.val_scores_)
        self.best_index_ = int(best)
        self.alpha_ = float(self.alphas_[best])
        self.coef_ = self._coef(self.alpha_)
        self.intercept_ = float(self.y_mean_ - self.x_mean_ @ self.coef_)
        return self

    def _coef(self, alpha: float) -> np.ndarray:
        return self._W @ (self._g / (self._lam + alpha))

    def _score_path(self, X_val: np.ndarray, y_val: object) -> np.ndarray:
        yv = np.asarray(y_val, dtype=np.float64).reshape(-1)
        preds = self.predict_path(X_val)
        if preds.shape[1] != yv.size:
            raise ValueError(f"X_val has {preds.shape[1]} rows but y_val has {yv.size} values")
        fn, _ = RIDGE_SELECTION_METRICS[self.selection_metric]
        return np.array([fn(yv, p) for p in preds], dtype=np.float64)

    def _select(self, scores: np.ndarray) -> int:
        _, higher_is_better = RIDGE_SELECTION_METRICS[self.selection_metric]
        signed = scores if higher_is_better else -scores
        best, best_score = self.alphas_.size - 1, -np.inf
        # Ascending alphas with ">=" means an exact tie moves the choice to the larger alpha.
        for i, s in enumerate(signed):
            if np.isfinite(s) and s >= best_score:
                best, best_score = i, s
        return best

    # -- prediction ----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("RidgeProbe is not fitted yet; call fit() first")

    def coef_path(self) -> np.ndarray:
        """Coefficients for every alpha in ``alphas_``, shape ``(n_alphas, d)``."""
        self._check_fitted()
        return (self._W @ (self._g[:, None] / (self._lam[:, None] + self.alphas_[None, :]))).T

    def intercept_path(self) -> np.ndarray:
        """Intercepts for every alpha in ``alphas_``, shape ``(n_alphas,)``."""
        return self.y_mean_ - self.coef_path() @ self.x_mean_

    def predict_path(self, X: np.ndarray) -> np.ndarray:
        """Predictions for every alpha, shape ``(n_alphas, n)``.

        ``(X - mean) @ W`` is formed once per block, then every alpha is a small matrix product,
        which is what makes scoring the whole grid cheap.
        """
        if not hasattr(self, "_W"):  # called from fit() before coef_ exists, so not _check_fitted
            raise RuntimeError("RidgeProbe is not fitted yet; call fit() first")
        X = _as_2d(X, "X")
        if X.shape[1] != self._W.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} features, the probe was fitted on {self._W.shape[0]}"
            )
        scale = self._g[:, None] / (self._lam[:, None] + self.alphas_[None, :])  # (r, A)
        out = np.empty((self.alphas_.size, X.shape[0]), dtype=np.float64)
        for a in _blocks(X.shape[0]):
            block = np.asarray(X[a : a + _CHUNK_ROWS], dtype=np.float64) - self.x_mean_
            out[:, a : a + _CHUNK_ROWS] = ((block @ self._W) @ scale).T
        return out + self.y_mean_

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions at the chosen alpha: ``X @ coef_ + intercept_``, streamed in blocks."""
        self._check_fitted()
        X = _as_2d(X, "X")
        if X.shape[1] != self.coef_.size:
            raise ValueError(
                f"X has {X.shape[1]} features, the probe was fitted on {self.coef_.size}"
            )
        out = np.empty(X.shape[0], dtype=np.float64)
        for a in _blocks(X.shape[0]):
            out[a : a + _CHUNK_ROWS] = (
                np.asarray(X[a : a + _CHUNK_ROWS], dtype=np.float64) @ self.coef_ + self.intercept_
            )
        return out
