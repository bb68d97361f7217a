"""Bootstrap intervals on test metrics, and paired bootstrap tests between two predictions.

**Resampling.** A resample draws the test set's units with replacement: sequences, or *proteins*
for per-residue tasks (residues of one protein are correlated: resampling residues would
understate the error). ``counts[i, b]`` is how many times unit ``i`` is drawn in resample ``b``, a
pure function of (test-set fingerprint, seed, B): drawn once per task and reused in any process
(intervals do not depend on ``-n`` or test order), and *paired* by construction: two models
scored on the same test set see the same resamples.

**Vectorized metrics.** Every metric is evaluated for all B resamples at once from the counts:
MSE, Pearson, accuracy and loss are weighted sums; Spearman and NDCG sort the predictions once
and turn the counts into within-resample ranks with one cumulative sum (ties, including a unit's
copies, get average ranks as ``scipy.stats.rankdata`` and sklearn's ``ndcg_score`` do). Any other
metric runs its :mod:`~pytest_plmtransfer.measure.metrics` table function on each resample
(exact, slow).

**Intervals.** Percentile intervals (the 2.5th and 97.5th percentiles of the B resampled metric
values), with the bootstrap standard error. Not BCa: its jackknife is n more evaluations of the
metric (8,309 Spearman correlations on gb1_two_vs_rest), more than the probe costs; for test sets
of a few hundred units or more the bootstrap distributions are close to symmetric.
``estimate`` is always the metric on the full test set.

**Paired tests.** :func:`paired_test` compares side A (e.g. pretrained) with side B (e.g. random
init) on the same resamples: ``d_b = metric_A(b) - metric_B(b)``. Seed replicates are combined
by a hierarchical bootstrap: in each resample each side's seeds are also drawn with replacement
and averaged, so the interval holds test-set and seed-to-seed noise. One-sided p-value for H1 "A
better than B by more than ``margin``": ``(1 + #{b: d_b (oriented) <= margin}) / (B + 1)`` -- the
inversion of the percentile interval; the reported interval is the two-sided ``1 - 2*level``
percentile interval, so ``p < level`` exactly when its lower (oriented) bound exceeds the margin.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from pytest_plmtransfer.measure import metrics as M
from pytest_plmtransfer.results.predictions import TestPredictions

DEFAULT_RESAMPLES = 1000
#: seed of the resampling (combined with the test set's fingerprint)
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
METHOD = "percentile"


def resample_counts(n_units: int, n_resamples: int, seed: int, fingerprint: str) -> np.ndarray:
    """``(n_units, n_resamples)`` float32 counts (exact small integers; float32 halves the memory
    traffic of every per-layer pass), seeded with ``seed`` and the fingerprint's first 64 bits."""
    if n_units < 1 or n_resamples < 1:
        raise ValueError("need at least one unit and one resample")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(fingerprint[:16], 16)]))
    counts = np.empty((n_units, n_resamples), dtype=np.float32)
    step = max(1, (1 << 22) // n_units)  # bounded memory for the index block
    for b0 in range(0, n_resamples, step):
        b1 = min(b0 + step, n_resamples)
        idx = rng.integers(0, n_units, size=(b1 - b0, n_units))
        flat = (idx + (np.arange(b1 - b0) * n_units)[:, None]).ravel()
        counts[:, b0:b1] = np.bincount(flat, minlength=(b1 - b0) * n_units).reshape(b1 - b0, n_units).T
    return counts


# ---------------------------------------------------------------------------- within-resample ranks


@dataclass
class _Groups:
    """Units sorted by a value, grouped by equal values (ties)."""

    order: np.ndarray  # ascending sort of units
    starts: np.ndarray  # start of each tie group in sorted order
    no_ties: bool

    @classmethod
    def of(cls, values: np.ndarray) -> _Groups:
        order = np.argsort(values, kind="stable")
        vs = values[order]
        starts = np.flatnonzero(np.r_[True, vs[1:] != vs[:-1]])
        return cls(order, starts, starts.size == vs.size)

    def sums(self, matrix: np.ndarray) -> np.ndarray:
        """Per group, the column sums of ``matrix`` (rows = units) -> ``(groups, B)``."""
        sorted_rows = matrix[self.order]
        if self.no_ties:
            return sorted_rows
        # cumulative sums at each group's end, differenced (np.add.reduceat along axis 0 is
        # several times slower on a C-ordered matrix)
        ends = _cumsum_rows(sorted_rows)[np.r_[self.starts[1:], sorted_rows.shape[0]] - 1]
        ends[1:] -= ends[:-1].copy()
        return ends


def _cumsum_rows(a: np.ndarray) -> np.ndarray:
    """``np.cumsum(a, axis=0)`` for a C-ordered ``(rows, B)`` matrix, one row-vector add per row:
    measured 6x faster than numpy's cumsum along axis 0, whose inner loop is strided."""
    out = np.empty_like(a)
    if a.shape[0]:
        out[0] = a[0]
        for i in range(1, a.shape[0]):
            np.add(out[i - 1], a[i], out=out[i])
    return out


def _group_ranks(totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(before, rank)``: copies drawn before each group and its average 1-based rank.

    Exact in float32: counts and ranks are integers or half-integers far below 2**23."""
    before = _cumsum_rows(totals)
    before -= totals
    return before, before + (totals + 1.0) / 2.0


def _column_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column, ``sum_i a[i, b] * b[i, b]`` accumulated in float64."""
    return np.einsum("gb,gb->b", a, b, dtype=np.float64)


def _discounts(n: int) -> np.ndarray:
    """``D[k]`` = sum of DCG discounts ``1/log2(j+2)`` over positions ``j < k``."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(n) + 2.0))])


def _group_discounts(D: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per tie group and resample, the discounts summed over the positions its copies take."""
    before, _ = _group_ranks(totals)
    return D[np.rint(before + totals).astype(np.int64)] - D[np.rint(before).astype(np.int64)]


# ---------------------------------------------------------------------------------------------


class Bootstrap:
    """The resamples of one test set and the target-side quantities every prediction shares."""

    def __init__(self, preds: TestPredictions, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> None:
        self.fingerprint = preds.fingerprint()
        self.units = preds.units
        self.n_units = preds.n_units
        self.unit_name = preds.unit_name
        self.n_resamples = int(n_resamples)
        self.seed = int(seed)
        self.counts = resample_counts(self.n_units, self.n_resamples, self.seed, self.fingerprint)
        self.target = preds.target

    # -- helpers -------------------------------------------------------------------------------

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        """``v @ counts`` in float64 (the counts are float32)."""
        return np.einsum("i,ib->b", np.asarray(v, dtype=np.float64), self.counts, dtype=np.float64)

    def _unit_sums(self, row_values: np.ndarray) -> np.ndarray:
        if self.units is None:
            return row_values
        cs = np.concatenate([[0.0], np.cumsum(row_values, dtype=np.float64)])
        return cs[self.units[1:]] - cs[self.units[:-1]]

    def _ratio(self, numer_rows: np.ndarray, denom_rows: np.ndarray) -> np.ndarray:
        num = self._matvec(self._unit_sums(numer_rows))
        den = self._matvec(self._unit_sums(denom_rows))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    @cached_property
    def _target_ranks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(counts * target rank, variance of target ranks)`` per resample."""
        y = np.asarray(self.target, dtype=np.float64)
        g = _Groups.of(y)
        W = self.counts
        totals = g.sums(W)
        _, rank = _group_ranks(totals)
        rank_units = np.empty_like(W)
        group_of_sorted = np.repeat(np.arange(g.starts.size), np.diff(np.r_[g.starts, y.size]))
        rank_units[g.order] = rank[group_of_sorted]
        n = float(self.n_units)
        weighted = W * rank_units
        return weighted, _column_dots(weighted, rank_units) / n - ((n + 1) / 2) ** 2

    # -- metrics -------------------------------------------------------------------------------

    def spearman(self, pred: np.ndarray) -> np.ndarray:
        W = self.counts
        n = float(self.n_units)
        weighted_y, var_y = self._target_ranks
        g = _Groups.of(np.asarray(pred, dtype=np.float64))
        totals = g.sums(W)
        _, rank = _group_ranks(totals)
        mean_sq = ((n + 1) / 2) ** 2
        var_p = _column_dots(totals * rank, rank) / n - mean_sq
        cov = _column_dots(g.sums(weighted_y), rank) / n - mean_sq
        tiny = 1e-9 * mean_sq
        ok = (var_p > tiny) & (var_y > tiny)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = cov / np.sqrt(np.where(ok, var_p * var_y, 1.0))
        return np.where(ok, np.clip(rho, -1.0, 1.0), np.nan)

    def pearson(self, pred: np.ndarray) -> np.ndarray:
        n = float(self.n_units)
        y = np.asarray(self.target, dtype=np.float64)
        p = np.asarray(pred, dtype=np.float64)
        y, p = y - y.mean(), p - p.mean()  # centred once: no cancellation in the moments
        my, mp = self._matvec(y) / n, self._matvec(p) / n
        vy = self._matvec(y * y) / n - my**2
        vp = self._matvec(p * p) / n - mp**2
        cov = self._matvec(y * p) / n - my * mp
        ok = (vy > 1e-12 * max(np.var(y), 1e-300)) & (vp > 1e-12 * max(np.var(p), 1e-300))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = cov / np.sqrt(np.where(ok, vy * vp, 1.0))
        return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)

    def mse(self, pred: np.ndarray) -> np.ndarray:
        err = (np.asarray(self.target, np.float64) - np.asarray(pred, np.float64)) ** 2
        return self._matvec(err) / float(self.n_units)

    @cached_property
    def _ideal_dcg(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ideal DCG of the raw targets, shift, constant)`` per resample."""
        y = np.asarray(self.target, dtype=np.float64)
        W = self.counts
        D = _discounts(self.n_units)
        g = _Groups.of(-y)  # descending targets; all members of a group share one target
        idcg = y[g.order][g.starts] @ _group_discounts(D, g.sums(W)).astype(np.float64)
        drawn = W > 0
        lo = np.where(drawn, y[:, None], np.inf).min(axis=0)
        hi = np.where(drawn, y[:, None], -np.inf).max(axis=0)
        shift = np.minimum(lo, 0.0)  # metrics.ndcg shifts by -min only when a target is < 0
        return idcg - shift * D[-1], shift, lo == hi

    @cached_property
    def _weighted_targets(self) -> np.ndarray:
        return self.counts.astype(np.float64) * np.asarray(self.target, dtype=np.float64)[:, None]

    def ndcg(self, pred: np.ndarray) -> np.ndarray:
        D = _discounts(self.n_units)
        idcg, shift, constant = self._ideal_dcg
        g = _Groups.of(-np.asarray(pred, dtype=np.float64))  # descending predictions
        totals = g.sums(self.counts)
        gains = g.sums(self._weighted_targets)
        disc = _group_discounts(D, totals)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_gain = np.where(totals > 0, gains / np.where(totals > 0, totals, 1.0), 0.0)
        dcg = _column_dots(mean_gain, disc) - shift * D[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)
        return np.where(constant, np.nan, out)

    def accuracy(self, probs: np.ndarray) -> np.ndarray:
        y = np.asarray(self.target)
        correct = (np.asarray(probs).argmax(axis=1) == y).astype(np.float64)
        return self._ratio(correct, np.ones_like(correct))

    def _confusions(self, probs: np.ndarray) -> np.ndarray:
        """``(B, K, K)`` (true, predicted) confusion matrices of every resample: each unit's pair
        counts weighted by the resample counts. Unseen test labels (< 0) are left out, as in :meth:`loss`."""
        p = np.asarray(probs)
        k = p.shape[1]
        y = np.asarray(self.target).astype(np.int64)
        seen = y >= 0
        unit = np.arange(y.size) if self.units is None else np.repeat(np.arange(self.n_units), np.diff(self.units))
        cell = (unit * k + np.where(seen, y, 0)) * k + p.argmax(axis=1)
        per_unit = np.bincount(cell[seen], minlength=self.n_units * k * k).reshape(self.n_units, k * k)
        return np.einsum("ik,ib->bk", per_unit.astype(np.float64), self.counts, dtype=np.float64).reshape(-1, k, k)

    def f1_macro(self, probs: np.ndarray) -> np.ndarray:
        """Mean F1 over the classes present or predicted in each resample, as
        :func:`metrics.per_class_metrics` (sklearn's ``average="macro"``)."""
        cm = self._confusions(probs)
        tp = np.diagonal(cm, axis1=1, axis2=2)
        denom = cm.sum(axis=1) + cm.sum(axis=2)  # 2tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), np.nan)
        present = np.isfinite(f1)
        with np.errstate(invalid="ignore"):
            return np.where(present.any(axis=1), np.nansum(f1, axis=1) / present.sum(axis=1), np.nan)

    def mcc(self, probs: np.ndarray) -> np.ndarray:
        """Multiclass Matthews correlation of each resample (sklearn's ``matthews_corrcoef``
        formula on the confusion matrix; 0 where it is undefined, as sklearn returns)."""
        cm = self._confusions(probs)
        t_sum, p_sum = cm.sum(axis=2), cm.sum(axis=1)
        n = cm.sum(axis=(1, 2))
        correct = np.trace(cm, axis1=1, axis2=2)
        cov_tp = correct * n - np.einsum("bk,bk->b", t_sum, p_sum)
        cov_pp = n**2 - np.einsum("bk,bk->b", p_sum, p_sum)
        cov_tt = n**2 - np.einsum("bk,bk->b", t_sum, t_sum)
        denom = cov_tt * cov_pp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, cov_tp / np.sqrt(np.where(denom > 0, denom, 1.0)), 0.0)

    def loss(self, probs: np.ndarray) -> np.ndarray:
        y = np.asarray(self.target).astype(np.int64)
        seen = y >= 0  # unseen test labels have no probability: left out of the loss, as in probe
        p = np.asarray(probs, dtype=np.float64)[np.arange(y.size), np.where(seen, y, 0)]
        nll = np.where(seen, -np.log(np.clip(p, M.PROBABILITY_CLIP, 1.0)), 0.0)
        return self._ratio(nll, seen.astype(np.float64))

    def _rows(self, units: np.ndarray) -> np.ndarray:
        """The rows (residues) of the given units, in order."""
        if self.units is None:
            return units
        starts = self.units[units]
        lengths = self.units[units + 1] - starts
        # start of each unit's block, repeated over the block, plus the position within it
        first = np.cumsum(lengths) - lengths
        return np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()))

    def _generic(self, fn: Callable[[np.ndarray, np.ndarray], float], pred: np.ndarray) -> np.ndarray:
        """``fn`` (a metric table entry's), one resample at a time (exact but slow)."""
        target, pred = np.asarray(self.target), np.asarray(pred)
        counts = np.rint(self.counts).astype(np.int64)
        out = np.empty(self.n_resamples)
        for b in range(self.n_resamples):
            rows = self._rows(np.repeat(np.arange(self.n_units), counts[:, b]))
            out[b] = fn(target[rows], pred[rows])
        return out

    def samples(self, metric: str, preds: TestPredictions) -> np.ndarray:
        """The metric on each of the B resamples, ``(B,)``."""
        if preds.fingerprint() != self.fingerprint:
            raise ValueError("predictions of a different test set than this bootstrap's")
        entry = M.metric_for(metric, preds.kind)
        # the vectorized regression metrics take rows as units: per-residue regression resamples proteins
        if entry.vectorized and (preds.kind != "regression" or preds.units is None):
            return getattr(self, entry.vectorized)(preds.pred)
        return self._generic(entry.fn, preds.pred)


