"""One layer's probe: standardize on train, fit the task's head, report every metric.

:func:`probe` is the plugin's entry point per (model, task, layer, init): ridge
(:mod:`~pytest_plmtransfer.measure.heads.ridge`) for regression, a softmax classifier
(:mod:`~pytest_plmtransfer.measure.heads.classifier`) for classification and per-residue tasks,
returning the flat metric names the ledger, the claims and the report share.

Standardization: per-feature mean and population std over the training rows only (for
per-residue tasks the *scored* training residues), in one streaming float64 pass, so a
memory-mapped ``(R, D)`` matrix is never loaded whole. A feature whose training std is zero (up
to 1e-10 of its mean's magnitude, i.e. rounding) gets scale 0: it reads as 0, never nan. Under
the ``authors`` protocol (:mod:`~pytest_plmtransfer.measure.protocol`) the ridge instead divides
each centred column by its L2 norm over the training rows (scikit-learn < 1.2's
``normalize=True``), fits standardized targets and chooses alpha by their rule, and the
classifier reads the features as they are (``ProbeSettings.ridge_*``, ``classifier_features``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pytest_plmtransfer.infra.errors import InputError
from pytest_plmtransfer.measure import metrics as M
from pytest_plmtransfer.measure.heads.classifier import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCH_SIZE_PER_RESIDUE,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_LR,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_MIN_DELTA,
    DEFAULT_NUM_THREADS,
    DEFAULT_PATIENCE,
    RowView,
    SoftmaxProbe,
)
from pytest_plmtransfer.measure.heads.ridge import DEFAULT_ALPHAS, RIDGE_SELECTION_METRICS, RidgeProbe, pick_model
from pytest_plmtransfer.results.predictions import TestPredictions
from pytest_plmtransfer.tasks.spec import SPLITS, SplitName, TaskKind

# Rows per block for the statistics pass and for streaming predictions.
_STAT_CHUNK_ROWS = 16384


@dataclass
class ProbeInput:
    """Everything :func:`probe` needs for one layer of one task.

    ``X`` (any float dtype, memmaps welcome): one row per sequence in task order, or for
    per-residue tasks every residue concatenated, sequence ``i`` being
    ``X[offsets[i]:offsets[i+1]]``. ``targets``: floats, class names, or per-residue label strings
    (one character per residue). ``residue_masks``: False residues are neither trained on nor scored.
    """

    kind: TaskKind
    X: np.ndarray
    offsets: np.ndarray | None
    targets: list
    splits: np.ndarray
    residue_masks: list[np.ndarray] | None = None
    selection_metric: str = "val_spearman"
    #: FLIP's Bind splits test on ligand combinations never seen in training, by design. When
    #: True such test labels are kept: they count as errors in test_accuracy, are left out of
    #: test_loss / test_auc / per-class metrics (a probe has no output for them), and their share
    #: is reported as test_unseen_fraction. Validation labels must always be seen in training.
    unseen_test_labels: bool = False


@dataclass
class ProbeResult:
    """``metrics``: flat name -> value (nan where undefined); ``head``: the settings the head used
    and chose (JSON-safe); ``predictions``: the test split's, for intervals and paired tests."""

    metrics: dict[str, float]
    head: dict[str, Any]
    fit_seconds: float
    predictions: TestPredictions | None = None


