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
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pytest_plmtransfer.aggregate import best_layer, curve, depth, metric_columns, normalize, sorted_seeds, task_metrics
from pytest_plmtransfer.models.base import ONEHOT
from pytest_plmtransfer.table import text_table
from pytest_plmtransfer.tempfiles import atomic_write

BEST_MARK = "*"
INIT_ORDER = {"none": 0, "pretrained": 1, "random": 2, "stat": 3}
INIT_STYLE = {  # the papers' style: pretrained solid, ablations dashed, one-hot dotted
    "pretrained": {"linestyle": "-", "marker": "o"},
    "random": {"linestyle": "--", "marker": "s"},
    "stat": {"linestyle": (0, (6, 2, 1.5, 2)), "marker": "^"},
}
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

    @property
    def onehot(self) -> TableRow | None:
        return next((r for r in self.rows if r.model == ONEHOT), None)


def _order(frame: pd.DataFrame, column: str) -> list[str]:
    # Sorted, not first-appearance: under pytest-xdist the record order depends on which worker
    # wrote first, and the report must not.
    return sorted(dict.fromkeys(str(v) for v in frame[column].tolist()))


def task_tables(frame: pd.DataFrame, metric: str | None = None) -> list[TaskTable]:
    """One :class:`TaskTable` per task, tasks and models in sorted order (one-hot first)."""
    data = normalize(frame)
    tables: list[TaskTable] = []
    if data.empty:
        return tables
    for task in _order(data, "task"):
        tdata = data[data["task"] == task]
        sel_m, test_m = task_metrics(tdata)
        test_m = metric or test_m
        table = TaskTable(task, sel_m, test_m, sorted(int(x) for x in tdata["layer"].unique()))
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
    if onehot is None or row is onehot or row.best is None or onehot.best is None:
        return ""
    return f"{row.best[0] - onehot.best[0]:+.3f}"


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
        f"{table.selection_metric}; {spread})"
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
    for table in tables:
        lines += [f"## {table.task}", "", _md_escape(_caption(table)), ""]
        header, body = _grid(table, table.layers, with_summary=True)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---", "---:"] + ["---:"] * (len(header) - 2)) + "|")
        for row in body:
            lines.append("| " + " | ".join(_md_escape(c.strip()) for c in row) + " |")
        lines.append("")
        if images and table.task in images:
            lines += [f"![{table.task} layer curves]({images[table.task]})", ""]
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
    keys = ["task", "model", "init", "layer"]
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
    out = out.merge(info, on=["task", "model", "init"], how="left")
    half = {(t.task, r.model, r.init, l): h for t in tables for r in t.rows for l, h in r.half_widths.items()}
    if half:  # the ± of the tables: half-width of the 95% interval of the task's test metric
        out["test_metric_ci95_halfwidth"] = [
            half.get((t, m, i, int(l))) for t, m, i, l in zip(out["task"], out["model"], out["init"], out["layer"])
        ]
    out["relative_depth"] = out["layer"] / out["depth"].clip(lower=1)
    out["best"] = out["layer"] == out["best_layer"]
    out = out.sort_values(["order", "layer"], kind="stable").reset_index(drop=True)
    lead = ["task", "model", "init", "layer", "relative_depth", "seeds", "selection_metric", "test_metric", "best"]
    rest = [c for c in out.columns if c not in lead and c not in ("depth", "best_layer", "order")]
    return out[lead + rest]


# --------------------------------------------------------------------------------------------
# figures


def _x_mode(table: TaskTable) -> str:
    depths = {r.depth for r in table.rows if r.model != ONEHOT}
    return "depth" if len(depths) > 1 else "layer"


