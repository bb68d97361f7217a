"""The operations claims, baselines, reports and the CLI share over a layer-results DataFrame
(:func:`ledger.load_ledger`'s): metric columns, seed keys, the newest record per key, seed
averages per layer, the layer chosen on validation; one place, so every consumer agrees.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.measure.metrics import lower_is_better
from pytest_plmtransfer.measure.protocol import PLMTRANSFER

#: columns that begin like a metric but are not one
_NOT_METRICS = frozenset({"test_id", "test_metric", "selection_metric"})
_METRIC_PREFIXES = ("train_", "val_", "test_")
#: seed key used where a record has no seed (pretrained weights, one-hot)
NO_SEED = "none"
KEY = ("model", "task", "layer", "init", "seed_key", "protocol")


class ResultsError(PlmTransferError):
    pass


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


def measured(frame: pd.DataFrame, metric: str) -> bool:
    """Some record of ``frame`` holds ``metric``. Metrics are the one open-ended part of a result
    frame (a head may record its own): its other columns are fixed."""
    return metric in frame.columns and bool(frame[metric].notna().any())


def seed_key(seed: Any) -> str:
    if seed is None or (isinstance(seed, float) and math.isnan(seed)):
        return NO_SEED
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


def record_protocol(frame: pd.DataFrame) -> pd.Series:
    """Each record's protocol (``plmtransfer`` where a record has none)."""
    return frame["protocol"].where(frame["protocol"].notna(), PLMTRANSFER).astype(str)


def normalize(frame: pd.DataFrame, *, dedupe: bool = True) -> pd.DataFrame:
    """The layer records of a result frame with a string ``seed_key``, int ``layer`` and (by
    default) only the newest record per :data:`KEY`."""
    out = frame[frame["kind"] == "layer"].copy()
    out["seed_key"] = [seed_key(s) for s in out["seed"].astype(object)]
    out["init"] = out["init"].where(out["init"].notna(), "none").astype(str)
    out["protocol"] = record_protocol(out)
    out = out.astype({"layer": int, "model": str, "task": str})
    if dedupe:
        out = out.sort_values("timestamp", kind="stable", na_position="first")
        out = out.drop_duplicates(subset=list(KEY), keep="last")
    return out.reset_index(drop=True)


def select_runs(frame: pd.DataFrame, *, run_id: str | None = None, latest: bool = False) -> pd.DataFrame:
    """Only the records of one run (``run_id``) or of the most recent run (``latest``)."""
    if frame.empty or (run_id is None and not latest):
        return frame
    if frame["run_id"].isna().all():
        raise ResultsError("the records carry no run_id, so a run cannot be selected")
    if run_id is not None:
        sel = frame[frame["run_id"] == run_id]
        if sel.empty:
            known = ", ".join(sorted(map(str, frame["run_id"].dropna().unique())))
            raise ResultsError(f"no records with run_id {run_id!r}; runs present: {known or 'none'}")
        return sel.reset_index(drop=True)
    return frame[frame["run_id"] == latest_run(frame)[0]].reset_index(drop=True)


def latest_run(frame: pd.DataFrame) -> tuple[str, str]:
    """The most recent run of a layer frame and a line saying what was picked (and an earlier run
    that holds more: a newer run may be a one-test retry)."""
    runs = frame.dropna(subset=["run_id"])
    stamps = runs.groupby("run_id")["timestamp"].max().sort_values(kind="stable")
    counts = runs.groupby("run_id").size()
    newest = str(stamps.index[-1])
    line = f"--latest: run {newest} of {stamps.iloc[-1]}, {counts[newest]} layer record(s)"
    bigger = [r for r in stamps.index[:-1] if counts[r] > counts[newest]]
    if bigger:
        fuller = max(bigger, key=lambda r: (counts[r], stamps[r]))
        line += (
            f"; an earlier run holds more: {fuller} ({counts[fuller]} layer records, {stamps[fuller]}), "
            f"--run-id {fuller} reports it"
        )
    return newest, line


@dataclass
class RowGroup:
    """The records of one report row: one (task, model, init), or one weights identity of it."""

    task: str
    model: str
    init: str
    #: set when the (task, model, init) was measured with several weights identities: one row each
    weights: str | None
    records: pd.DataFrame
    #: --plm-limit N of these records (None: the whole task); never in a row with other records
    limit: int | None = None
    #: the protocol of every record of the row (normalize() fills the default)
    protocol: str = PLMTRANSFER