# ---------------------------------------------------------------------------------------------

_BOOTSTRAPS: OrderedDict[tuple[str, int, int], Bootstrap] = OrderedDict()
_MAX_CACHED = 4


def bootstrap_for(preds: TestPredictions, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Bootstrap:
    """The (process-wide cached) bootstrap of ``preds``' test set: drawn once per task."""
    key = (preds.fingerprint(), int(n_resamples), int(seed))
    boot = _BOOTSTRAPS.pop(key, None) or Bootstrap(preds, n_resamples, seed)
    _BOOTSTRAPS[key] = boot  # the most recently used last
    while len(_BOOTSTRAPS) > _MAX_CACHED:
        _BOOTSTRAPS.popitem(last=False)
    return boot


def _full_metric(metric: str, preds: TestPredictions) -> float:
    """The metric on the whole test set (every residue of every protein for per-residue tasks)."""
    return float(M.metric_for(metric, preds.kind).fn(np.asarray(preds.target), np.asarray(preds.pred)))


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval of one test metric; stored in the ledger record as a dict."""

    metric: str
    estimate: float  # the metric on the full test set
    mean: float  # mean over resamples
    se: float  # bootstrap standard error
    low: float
    high: float
    level: float
    method: str
    n_resamples: int
    n_valid: int  # resamples where the metric is defined
    seed: int
    unit: str  # "sequence" or "protein"
    n_units: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def interval(
    preds: TestPredictions,
    metric: str,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """Percentile bootstrap interval of ``metric`` over the test units of ``preds``."""
    boot = bootstrap_for(preds, n_resamples, seed)
    samples = boot.samples(metric, preds)
    valid = samples[np.isfinite(samples)]
    if valid.size < 2:  # nothing to spread: the estimate only
        mean = se = low = high = float("nan")
    else:
        alpha = (1.0 - level) / 2.0
        mean, se = float(valid.mean()), float(valid.std(ddof=1))
        low, high = (float(q) for q in np.quantile(valid, [alpha, 1.0 - alpha]))
    return Interval(
        metric, _full_metric(metric, preds), mean, se, low, high, float(level), METHOD, boot.n_resamples,
        int(valid.size), boot.seed, boot.unit_name, boot.n_units,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedResult:
    metric: str
    difference: float  # mean over seeds of A minus mean over seeds of B, on the full test set
    low: float  # two-sided (1 - 2*level) percentile interval of the difference
    high: float
    interval_level: float
    p_value: float  # one-sided, H1: A better than B by more than margin
    level: float
    margin: float
    n_resamples: int
    seed: int
    n_seeds_a: int
    n_seeds_b: int
    unit: str
    n_units: int
    seeds_combined: str

    @property
    def significant(self) -> bool:
        return self.p_value < self.level

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        pct = f"{self.interval_level:.0%}"
        return (
            f"difference {self.difference:+.4f}, {pct} CI [{self.low:+.4f}, {self.high:+.4f}], "
            f"one-sided p={self.p_value:.3g} (paired bootstrap over {self.n_units} test "
            f"{self.unit}s, {self.n_resamples} resamples"
            + (f", {self.seeds_combined}" if self.n_seeds_a > 1 or self.n_seeds_b > 1 else "")
            + ")"
        )


def paired_test(
    a: Sequence[TestPredictions],
    b: Sequence[TestPredictions],
    metric: str,
    *,
    margin: float = 0.0,
    level: float = 0.05,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedResult:
    """Is A better than B on ``metric`` by more than ``margin``? (See the module docstring.) ``a``
    and ``b`` hold one prediction per seed replicate, at least one each, all on the same test set."""
    if not a or not b:
        raise ValueError("each side needs at least one set of predictions")
    if len({p.fingerprint() for p in (*a, *b)}) != 1:
        raise ValueError("the predictions were not made on the same test examples")
    boot = bootstrap_for(a[0], n_resamples, seed)
    sa = np.stack([boot.samples(metric, p) for p in a])  # (kA, B)
    sb = np.stack([boot.samples(metric, p) for p in b])
    ea = np.array([_full_metric(metric, p) for p in a])
    eb = np.array([_full_metric(metric, p) for p in b])
    nb = boot.n_resamples
    if len(a) > 1 or len(b) > 1:
        rng = np.random.default_rng(np.random.SeedSequence([boot.seed, 1, int(boot.fingerprint[:16], 16)]))
        ia = rng.integers(0, len(a), size=(len(a), nb))
        ib = rng.integers(0, len(b), size=(len(b), nb))
        ma = np.take_along_axis(sa, ia, axis=0).mean(axis=0)
        mb = np.take_along_axis(sb, ib, axis=0).mean(axis=0)
        how = "seeds resampled within each resample (hierarchical bootstrap)"
    else:
        ma, mb = sa[0], sb[0]
        how = "single seed"
    diff = ma - mb
    sign = -1.0 if M.lower_is_better(metric) else 1.0
    valid = np.isfinite(diff)
    d = diff[valid]
    if d.size < 2:  # no difference to resample: the estimate only
        low = high = p = float("nan")
    else:
        p = (1.0 + np.count_nonzero(sign * d <= margin)) / (d.size + 1.0)
        low, high = (float(q) for q in np.quantile(d, [level, 1.0 - level]))
    return PairedResult(
        metric, float(ea.mean() - eb.mean()), low, high, 1 - 2 * level, float(p), level, float(margin), nb,
        boot.seed, len(a), len(b), boot.unit_name, boot.n_units, how,
    )  # fmt: skip
