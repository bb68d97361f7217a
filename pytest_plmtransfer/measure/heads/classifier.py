"""A linear softmax classifier trained with Adam and early stopping, streaming its inputs.

Per-residue tasks can have millions of rows (SS3: ~3M residues x 512 features, ~6 GB of float32
per layer), usually memory-mapped. Features are read through :class:`RowView`, which standardizes
blocks of rows on the fly, and training walks the data in chunks of at most ``chunk_bytes``. A
training (or validation) set that fits in one chunk -- every per-sequence task -- is read once and
kept, and each epoch is a true random permutation; otherwise each epoch visits the chunks in a
random order and shuffles rows within each (the usual out-of-core compromise).

Determinism: weights start at zero (the problem is convex; no dependence on torch's global RNG)
and every permutation comes from a ``torch.Generator`` seeded with ``seed``: the same inputs, seed
and thread count give bit-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

#: Adam's usual step size. On an SCL-shaped synthetic problem (9,500 x 1,280 standardized features,
#: 10 classes, weak signal) lr 1e-2 / 3e-3 overfit within 1-2 epochs (best val loss 2.10 / 1.77),
#: 1e-3 reached 1.737 at epoch 6 and 3e-4 only 1.731 for 3x the epochs, a cost a layer sweep
#: multiplies by every layer.
DEFAULT_LR = 1e-3
#: Small enough for a few dozen steps per epoch on the smallest classification split (SCL,
#: ~9.5k proteins), large enough that per-step overhead does not dominate on millions of residues.
DEFAULT_BATCH_SIZE = 256
#: A linear probe's step costs its dozen tensor operations' overhead, not arithmetic, and
#: per-residue tasks (SS3: ~2.3M training residues) take ``rows / batch`` steps per epoch. On
#: one-hot SS3 (412k residues): batch 256 -> Q3 0.4979 in 12-14 s, batch 1024 -> Q3 0.4953 in
#: 4.3 s, both at best epoch 1 of 6 (``perf/test_softmax_probe.py``).
DEFAULT_BATCH_SIZE_PER_RESIDUE = 1024
#: A ceiling, not a target: early stopping normally ends training long before it.
DEFAULT_MAX_EPOCHS = 100
#: Epochs without a validation-loss improvement before stopping; mini-batch noise makes single
#: epochs non-monotone, and 5 tolerates that without spending long past the optimum.
DEFAULT_PATIENCE = 5
#: An epoch resets the patience counter only if it lowers the best validation loss by more than
#: this (nats), so a tail of negligible gains cannot run training to ``max_epochs`` (the lowest
#: validation loss's weights are still the ones restored).
DEFAULT_MIN_DELTA = 1e-4
#: Largest block of standardized float32 features held in memory at once.
DEFAULT_CHUNK_BYTES = 256 * 2**20
#: torch intra-op threads while fitting/predicting. A 256-row batch is too small to gain from
#: parallelism, and when other processes compete for the cores torch's spinning threads make it
#: 10-20x slower (a loaded 2-core machine: 0.67 s on 1 thread vs 12.4 s on 2 for the same fit).
#: One thread also makes the result independent of the machine's core count.
DEFAULT_NUM_THREADS = 1


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (``None``: leave it alone)."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _with_ones(x: torch.Tensor) -> torch.Tensor:
    """``[x | 1]``, kept on the tensor: a training set held for every epoch is augmented once."""
    cached = getattr(x, "_plmtransfer_with_ones", None)
    if cached is None:
        cached = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)
        setattr(x, "_plmtransfer_with_ones", cached)  # noqa: B010 (a tensor has no such attribute declared)
    return cached


class _Adam:
    """``torch.optim.Adam``'s default update (L2 weight decay added to the gradient, bias-corrected
    moments, eps outside the square root), hand-written because constructing ``torch.optim.Adam``
    imports ``torch._dynamo``: 2-4 s per process, more than fitting a typical probe."""

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        self.t += 1
        b1, b2 = self.betas
        bias1 = 1.0 - b1**self.t
        bias2_sqrt = math.sqrt(1.0 - b2**self.t)
        # foreach ops: one dispatch per operation for all parameters (weight and bias) instead
        # of one per parameter; same arithmetic as the per-tensor loop.
        grads = list(grads)
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        torch._foreach_lerp_(self.m, grads, 1.0 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1.0 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, value=-self.lr / bias1)


@dataclass
class RowView:
    """Selected rows of a 2-D array (a memmap is never copied whole) as float32
    ``(x - mean) * scale``. ``rows`` picks and orders rows (``None``: all); keep it ascending for
    memmaps so reads are sequential."""

    X: np.ndarray
    rows: np.ndarray | None = None
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.X.ndim != 2:
            raise ValueError(f"features must be 2-D (rows, features), got shape {self.X.shape}")
        if self.rows is not None:
            self.rows = np.asarray(self.rows, dtype=np.int64).reshape(-1)
        d = self.X.shape[1]
        # Pre-cast once: float32 arithmetic on blocks halves memory traffic against float64.
        self._mean32 = None if self.mean is None else np.asarray(self.mean, np.float32).reshape(d)
        self._scale32 = None if self.scale is None else np.asarray(self.scale, np.float32).reshape(d)

    def __len__(self) -> int:
        return self.X.shape[0] if self.rows is None else int(self.rows.size)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the view, standardized, as a C-contiguous float32 array."""
        if self.rows is None:
            # A slice is a view into X (or the memmap): copy, since we modify it in place.
            out = np.array(self.X[start:stop], dtype=np.float32, order="C", copy=True)
        else:
            # Fancy indexing already made a fresh array, so casting without a copy is safe.
            out = np.asarray(self.X[self.rows[start:stop]], dtype=np.float32, order="C")
        if self._mean32 is not None:
            out -= self._mean32
        if self._scale32 is not None:
            out *= self._scale32
        return out

    def blocks(self, rows_per_block: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, block)`` over the view in order."""
        n = len(self)
        for a in range(0, n, rows_per_block):
            b = min(a + rows_per_block, n)
            yield a, b, self.block(a, b)


def _as_view(X: RowView | np.ndarray) -> RowView:
    if isinstance(X, RowView):
        return X
    # np.asarray would turn a memmap into a plain ndarray view; either way nothing is copied.
    return RowView(X if isinstance(X, np.ndarray) else np.asarray(X))


class SoftmaxProbe:
    """Multinomial logistic regression (one linear layer + softmax) trained by mini-batch Adam.

    Early stopping watches the validation loss (the training criterion, class-weighted with
    ``class_weight``) after every epoch, epoch 0 being the all-zero model: training stops after
    ``patience`` epochs without an improvement over ``min_delta`` or at ``max_epochs``, and the
    lowest validation loss's weights are restored.

    After :meth:`fit`: ``epochs_run_``, ``best_epoch_`` (0: no epoch beat the initial model),
    ``best_val_loss_``, ``history_`` (``val_loss`` and running-mean ``train_loss`` per epoch, index
    0 the initial model), ``class_weight_`` (or ``None``), ``weight_`` (K, d) and ``bias_`` (K,).
    """

    def __init__(
        self,
        n_classes: int,
        *,
        lr: float = DEFAULT_LR,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_epochs: int = DEFAULT_MAX_EPOCHS,
        patience: int = DEFAULT_PATIENCE,
        min_delta: float = DEFAULT_MIN_DELTA,
        weight_decay: float = 0.0,
        class_weight: Literal["balanced"] | Sequence[float] | np.ndarray | None = None,
        seed: int = 0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        device: str | torch.device = "cpu",
        num_threads: int | None = DEFAULT_NUM_THREADS,
        engine: Literal["fused", "autograd"] = "fused",
    ) -> None:
        if engine not in ("fused", "autograd"):
            raise ValueError(f"engine must be 'fused' or 'autograd', got {engine!r}")
        if n_classes < 2:
            raise ValueError(f"a softmax probe needs at least 2 classes, got {n_classes}")
        if batch_size < 1 or max_epochs < 0 or patience < 1 or lr <= 0:
            raise ValueError("batch_size >= 1, max_epochs >= 0, patience >= 1 and lr > 0 required")
        self.n_classes = int(n_classes)
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.max_epochs = int(max_epochs)
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.weight_decay = float(weight_decay)
        self.class_weight = class_weight
        self.seed = int(seed)
        self.chunk_bytes = int(chunk_bytes)
        self.device = torch.device(device)
        self.num_threads = num_threads
        self.engine = engine

    # -- helpers -------------------------------------------------------------------------------

    def _rows_per_chunk(self, n_features: int) -> int:
        rows = max(self.chunk_bytes // (4 * max(n_features, 1)), self.batch_size)
        # Whole batches per chunk, so only the last batch of an epoch can be short.
        return max(rows // self.batch_size, 1) * self.batch_size

    def _resolve_class_weight(self, y: np.ndarray) -> torch.Tensor | None:
        cw = self.class_weight
        if cw is None:
            return None
        if isinstance(cw, str):
            if cw != "balanced":
                raise ValueError(f"class_weight must be None, 'balanced' or weights, got {cw!r}")
            counts = np.bincount(y, minlength=self.n_classes).astype(np.float64)
            # sklearn's "balanced": n / (K * count); a class absent from training gets weight 0.
            w = np.where(counts > 0, y.size / (self.n_classes * np.maximum(counts, 1)), 0.0)
        else:
            w = np.asarray(cw, dtype=np.float64).reshape(-1)
            if w.size != self.n_classes or np.any(w < 0):
                raise ValueError(f"class_weight needs {self.n_classes} non-negative weights")
        return torch.as_tensor(w, dtype=torch.float32, device=self.device)

    def _labels(self, y: object, n: int, what: str) -> np.ndarray:
        arr = np.asarray(y).reshape(-1)
        if arr.size != n:
            raise ValueError(f"{what}: {n} feature rows but {arr.size} labels")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what}: labels must be integer class indices")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_classes):
            raise ValueError(f"{what}: labels must lie in [0, {self.n_classes})")
        return arr

    def _load(self, view: RowView, y: np.ndarray, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(view.block(a, b)).to(self.device)
        t = torch.from_numpy(np.ascontiguousarray(y[a:b])).to(self.device)
        return x, t

    def _eval_loss(self, view: RowView, y: np.ndarray, cache: list | None, weight: torch.Tensor | None) -> float:
        """Mean (weighted) cross-entropy of the current model over a whole view."""
        total, norm = 0.0, 0.0
        parts = cache if cache is not None else self._chunks_of(view, y)
        with torch.inference_mode():
            for x, t in parts:
                logits = self._linear(x)
                total += float(F.cross_entropy(logits, t, weight=weight, reduction="sum"))
                norm += float(weight[t].sum()) if weight is not None else float(t.numel())
        return total / norm if norm > 0 else float("nan")

    def _chunks_of(self, view: RowView, y: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        step = self._rows_per_chunk(view.n_features)
        for a in range(0, len(view), step):
            yield self._load(view, y, a, min(a + step, len(view)))

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self._weight, self._bias)

    # -- fitting -------------------------------------------------------------------------------

    def fit(
        self, X_train: RowView | np.ndarray, y_train: object, X_val: RowView | np.ndarray, y_val: object
    ) -> SoftmaxProbe:
        """Train on ``(X_train, y_train)``, early-stopping on ``(X_val, y_val)`` (arrays or
        :class:`RowView` s; class indices)."""
        with _torch_threads(self.num_threads):
            return self._fit(_as_view(X_train), y_train, _as_view(X_val), y_val)

    def _fit(self, train: RowView, y_train: object, val: RowView, y_val: object) -> SoftmaxProbe:
        if train.n_features != val.n_features:
            raise ValueError("train and validation features differ in width")
        ytr = self._labels(y_train, len(train), "train")
        yva = self._labels(y_val, len(val), "validation")
        if len(train) == 0 or len(val) == 0:
            raise ValueError("a softmax probe needs at least one training and one validation row")
        d = train.n_features
        weight = self._resolve_class_weight(ytr)
        self.class_weight_ = None if weight is None else weight.cpu().numpy().astype(np.float64)

        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed)
        if self.engine == "fused":
            # weight and bias as views of one (K, d+1) tensor, so the fused step updates both
            # with single operations (features get a ones column to match, see _fused_pass)
            self._packed = torch.zeros(self.n_classes, d + 1, device=self.device)
            self._weight, self._bias = self._packed[:, :d], self._packed[:, d]
            opt = _Adam([self._packed], lr=self.lr, weight_decay=self.weight_decay)
        else:
            self._weight = torch.zeros(self.n_classes, d, device=self.device, requires_grad=True)
            self._bias = torch.zeros(self.n_classes, device=self.device, requires_grad=True)
            opt = _Adam([self._weight, self._bias], lr=self.lr, weight_decay=self.weight_decay)

        step = self._rows_per_chunk(d)
        n_chunks = math.ceil(len(train) / step)
        train_cache = [self._load(train, ytr, 0, len(train))] if n_chunks == 1 else None
        val_cache = [self._load(val, yva, 0, len(val))] if len(val) <= step else None

        best_loss = self._eval_loss(val, yva, val_cache, weight)
        best_state = (self._weight.detach().clone(), self._bias.detach().clone())
        best_epoch, reference, waited = 0, best_loss, 0
        history_val, history_train = [best_loss], [float("nan")]
        epoch = 0
        for epoch in range(1, self.max_epochs + 1):
            seen, running = 0, 0.0
            for c in torch.randperm(n_chunks, generator=gen).tolist():
                if train_cache is not None:
                    x_all, t_all = train_cache[0]
                else:
                    a = c * step
                    x_all, t_all = self._load(train, ytr, a, min(a + step, len(train)))
                order = torch.randperm(x_all.shape[0], generator=gen).to(self.device)
                if self.engine == "fused":
                    part, count = self._fused_pass(x_all, t_all, order, weight, opt)
                    running += part
                    seen += count
                    continue
                for s in range(0, x_all.shape[0], self.batch_size):
                    idx = order[s : s + self.batch_size]
                    xb, tb = x_all[idx], t_all[idx]
                    loss = F.cross_entropy(self._linear(xb), tb, weight=weight)
                    opt.step(torch.autograd.grad(loss, [self._weight, self._bias]))
                    running += float(loss.detach()) * tb.numel()
                    seen += tb.numel()
            history_train.append(running / max(seen, 1))
            val_loss = self._eval_loss(val, yva, val_cache, weight)
            history_val.append(val_loss)
            if val_loss < best_loss:  # restore the true minimum, however small the gain
                best_loss, best_epoch = val_loss, epoch
                best_state = (self._weight.detach().clone(), self._bias.detach().clone())
            if val_loss < reference - self.min_delta:
                reference, waited = val_loss, 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        with torch.no_grad():
            self._weight.copy_(best_state[0])
            self._bias.copy_(best_state[1])
        self._weight.requires_grad_(False)
        self._bias.requires_grad_(False)
        self.epochs_run_ = epoch
        self.best_epoch_ = best_epoch
        self.best_val_loss_ = float(best_loss)
        self.history_ = {"val_loss": history_val, "train_loss": history_train}
        return self

    @torch.no_grad()
    def _fused_pass(
        self, x_all: torch.Tensor, t_all: torch.Tensor, order: torch.Tensor, weight: torch.Tensor | None, opt: _Adam
    ) -> tuple[float, int]:
        """One pass of mini-batch Adam over ``x_all`` in ``order``: the autograd path's batches,
        loss and update, with the gradient written out (``dL/dlogits = w_t (softmax - onehot) /
        sum(w_t)``). Per-residue tasks take hundreds of thousands of steps of tiny matrices, where
        autograd's per-step bookkeeping dominated: here rows are permuted once per pass with a ones
        column appended, so logits and the packed ``[W | b]`` gradient are one product each
        (``perf/test_softmax_probe.py``). Returns (sum of per-row losses, rows)."""
        n, K = x_all.shape[0], self.n_classes
        xs = _with_ones(x_all).index_select(0, order)
        ts = t_all.index_select(0, order)
        target = torch.zeros(n, K, dtype=x_all.dtype, device=x_all.device)
        target.scatter_(1, ts[:, None], 1.0)
        if weight is not None:
            row_w = weight.index_select(0, ts)
            target.mul_(row_w[:, None])  # rows of w_t * onehot: the weighted targets
        P = self._packed
        grad = torch.empty_like(P)
        running = torch.zeros((), dtype=torch.float64, device=self.device)
        total = 0.0
        for s in range(0, n, self.batch_size):
            xb, yb = xs[s : s + self.batch_size], target[s : s + self.batch_size]
            logp = torch.log_softmax(xb.mm(P.t()), dim=1)
            # loss numerator: sum_i w_i * -log p_i(t_i)  (yb already carries w_i)
            picked = torch.vdot(logp.view(-1), yb.reshape(-1))
            if weight is None:
                norm = float(xb.shape[0])
            else:
                norm = float(row_w[s : s + self.batch_size].sum())
            # dL/dlogits = (w_i * p_i - w_i * onehot_i) / norm, with w_i = 1 unweighted
            probs = logp.exp_()
            if weight is not None:
                probs.mul_(row_w[s : s + self.batch_size, None])
            probs.sub_(yb)
            torch.mm(probs.t(), xb, out=grad).div_(norm)
            opt.step([grad])
            # the autograd path records loss * rows per batch; same here
            running.sub_(picked * (xb.shape[0] / norm))
            total += xb.shape[0]
        return float(running), int(total)

    # -- prediction ----------------------------------------------------------------------------

    @property
    def weight_(self) -> np.ndarray:
        return self._weight.detach().cpu().numpy().copy()

    @property
    def bias_(self) -> np.ndarray:
        return self._bias.detach().cpu().numpy().copy()

    def iter_predict_proba(self, X: RowView | np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, float64 probabilities (rows, K))`` block by block: metrics over millions
        of rows without holding them all."""
        if not hasattr(self, "epochs_run_"):
            raise RuntimeError("SoftmaxProbe is not fitted yet; call fit() first")
        view = _as_view(X)
        step = self._rows_per_chunk(view.n_features)
        for a, b, block in view.blocks(step):
            # Per block, not around the loop: the caller runs between yields with its own threads.
            with _torch_threads(self.num_threads), torch.inference_mode():
                logits = self._linear(torch.from_numpy(block).to(self.device))
                # Softmax in float64 so tiny probabilities do not round to 0 before the log.
                probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
            yield a, b, probs

    def predict_proba(self, X: RowView | np.ndarray) -> np.ndarray:
        """Class probabilities, float64 ``(n, K)``."""
        view = _as_view(X)
        out = np.empty((len(view), self.n_classes), dtype=np.float64)
        for a, b, p in self.iter_predict_proba(view):
            out[a:b] = p
        return out

    def predict(self, X: RowView | np.ndarray) -> np.ndarray:
        """Most probable class index per row."""
        return self.predict_proba(X).argmax(axis=1)