@dataclass
class ProbeSettings:
    """Head hyperparameters (defaults explained in ``heads/ridge.py`` and ``heads/classifier.py``)."""

    alphas: Sequence[float] | None = None  # None -> DEFAULT_ALPHAS
    lr: float = DEFAULT_LR
    #: None: DEFAULT_BATCH_SIZE for per-sequence tasks, DEFAULT_BATCH_SIZE_PER_RESIDUE for per-residue
    #: ones (millions of rows: see heads/classifier.py)
    batch_size: int | None = None
    max_epochs: int = DEFAULT_MAX_EPOCHS
    patience: int = DEFAULT_PATIENCE
    min_delta: float = DEFAULT_MIN_DELTA
    weight_decay: float = 0.0
    class_weight: Literal["balanced"] | Sequence[float] | None = None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    #: where the probes run: "cpu" (numpy ridge, torch classifier on CPU) or a torch device
    #: such as "cuda" / "cuda:1" (ridge and classifier in torch there)
    device: str = "cpu"
    num_threads: int | None = DEFAULT_NUM_THREADS  # torch threads for the classifier
    #: classifier training step: "fused" (closed-form gradient) or "autograd" (the original path)
    engine: str = "fused"
    #: ridge features: "standardize" (train mean and std) or "l2norm" (centre on train, divide by
    #: the column's L2 norm over train: scikit-learn < 1.2's Ridge(normalize=True))
    ridge_features: str = "standardize"
    #: ridge targets: "raw", or "standardize" (fit on standardized training targets; predictions
    #: stay in those units and are scored against the raw targets, as the authors' code does)
    ridge_targets: str = "raw"
    #: "best_val": the best validation score (ties to the larger alpha); "pick_model": the
    #: authors' rule (heads/ridge.py pick_model)
    ridge_rule: str = "best_val"
    #: classifier features: "standardize" (train mean and std) or "raw"
    classifier_features: str = "standardize"


def settings_for_run(head: dict[str, Any] | None, embedding_device: str) -> ProbeSettings:
    """A run's probe settings: the user's head hyper-parameters (``--plm-head-*``; field name ->
    value) on the device the embeddings were computed on when that is a GPU, else on CPU."""
    device = str(embedding_device or "cpu")
    return ProbeSettings(**dict(head or {}), device=device if device.startswith("cuda") else "cpu")


# ---------------------------------------------------------------------------------- standardization


