"""The authors' results table (``baselines/paper/reference.json``) and ``plmtransfer paper``.

The file holds every value of the authors' results notebooks, one row per (task, model, init,
metric), each naming its source (repository, commit, notebook, cell). Values are at the last
layer under the authors' protocol, so a ledger's numbers are compared only where they match
all three: records of protocol ``authors``, the model's last layer, the row's metric.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from pytest_plmtransfer.infra.errors import BaselineError
from pytest_plmtransfer.infra.table import text_table
from pytest_plmtransfer.results.aggregate import NO_SEED, depth, fmt, measured, normalize, sorted_seeds

FORMAT = "plmtransfer-paper-reference/2"
_ROW_KEYS = ("task", "model", "init", "metric", "value", "source")


class PaperReferenceError(BaselineError, ValueError):
    """The reference file is unreadable or malformed; the message names the file and the row."""


@dataclass(frozen=True)
class ReferenceValue:
    """One value of the authors' table."""

    task: str
    model: str
    init: str
    metric: str
    value: float
    source: str


@dataclass
class PaperRow:
    """A reference value beside a ledger's number."""

    ref: ReferenceValue
    layer: int | None
    current: float | None
    tolerance: float
    seed_used: str

    @property
    def diff(self) -> float | None:
        return None if self.current is None else self.current - self.ref.value

    @property
    def status(self) -> str:
        if self.current is None:
            return "MISSING"
        return "OK" if abs(self.current - self.ref.value) <= self.tolerance + 1e-12 else "FAIL"

    @property
    def ok(self) -> bool:
        return self.status == "OK"


