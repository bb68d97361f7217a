"""Where a run's time goes: collection, data, embedding, probe fitting and ledger writes, per model.

Each pytest process (the controller, or every xdist worker) keeps a :class:`PhaseTimer`; the
session wraps each phase in :meth:`PhaseTimer.measure`. Every layer record carries, under
``timing``, the seconds this process spent on that record's model *since its previous record of
the model* (:meth:`PhaseTimer.take`), so the per-model sums over a run's records are the run's
per-model totals over all processes -- with no extra record kind in the ledger. (The append of
a record is timed after it is written, so it is carried by the model's next record; only the
last append of each model per process goes uncounted: milliseconds.)

Phases:

* ``collection``: building/describing the model while tests are collected (layer count ...);
* ``data``: reading the FLIP split (first use of a task in a process) and preparing it for the
  model (windows, 511+511 cuts);
* ``embedding``: computing the embeddings, or loading them from the cache;
* ``probe``: fitting and evaluating the heads (zero for cached probe results);
* ``ledger``: appending records to the ledger.

:func:`run_timing` sums the records and :func:`render_timing_text` prints the ``--plm-report``
section.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from pytest_plmtransfer.infra.table import text_table

PHASES = ("collection", "data", "embedding", "probe", "ledger")


class PhaseTimer:
    """Wall-clock seconds per (model, phase), accumulated over a process."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(PHASES, 0.0))

    def add(self, model: str, phase: str, seconds: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown timing phase {phase!r}; expected one of {PHASES}")
        self.seconds[model][phase] += float(seconds)

    @contextmanager
    def measure(self, model: str, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(model, phase, time.perf_counter() - start)

    def take(self, model: str) -> dict[str, float]:
        """``{phase_seconds: value}`` accumulated for ``model`` since the last take, then reset."""
        pending = self.seconds.pop(model, None) or dict.fromkeys(PHASES, 0.0)
        return {f"{phase}_seconds": round(pending[phase], 4) for phase in PHASES}


def run_timing(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-model phase totals: the ``timing`` of a run's layer records summed by model."""
    total: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(PHASES, 0.0))
    for record in records:
        timing = record.get("timing")
        if not isinstance(timing, dict):
            continue  # records written before timing existed
        for phase in PHASES:
            total[str(record.get("model"))][phase] += float(timing.get(f"{phase}_seconds") or 0.0)
    return dict(total)


def render_timing_text(records: Iterable[dict[str, Any]]) -> str:
    """A table: one row per model, seconds per phase and in total, plus an all-models row."""
    totals = run_timing(records)
    if not totals:
        return ""
    header = ["model", *PHASES, "total"]
    rows = []
    for model in sorted(totals):
        values = [totals[model][p] for p in PHASES]
        rows.append([model, *(f"{v:.1f}" for v in values), f"{sum(values):.1f}"])
    sums = [sum(totals[m][p] for m in totals) for p in PHASES]
    rows.append(["(all)", *(f"{v:.1f}" for v in sums), f"{sum(sums):.1f}"])
    lines = ["time per model (seconds, all processes of this run):"]
    lines += text_table(header, rows, "l" + "r" * (len(header) - 1), rule=False)
    return "\n".join(lines)


__all__ = ["PHASES", "PhaseTimer", "render_timing_text", "run_timing"]
