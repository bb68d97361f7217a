"""The ridge coefficient path in torch, on the device the embeddings were made on.

Used by :class:`~pytest_plmtransfer.measure.heads.ridge.RidgeProbe` with ``backend="torch"``: the training
rows are streamed to the device in blocks, the Gram matrix (``d x d`` primal or ``n x n`` dual) and
``X^T y`` are accumulated in float64 there, and the whole alpha grid comes from one
``torch.linalg.eigh`` (cuSOLVER on a GPU). Only the ``(n_alphas, d)`` coefficients come back.
float64 throughout, so on CPU it agrees with the numpy path to rounding (tested to 1e-6).
"""

from __future__ import annotations

import numpy as np

_BLOCK_ROWS = 8192


def torch_coef_path(
    X: np.ndarray, yc: np.ndarray, alphas: np.ndarray, solver: str, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(x_mean (d,), coefs (d, n_alphas))`` for centred targets ``yc`` (see module doc)."""
    import torch

    dev = torch.device(device)
    n, d = X.shape
    f64 = torch.float64

    def rows(a: int, b: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(X[a:b])).to(dev, non_blocking=True).to(f64)

    with torch.inference_mode():
        total = torch.zeros(d, dtype=f64, device=dev)
        for a in range(0, n, _BLOCK_ROWS):
            total += rows(a, a + _BLOCK_ROWS).sum(dim=0)
        mean = total / n
        y = torch.from_numpy(np.asarray(yc, dtype=np.float64)).to(dev)
        grid = torch.from_numpy(np.asarray(alphas, dtype=np.float64)).to(dev)
        if solver == "primal":
            gram = torch.zeros(d, d, dtype=f64, device=dev)
            xty = torch.zeros(d, dtype=f64, device=dev)
            for a in range(0, n, _BLOCK_ROWS):
                block = rows(a, a + _BLOCK_ROWS) - mean
                gram.addmm_(block.T, block)
                xty += block.T @ y[a : a + _BLOCK_ROWS]
            lam, V = _eigh(gram)
            coefs = V @ ((V.T @ xty)[:, None] / (lam[:, None] + grid[None, :]))
        else:
            Xc = rows(0, n) - mean
            lam, U = _eigh(Xc @ Xc.T)
            coefs = Xc.T @ (U @ ((U.T @ y)[:, None] / (lam[:, None] + grid[None, :])))
        return mean.cpu().numpy(), coefs.cpu().numpy()


def _eigh(gram):
    import torch

    if not bool(torch.isfinite(gram).all()):
        raise ValueError("training features contain NaN or infinity")
    lam, vectors = torch.linalg.eigh(gram)
    return lam.clamp_min(0.0), vectors  # tiny negative eigenvalues of a PSD matrix are rounding
