"""Metrics for the probes: regression (MSE, Spearman, Pearson, NDCG) and classification
(cross-entropy, accuracy, macro one-vs-rest ROC-AUC, per-class precision/recall/F1), and the one
table (:data:`REGRESSION`, :data:`CLASSIFICATION`) that says, per test metric, its function on a
test set's stored predictions, which way is better, and how the bootstrap scores it.

Inputs are 1-D (regression, labels) or 2-D ``(n, n_classes)`` (probabilities) array-likes,
converted to float64 (int64 for labels). A metric undefined for its input returns ``nan`` rather
than raising, so one degenerate layer (a random-init layer whose predictions are all equal) cannot
crash a sweep:

- fewer than two points (correlations, NDCG) or an empty input (everything);
- constant predictions or targets: Spearman and Pearson (scipy also gives ``nan``, with a warning);
- NDCG with constant targets: every ordering is "ideal", so the score says nothing about the
  predictions (sklearn reports 1.0, or 0.0 when the targets are all 0 -- a 0/0);
- any non-finite value: correlations and NDCG (sklearn's ``ndcg_score`` raises; MSE propagates it);
- ROC-AUC when no class of the split has both positives and negatives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Probabilities are clipped to [PROBABILITY_CLIP, 1] before the log, as sklearn's ``log_loss``
#: used to do, so one confidently wrong prediction gives a large but finite loss.
PROBABILITY_CLIP = 1e-15


def _pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    t, p = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (y_true, y_pred))
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    return t, p


# --------------------------------------------------------------------------------------- regression


def mse(y_true: object, y_pred: object) -> float:
    """Mean squared error in the targets' units; ``nan`` for an empty input."""
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return float("nan")
    return float(np.mean((t - p) ** 2))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation that returns nan (no warning) when either side is constant."""
    if a.size < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt(np.dot(a, a) * np.dot(b, b))
    if denom == 0.0 or not np.isfinite(denom):
        return float("nan")
    # Rounding can push |r| a hair above 1 for perfectly (anti)correlated inputs.
    return float(np.clip(np.dot(a, b) / denom, -1.0, 1.0))


def pearson(y_true: object, y_pred: object) -> float:
    """Pearson correlation; ``nan`` if either input is constant or has fewer than 2 points."""
    return _correlation(*_pair(y_true, y_pred))


def spearman(y_true: object, y_pred: object) -> float:
    """Spearman rank correlation: the Pearson correlation of average ranks, scipy's definition;
    done here so constant inputs give ``nan`` without scipy's ``ConstantInputWarning``."""
    from scipy.stats import rankdata  # imported when used: this module is imported by light readers

    t, p = _pair(y_true, y_pred)
    if t.size < 2 or not (np.isfinite(t).all() and np.isfinite(p).all()):
        return float("nan")
    return _correlation(rankdata(t), rankdata(p))


def ndcg(y_true: object, y_pred: object) -> float:
    """NDCG of the predicted ranking, the whole set as one query: sklearn's
    ``ndcg_score(y_true[None, :], y_pred[None, :])`` (no cut-off, tied predictions averaged).

    sklearn requires non-negative relevances and FLIP targets can be negative (log-fitness), so
    when any target is negative the targets are shifted by ``-min(y_true)`` (the lowest a gain of
    0). NDCG is not shift-invariant: numbers are comparable only under the same convention.
    """
    from sklearn.metrics import ndcg_score

    t, p = _pair(y_true, y_pred)
    if t.size < 2 or not (np.isfinite(t).all() and np.isfinite(p).all()):
        return float("nan")
    lo = t.min()
    if lo == t.max():
        return float("nan")
    if lo < 0:
        t = t - lo
    return float(ndcg_score(t[None, :], p[None, :]))


# ----------------------------------------------------------------------------------- classification


