"""Reports from per-layer results: terminal tables, Markdown and the CSV table (files: summary.write_report).

Everything here reads existing results (a layer frame from :func:`ledger.load_ledger`, plus
optional claim records) and recomputes nothing. Per task, one table: rows model/init (mean±std
over seeds when replicated), columns L00..Lnn on the task's test metric, the best layer (chosen
by the selection metric on validation, reported on test) marked ``*``, a ``best`` column and the
difference to one-hot, whose row comes first. Then the claims' outcomes.

Intervals (issue 12): where the records carry bootstrap intervals of the test metric, a cell reads
``0.821 ± 0.012`` where ``±`` is the **half-width of the 95% interval** ((high - low) / 2 of the
percentile bootstrap over test examples). With seed replicates the cell is the seed mean and the
half-width is ``1.96 * sqrt(sd_seeds^2 / k + mean(se^2))``: seed noise shrinks with k seeds, the
test-set noise does not (every seed is scored on the same test examples). Records without
intervals (``--plm-bootstrap 0``) show ``mean±sd`` over seeds as before. PNG curves shade the same
intervals.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pytest_plmtransfer.infra.table import text_table
from pytest_plmtransfer.measure.protocol import PLMTRANSFER
from pytest_plmtransfer.models.base import ONEHOT
from pytest_plmtransfer.results.aggregate import (
    best_layer,
    better,
    curve,
    depth,
    metric_columns,
    normalize,
    row_groups,
    sorted_seeds,
    task_metrics,
)

BEST_MARK = "*"
INIT_ORDER = {"none": 0, "pretrained": 1, "random": 2, "stat": 3}
OUTCOME_ORDER = ("failed", "passed", "xfailed", "xpassed", "skipped")


@dataclass
class TableRow:
    model: str
    init: str
    seeds: list[str]
    #: layer -> (mean, std) of the test metric; std is NaN without replicates
    values: dict[int, tuple[float, float]]
    best_layer: int | None
    depth: int
    #: layer -> half-width of the 95% interval of the test metric (absent: no intervals recorded)
    half_widths: dict[int, float] = field(default_factory=dict)
    #: the weights identity, when the ledger holds several for this (model, init): one row each
    weights: str | None = None
    #: the records behind the row (aggregate.row_groups), for results.csv
    records: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: --plm-limit N of the row's records (None: the whole task)
    limit: int | None = None

    @property
    def label(self) -> str:
        name = self.model if self.model == ONEHOT else f"{self.model}/{self.init}"
        name += f" @{self.weights.removeprefix('sha256:')}" if self.weights else ""
        return name + (f" (limit {self.limit})" if self.limit else "")

    @property
    def n_seeds(self) -> int:
        return len([s for s in self.seeds if s != "none"])

    @property
    def seeds_text(self) -> str:
        """``seed 42`` for one seed, ``3 seeds`` for several (a count never reads as a seed)."""
        seeds = [s for s in self.seeds if s != "none"]
        if not seeds:
            return "-"
        return f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds"

    @property
    def best(self) -> tuple[float, float] | None:
        return None if self.best_layer is None else self.values.get(self.best_layer)


@dataclass
class TaskTable:
    task: str
    selection_metric: str
    test_metric: str
    layers: list[int]
    rows: list[TableRow] = field(default_factory=list)
    #: what was done about several model versions or uneven seeds in the records (row_groups)
    notes: list[str] = field(default_factory=list)
    #: the protocol of every row (a table never mixes protocols)
    protocol: str = PLMTRANSFER

    @property
    def key(self) -> str:
        """The task, and the protocol unless it is the default: names figures and image links."""
        return self.task if self.protocol == PLMTRANSFER else f"{self.task}--{self.protocol}"

    @property
    def onehot(self) -> TableRow | None:
        return next((r for r in self.rows if r.model == ONEHOT), None)


def _note_of(note: str, task: str, protocol: str) -> bool:
    """Whether a row_groups note ("model/init on TASK[ (--plm-limit N)][ [PROTOCOL]]: ...") is this table's."""
    head = note.split(": ", 1)[0]
    tail = f" [{protocol}]" if protocol != PLMTRANSFER else ""
    return re.search(rf" on {re.escape(task)}( \(--plm-limit \d+\))?{re.escape(tail)}$", head) is not None


