"""Where a run's time goes, per model: ``collection`` (describing the model), ``data`` (reading
and preparing the split), ``embedding`` (computing or loading from the cache), ``probe`` (fitting;
zero for cached results) and ``ledger`` (appending records).

Each process keeps a :class:`PhaseTimer`; every layer record carries, under ``timing``, the seconds
spent on its model since the model's previous record, so a run's records sum to its per-model
totals over all processes without a record kind of their own. (An append is timed after it is
written, so the model's next record carries it: only each model's last append goes uncounted.)
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
            continue  # a record built outside a run (testing.layer_record)
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