def row_groups(frame: pd.DataFrame) -> tuple[list[RowGroup], list[str]]:
    """A report's rows, never mixing model versions or seeds silently, and notes saying what was
    done: records of a subsample (``--plm-limit N``) are rows of their own; pretrained weights
    measured with different identities (a model version) get one row each (with seeds, each
    (layer, seed) keeps its newest record); a layer with more seeds than its neighbours is averaged
    over the seeds every layer has, so the best-layer choice compares like with like (with no
    common seed each layer keeps its own, and a note warns).
    """
    data = normalize(frame, dedupe=False)
    groups: list[RowGroup] = []
    notes: list[str] = []
    if data.empty:
        return groups, notes
    data["_limit"] = data["limit"].fillna(0).astype(int)
    keys = ["task", "protocol", "model", "init", "_limit"]
    for (task, protocol, model, init, limit), sub in data.groupby(keys, sort=True):
        what = f"{model}/{init} on {task}" + (f" (--plm-limit {limit})" if limit else "")
        what += f" [{protocol}]" if protocol != PLMTRANSFER else ""
        labels = sorted({w for w in sub["weights"] if isinstance(w, str)})
        parts: list[tuple[str | None, pd.DataFrame]] = [(None, sub)]
        if len(labels) > 1 and (sub["seed_key"] == NO_SEED).all():
            parts = [(label, sub[sub["weights"] == label]) for label in labels]
            notes.append(
                f"{what}: measured with {len(labels)} weights identities ({', '.join(labels)}): "
                "one row each, never averaged together"
            )
        elif len(labels) > 1 and (sub.groupby(["layer", "seed_key"])["weights"].nunique() > 1).any():
            notes.append(
                f"{what}: some (layer, seed) were measured with {len(labels)} weights identities "
                f"({', '.join(labels)}): each shows its newest record"
            )
        for label, part in parts:
            rows, note = _common_seeds(normalize(part.drop(columns="_limit")), what)
            notes += [note] if note else []
            groups.append(RowGroup(str(task), str(model), str(init), label, rows, int(limit) or None, str(protocol)))
    return groups, notes


def _common_seeds(rows: pd.DataFrame, what: str) -> tuple[pd.DataFrame, str | None]:
    per_layer = {int(layer): set(sub["seed_key"]) for layer, sub in rows.groupby("layer")}
    if len({frozenset(s) for s in per_layer.values()}) <= 1:
        return rows, None
    common = set.intersection(*per_layer.values())
    extra = sorted(layer for layer, seeds in per_layer.items() if seeds - common)
    if not common:
        return rows, (
            f"{what}: its layers were measured with different seeds and no seed is common to all: "
            "each layer's mean is over its own seeds, so layers are not compared like with like"
        )
    shown = ", ".join(sorted_seeds(common))
    return rows[rows["seed_key"].isin(common)], (
        f"{what}: layer(s) {', '.join(map(str, extra))} have more seeds than the others: every layer is "
        f"averaged over the seed(s) all layers have ({shown})"
    )


def _mode(series: pd.Series) -> Any:
    vals = series.dropna()
    return None if vals.empty else vals.mode().iloc[0]


def task_metrics(frame: pd.DataFrame, task: str | None = None) -> tuple[str, str]:
    """(selection metric, test metric) that the records of ``task`` declare, (val_spearman,
    test_spearman) where they declare none."""
    sub = frame if task is None else frame[frame["task"] == task]
    sel, test = _mode(sub["selection_metric"]), _mode(sub["test_metric"])
    return (sel or "val_spearman", test or "test_spearman")


def subset(
    frame: pd.DataFrame, model: str | None = None, task: str | None = None, init: str | None = None
) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column, value in (("model", model), ("task", task), ("init", init)):
        if value is not None:
            mask &= frame[column] == value
    return frame[mask]


def depth(frame: pd.DataFrame) -> int:
    """Index of a model's last layer: ``num_layers`` when recorded, else the deepest layer seen."""
    deepest = int(frame["layer"].max()) if not frame.empty else 0
    if frame["num_layers"].notna().any():
        return max(int(frame["num_layers"].max()), deepest)
    return deepest


def curve(frame: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """Per-layer ``<metric>`` mean, ``<metric>_std`` (ddof=1, NaN for one seed) and seed count
    ``n`` of one (model, task, init)."""
    metrics = list(dict.fromkeys(metrics))
    if frame.empty:
        return pd.DataFrame(columns=[*metrics, *(f"{m}_std" for m in metrics), "n"])
    data = frame.reindex(columns=["layer", *metrics])  # a metric no record holds: NaN
    for m in metrics:
        data[m] = pd.to_numeric(data[m], errors="coerce")
    grouped = data.groupby("layer")
    out = pd.concat([grouped[metrics].mean(), grouped[metrics].std(ddof=1).add_suffix("_std")], axis=1)
    out["n"] = grouped.size()
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