def task_tables(frame: pd.DataFrame, metric: str | None = None) -> list[TaskTable]:
    """One :class:`TaskTable` per (task, protocol), tasks and models in sorted order (one-hot first); rows
    never mix weights identities or uneven seeds silently (see :func:`aggregate.row_groups`)."""
    groups, notes = row_groups(frame)
    tables: list[TaskTable] = []
    for task, protocol in sorted({(g.task, g.protocol) for g in groups}):
        mine = [g for g in groups if (g.task, g.protocol) == (task, protocol)]
        tdata = pd.concat([g.records for g in mine])
        sel_m, test_m = task_metrics(tdata)
        test_m = metric or test_m
        table = TaskTable(task, sel_m, test_m, sorted(int(x) for x in tdata["layer"].unique()), protocol=protocol)
        table.notes = [n for n in notes if _note_of(n, task, protocol)]
        order = sorted(
            mine,
            key=lambda g: (
                g.model != ONEHOT,
                g.model,
                INIT_ORDER.get(g.init, 9),
                g.init,
                g.limit or 0,
                g.weights or "",
            ),
        )
        for g in order:
            sub = g.records
            c = curve(sub, [sel_m, test_m])
            values = {int(l): (float(r[test_m]), float(r[f"{test_m}_std"])) for l, r in c.iterrows()}
            table.rows.append(
                TableRow(
                    g.model,
                    g.init,
                    sorted_seeds(sub["seed_key"]),
                    values,
                    best_layer(c[sel_m], sel_m),
                    depth(sub),
                    interval_half_widths(sub, test_m),
                    g.weights,
                    sub,
                    g.limit,
                )
            )
        tables.append(table)
    return tables


def interval_half_widths(frame: pd.DataFrame, metric: str) -> dict[int, float]:
    """Per layer, the half-width of the 95% interval of ``metric`` (see the module docstring)."""
    out: dict[int, float] = {}
    for layer, sub in frame.groupby("layer"):
        found: list[dict[str, Any]] = [
            v
            for iv in sub["intervals"]
            if isinstance(iv, dict) and isinstance(v := iv.get(metric), dict)
            if v.get("low") is not None and v.get("high") is not None
        ]
        if not found or len(found) < len(sub):
            continue
        if len(found) == 1:
            out[int(layer)] = (float(found[0]["high"]) - float(found[0]["low"])) / 2.0
            continue
        values = pd.to_numeric(sub[metric], errors="coerce")
        se2 = sum(float(v["se"]) ** 2 for v in found) / len(found)
        out[int(layer)] = 1.96 * math.sqrt(float(values.var(ddof=1)) / len(found) + se2)
    return out


# --------------------------------------------------------------------------------------------
# text


def _cell(value: tuple[float, float] | None, best: bool, digits: int = 3, half_width: float | None = None) -> str:
    if value is None or math.isnan(value[0]):
        return ""
    mean, std = value
    txt = f"{mean:.{digits}f}"
    if half_width is not None and not math.isnan(half_width):
        txt += f" ± {half_width:.{digits}f}"
    elif not math.isnan(std):
        txt += f"±{std:.{digits}f}"
    return txt + (BEST_MARK if best else " ")


