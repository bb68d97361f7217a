"""Reports from per-layer results: terminal tables, Markdown, CSV and layer-curve PNGs.

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
intervals (older ledgers) show ``mean±sd`` over seeds as before. PNG curves shade the same
intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pytest_plmtransfer.aggregate import (
    best_layer,
    better,
    curve,
    depth,
    metric_columns,
    normalize,
    sorted_seeds,
    task_metrics,
)
from pytest_plmtransfer.models.base import ONEHOT
from pytest_plmtransfer.protocol import PLMTRANSFER
from pytest_plmtransfer.table import text_table
from pytest_plmtransfer.tempfiles import atomic_write

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

    @property
    def label(self) -> str:
        return self.model if self.model == ONEHOT else f"{self.model}/{self.init}"

    @property
    def n_seeds(self) -> int:
        return len([s for s in self.seeds if s != "none"])

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
    #: the protocol of every row (a table never mixes protocols)
    protocol: str = PLMTRANSFER

    @property
    def key(self) -> str:
        """The task, and the protocol unless it is the default: names figures and image links."""
        return self.task if self.protocol == PLMTRANSFER else f"{self.task}--{self.protocol}"

    @property
    def onehot(self) -> TableRow | None:
        return next((r for r in self.rows if r.model == ONEHOT), None)


def _order(frame: pd.DataFrame, column: str) -> list[str]:
    # Sorted, not first-appearance: under pytest-xdist the record order depends on which worker
    # wrote first, and the report must not.
    return sorted(dict.fromkeys(str(v) for v in frame[column].tolist()))


def task_tables(frame: pd.DataFrame, metric: str | None = None) -> list[TaskTable]:
    """One :class:`TaskTable` per (task, protocol), tasks and models in sorted order (one-hot first)."""
    data = normalize(frame)
    tables: list[TaskTable] = []
    if data.empty:
        return tables
    pairs = data[["task", "protocol"]].drop_duplicates().astype(str).itertuples(index=False)
    for task, protocol in sorted(pairs):
        tdata = data[(data["task"] == task) & (data["protocol"] == protocol)]
        sel_m, test_m = task_metrics(tdata)
        test_m = metric or test_m
        table = TaskTable(task, sel_m, test_m, sorted(int(x) for x in tdata["layer"].unique()), protocol=protocol)
        models = _order(tdata, "model")
        models = sorted(models, key=lambda m: m != ONEHOT)  # stable: one-hot first, then by name
        for model in models:
            mdata = tdata[tdata["model"] == model]
            inits = sorted(_order(mdata, "init"), key=lambda i: (INIT_ORDER.get(i, 9), i))
            for init in inits:
                sub = mdata[mdata["init"] == init]
                c = curve(sub, [sel_m, test_m])
                values = {int(l): (float(r[test_m]), float(r[f"{test_m}_std"])) for l, r in c.iterrows()}
                table.rows.append(
                    TableRow(
                        model,
                        init,
                        sorted_seeds(sub["seed_key"]),
                        values,
                        best_layer(c[sel_m], sel_m),
                        depth(sub),
                        interval_half_widths(sub, test_m),
                    )
                )
        tables.append(table)
    return tables


def interval_half_widths(frame: pd.DataFrame, metric: str) -> dict[int, float]:
    """Per layer, the half-width of the 95% interval of ``metric`` (see the module docstring)."""
    if "intervals" not in frame.columns:
        return {}
    out: dict[int, float] = {}
    for layer, sub in frame.groupby("layer"):
        found = [iv.get(metric) for iv in sub["intervals"] if isinstance(iv, dict)]
        found = [v for v in found if isinstance(v, dict) and v.get("low") is not None and v.get("high") is not None]
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


def _vs_onehot(row: TableRow, onehot: TableRow | None) -> str:
    delta = _delta(row, onehot)
    return "" if delta is None else f"{delta:+.3f}"


def _grid(table: TaskTable, layers: Sequence[int], with_summary: bool) -> tuple[list[str], list[list[str]]]:
    header = ["model/init", "seeds", *(f"L{l:02d}" for l in layers)]
    if with_summary:
        header += ["best", "vs onehot"]
    body = []
    for row in table.rows:
        cells = [row.label, str(row.n_seeds) if row.n_seeds else "-"]
        cells += [_cell(row.values.get(l), l == row.best_layer, half_width=row.half_widths.get(l)) for l in layers]
        if with_summary:
            best = row.best
            cells.append("" if best is None else f"L{row.best_layer:02d} {best[0]:.3f}")
            cells.append(_vs_onehot(row, table.onehot))
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
        scored = [(r, r.best) for r in table.rows if r.best is not None and not math.isnan(r.best[0])]
        onehot = table.onehot
        for row, best in scored:
            assert best is not None and row.best_layer is not None
            rank = 1 + sum(better(other[0], best[0], table.test_metric) for _, other in scored if other is not None)
            delta = _delta(row, onehot)
            cell = LeaderCell(row.best_layer, best[0], row.half_widths.get(row.best_layer), delta, rank)
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
    if isinstance(claims, pd.DataFrame):
        records = claims.to_dict("records")
    else:
        records = [dict(c) for c in claims]
    latest: dict[str, dict[str, Any]] = {}
    for rec in sorted(records, key=lambda r: str(r.get("timestamp") or "")):
        kind = rec.get("kind")
        if isinstance(kind, str) and kind != "claim":
            continue
        cid = rec.get("claim_id") if isinstance(rec.get("claim_id"), str) else None
        if not cid:
            cid = rec.get("test_id") if isinstance(rec.get("test_id"), str) else None
        if not cid:
            cid = f"{rec.get('claim')}[{rec.get('model')}-{rec.get('task')}-{rec.get('init')}]"
        rec["claim_id"] = cid
        latest[cid] = rec
    # sorted by id, not by time: the same run gives the same table serially and under xdist
    return [latest[cid] for cid in sorted(latest)]


def _claims_summary(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("outcome"))] = counts.get(str(r.get("outcome")), 0) + 1
    keys = [k for k in OUTCOME_ORDER if k in counts] + sorted(k for k in counts if k not in OUTCOME_ORDER)
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def _first_line(msg: Any, width: int | None) -> str:
    text = str(msg or "").strip().splitlines()
    line = text[0] if text else ""
    if width and len(line) > width:
        line = line[: width - 1] + "…"
    return line


def render_claims_text(claims: Any, *, width: int | None = 160) -> str:
    rows = claim_rows(claims)
    if not rows:
        return ""
    header = ["outcome", "claim", "message"]
    # rows that need action (failed, skipped, ...) keep their whole first line: it says what to run
    body = [
        [
            str(r.get("outcome", "")).upper(),
            r["claim_id"],
            _first_line(r.get("message"), width if r.get("outcome") in ("passed", "xfailed") else None),
        ]
        for r in rows
    ]
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
        lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
        lines.append("|" + "|".join(["---:", ":---"] + ["---:"] * len(tables)) + "|")
        lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in body]
        lines.append("")
    for table in tables:
        lines += [f"## {table.task} [{table.protocol}]", "", _md_escape(_caption(table)), ""]
        header, body = _grid(table, table.layers, with_summary=True)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---", "---:"] + ["---:"] * (len(header) - 2)) + "|")
        for row in body:
            lines.append("| " + " | ".join(_md_escape(c.strip()) for c in row) + " |")
        lines.append("")
        if images and table.key in images:
            lines += [f"![{table.key} layer curves]({images[table.key]})", ""]
    rows = claim_rows(claims)
    if rows:
        lines += ["## Claims", "", _claims_summary(rows), "", "| outcome | claim | message |", "|---|---|---|"]
        for r in rows:
            msg = _md_escape(_first_line(r.get("message"), None))
            lines.append(f"| {str(r.get('outcome', '')).upper()} | {_md_escape(r['claim_id'])} | {msg} |")
        lines.append("")
    return "\n".join(lines)


def results_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Long per-(task, model, init, layer) table: seed count, means of every metric, stds of the
    test and selection metrics, relative depth and the best-layer flag. This is ``results.csv``."""
    data = normalize(frame)
    if data.empty:
        return pd.DataFrame()
    metrics = metric_columns(data)
    tables = task_tables(data)
    keys = ["task", "protocol", "model", "init", "layer"]
    grouped = data.groupby(keys, sort=False)
    mean = grouped[metrics].mean()
    std_cols = list(dict.fromkeys(m for t in tables for m in (t.test_metric, t.selection_metric) if m in metrics))
    std = grouped[std_cols].std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)
    out["n_records"] = grouped.size()
    out = out.reset_index()
    info = pd.DataFrame(
        [
            {
                "task": t.task,
                "protocol": t.protocol,
                "model": r.model,
                "init": r.init,
                "seeds": " ".join(r.seeds),
                "depth": r.depth,
                "selection_metric": t.selection_metric,
                "test_metric": t.test_metric,
                "best_layer": r.best_layer,
                "order": (ti, ri),
            }
            for ti, t in enumerate(tables)
            for ri, r in enumerate(t.rows)
        ]
    )
    out = out.merge(info, on=["task", "protocol", "model", "init"], how="left")
    half = {
        (t.task, t.protocol, r.model, r.init, l): h for t in tables for r in t.rows for l, h in r.half_widths.items()
    }
    if half:  # the ± of the tables: half-width of the 95% interval of the task's test metric
        out["test_metric_ci95_halfwidth"] = [
            half.get((t, p, m, i, int(l)))
            for t, p, m, i, l in zip(out["task"], out["protocol"], out["model"], out["init"], out["layer"])
        ]
    out["relative_depth"] = out["layer"] / out["depth"].clip(lower=1)
    out["best"] = out["layer"] == out["best_layer"]
    out = out.sort_values(["order", "layer"], kind="stable").reset_index(drop=True)
    lead = [
        "task",
        "protocol",
        "model",
        "init",
        "layer",
        "relative_depth",
        "seeds",
        "selection_metric",
        "test_metric",
        "best",
    ]
    rest = [c for c in out.columns if c not in lead and c not in ("depth", "best_layer", "order")]
    return out[lead + rest]