def standardization_stats(
    X: np.ndarray, rows: np.ndarray | None = None, chunk_rows: int = _STAT_CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Streaming per-feature ``(mean, std, scale)`` over ``X[rows]`` (all rows if ``None``);
    ``scale`` is ``1/std``, or 0 for zero-variance features. Blocks are merged with the pairwise
    update (Chan, Golub & LeVeque), accurate where the naive ``E[x^2] - E[x]^2`` cancels."""
    d = X.shape[1]
    n_total = X.shape[0] if rows is None else len(rows)
    if n_total == 0:
        raise ValueError("no training rows to standardize on")
    count = 0
    mean = np.zeros(d, dtype=np.float64)
    m2 = np.zeros(d, dtype=np.float64)
    for a in range(0, n_total, chunk_rows):
        sl = slice(a, min(a + chunk_rows, n_total))
        block = np.asarray(X[sl] if rows is None else X[rows[sl]], dtype=np.float64)
        nb = block.shape[0]
        bmean = block.mean(axis=0)
        bm2 = ((block - bmean) ** 2).sum(axis=0)
        delta = bmean - mean
        total = count + nb
        mean += delta * (nb / total)
        m2 += bm2 + delta**2 * (count * nb / total)
        count = total
    std = np.sqrt(m2 / count)
    varying = std > 1e-10 * np.abs(mean)
    varying &= std > 0
    scale = np.where(varying, 1.0 / np.where(varying, std, 1.0), 0.0)
    return mean, std, scale


# ------------------------------------------------------------------------------------- input checks


def _sequence_rows(inp: ProbeInput, what: str) -> tuple[np.ndarray, dict[SplitName, np.ndarray]]:
    """A per-sequence task's split labels and each split's rows, checked."""
    n = len(inp.targets)
    if inp.X.ndim != 2 or inp.X.shape[0] != n:
        raise ValueError(f"{what} features must be (N, D) with N={n} rows, got {inp.X.shape}")
    splits = _split_array(inp, n)
    rows = {s: np.flatnonzero(splits == s) for s in SPLITS}
    _require_train_val({s: r.size for s, r in rows.items()}, "sequences")
    return splits, rows


def _split_array(inp: ProbeInput, n: int) -> np.ndarray:
    splits = np.asarray(inp.splits).astype(str).reshape(-1)
    if splits.size != n:
        raise ValueError(f"{n} targets but {splits.size} split labels")
    bad = sorted(set(np.unique(splits)) - set(SPLITS))
    if bad:
        raise ValueError(f"unknown split name(s) {bad}; expected 'train', 'val' or 'test'")
    return splits


def _require_train_val(counts: dict[SplitName, int], unit: str) -> None:
    for s in ("train", "val"):
        if counts[s] == 0:
            raise InputError(
                f"the {s} split has no {unit}; a probe needs training rows to fit and "
                "validation rows to choose its settings"
            )


def _class_index(
    labels: np.ndarray, split_of: np.ndarray, where_of: Callable[[int], str], unseen_test_labels: bool = False
) -> tuple[list[str], np.ndarray]:
    """Classes = sorted labels seen in training; every other split must use only those."""
    classes = np.unique(labels[split_of == "train"])
    if classes.size < 2:
        raise InputError(
            f"the training split has {classes.size} class(es) {classes.tolist()}; a classifier needs at least two"
        )
    idx_clipped = np.minimum(np.searchsorted(classes, labels), classes.size - 1)
    unseen = classes[idx_clipped] != labels
    idx_clipped = idx_clipped.astype(np.int64)
    if unseen_test_labels:
        idx_clipped[unseen & (split_of == "test")] = -1  # kept, scored as errors
        unseen = unseen & (split_of != "test")
    if unseen.any():
        first = int(np.flatnonzero(unseen)[0])
        raise InputError(
            f"label {str(labels[first])!r} in the {split_of[first]} split ({where_of(first)}) "
            f"never occurs in the training split; classes seen in training: "
            f"{[str(c) for c in classes]}"
        )
    return [str(c) for c in classes], idx_clipped


# -------------------------------------------------------------------------------------------- heads


def _standardized(X: np.ndarray, rows: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    out = np.empty((rows.size, X.shape[1]), dtype=np.float64)
    for a in range(0, rows.size, _STAT_CHUNK_ROWS):
        b = min(a + _STAT_CHUNK_ROWS, rows.size)
        out[a:b] = (np.asarray(X[rows[a:b]], dtype=np.float64) - mean) * scale
    return out


#: (split, metric) of a regression probe's record, in its order
_REGRESSION_METRICS: tuple[tuple[SplitName, str], ...] = (
    ("train", "mse"), ("val", "mse"), ("test", "mse"), ("val", "spearman"), ("test", "spearman"),
    ("val", "ndcg"), ("test", "ndcg"), ("test", "pearson"),
)  # fmt: skip


def _probe_regression(
    inp: ProbeInput, settings: ProbeSettings
) -> tuple[dict[str, float], dict[str, Any], TestPredictions]:
    X = inp.X
    if inp.selection_metric not in RIDGE_SELECTION_METRICS:
        raise ValueError(
            f"selection metric {inp.selection_metric!r} cannot choose a ridge alpha; "
            f"expected one of {sorted(RIDGE_SELECTION_METRICS)}"
        )
    _, rows = _sequence_rows(inp, "regression")
    try:
        y = np.asarray(inp.targets, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"regression targets must be numbers: {exc}") from None
    if not np.isfinite(y).all():
        bad = int(np.flatnonzero(~np.isfinite(y))[0])
        raise InputError(f"regression target of sequence {bad} is {y[bad]!r}")

    mean, _, scale = standardization_stats(X, rows["train"])
    if settings.ridge_features == "l2norm":  # the centred column's L2 norm is std * sqrt(n)
        scale = scale / np.sqrt(rows["train"].size)
    Xtr = _standardized(X, rows["train"], mean, scale)
    Xva = _standardized(X, rows["val"], mean, scale)
    alphas = DEFAULT_ALPHAS if settings.alphas is None else settings.alphas
    backend = "numpy" if settings.device == "cpu" else "torch"
    ridge = RidgeProbe(alphas, inp.selection_metric, backend=backend, device=settings.device)
    y_fit = y[rows["train"]]
    if settings.ridge_targets == "standardize":  # StandardScaler: population std, 0 -> 1
        y_fit = (y_fit - y_fit.mean()) / (y_fit.std() or 1.0)
    ridge.fit(Xtr, y_fit, Xva, y[rows["val"]])
    if settings.ridge_rule == "pick_model":
        chosen = pick_model(y[rows["train"]], ridge.predict_path(Xtr), y[rows["val"]], ridge.predict_path(Xva))
        if chosen is None:
            raise InputError("the authors' alpha rule chose no alpha: the validation NDCG is undefined at every alpha")
        ridge.choose(chosen)

    pred = {"train": ridge.predict(Xtr), "val": ridge.predict(Xva)}
    del Xtr, Xva
    test_rows = rows["test"]
    pred["test"] = np.empty(test_rows.size, dtype=np.float64)
    for a in range(0, test_rows.size, _STAT_CHUNK_ROWS):
        b = min(a + _STAT_CHUNK_ROWS, test_rows.size)
        pred["test"][a:b] = ridge.predict(_standardized(X, test_rows[a:b], mean, scale))

    yt = {s: y[rows[s]] for s in SPLITS}
    metrics = {f"{split}_{name}": M.REGRESSION[name].fn(yt[split], pred[split]) for split, name in _REGRESSION_METRICS}
    scores = ridge.val_scores_
    head = {
        "head": "ridge",
        "alpha": ridge.alpha_,
        "alphas": [float(a) for a in ridge.alphas_],
        "selection_metric": inp.selection_metric,
        # JSON has no nan: an undefined score is recorded as null.
        "selection_scores": None if scores is None else [float(s) if np.isfinite(s) else None for s in scores],
        "solver": ridge.solver_,
        "method": ridge.method_,
        "device": settings.device,
        "features": settings.ridge_features,
        "targets": settings.ridge_targets,
        "rule": settings.ridge_rule,
    }
    return metrics, head, TestPredictions("regression", yt["test"], pred["test"])


def _softmax(settings: ProbeSettings, n_classes: int, seed: int, per_residue: bool = False) -> SoftmaxProbe:
    batch_size = settings.batch_size
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE_PER_RESIDUE if per_residue else DEFAULT_BATCH_SIZE
    # the settings that are SoftmaxProbe's arguments under the same names
    passed = ("lr", "max_epochs", "patience", "min_delta", "weight_decay", "class_weight", "chunk_bytes", "device",
              "num_threads", "engine")  # fmt: skip
    return SoftmaxProbe(n_classes, batch_size=batch_size, seed=seed, **{k: getattr(settings, k) for k in passed})


def _softmax_head(clf: SoftmaxProbe, classes: list[str], features: str) -> dict[str, Any]:
    cw = clf.class_weight_
    head = {"head": "softmax", "epochs": int(clf.epochs_run_), "best_epoch": int(clf.best_epoch_)}
    head.update(
        (k, getattr(clf, k)) for k in ("lr", "batch_size", "max_epochs", "patience", "min_delta", "weight_decay")
    )
    return head | {
        "class_weight": None if cw is None else [float(w) for w in cw],
        "classes": classes,
        "seed": clf.seed,
        "device": str(clf.device),
        "features": features,
    }


def _evaluate_split(
    clf: SoftmaxProbe, view: RowView, y: np.ndarray, prefix: str, keep_probs: bool
) -> tuple[dict[str, float], np.ndarray | None]:
    """Loss/accuracy streamed block by block; AUC (which needs all scores) only if kept."""
    if len(view) == 0:  # only a test split can be empty (fit needs training and validation rows)
        nan = dict.fromkeys((f"{prefix}_loss", f"{prefix}_accuracy", f"{prefix}_auc"), float("nan"))
        return nan, np.zeros((0, clf.n_classes))
    if keep_probs:
        probs = clf.predict_proba(view)
        return M.classification_metrics(probs, y, prefix), probs
    nll, correct = 0.0, 0
    for a, b, p in clf.iter_predict_proba(view):
        yb = y[a:b]
        picked = p[np.arange(b - a), yb]
        nll -= float(np.log(np.clip(picked, M.PROBABILITY_CLIP, 1.0)).sum())
        correct += int((p.argmax(axis=1) == yb).sum())
    n = len(view)
    return {f"{prefix}_loss": nll / n, f"{prefix}_accuracy": correct / n}, None


_CLASSIFICATION_METRICS = (
    "train_loss", "val_loss", "test_loss",
    "train_accuracy", "val_accuracy", "test_accuracy",
    "val_auc", "test_auc",
)  # fmt: skip


def _fit_classifier(
    X: np.ndarray,
    rows: dict[SplitName, np.ndarray],
    y_rows: dict[SplitName, np.ndarray],
    classes: list[str],
    settings: ProbeSettings,
    seed: int,
    per_residue: bool = False,
) -> tuple[dict[str, float], dict[str, Any], np.ndarray, np.ndarray]:
    """Standardize on the training rows, fit, evaluate; returns metrics, head, the test
    probabilities of the rows with seen labels, and of every test row."""
    if settings.classifier_features == "raw":
        mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
    else:
        mean, _, scale = standardization_stats(X, rows["train"])
    views = {s: RowView(X, rows[s], mean, scale) for s in SPLITS}
    clf = _softmax(settings, len(classes), seed, per_residue)
    clf.fit(views["train"], y_rows["train"], views["val"], y_rows["val"])
    # Training can be millions of residues and has no AUC metric: stream it.
    found, _ = _evaluate_split(clf, views["train"], y_rows["train"], "train", keep_probs=False)
    found.update(_evaluate_split(clf, views["val"], y_rows["val"], "val", keep_probs=True)[0])
    y_test = y_rows["test"]
    seen = y_test >= 0
    test_view = views["test"] if seen.all() else RowView(X, rows["test"][seen], mean, scale)
    m, test_probs = _evaluate_split(clf, test_view, y_test[seen], "test", keep_probs=True)
    found.update(m)
    metrics = {k: found[k] for k in _CLASSIFICATION_METRICS}
    if not seen.all():
        # labels the probe cannot output are wrong predictions; loss/AUC only exist for the rest
        metrics["test_accuracy"] = float(found["test_accuracy"] * seen.sum() / seen.size)
        metrics["test_unseen_fraction"] = float(1.0 - seen.mean())
    assert test_probs is not None
    all_probs = test_probs if seen.all() else clf.predict_proba(views["test"])
    return metrics, _softmax_head(clf, classes, settings.classifier_features), test_probs, all_probs


def _probe_classification(
    inp: ProbeInput, settings: ProbeSettings, seed: int
) -> tuple[dict[str, float], dict[str, Any], TestPredictions]:
    splits, rows = _sequence_rows(inp, "classification")
    labels = np.asarray([str(t) for t in inp.targets])
    classes, y = _class_index(labels, splits, lambda i: f"sequence {i}", inp.unseen_test_labels)
    y_rows = {s: y[r] for s, r in rows.items()}
    metrics, head, _, test_probs = _fit_classifier(inp.X, rows, y_rows, classes, settings, seed)
    return metrics, head, TestPredictions("classification", y[rows["test"]], test_probs, None, classes)


def _residue_labels(targets: list) -> np.ndarray:
    """All residue labels concatenated, as a '<U1' array (one character per residue)."""
    if all(isinstance(t, str) for t in targets):
        # UTF-32 bytes reinterpret as fixed-width 1-character strings with no per-residue
        # Python objects: millions of residues cost one copy.
        return np.frombuffer("".join(targets).encode("utf-32-le"), dtype="<U1")
    parts = [np.asarray(list(t), dtype=str) for t in targets]
    return np.concatenate(parts) if parts else np.zeros(0, dtype="<U1")


def _probe_per_residue(
    inp: ProbeInput, settings: ProbeSettings, seed: int
) -> tuple[dict[str, float], dict[str, Any], TestPredictions]:
    X = inp.X
    n = len(inp.targets)
    splits = _split_array(inp, n)
    if inp.offsets is None:
        raise ValueError("per-residue probes need offsets (N+1 row boundaries into X)")
    offsets = np.asarray(inp.offsets, dtype=np.int64).reshape(-1)
    if offsets.size != n + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError(
            f"offsets must be N+1={n + 1} non-decreasing row indices starting at 0, got {offsets.size} values"
        )
    if X.ndim != 2 or X.shape[0] != offsets[-1]:
        raise ValueError(
            f"per-residue features must be (R, D) with R=offsets[-1]={int(offsets[-1])} rows, got {X.shape}"
        )
    lengths = np.diff(offsets)
    for i, t in enumerate(inp.targets):
        if len(t) != lengths[i]:
            raise InputError(f"sequence {i} has {lengths[i]} residue embeddings but {len(t)} labels")
    if inp.residue_masks is not None:
        if len(inp.residue_masks) != n:
            raise ValueError(f"{n} sequences but {len(inp.residue_masks)} residue masks")
        for i, m in enumerate(inp.residue_masks):
            if len(m) != lengths[i]:
                raise InputError(f"sequence {i} has {lengths[i]} residues but a mask of {len(m)}")
        scored = (
            np.concatenate([np.asarray(m, dtype=bool).reshape(-1) for m in inp.residue_masks])
            if n
            else np.zeros(0, dtype=bool)
        )
    else:
        scored = np.ones(int(offsets[-1]), dtype=bool)

    seq_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
    split_of = splits[seq_of]
    labels_all = _residue_labels(inp.targets)
    scored_idx = np.flatnonzero(scored)
    # Only scored residues matter: an unscored residue's label (often a placeholder) is ignored.
    labels = labels_all[scored_idx]
    res_split = split_of[scored_idx]
    counts = {s: int((res_split == s).sum()) for s in SPLITS}
    _require_train_val(counts, "scored residues")

    def where(i: int) -> str:
        r = int(scored_idx[i])
        seq = int(seq_of[r])
        return f"sequence {seq}, residue {r - int(offsets[seq])}"

    classes, y = _class_index(labels, res_split, where, inp.unseen_test_labels)
    rows = {s: scored_idx[res_split == s] for s in SPLITS}
    y_rows = {s: y[res_split == s] for s in SPLITS}
    out, head, test_probs, all_probs = _fit_classifier(X, rows, y_rows, classes, settings, seed, per_residue=True)
    if classes == ["C", "E", "H"]:
        out["test_q3"] = out["test_accuracy"]
    y_test = y_rows["test"]
    out.update(M.per_class_metrics(test_probs, y_test[y_test >= 0], classes, "test"))
    # Resampling units: the test proteins (each with its scored residues, in task order).
    proteins = seq_of[rows["test"]]
    starts = np.flatnonzero(np.r_[True, proteins[1:] != proteins[:-1]]) if proteins.size else np.zeros(0, np.int64)
    units = np.r_[starts, proteins.size].astype(np.int64)
    return out, head, TestPredictions("per_residue", y_test, all_probs, units, classes)


# -------------------------------------------------------------------------------------- entry point


def probe(inp: ProbeInput, *, seed: int = 0, settings: ProbeSettings | None = None) -> ProbeResult:
    """Fit and evaluate the task's head on one layer's features (``seed``: the classifier's shuffling).

    Metrics: regression :data:`_REGRESSION_METRICS`; classification :data:`_CLASSIFICATION_METRICS`;
    per_residue the same over scored residues, ``test_q3`` when the classes are exactly {H, E, C},
    and :func:`~pytest_plmtransfer.measure.metrics.per_class_metrics`. Classes are the sorted
    training labels; a validation or test label never seen in training is an
    :class:`~pytest_plmtransfer.infra.errors.InputError` naming it. An empty test split gives nan
    test metrics; an empty train or validation split is an error.
    """
    settings = settings or ProbeSettings()
    start = time.perf_counter()
    if inp.kind == "regression":
        metrics, head, preds = _probe_regression(inp, settings)
    elif inp.kind == "classification":
        metrics, head, preds = _probe_classification(inp, settings, seed)
    elif inp.kind == "per_residue":
        metrics, head, preds = _probe_per_residue(inp, settings, seed)
    else:
        raise ValueError(f"unknown task kind {inp.kind!r}")
    return ProbeResult(
        metrics={k: float(v) for k, v in metrics.items()},
        head=head,
        fit_seconds=time.perf_counter() - start,
        predictions=preds,
    )
