"""Paired bootstrap comparisons for claims, from the predictions that layer records refer to
(``predictions``: ``{"key", "path", "sha256", ...}``, see :mod:`pytest_plmtransfer.results.predictions`;
``intervals``: ``{metric: {..., "n_resamples"}}``). Without usable predictions (a head recorded
without them, a cleared cache, ``--plm-bootstrap 0``, test sets that differ) :func:`compare_rows`
returns the reason, and the claim falls back to its plain comparison and says why.
"""

from __future__ import annotations

import math

import pandas as pd

from pytest_plmtransfer.measure.stats import PairedResult, paired_test
from pytest_plmtransfer.results.predictions import PredictionsError, TestPredictions, load_predictions


def _resamples(rows: pd.DataFrame) -> int | None:
    """The number of resamples the records' intervals used (None: no intervals recorded)."""
    found = [
        int(v["n_resamples"])
        for iv in rows["intervals"]
        if isinstance(iv, dict)
        for v in iv.values()
        if isinstance(v, dict) and v.get("n_resamples")
    ]
    return max(found) if found else None


def load_rows(rows: pd.DataFrame, label: str) -> list[TestPredictions] | str:
    """The predictions of every record in ``rows``, or why they cannot be had."""
    out: list[TestPredictions] = []
    for _, row in rows.iterrows():
        ref = row.get("predictions")
        if not (isinstance(ref, dict) and ref.get("path")):
            return f"the {label} record (layer {row.get('layer')}) has no stored predictions"
        try:
            out.append(load_predictions(ref["path"], ref.get("sha256")))
        except PredictionsError as exc:
            return f"the {label} predictions cannot be read ({exc})"
    if not out:
        return f"no {label} records"
    return out


def compare_rows(
    a: pd.DataFrame, b: pd.DataFrame, metric: str, labels: tuple[str, str], margin: float = 0.0, level: float = 0.05
) -> PairedResult | str:
    """Paired bootstrap of ``metric`` between the records ``a`` and ``b`` (one per seed each, named
    ``labels``); the reason as a string when it cannot be done."""
    n = _resamples(pd.concat([a, b], ignore_index=True))
    if not n:
        return "the records carry no bootstrap intervals (--plm-bootstrap 0, or a head recorded without predictions)"
    pa = load_rows(a, labels[0])
    if isinstance(pa, str):
        return pa
    pb = load_rows(b, labels[1])
    if isinstance(pb, str):
        return pb
    if len({p.fingerprint() for p in (*pa, *pb)}) != 1:
        return f"{labels[0]} and {labels[1]} were not scored on the same test examples"
    try:
        result = paired_test(pa, pb, metric, margin=margin, level=level, n_resamples=n)
    except ValueError as exc:
        return str(exc)
    if math.isnan(result.p_value):
        return f"{metric} is undefined on the resampled test sets"
    return result