def _probs_labels(probs: object, y_true: object) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true).reshape(-1)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be 2-D (n, n_classes), got shape {p.shape}")
    if p.shape[0] != y.size:
        raise ValueError(f"{p.shape[0]} rows of probabilities but {y.size} labels")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError("labels must be integer class indices")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"label indices must lie in [0, {p.shape[1]})")
    return p, y


def cross_entropy(probs: object, y_true: object) -> float:
    """Mean negative log-probability (natural log) of the true class, probabilities clipped at
    :data:`PROBABILITY_CLIP` so the result is finite."""
    p, y = _probs_labels(probs, y_true)
    if y.size == 0:
        return float("nan")
    picked = p[np.arange(y.size), y]
    return float(-np.mean(np.log(np.clip(picked, PROBABILITY_CLIP, 1.0))))


def accuracy(probs_or_pred: object, y_true: object) -> float:
    """Fraction correct. Accepts ``(n, n_classes)`` probabilities (argmax is taken; ties go to
    the lowest class index) or a 1-D vector of predicted class indices; ``nan`` if empty."""
    a = np.asarray(probs_or_pred)
    y = np.asarray(y_true).reshape(-1)
    pred = a.argmax(axis=1) if a.ndim == 2 else a.reshape(-1)
    if pred.size != y.size:
        raise ValueError(f"{pred.size} predictions but {y.size} labels")
    if y.size == 0:
        return float("nan")
    return float(np.mean(pred == y))


def macro_ovr_auc(probs: object, y_true: object) -> float:
    """Macro-averaged one-vs-rest ROC-AUC that tolerates classes missing from the split.

    sklearn's ``roc_auc_score(multi_class="ovr")`` refuses a split in which some trained class
    never occurs. Here each class ``k`` with at least one positive and one negative in the split
    is scored as ``y == k`` against ``probs[:, k]`` and the unweighted mean returned: sklearn's
    macro OvR AUC when every class is present, the binary AUC for two classes.
    """
    from sklearn.metrics import roc_auc_score

    p, y = _probs_labels(probs, y_true)
    if y.size == 0 or not np.isfinite(p).all():
        return float("nan")
    aucs = []
    for k in range(p.shape[1]):
        positive = y == k
        n_pos = int(positive.sum())
        if n_pos == 0 or n_pos == y.size:
            continue
        aucs.append(roc_auc_score(positive, p[:, k]))
    return float(np.mean(aucs)) if aucs else float("nan")


