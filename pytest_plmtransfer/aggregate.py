"""Shared helpers over a layer-results DataFrame (what :func:`ledger.load_ledger` returns).

Claims, baselines, reports and the CLI all need the same few operations on per-layer results:
pick the metric columns, normalise seeds (``None`` for pretrained / one-hot), keep the newest
record per (model, task, layer, init, seed), average over seeds per layer, and choose a layer on
validation. They live here so that every consumer computes them identically.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pytest_plmtransfer.errors import PlmTransferError
from pytest_plmtransfer.protocol import PLMTRANSFER

#: columns that begin like a metric but are not one
_NOT_METRICS = frozenset({"test_id", "test_metric", "selection_metric"})
_METRIC_PREFIXES = ("train_", "val_", "test_")
#: seed key used where a record has no seed (pretrained weights, one-hot)
NO_SEED = "none"
KEY = ("model", "task", "layer", "init", "seed_key", "protocol")


class ResultsError(PlmTransferError):
    pass


def lower_is_better(metric: str) -> bool:
    """Losses and squared errors are minimised; correlations, accuracies, AUC, NDCG maximised."""
    return metric.endswith(("_loss", "_mse", "_rmse", "_mae"))


def better(a: float, b: float, metric: str) -> bool:
    """``a`` is strictly better than ``b`` for ``metric``."""
    return a < b if lower_is_better(metric) else a > b


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The numeric metric columns of a flattened layer frame (``train_*``, ``val_*``, ``test_*``)."""
    out = []
    for col in frame.columns:
        if not isinstance(col, str) or col in _NOT_METRICS or not col.startswith(_METRIC_PREFIXES):
            continue
        if pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]):
            out.append(col)
    return out


def seed_key(seed: Any) -> str:
    if seed is None:
        return NO_SEED
    try:
        if isinstance(seed, float) and math.isnan(seed):
            return NO_SEED
    except TypeError:  # pragma: no cover - exotic seed objects
        pass
    if isinstance(seed, (int, np.integer)) or (isinstance(seed, float) and float(seed).is_integer()):
        return str(int(seed))
    return str(seed)


def seed_value(key: str) -> int | str | None:
    if key == NO_SEED:
        return None
    try:
        return int(key)
    except ValueError:
        return key


def seed_order(key: str) -> tuple[int, int, str]:
    """Sort key for seed keys: "none" first, then integer seeds numerically, then the rest."""
    if key == NO_SEED:
        return (0, 0, "")
    try:
        return (1, int(key), "")
    except ValueError:
        return (2, 0, key)


def sorted_seeds(keys) -> list[str]:
    return sorted(set(keys), key=seed_order)


def normalize(frame: pd.DataFrame, *, dedupe: bool = True) -> pd.DataFrame:
    """A copy with a string ``seed_key`` column, int ``layer`` and (by default) the newest record
    per (model, task, layer, init, seed) only."""
    if frame is None or frame.empty:
        cols = ["model", "task", "layer", "init", "seed", "seed_key", "protocol"]
        return pd.DataFrame(columns=cols)
    missing = [c for c in ("model", "task", "layer") if c not in frame.columns]
    if missing:
        raise ResultsError(f"layer results lack the column(s) {missing}; is this a layer-record frame?")
    out = frame.copy()
    if "kind" in out.columns:
        out = out[out["kind"].isna() | (out["kind"] == "layer")]
    if "init" not in out.columns:
        out["init"] = "none"
    out["init"] = out["init"].where(out["init"].notna(), "none").astype(str)
    if "seed" not in out.columns:
        out["seed"] = None
    out["seed_key"] = [seed_key(s) for s in out["seed"].astype(object)]
    if "protocol" not in out.columns:  # frames built by hand: the default protocol
        out["protocol"] = PLMTRANSFER
    out["protocol"] = out["protocol"].where(out["protocol"].notna(), PLMTRANSFER).astype(str)
    out["layer"] = out["layer"].astype(int)
    out["model"] = out["model"].astype(str)
    out["task"] = out["task"].astype(str)
    if dedupe:
        if "timestamp" in out.columns:
            out = out.sort_values("timestamp", kind="stable", na_position="first")
        out = out.drop_duplicates(subset=list(KEY), keep="last")
    return out.reset_index(drop=True)


