"""Ridge regression whose whole alpha grid comes from one factorization of the training matrix.

For centred features ``Xc`` (n x d) and centred targets ``yc``, ridge with penalty ``alpha`` has

    coef(alpha) = (Xc^T Xc + alpha I)^-1 Xc^T yc                       ("primal", n >= d)
                = Xc^T (Xc Xc^T + alpha I)^-1 yc                       ("dual", n < d; push-through)

so every alpha solves ``(G + alpha I) z = b`` with the same symmetric Gram matrix ``G`` (the
smaller of the two) -- the one ``O(n d min(n, d))`` product is shared, and what remains is how to
solve for many shifts. Three ways, all exact (sklearn's ``cholesky`` normal equations, so results
agree to rounding):

* ``tridiagonal`` (grids of more than :data:`TRIDIAGONAL_COST_IN_CHOLESKY` alphas): reduce
  ``G = Q T Q^T`` once (LAPACK ``sytrd``, the cheaper half of an eigendecomposition); a shift leaves
  ``Q`` alone, so each alpha is an ``O(m)`` tridiagonal SPD solve (``ptsv``). ``Q`` is applied from
  its Householder reflectors (``ormqr``), never formed.
* ``cholesky``: one ``potrf`` per alpha: the cheapest for a few alphas.
* ``eigh``: ``G = V diag(lam) V^T`` (each alpha a diagonal rescaling); kept for comparison and used
  by the torch backend (torch has no tridiagonal reduction).

Backends: ``numpy`` (float64 LAPACK, on CPU) and ``torch`` (:mod:`.ridge_torch`, on the GPU the
embeddings were made on). The intercept is sklearn's: centre X and y, solve, then
``intercept = mean(y) - mean(X) @ coef``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits  # a scikit-learn dependency, so always present

from pytest_plmtransfer.measure import metrics as M

#: Default penalty grid: 10^-3 .. 10^6 in half-decade steps (19 values). Features are
#: standardized on train, so the Gram eigenvalues that carry signal are of order n (381 train rows
#: for gb1_two_vs_rest, 28,626 for aav_two_vs_many): ``alpha = 1e-3`` is effectively unpenalized
#: (the min-norm fit when n < d) and ``1e6`` shrinks even an eigen-direction of 3e4 by 97%, so the
#: grid spans the whole bias/variance path for every FLIP size (the common ``logspace(-3, 4)`` stops
#: short of the strong shrinkage the larger splits' correlated PLM dimensions need). Half-decade
#: spacing keeps the choice from being an artefact of a coarse grid; with one factorization the
#: extra points are nearly free.
DEFAULT_ALPHAS: np.ndarray = np.logspace(-3, 6, 19)

#: Validation metrics a ridge probe can select alpha by (a regression task's "loss" is its MSE).
RIDGE_SELECTION_METRICS: dict[str, M.Metric] = {
    **{f"val_{name}": M.REGRESSION[name] for name in ("spearman", "ndcg", "pearson", "mse")},
    "val_loss": M.REGRESSION["mse"],
}

# Rows per block when streaming a big (possibly memory-mapped, float32) matrix into float64.
_CHUNK_ROWS = 4096

#: BLAS threads for the factorizations. When other processes compete for the cores, OpenBLAS's
#: spinning threads make LAPACK's eigensolver collapse (a loaded 2-core machine: a 1280 x 1280
#: ``eigh`` took 1.3 s on 1 thread, 32 s on 2); on an idle machine a second thread saves little.
EIGH_THREADS = 1

#: A tridiagonal reduction costs about this many Cholesky factorizations of the same matrix (at
#: d = 1,280 on one thread: ``sytrd`` 0.26 s, ``potrf`` 0.03-0.07 s, ``eigh`` 0.55-0.8 s;
#: ``perf/test_ridge_sweep.py``); grids with at most this many alphas factorize per alpha instead.
TRIDIAGONAL_COST_IN_CHOLESKY = 5
RIDGE_METHODS = ("auto", "tridiagonal", "cholesky", "eigh")


def choose_method(n_alphas: int, method: str = "auto") -> str:
    if method not in RIDGE_METHODS:
        raise ValueError(f"unknown ridge method {method!r}; expected one of {RIDGE_METHODS}")
    if method != "auto":
        return method
    return "cholesky" if n_alphas <= TRIDIAGONAL_COST_IN_CHOLESKY else "tridiagonal"


def solve_shifted(gram: np.ndarray, rhs: np.ndarray, alphas: np.ndarray, method: str) -> np.ndarray:
    """``z_j = (gram + alphas[j] I)^-1 rhs`` for every alpha: an ``(m, n_alphas)`` float64 array.

    ``gram`` must be symmetric positive semi-definite (only its lower triangle is read) and every
    alpha > 0, so each shifted matrix is positive definite. ``gram`` may be overwritten.
    """
    m = gram.shape[0]
    b = np.asarray(rhs, dtype=np.float64).reshape(m, 1)
    out = np.empty((m, alphas.size), dtype=np.float64)
    with threadpool_limits(limits=EIGH_THREADS, user_api="blas"):
        if method == "eigh":
            lam, V = np.linalg.eigh(gram)
            _check_finite(lam)
            # eigh can return tiny negative eigenvalues for a PSD matrix; they are rounding noise
            lam = np.maximum(lam, 0.0)
            return V @ ((V.T @ b) / (lam[:, None] + alphas[None, :]))
        if method == "cholesky":
            for j, alpha in enumerate(alphas):
                shifted = gram.copy()
                shifted.flat[:: m + 1] += alpha
                factor, info = lapack.dpotrf(shifted, lower=1, clean=0, overwrite_a=1)
                if info != 0:
                    raise ValueError(_not_spd(info))
                x, info = lapack.dpotrs(factor, b, lower=1)
                out[:, j] = x[:, 0]
            return out
        if method != "tridiagonal":
            raise ValueError(f"unknown ridge method {method!r}")
        if m == 1:
            return b / (gram[0, 0] + alphas[None, :])
        lwork = int(lapack.dsytrd_lwork(m, lower=1)[0])
        reflectors, diag, offdiag, tau, info = lapack.dsytrd(gram, lower=1, lwork=lwork, overwrite_a=1)
        if info != 0 or not (np.all(np.isfinite(diag)) and np.all(np.isfinite(offdiag))):
            raise ValueError("training features contain NaN or infinity")
        # Q = diag(1, Q2), Q2 the product of sytrd's lower reflectors, stored as a QR
        # factorization's are: apply it with ormqr (this is LAPACK's ormtr for uplo='L').
        house = reflectors[1:, : m - 1]
        qtb = b.copy()
        ormqr_lwork = max(1, 64 * max(m, alphas.size))
        qtb[1:], _, info = lapack.dormqr("L", "T", house, tau, qtb[1:], ormqr_lwork)
        for j, alpha in enumerate(alphas):
            _, _, z, info = lapack.dptsv(diag + alpha, offdiag, qtb)
            if info != 0:
                raise ValueError(_not_spd(info))
            out[:, j] = z[:, 0]
        out[1:], _, info = lapack.dormqr("L", "N", house, tau, out[1:], ormqr_lwork)
        return out


def _not_spd(info: int) -> str:
    return (
        f"the shifted Gram matrix is not positive definite (LAPACK info {info}): the training "
        "features are likely not finite"
    )


def _blocks(X: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """``(rows, X[rows] in float64)`` block by block: a memmap is never read whole."""
    for a in range(0, X.shape[0], _CHUNK_ROWS):
        rows = slice(a, a + _CHUNK_ROWS)
        yield rows, np.asarray(X[rows], dtype=np.float64)


def _as_2d(X: object, name: str) -> np.ndarray:
    # np.asarray keeps an np.memmap a memmap (no copy); blocks are converted to float64 lazily.
    a = X if isinstance(X, np.ndarray) else np.asarray(X)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {a.shape}")
    return a


def _check_finite(a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError("training features contain NaN or infinity")


def _column_mean(X: np.ndarray) -> np.ndarray:
    total = np.zeros(X.shape[1], dtype=np.float64)
    for _, block in _blocks(X):
        total += block.sum(axis=0)
    return total / max(X.shape[0], 1)


class RidgeProbe:
    """Ridge regression with intercept, alpha chosen on validation from one factorization.

    ``alphas``: penalties (all > 0; default :data:`DEFAULT_ALPHAS`), stored sorted ascending.
    ``selection_metric``: one of :data:`RIDGE_SELECTION_METRICS`; ties go to the larger alpha (the
    simpler model), a ``nan`` score never wins, and if every score is ``nan`` the largest alpha is
    chosen. ``method``: one of :data:`RIDGE_METHODS` (``auto``: see :func:`choose_method`).
    ``backend``: ``numpy`` (CPU) or ``torch`` on ``device`` (e.g. ``"cuda"``).

    After :meth:`fit`: ``alpha_``, ``coef_`` (d,), ``intercept_``, ``alphas_``, ``val_scores_``
    (one per alpha, ``nan`` where undefined; ``None`` without validation data), ``solver_``
    (``"primal"`` or ``"dual"``), ``method_`` (the factorization used), ``x_mean_`` and ``y_mean_``.
    """

    def __init__(
        self,
        alphas: Sequence[float] | np.ndarray | None = None,
        selection_metric: str = "val_spearman",
        *,
        method: str = "auto",
        backend: str = "numpy",
        device: str = "cpu",
    ) -> None:
        # sorted ascending, duplicates dropped
        grid = np.unique(np.asarray(DEFAULT_ALPHAS if alphas is None else alphas, dtype=np.float64))
        if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ValueError(f"alphas must be finite and > 0, got {grid!r}")
        if selection_metric not in RIDGE_SELECTION_METRICS:
            raise ValueError(
                f"unknown selection metric {selection_metric!r} for a ridge probe; "
                f"expected one of {sorted(RIDGE_SELECTION_METRICS)}"
            )
        if backend not in ("numpy", "torch"):
            raise ValueError(f"unknown ridge backend {backend!r}; expected 'numpy' or 'torch'")
        choose_method(grid.size, method)  # validates the name
        self.alphas_ = grid
        self.selection_metric = selection_metric
        self.method = method
        self.backend = backend
        self.device = str(device)

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: object, X_val: np.ndarray | None = None, y_val: object | None = None) -> RidgeProbe:
        """Factorize once, score every alpha on ``(X_val, y_val)`` (required for more than one
        alpha), keep the best. A float32 or memmapped ``X`` is streamed in blocks in the primal case."""
        X = _as_2d(X, "X")
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        n, d = X.shape
        if y.size != n:
            raise ValueError(f"X has {n} rows but y has {y.size} values")
        if n == 0:
            raise ValueError("cannot fit a ridge probe on zero training rows")
        if not np.all(np.isfinite(y)):
            raise ValueError("training targets contain NaN or infinity")
        if self.alphas_.size > 1 and (X_val is None or y_val is None):
            raise ValueError(f"choosing among {self.alphas_.size} alphas needs validation data")

        self.y_mean_ = float(y.mean())
        yc = y - self.y_mean_
        self.solver_ = "primal" if n >= d else "dual"
        if self.backend == "torch":
            from pytest_plmtransfer.measure.heads.ridge_torch import torch_coef_path

            self.method_ = "eigh"
            self.x_mean_, coefs = torch_coef_path(X, yc, self.alphas_, self.solver_, self.device)
        else:
            self.method_ = choose_method(self.alphas_.size, self.method)
            self.x_mean_ = _column_mean(X)
            if self.solver_ == "primal":
                gram = np.zeros((d, d), dtype=np.float64)
                xty = np.zeros(d, dtype=np.float64)
                for rows, block in _blocks(X):
                    block = block - self.x_mean_  # not in place: a float64 X's block is a view of it
                    gram += block.T @ block  # numpy dispatches A.T @ A to a symmetric rank-k update
                    xty += block.T @ yc[rows]
                _check_finite(gram)
                coefs = solve_shifted(gram, xty, self.alphas_, self.method_)
            else:
                Xc = np.asarray(X, dtype=np.float64) - self.x_mean_
                gram = Xc @ Xc.T
                _check_finite(gram)
                coefs = Xc.T @ solve_shifted(gram, yc, self.alphas_, self.method_)
        self._coefs = np.ascontiguousarray(coefs.T)  # (n_alphas, d)

        self.val_scores_: np.ndarray | None = None
        if X_val is not None and y_val is not None:  # always, for more than one alpha (checked above)
            self.val_scores_ = self._score_path(X_val, y_val)
        self.choose(0 if self.val_scores_ is None or self.alphas_.size == 1 else self._select(self.val_scores_))
        return self

    def choose(self, index: int) -> None:
        """Keep the fit at ``alphas_[index]`` (for a selection rule of the caller's own)."""
        self.alpha_ = float(self.alphas_[index])
        self.coef_ = self._coefs[index].copy()
        self.intercept_ = float(self.y_mean_ - self.x_mean_ @ self.coef_)

    def _score_path(self, X_val: np.ndarray, y_val: object) -> np.ndarray:
        yv = np.asarray(y_val, dtype=np.float64).reshape(-1)
        preds = self.predict_path(X_val)
        if preds.shape[1] != yv.size:
            raise ValueError(f"X_val has {preds.shape[1]} rows but y_val has {yv.size} values")
        fn = RIDGE_SELECTION_METRICS[self.selection_metric].fn
        return np.array([fn(yv, p) for p in preds], dtype=np.float64)

    def _select(self, scores: np.ndarray) -> int:
        signed = scores if RIDGE_SELECTION_METRICS[self.selection_metric].higher_is_better else -scores
        best, best_score = self.alphas_.size - 1, -np.inf
        # Ascending alphas with ">=" means an exact tie moves the choice to the larger alpha.
        for i, s in enumerate(signed):
            if np.isfinite(s) and s >= best_score:
                best, best_score = i, s
        return best

    # -- prediction ----------------------------------------------------------------------------

    def _require_fit(self) -> None:
        # _coefs, not coef_: predict_path runs inside fit, before a choice
        if not hasattr(self, "_coefs"):
            raise RuntimeError("RidgeProbe is not fitted yet; call fit() first")

    def _blocks_of(self, X: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
        self._require_fit()
        X = _as_2d(X, "X")
        if X.shape[1] != self._coefs.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, the probe was fitted on {self._coefs.shape[1]}")
        return _blocks(X)

    def coef_path(self) -> np.ndarray:
        """Coefficients for every alpha in ``alphas_``, shape ``(n_alphas, d)``."""
        self._require_fit()
        return self._coefs.copy()

    def predict_path(self, X: np.ndarray) -> np.ndarray:
        """Predictions for every alpha, shape ``(n_alphas, n)``, streamed in blocks."""
        out = np.empty((self.alphas_.size, len(X)), dtype=np.float64)
        for rows, block in self._blocks_of(X):
            out[:, rows] = ((block - self.x_mean_) @ self._coefs.T).T
        return out + self.y_mean_

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions at the chosen alpha: ``X @ coef_ + intercept_``, streamed in blocks."""
        out = np.empty(len(X), dtype=np.float64)
        for rows, block in self._blocks_of(X):
            out[rows] = block @ self.coef_ + self.intercept_
        return out


def pick_model(
    train_true: np.ndarray, train_path: np.ndarray, val_true: np.ndarray, val_path: np.ndarray
) -> int | None:
    """The authors' alpha rule (microsoft/protein-transfer 8aed4087, scr/model/run_sklearn.py:584-648).

    Alphas are visited in grid order; one replaces the kept one only when its training MSE is
    strictly lower **and** its validation NDCG strictly higher than the kept one's (start: MSE
    infinite, NDCG -1), so the first alpha is always taken and a later one must win on both.
    ``train_path`` / ``val_path`` are ``(n_alphas, n)`` predictions; the targets are passed as the
    authors' code scores them (raw, while the predictions are in standardized-target units).
    None when no alpha qualifies (their code then fails on ``None.predict``).
    """
    best, best_mse, best_ndcg = None, np.inf, -1.0
    for i in range(len(train_path)):
        mse, ndcg = M.mse(train_true, train_path[i]), M.ndcg(val_true, val_path[i])
        if mse < best_mse and ndcg > best_ndcg:
            best, best_mse, best_ndcg = i, mse, ndcg
    return best