def per_class_prf(pred: object, y_true: object, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision tp/(tp+fp) (``nan``: never predicted), recall tp/(tp+fn) (``nan``:
    never occurs) and F1 2tp/(2tp+fp+fn) (``nan`` only when neither occurs nor predicted)."""
    pr = np.asarray(pred).reshape(-1).astype(np.int64, copy=False)
    y = np.asarray(y_true).reshape(-1).astype(np.int64, copy=False)
    if pr.size != y.size:
        raise ValueError(f"{pr.size} predictions but {y.size} labels")
    # One bincount over (true, pred) pairs gives the confusion matrix without a Python loop.
    cm = np.bincount(y * n_classes + pr, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    return precision, recall, f1


def classification_metrics(probs: object, y_true: object, prefix: str) -> dict[str, float]:
    """``{prefix_loss, prefix_accuracy, prefix_auc}`` for one split."""
    p, y = _probs_labels(probs, y_true)
    return {
        f"{prefix}_{name}": fn(p, y)
        for name, fn in (("loss", cross_entropy), ("accuracy", accuracy), ("auc", macro_ovr_auc))
    }


def per_class_metrics(probs: object, y_true: object, labels: Sequence[str], prefix: str) -> dict[str, float]:
    """``prefix_{f1,precision,recall}_<label>`` per class, ``prefix_f1_macro`` (mean F1 over classes
    present or predicted, sklearn's ``average="macro"``) and ``prefix_mcc``: on imbalanced tasks
    (FLIP's Bind: ~89% of residues bind nothing) these discriminate where accuracy does not."""
    from sklearn.metrics import matthews_corrcoef

    p, y = _probs_labels(probs, y_true)
    pred = p.argmax(axis=1)
    precision, recall, f1 = per_class_prf(pred, y, len(labels))
    out: dict[str, float] = {}
    if len(y):
        out[f"{prefix}_f1_macro"] = float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")
        out[f"{prefix}_mcc"] = float(matthews_corrcoef(y, pred))
    for k, label in enumerate(labels):
        out[f"{prefix}_f1_{label}"] = float(f1[k])
        out[f"{prefix}_precision_{label}"] = float(precision[k])
        out[f"{prefix}_recall_{label}"] = float(recall[k])
    return out


# --------------------------------------------------------------------------------- the metric table


@dataclass(frozen=True)
class Metric:
    """One test metric, named without the split prefix (``spearman`` of ``test_spearman``).

    ``fn(target, prediction)`` scores a test set's stored predictions (classification: class
    indices and probabilities); ``vectorized`` names the
    :class:`~pytest_plmtransfer.measure.stats.Bootstrap` method that scores all resamples at once
    (``None``: ``fn`` on each resample, exact but slow).
    """

    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    vectorized: str | None = None


def _seen(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    """``fn(probs, labels)`` on the test labels seen in training: an unseen label (< 0) has no
    probability, so it is left out of the loss, the AUC and the per-class metrics, as in the probe."""
    return lambda target, probs: fn(probs[target >= 0], target[target >= 0])


def _per_class(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def score(probs: np.ndarray, target: np.ndarray) -> float:
        labels = [str(k) for k in range(probs.shape[1])]
        return per_class_metrics(probs, target, labels, "m").get(f"m_{name}", float("nan"))

    return _seen(score)


#: regression test metrics (per-sequence tasks score every resample at once; per-residue ones
#: resample proteins and take ``fn`` on each resample)
REGRESSION: dict[str, Metric] = {
    "mse": Metric(mse, False, "mse"),
    "spearman": Metric(spearman, True, "spearman"),
    "pearson": Metric(pearson, True, "pearson"),
    "ndcg": Metric(ndcg, True, "ndcg"),
}
_ACCURACY = Metric(lambda target, probs: accuracy(probs, target), True, "accuracy")  # unseen labels count as wrong
#: classification and per-residue test metrics (``q3``: TAPE's name for per-residue accuracy)
CLASSIFICATION: dict[str, Metric] = {
    "loss": Metric(_seen(cross_entropy), False, "loss"),
    "accuracy": _ACCURACY,
    "q3": _ACCURACY,
    "auc": Metric(_seen(macro_ovr_auc), True),
    "f1_macro": Metric(_per_class("f1_macro"), True, "f1_macro"),
    "mcc": Metric(_per_class("mcc"), True, "mcc"),
}
#: every metric name ending in one of these is minimised (``val_loss``, ``test_mse``; ``rmse`` and
#: ``mae`` are errors a user's head may report); everything else is maximised
_LOWER_IS_BETTER = tuple(
    dict.fromkeys(f"_{n}" for n, m in (*REGRESSION.items(), *CLASSIFICATION.items()) if not m.higher_is_better)
) + ("_rmse", "_mae")


def lower_is_better(metric: str) -> bool:
    """Losses and squared errors are minimised; correlations, accuracies, AUC, NDCG maximised."""
    return metric.endswith(_LOWER_IS_BETTER)


def metric_for(metric: str, kind: str) -> Metric:
    """The table's entry for ``metric`` (``test_spearman`` or ``spearman``) of a task of ``kind``."""
    name = metric.removeprefix("test_")
    table = REGRESSION if kind == "regression" else CLASSIFICATION
    if name not in table:
        raise ValueError(f"no bootstrap for {'regression ' if kind == 'regression' else ''}metric {metric!r}")
    return table[name]