def select_runs(frame: pd.DataFrame, *, run_id: str | None = None, latest: bool = False) -> pd.DataFrame:
    """Only the records of one run (``run_id``) or of the most recent run (``latest``)."""
    if frame.empty or (run_id is None and not latest):
        return frame
    if "run_id" not in frame.columns:
        raise ResultsError("the records carry no run_id, so a run cannot be selected")
    if run_id is not None:
        sel = frame[frame["run_id"] == run_id]
        if sel.empty:
            known = ", ".join(sorted(map(str, frame["run_id"].dropna().unique())))
            raise ResultsError(f"no records with run_id {run_id!r}; runs present: {known or 'none'}")
        return sel.reset_index(drop=True)
    stamps = frame.groupby("run_id")["timestamp"].max() if "timestamp" in frame.columns else None
    newest = stamps.idxmax() if stamps is not None and not stamps.empty else frame["run_id"].iloc[-1]
    return frame[frame["run_id"] == newest].reset_index(drop=True)


def _mode(series: pd.Series) -> Any:
    vals = series.dropna()
    if vals.empty:
        return None
    return vals.mode().iloc[0]


def task_metrics(frame: pd.DataFrame, task: str | None = None) -> tuple[str, str]:
    """(selection metric, test metric) that the records of ``task`` declare.

    Falls back to (val_spearman, test_spearman) for records that predate those fields.
    """
    sub = frame if task is None else frame[frame["task"] == task]
    sel = _mode(sub["selection_metric"]) if "selection_metric" in sub.columns else None
    test = _mode(sub["test_metric"]) if "test_metric" in sub.columns else None
    return (sel or "val_spearman", test or "test_spearman")


def subset(
    frame: pd.DataFrame, model: str | None = None, task: str | None = None, init: str | None = None
) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    if model is not None:
        mask &= frame["model"] == model
    if task is not None:
        mask &= frame["task"] == task
    if init is not None:
        mask &= frame["init"] == init
    return frame[mask]


def depth(frame: pd.DataFrame) -> int:
    """Index of a model's last layer: ``num_layers`` when recorded, else the deepest layer seen."""
    deepest = int(frame["layer"].max()) if not frame.empty else 0
    if "num_layers" in frame.columns and frame["num_layers"].notna().any():
        return max(int(frame["num_layers"].max()), deepest)
    return deepest


def curve(frame: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """Per-layer mean, std (ddof=1, NaN for one seed) and seed count for each metric.

    ``frame`` holds one (model, task, init); columns are ``<metric>``, ``<metric>_std``, ``n``.
    """
    metrics = [m for m in dict.fromkeys(metrics)]
    if frame.empty:
        return pd.DataFrame(columns=[*metrics, *(f"{m}_std" for m in metrics), "n"])
    present = [m for m in metrics if m in frame.columns]
    data = frame[["layer", *present]].copy()
    for m in present:
        data[m] = pd.to_numeric(data[m], errors="coerce")
    grouped = data.groupby("layer")
    mean = grouped[present].mean()
    std = grouped[present].std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)
    out["n"] = grouped.size()
    for m in metrics:
        if m not in out.columns:
            out[m] = np.nan
            out[f"{m}_std"] = np.nan
    return out.sort_index()


def best_layer(values: pd.Series, metric: str) -> int | None:
    """The layer (index of ``values``) with the best value of ``metric``; earliest on ties."""
    vals = pd.to_numeric(values, errors="coerce").dropna()
    if vals.empty:
        return None
    best = vals.min() if lower_is_better(metric) else vals.max()
    return int(vals.index[vals == best][0])


@dataclass(frozen=True)
class Selected:
    """A layer chosen on validation and what it scores on test."""

    layer: int
    selection_value: float
    test_value: float
    test_std: float
    n: int


def select(
    frame: pd.DataFrame, selection_metric: str, test_metric: str, layers: Iterable[int] | None = None
) -> Selected | None:
    """Choose the layer by the seed-averaged ``selection_metric``; report its ``test_metric``."""
    c = curve(frame, [selection_metric, test_metric])
    if layers is not None:
        c = c[c.index.isin(list(layers))]
    if c.empty:
        return None
    layer = best_layer(c[selection_metric], selection_metric)
    if layer is None:
        return None
    row = c.loc[layer]
    return Selected(
        layer, float(row[selection_metric]), float(row[test_metric]), float(row[f"{test_metric}_std"]), int(row["n"])
    )


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"