def _grid(table: TaskTable, layers: Sequence[int], with_summary: bool) -> tuple[list[str], list[list[str]]]:
    header = ["model/init", "seeds", *(f"L{l:02d}" for l in layers)]
    if with_summary:
        header += ["best", "vs onehot"]
    body = []
    for row in table.rows:
        cells = [row.label, row.seeds_text]
        cells += [_cell(row.values.get(l), l == row.best_layer, half_width=row.half_widths.get(l)) for l in layers]
        if with_summary:
            best = row.best
            cells.append("" if best is None else f"L{row.best_layer:02d} {best[0]:.3f}")
            delta = _delta(row, table.onehot)
            cells.append("" if delta is None else f"{delta:+.3f}")
        body.append(cells)
    return header, body


def _caption(table: TaskTable) -> str:
    spread = "mean±std over seeds where replicated"
    if any(r.half_widths for r in table.rows):
        spread = (
            "value ± half-width of its 95% interval: bootstrap over test examples, "
            "with the seed spread added where replicated"
            + ("; rows without intervals: mean±std over seeds" if not all(r.half_widths for r in table.rows) else "")
        )
    return (
        f"{table.task}: {table.test_metric} by layer ({BEST_MARK} = best layer chosen on "
        f"{table.selection_metric}; {spread}; {table.protocol} protocol)"
    )


def render_tables_text(frame: pd.DataFrame, *, metric: str | None = None, max_layer_columns: int = 12) -> str:
    out: list[str] = []
    for table in task_tables(frame, metric):
        out.append(_caption(table))
        layers = table.layers
        chunks = [layers[i : i + max_layer_columns] for i in range(0, len(layers), max_layer_columns)] or [[]]
        for n, chunk in enumerate(chunks):
            header, body = _grid(table, chunk, with_summary=n == len(chunks) - 1)
            out.extend(text_table(header, body, "l" + "r" * (len(header) - 1)))
            if n < len(chunks) - 1:
                out.append("")
        out += [f"note: {n}" for n in table.notes]
        out.append("")
    return "\n".join(out).rstrip() + "\n" if out else "no layer results\n"


@dataclass
class LeaderCell:
    """One row's best layer on one task (chosen on validation) and its test score."""

    layer: int
    value: float
    half_width: float | None
    vs_onehot: float | None
    rank: int


@dataclass
class LeaderRow:
    model: str
    init: str
    label: str
    cells: dict[str, LeaderCell] = field(default_factory=dict)

    @property
    def mean_rank(self) -> float:
        return sum(c.rank for c in self.cells.values()) / len(self.cells) if self.cells else math.inf


def leaderboard(tables: Sequence[TaskTable]) -> list[LeaderRow]:
    """Per (model, init), each task's best layer and score, ranked per task on its test metric.

    Scores of different tasks are different metrics, so they are never averaged: the order is
    the mean rank over the tasks a row was measured on (rows measured on more tasks first)."""
    rows: dict[tuple[str, str], LeaderRow] = {}
    for table in tables:
        scored = [(r, r.best[0]) for r in table.rows if r.best is not None and not math.isnan(r.best[0])]
        for row, value in scored:
            assert row.best_layer is not None
            rank = 1 + sum(better(other, value, table.test_metric) for _, other in scored)
            delta = _delta(row, table.onehot)
            cell = LeaderCell(row.best_layer, value, row.half_widths.get(row.best_layer), delta, rank)
            rows.setdefault((row.model, row.init), LeaderRow(row.model, row.init, row.label)).cells[table.task] = cell
    return sorted(rows.values(), key=lambda r: (-len(r.cells), r.mean_rank, r.label))


def _delta(row: TableRow, onehot: TableRow | None) -> float | None:
    if onehot is None or row is onehot or row.best is None or onehot.best is None:
        return None
    return row.best[0] - onehot.best[0]


def leaderboard_caption(tables: Sequence[TaskTable]) -> str:
    metrics = ", ".join(f"{t.task} {t.test_metric}" for t in tables)
    return (
        f"leaderboard: per task, the layer chosen on validation ({BEST_MARK} in the tables) and its test score "
        f"({metrics}); rank = mean rank over the tasks a row was measured on"
    )