def _draw(ax: Any, table: TaskTable, legend: bool = True) -> None:
    import matplotlib.pyplot as plt

    mode = _x_mode(table)
    colors = plt.get_cmap("tab10").colors
    models = [m for m in dict.fromkeys(r.model for r in table.rows) if m != ONEHOT]
    color = {m: colors[i % len(colors)] for i, m in enumerate(models)}
    for row in table.rows:
        if row.model == ONEHOT:
            continue
        layers = sorted(row.values)
        xs = [l / max(row.depth, 1) if mode == "depth" else l for l in layers]
        ys = [row.values[l][0] for l in layers]
        sd = [row.values[l][1] for l in layers]
        style = INIT_STYLE.get(row.init, {"linestyle": ":", "marker": "d"})
        label = f"{row.model} {row.init}" + (f" (n={row.n_seeds})" if row.n_seeds > 1 else "")
        ax.plot(xs, ys, color=color[row.model], linewidth=1.8, markersize=4, label=label, **style)
        if row.half_widths:
            hw = [row.half_widths.get(l, 0.0) for l in layers]
            ax.fill_between(
                xs,
                [y - h for y, h in zip(ys, hw)],
                [y + h for y, h in zip(ys, hw)],
                color=color[row.model],
                alpha=0.15,
                linewidth=0,
            )
        elif row.n_seeds > 1 and not all(math.isnan(s) for s in sd):
            lo = [y - (0 if math.isnan(s) else s) for y, s in zip(ys, sd)]
            hi = [y + (0 if math.isnan(s) else s) for y, s in zip(ys, sd)]
            ax.fill_between(xs, lo, hi, color=color[row.model], alpha=0.15, linewidth=0)
        if row.best_layer is not None and row.best_layer in row.values:
            bx = row.best_layer / max(row.depth, 1) if mode == "depth" else row.best_layer
            ax.plot(
                [bx],
                [row.values[row.best_layer][0]],
                marker="*",
                markersize=13,
                color=color[row.model],
                markeredgecolor="black",
                markeredgewidth=0.6,
                linestyle="none",
                zorder=5,
            )
    one = table.onehot
    if one is not None and one.best is not None:
        ax.axhline(one.best[0], color="black", linestyle=":", linewidth=1.6, label=f"one-hot ({one.best[0]:.3f})")
        hw = one.half_widths.get(one.best_layer) if one.best_layer is not None else None
        if hw:
            ax.axhspan(one.best[0] - hw, one.best[0] + hw, color="black", alpha=0.07, linewidth=0)
    ax.set_title(f"{table.task}")
    ax.set_xlabel("relative depth (layer / last layer)" if mode == "depth" else "layer")
    ax.set_ylabel(table.test_metric)
    if mode == "layer":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(fontsize=8, loc="best", framealpha=0.85)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def plot_layer_curves(frame: pd.DataFrame, out_dir: Path | str, *, metric: str | None = None) -> dict[str, Path]:
    """One PNG per task (``layers_<task>.png``) and an overview with a panel per task
    (``layers_all.png``, when there are several tasks). Returns task -> path ("_all" for the overview)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = task_tables(frame, metric)
    paths: dict[str, Path] = {}
    for table in tables:
        fig, ax = plt.subplots(figsize=(9.0, 4.8), dpi=110)
        _draw(ax, table, legend=False)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), framealpha=0.85)
        ax.set_title(
            f"{table.task}: {table.test_metric} by layer (★ = layer chosen on {table.selection_metric})", fontsize=10
        )
        fig.tight_layout()
        path = out_dir / f"layers_{_safe(table.task)}.png"
        atomic_write(path, lambda fh, fig=fig: fig.savefig(fh, format="png"))
        plt.close(fig)
        paths[table.task] = path
    if len(tables) > 1:
        n = len(tables)
        cols = min(3, n)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows + 0.8), dpi=100, squeeze=False)
        for ax, table in zip(axes.flat, tables):
            _draw(ax, table, legend=False)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        handles, labels = {}, []
        for ax in axes.flat:
            for h, l in zip(*ax.get_legend_handles_labels()):
                key = l.split(" (")[0] if l.startswith("one-hot") else l
                if key not in handles:
                    handles[key] = h
                    labels.append(key)
        fig.legend([handles[l] for l in labels], labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
        fig.tight_layout(rect=(0, 0.02 + 0.03 * math.ceil(len(labels) / 4), 1, 1))
        path = out_dir / "layers_all.png"
        atomic_write(path, lambda fh, fig=fig: fig.savefig(fh, format="png"))
        plt.close(fig)
        paths["_all"] = path
    return paths


def write_report(frame: pd.DataFrame, claims: Any, out_dir: Path | str, *, metric: str | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``results.csv`` and the layer-curve PNGs into ``out_dir``.

    Returns ``{"markdown": Path, "csv": Path, "png": {task: Path}}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = plot_layer_curves(frame, out_dir, metric=metric)
    images = {task: p.name for task, p in pngs.items()}
    md = out_dir / "report.md"
    atomic_write(md, render_markdown(frame, claims, metric=metric, images=images))
    csv = out_dir / "results.csv"
    atomic_write(csv, results_table(frame).to_csv(index=False))
    return {"markdown": md, "csv": csv, "png": pngs}


__all__ = [
    "TableRow",
    "TaskTable",
    "task_tables",
    "render_text",
    "render_tables_text",
    "render_claims_text",
    "render_markdown",
    "results_table",
    "plot_layer_curves",
    "write_report",
    "claim_rows",
]