class PaperReference:
    """The authors' table, validated on load."""

    def __init__(self, doc: Any, path: Path) -> None:
        self.path = path

        def bad(problem: str) -> PaperReferenceError:
            return PaperReferenceError(f"{path}: {problem}")

        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise bad(f"'format' must be {FORMAT!r}")
        self.protocol: str = str(doc.get("protocol", "authors"))
        self.seed = doc.get("seed", 42)
        self.tolerance = float(doc.get("tolerance", 0.05))
        if not math.isfinite(self.tolerance):  # JSON's Infinity: a comparison that can never fail
            raise bad(f"'tolerance' must be a finite number, got {doc.get('tolerance')!r}")
        self.sources: dict[str, dict[str, Any]] = doc.get("sources") or {}
        tasks = doc.get("tasks") or {}
        self.compared_tasks = {t for t, info in tasks.items() if isinstance(info, dict) and info.get("compared", True)}
        self.rows: list[ReferenceValue] = []
        for i, raw in enumerate(doc.get("values") or []):
            where = f"values[{i}]"
            if not isinstance(raw, dict) or any(k not in raw for k in _ROW_KEYS):
                raise bad(f"{where}: needs the keys {', '.join(_ROW_KEYS)}")
            value = raw["value"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad(f"{where}: 'value' must be a finite number, got {value!r}")
            if raw["source"] not in self.sources:
                raise bad(f"{where}: source {raw['source']!r} is not a key of 'sources'")
            if raw["task"] not in tasks:
                raise bad(f"{where}: task {raw['task']!r} is not a key of 'tasks'")
            task, model, init, metric, source = (str(raw[k]) for k in ("task", "model", "init", "metric", "source"))
            self.rows.append(ReferenceValue(task, model, init, metric, float(value), source))
        self._index = {(r.task, r.model, r.init, r.metric): r for r in self.rows}
        self.best_layers: dict[tuple[str, str], int] = {
            (str(b["task"]), str(b["model"])): int(b["best_layer"]) for b in doc.get("best_layers") or []
        }

    @classmethod
    def load(cls, path: Path) -> PaperReference:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise PaperReferenceError(f"{path}: not valid JSON ({exc})") from exc
        return cls(doc, path)

    def value(self, task: str, model: str, init: str, metric: str) -> ReferenceValue | None:
        return self._index.get((task, model, init, metric))

    def values_for(self, task: str, model: str, init: str) -> list[ReferenceValue]:
        return [r for r in self.rows if (r.task, r.model, r.init) == (task, model, init)]

    def source_of(self, ref: ReferenceValue) -> str:
        s = self.sources.get(ref.source, {})
        return f"{s.get('repository')}@{str(s.get('commit'))[:7]}:{s.get('file')} cell {s.get('cell')}"

    def compare(self, frame: pd.DataFrame, tolerance: float | None = None) -> list[PaperRow]:
        """One row per reference value whose (task, model, init) the ledger has under the
        reference's protocol: the ledger's last layer on the value's metric, at seed ``seed`` when
        the run has it, else the mean over its seeds (pretrained and one-hot have no seed)."""
        tol = self.tolerance if tolerance is None else float(tolerance)
        data = normalize(frame)
        if data.empty:
            return []
        data = data[data["protocol"] == self.protocol]
        rows: list[PaperRow] = []
        for (task, model, init), sub in data.groupby(["task", "model", "init"], sort=True):
            if task not in self.compared_tasks:
                continue
            last = depth(sub)
            at = sub[sub["layer"] == last]
            keys = set(at["seed_key"])
            if str(self.seed) in keys:
                at, seed_used = at[at["seed_key"] == str(self.seed)], str(self.seed)
            else:
                seed_used = ",".join(sorted_seeds(keys)) if keys != {NO_SEED} else "none"
            for ref in self.values_for(task, model, init):
                current = (
                    float(pd.to_numeric(at[ref.metric], errors="coerce").mean()) if measured(at, ref.metric) else None
                )
                rows.append(PaperRow(ref, last, current, tol, seed_used))
        return rows


def format_rows(rows: list[PaperRow]) -> str:
    header = ("task", "model", "init", "metric", "layer", "authors", "ours", "diff", "tolerance", "status")
    body = [
        (
            r.ref.task,
            r.ref.model,
            r.ref.init,
            r.ref.metric,
            "-" if r.layer is None else str(r.layer),
            fmt(r.ref.value),
            fmt(r.current),
            "n/a" if r.diff is None else f"{r.diff:+.3f}",
            f"±{r.tolerance:g}",
            r.status,
        )
        for r in rows
    ]
    if not body:
        return "no record matches a reference value"
    return "\n".join(text_table(header, body, "llllrrrrrl"))


def run_paper(
    ledger: Path,
    reference: PaperReference,
    layers: pd.DataFrame,
    tolerance: float | None,
    out: TextIO,
    *,
    show_all: bool,
) -> int:
    """``plmtransfer paper``: the reference table beside the ledger's numbers; 1 when a compared
    value is outside the tolerance."""
    rows = reference.compare(layers, tolerance)
    matched = {id(r.ref) for r in rows}  # compare() rows carry the reference's own values
    if show_all:
        tol = reference.tolerance if tolerance is None else float(tolerance)
        rows += [PaperRow(ref, None, None, tol, "n/a") for ref in reference.rows if id(ref) not in matched]
        order = {id(ref): i for i, ref in enumerate(reference.rows)}
        rows.sort(key=lambda r: order[id(r.ref)])
    out.write(f"the authors' results ({reference.path}; protocol {reference.protocol}, last layer) vs {ledger}\n")
    out.write(format_rows(rows) + "\n")
    data = normalize(layers)
    others = sorted(set(data["protocol"]) - {reference.protocol})
    if others:
        n = int((data["protocol"] != reference.protocol).sum())
        out.write(
            f"{n} record(s) of protocol {', '.join(others)} not compared: the table is the authors' protocol "
            f"(run with --plm-protocol {reference.protocol})\n"
        )
    compared = [r for r in rows if r.current is not None]
    failed = [r for r in compared if not r.ok]
    out.write(
        f"{len(compared)} of {len(reference.rows)} reference values compared; "
        + (f"{len(failed)} outside ±{failed[0].tolerance:g}: FAIL\n" if failed else "all within tolerance: OK\n")
    )
    return 1 if failed else 0