def leader_cell_text(cell: LeaderCell | None, *, with_delta: bool = False) -> str:
    if cell is None:
        return ""
    txt = f"L{cell.layer:02d} {cell.value:.3f}"
    if cell.half_width is not None and not math.isnan(cell.half_width):
        txt += f" ± {cell.half_width:.3f}"
    if with_delta and cell.vs_onehot is not None:
        txt += f" ({cell.vs_onehot:+.3f} vs one-hot)"
    return txt


def leaderboard_grid(tables: Sequence[TaskTable], *, with_delta: bool = False) -> tuple[list[str], list[list[str]]]:
    header = ["rank", "model/init", *(t.task for t in tables)]
    body = [
        [f"{r.mean_rank:.1f}", r.label, *(leader_cell_text(r.cells.get(t.task), with_delta=with_delta) for t in tables)]
        for r in leaderboard(tables)
    ]
    return header, body


def render_leaderboard_text(frame: pd.DataFrame, *, metric: str | None = None) -> str:
    tables = task_tables(frame, metric)
    if not tables:
        return ""
    header, body = leaderboard_grid(tables)
    return "\n".join([leaderboard_caption(tables), *text_table(header, body, "rl" + "r" * len(tables))]) + "\n"


def claim_rows(claims: Any) -> list[dict[str, Any]]:
    """Claim records (list of dicts or a DataFrame): the newest per claim id, sorted by claim id."""
    if claims is None:
        return []
    records = claims.to_dict("records") if isinstance(claims, pd.DataFrame) else [dict(c) for c in claims]
    latest: dict[str, dict[str, Any]] = {}
    for rec in sorted(records, key=lambda r: str(r.get("timestamp") or "")):
        kind = rec.get("kind")
        if isinstance(kind, str) and kind != "claim":
            continue
        named = (v for v in (rec.get("claim_id"), rec.get("test_id")) if isinstance(v, str) and v)
        cid = next(named, f"{rec.get('claim')}[{rec.get('model')}-{rec.get('task')}-{rec.get('init')}]")
        rec["claim_id"] = cid
        latest[cid] = rec
    # sorted by id, not by time: the same run gives the same table serially and under xdist
    return [latest[cid] for cid in sorted(latest)]


def _claims_summary(rows: list[dict[str, Any]]) -> str:
    counts = Counter(str(r.get("outcome")) for r in rows)
    keys = [k for k in OUTCOME_ORDER if k in counts] + sorted(k for k in counts if k not in OUTCOME_ORDER)
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def _first_line(msg: Any) -> str:
    # whole: a claim's first line ends with its interval and verdict, which a cut would drop
    text = str(msg or "").strip().splitlines()
    return text[0] if text else ""


def render_claims_text(claims: Any) -> str:
    rows = claim_rows(claims)
    if not rows:
        return ""
    header = ["outcome", "claim", "message"]
    body = [[str(r.get("outcome", "")).upper(), r["claim_id"], _first_line(r.get("message"))] for r in rows]
    lines = [f"claims: {_claims_summary(rows)}", *text_table(header, body, free_last=True)]
    return "\n".join(lines) + "\n"


def render_text(
    frame: pd.DataFrame, claims: Any = None, *, metric: str | None = None, max_layer_columns: int = 12
) -> str:
    """The terminal report: one table per task, then the claims' outcomes."""
    text = render_tables_text(frame, metric=metric, max_layer_columns=max_layer_columns)
    if frame is not None and not frame.empty and normalize(frame)["task"].nunique() > 1:
        text += "\n" + render_leaderboard_text(frame, metric=metric)
    claims_txt = render_claims_text(claims)
    return text + ("\n" + claims_txt if claims_txt else "")


# --------------------------------------------------------------------------------------------
# markdown, csv


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]], align: Sequence[str]) -> list[str]:
    """A Markdown table of cells already escaped."""
    return [f"| {' | '.join(header)} |", f"|{'|'.join(align)}|", *(f"| {' | '.join(row)} |" for row in body)]