def write_report(
    frame: pd.DataFrame,
    claims: Any,
    out_dir: Path | str,
    *,
    metric: str | None = None,
    extra_figures: Sequence[Any] = (),
) -> dict[str, Any]:
    """Write ``report.md``, ``report.html``, ``results.csv`` and the layer curves (PNG and SVG)
    into ``out_dir``; ``extra_figures`` (objects with ``path``, ``svg``, ``title``, ``paper_ref``)
    join the HTML report.

    Returns ``{"html": Path, "markdown": Path, "csv": Path, "png": {task: Path}, "svg": {task: Path}}``.
    """
    from pytest_plmtransfer.html_report import write_html
    from pytest_plmtransfer.plots import plot_layer_curves

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = plot_layer_curves(frame, out_dir, metric=metric)
    images = {task: p.name for task, p in pngs.items()}
    md = out_dir / "report.md"
    atomic_write(md, render_markdown(frame, claims, metric=metric, images=images))
    csv = out_dir / "results.csv"
    atomic_write(csv, results_table(frame).to_csv(index=False))
    figures = [*_paper_figures(frame, out_dir), *extra_figures]
    html = write_html(frame, claims, out_dir / "report.html", curves=pngs, metric=metric, extra_figures=figures)
    svgs = {task: p.with_suffix(".svg") for task, p in pngs.items()}
    return {"html": html, "markdown": md, "csv": csv, "png": pngs, "svg": svgs, "figures": [f.path for f in figures]}


def _paper_figures(frame: pd.DataFrame, out_dir: Path) -> list[Any]:
    from pytest_plmtransfer.figures import render_figures

    return list(render_figures(frame, out_dir / "figures"))


__all__ = [
    "TableRow",
    "TaskTable",
    "task_tables",
    "render_text",
    "render_tables_text",
    "render_claims_text",
    "render_markdown",
    "results_table",
    "leaderboard",
    "render_leaderboard_text",
    "write_report",
    "claim_rows",
]
