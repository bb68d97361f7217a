"""``--plm-threads N``: one bound for torch's intra-op pool and the BLAS/OpenMP pools (numpy,
scikit-learn), for shared CPUs. Process-wide, set once when the session starts."""

from __future__ import annotations

import os


def limit_threads(n: int) -> None:
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    # for pools started after this point (e.g. OpenMP in a library imported later)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)  # BLAS/OpenMP pools already loaded (numpy, scipy, sklearn)
    import torch

    torch.set_num_threads(n)