def render_markdown(
    frame: pd.DataFrame,
    claims: Any = None,
    *,
    metric: str | None = None,
    images: dict[str, str] | None = None,
    title: str = "plmtransfer report",
) -> str:
    lines = [f"# {title}", ""]
    tables = task_tables(frame, metric)
    if not tables:
        lines.append("No layer results.")
    if len(tables) > 1:
        header, body = leaderboard_grid(tables, with_delta=True)
        lines += ["## Leaderboard", "", _md_escape(leaderboard_caption(tables)), ""]
        cells = [[_md_escape(c) for c in row] for row in body]
        lines += [*_md_table(list(map(_md_escape, header)), cells, ["---:", ":---"] + ["---:"] * len(tables)), ""]
    for table in tables:
        lines += [f"## {table.task} [{table.protocol}]", "", _md_escape(_caption(table)), ""]
        header, body = _grid(table, table.layers, with_summary=True)
        cells = [[_md_escape(c.strip()) for c in row] for row in body]
        lines += [*_md_table(header, cells, [":---", "---:"] + ["---:"] * (len(header) - 2)), ""]
        lines += [f"- note: {_md_escape(n)}" for n in table.notes] + ([""] if table.notes else [])
        if images and table.key in images:
            lines += [f"![{table.key} layer curves]({images[table.key]})", ""]
    rows = claim_rows(claims)
    if rows:
        cells = [
            [str(r.get("outcome", "")).upper(), *map(_md_escape, (r["claim_id"], _first_line(r.get("message"))))]
            for r in rows
        ]
        lines += ["## Claims", "", _claims_summary(rows), ""]
        lines += [*_md_table(["outcome", "claim", "message"], cells, ["---"] * 3), ""]
    return "\n".join(lines)


def results_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Long per-(task, model, init, layer) table, one block per report row: seeds, means of every
    metric, stds of the test and selection metrics, relative depth, the best-layer flag, the
    weights identity and the run ids the numbers come from. This is ``results.csv``."""
    tables = task_tables(frame)
    blocks = []
    for table in tables:
        std_of = [table.test_metric, table.selection_metric]
        for row in table.rows:
            data = row.records
            metrics = metric_columns(data)
            grouped = data.groupby("layer", sort=True)
            block = pd.concat(
                [grouped[metrics].mean(), grouped[[m for m in std_of if m in metrics]].std(ddof=1).add_suffix("_std")],
                axis=1,
            )
            block["n_records"] = grouped.size()
            block = block.reset_index()
            block.insert(0, "task", table.task)
            block.insert(1, "protocol", table.protocol)
            block.insert(2, "model", row.model)
            block.insert(3, "init", row.init)
            block["relative_depth"] = block["layer"] / max(row.depth, 1)
            block["seeds"] = " ".join(row.seeds)
            block["selection_metric"] = table.selection_metric
            block["test_metric"] = table.test_metric
            block["best"] = block["layer"] == row.best_layer
            block["weights"] = " ".join(sorted({w for w in data["weights"] if isinstance(w, str)}))
            block["limit"] = row.limit  # --plm-limit N per split; empty: the whole task
            block["run_ids"] = " ".join(sorted({str(r) for r in data["run_id"].dropna()}))
            if row.half_widths:  # the ± of the tables: half-width of the 95% interval of the test metric
                block["test_metric_ci95_halfwidth"] = [row.half_widths.get(int(l)) for l in block["layer"]]
            blocks.append(block)
    if not blocks:
        return pd.DataFrame()
    out = pd.concat(blocks, ignore_index=True)
    lead = ["task", "protocol", "model", "init", "layer", "relative_depth", "seeds", "weights", "run_ids", "limit"]
    lead += ["selection_metric", "test_metric", "best"]
    return out[lead + [c for c in out.columns if c not in lead]]
