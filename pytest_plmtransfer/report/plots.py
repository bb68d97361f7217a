"""Layer-curve figures, PNG with an SVG beside it: one per task, an overview, and a comparison.

Read from :class:`report.TaskTable` rows, so a figure shows exactly what the tables show. What a
reader needs to tell curves apart:

- each (model, init) row has its own colour (Okabe-Ito, colour-blind safe) so bands never merge,
  and its init a line style: pretrained solid, random dashed, stat dotted; one-hot is a black
  horizontal dotted line at its best layer;
- the legend says what the bands are (the 95% interval of the tables, or ±1 sd across seeds);
- one x axis per figure: layer index when every model has the same depth, otherwise relative
  depth (layer / last layer), stated on the axis; the overview uses one of them on every panel;
- a line joins measured layers only: an unmeasured layer breaks it, every measurement has a marker.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from pytest_plmtransfer.infra.tempfiles import atomic_write
from pytest_plmtransfer.models.base import ONEHOT
from pytest_plmtransfer.report.tables import TableRow, TaskTable, task_tables
from pytest_plmtransfer.results.aggregate import ResultsError

#: Okabe & Ito (2008), black left out: it is one-hot's
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
INIT_STYLE: dict[str, dict[str, Any]] = {
    "pretrained": {"linestyle": "-", "marker": "o"},
    "random": {"linestyle": "--", "marker": "s"},
    "stat": {"linestyle": ":", "marker": "^"},
}
OTHER_STYLE: dict[str, Any] = {"linestyle": "-.", "marker": "d"}
BAND_ALPHA = 0.18
BAND_LABELS = {
    "ci": "band: 95% bootstrap CI (test examples)",
    "ci+seeds": "band: 95% CI (test bootstrap + seed spread)",
    "ci+some-seeds": "band: 95% CI (test bootstrap; + seed spread if seeds > 1)",
    "sd": "band: ±1 sd across seeds",
}


def _band(row: TableRow, layer: int) -> tuple[str, float] | None:
    """(kind, half-width) of the band at ``layer``, the same spread the tables print."""
    if layer in row.half_widths:
        return ("ci+seeds" if row.n_seeds > 1 else "ci", row.half_widths[layer])
    std = row.values[layer][1] if layer in row.values else math.nan
    return ("sd", std) if row.n_seeds > 1 and not math.isnan(std) else None


def _x_mode(tables: Sequence[TaskTable]) -> str:
    depths = {r.depth for t in tables for r in t.rows if r.model != ONEHOT}
    return "depth" if len(depths) > 1 else "layer"


def _x(layer: int, row: TableRow, mode: str) -> float:
    return layer / max(row.depth, 1) if mode == "depth" else float(layer)


def _label(row: TableRow) -> str:
    return f"{row.model} {row.init}" + (f" ({row.n_seeds} seeds)" if row.n_seeds > 1 else "")


def row_colors(tables: Sequence[TaskTable]) -> dict[tuple[str, str], str]:
    """One colour per (model, init), the same on every panel of a figure."""
    keys = list(dict.fromkeys((r.model, r.init) for t in tables for r in t.rows if r.model != ONEHOT))
    return {k: OKABE_ITO[i % len(OKABE_ITO)] for i, k in enumerate(keys)}


def _draw_row(ax: Any, row: TableRow, mode: str, color: str, label: str, bands: set[str]) -> None:
    measured = sorted(row.values)
    if not measured:
        return
    span = range(measured[0], measured[-1] + 1)
    # NaN at a layer nobody measured: matplotlib breaks the line (and the band) there
    xs = [_x(l, row, mode) for l in span]
    ys = [row.values[l][0] if l in row.values else math.nan for l in span]
    style = INIT_STYLE.get(row.init, OTHER_STYLE)
    ax.plot(xs, ys, color=color, linewidth=1.8, markersize=4, label=label, **style)
    spread = {l: _band(row, l) for l in measured}
    if any(spread.values()):
        hw = [spread[l][1] if spread.get(l) else math.nan for l in span]  # type: ignore[index]
        lo = [y - h for y, h in zip(ys, hw)]
        hi = [y + h for y, h in zip(ys, hw)]
        ax.fill_between(xs, lo, hi, color=color, alpha=BAND_ALPHA, linewidth=0)
        # a measured layer with no measured neighbour has no area to fill: an error bar instead
        for l in measured:
            if spread[l] and l - 1 not in row.values and l + 1 not in row.values:
                ax.errorbar([_x(l, row, mode)], [row.values[l][0]], yerr=[spread[l][1]], color=color, capsize=3)  # type: ignore[index]
        bands.update(kind for kind, _ in filter(None, spread.values()))
    if row.best_layer is not None and row.best_layer in row.values:
        star = dict(marker="*", markersize=13, markeredgecolor="black", markeredgewidth=0.6, linestyle="none", zorder=5)
        ax.plot([_x(row.best_layer, row, mode)], [row.values[row.best_layer][0]], color=color, **star)


def _draw_onehot(ax: Any, row: TableRow, color: str, label: str, bands: set[str]) -> None:
    if row.best is None:
        return
    value = row.best[0]
    ax.axhline(value, color=color, linestyle=":", linewidth=1.6, label=label)
    band = _band(row, row.best_layer) if row.best_layer is not None else None
    if band:
        ax.axhspan(value - band[1], value + band[1], color=color, alpha=0.08, linewidth=0)
        bands.add(band[0])


def _axes(ax: Any, table: TaskTable, mode: str) -> None:
    ax.set_xlabel("relative depth (layer / last layer)" if mode == "depth" else "layer")
    ax.set_ylabel(table.test_metric)
    if mode == "layer":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)


def _draw_table(
    ax: Any,
    table: TaskTable,
    mode: str,
    colors: dict[tuple[str, str], str],
    bands: set[str],
    onehot_label: str = "one-hot (best layer)",
) -> None:
    for row in table.rows:
        if row.model == ONEHOT:
            _draw_onehot(ax, row, "black", onehot_label, bands)
        else:
            _draw_row(ax, row, mode, colors[(row.model, row.init)], _label(row), bands)
    _axes(ax, table, mode)


def _legend_entries(axes: Sequence[Any], bands: set[str], selection: set[str]) -> tuple[list[Any], list[str]]:
    """Each label once, then what the star and the bands mean."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: dict[str, Any] = {}
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    if selection:
        star = Line2D([], [], marker="*", markersize=11, color="grey", markeredgecolor="black", linestyle="none")
        handles[f"layer chosen on {' / '.join(sorted(selection))}"] = star
    if {"ci", "ci+seeds"} <= bands:  # one entry: the rows' labels say which have seeds
        bands = (bands - {"ci", "ci+seeds"}) | {"ci+some-seeds"}
    for kind in ("ci", "ci+seeds", "ci+some-seeds", "sd"):
        if kind in bands:
            handles[BAND_LABELS[kind]] = Patch(facecolor="grey", alpha=BAND_ALPHA * 2)
    return list(handles.values()), list(handles)


def _legend_below(fig: Any, handles: list[Any], labels: list[str], panel_rows: int, top: float = 1.0) -> None:
    """One legend under the panels, the panels shrunk to leave it room (never drawn over)."""
    ncol = 1 if max(map(len, labels), default=0) > 60 else min(3, len(labels))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8)
    fig.tight_layout(rect=(0, 0.02 + 0.04 * math.ceil(len(labels) / ncol) / panel_rows, 1, top))


def _save(fig: Any, png: Path) -> Path:
    import matplotlib.pyplot as plt

    atomic_write(png, lambda fh: fig.savefig(fh, format="png", metadata={"Software": None}))
    atomic_write(png.with_suffix(".svg"), lambda fh: fig.savefig(fh, format="svg", metadata={"Date": None}))
    plt.close(fig)
    return png


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    matplotlib.rcParams["svg.hashsalt"] = "plmtransfer"  # the same figure gives the same SVG
    import matplotlib.pyplot as plt

    return plt


def _panels(plt: Any, n: int, cols: int, size: tuple[float, float]) -> tuple[Any, list[Any], int]:
    """A grid of ``n`` panels (the spare ones blank), its axes, and how many rows it has."""
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows + 1.2), dpi=100, squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat), rows


def safe_name(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def plot_layer_curves(frame: pd.DataFrame, out_dir: Path | str, *, metric: str | None = None) -> dict[str, Path]:
    """``layers_<task>.png`` per task and, with several tasks, ``layers_all.png`` (a panel per
    task, one x axis kind on all); an SVG beside each. Returns task -> PNG ("_all": overview)."""
    plt = pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = task_tables(frame, metric)
    colors = row_colors(tables)
    paths: dict[str, Path] = {}
    for table in tables:
        fig, ax = plt.subplots(figsize=(8.5, 5.6), dpi=110)
        bands: set[str] = set()
        one = table.onehot.best if table.onehot is not None else None
        _draw_table(ax, table, _x_mode([table]), colors, bands, f"one-hot (best layer, {one[0]:.3f})" if one else "")
        ax.set_title(f"{table.task} [{table.protocol}]: {table.test_metric} by layer", fontsize=10)
        _legend_below(fig, *_legend_entries([ax], bands, {table.selection_metric}), panel_rows=1)
        # keyed by task and protocol (TaskTable.key): two protocols' curves never share a file
        paths[table.key] = _save(fig, out_dir / f"layers_{safe_name(table.key)}.png")
    if len(tables) > 1:
        mode = _x_mode(tables)
        fig, axes, rows = _panels(plt, len(tables), min(3, len(tables)), (5.2, 4.0))
        bands = set()
        for ax, table in zip(axes, tables):
            _draw_table(ax, table, mode, colors, bands)
            ax.set_title(f"{table.task} [{table.protocol}]: {table.test_metric}", fontsize=10)
        _legend_below(fig, *_legend_entries(axes, bands, {t.selection_metric for t in tables}), rows)
        paths["_all"] = _save(fig, out_dir / "layers_all.png")
    return paths


def plot_comparison(
    sides: Sequence[tuple[str, pd.DataFrame]],
    path: Path | str,
    *,
    reference: pd.DataFrame | None = None,
    metric: str | None = None,
    title: str | None = None,
) -> Path:
    """Two (or more) sides' layer curves, a panel per task they share: a colour per side, the
    line style of each init, each side's one-hot (or ``reference``'s, in black) dotted.

    A side is a label and a layer frame: two ledgers (runs) or two models of one ledger. Writes
    ``path`` (PNG) and the SVG beside it; returns ``path``."""
    plt = pyplot()
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ResultsError(f"{path}: the plot is written as PNG (and SVG beside it); give a .png path")
    per_side = [(label, {t.task: t for t in task_tables(frame, metric)}) for label, frame in sides]
    ref = {t.task: t for t in task_tables(reference, metric)} if reference is not None else {}
    tasks = sorted(set.intersection(*(set(tables) for _, tables in per_side))) if per_side else []
    if not tasks:
        raise ResultsError(
            f"{' and '.join(label for label, _ in sides)} share no task with layer results: nothing to draw"
        )
    all_tables = [tables[t] for _, tables in per_side for t in tasks]
    mode = _x_mode(all_tables)
    fig, axes, rows = _panels(plt, len(tasks), min(2, len(tasks)), (6.4, 4.2))
    bands: set[str] = set()
    for ax, task in zip(axes, tasks):
        for i, (label, tables) in enumerate(per_side):
            color = OKABE_ITO[i % len(OKABE_ITO)]
            for row in tables[task].rows:
                if row.model == ONEHOT:
                    _draw_onehot(ax, row, color, "one-hot" if label == ONEHOT else f"{label}: one-hot", bands)
                else:
                    prefix = "" if row.model == label else f"{label}: "
                    _draw_row(ax, row, mode, color, prefix + _label(row), bands)
        reference_onehot = ref[task].onehot if task in ref else None
        if reference_onehot is not None:
            _draw_onehot(ax, reference_onehot, "black", "one-hot (best layer)", bands)
        _axes(ax, tables[task], mode)
        ax.set_title(f"{task}: {tables[task].test_metric}", fontsize=10)
    fig.suptitle(title or " vs ".join(label for label, _ in sides), fontsize=11)
    _legend_below(fig, *_legend_entries(axes, bands, {t.selection_metric for t in all_tables}), rows, top=0.97)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, path)


def _wrote(path: Path) -> str:
    return f"wrote {path}, {path.with_suffix('.svg')}\n"


def compare_ledgers_plot(a: Path, b: Path, plot: Path, out: TextIO, *, metric: str | None = None) -> None:
    """``plmtransfer compare A B --plot OUT.png``: the two ledgers' (runs') curves, A and B."""
    from pytest_plmtransfer.results.ledger import load_ledger

    sides = [("A", load_ledger(a, kind="layer")), ("B", load_ledger(b, kind="layer"))]
    plot_comparison(sides, plot, metric=metric, title=f"A = {a}   vs   B = {b}")
    out.write(_wrote(plot))


def compare_models(
    ledger: Path, models: Sequence[str], plot: Path | None, out: TextIO, *, metric: str | None = None
) -> int:
    """``plmtransfer compare LEDGER --model X --model Y [--plot OUT.png]``: the two models'
    leaderboard (best layer and score per task, one-hot for reference) and their curves."""
    from pytest_plmtransfer.report.tables import render_leaderboard_text
    from pytest_plmtransfer.results.ledger import load_ledger

    if len(models) != 2 or models[0] == models[1]:
        raise ResultsError(f"--model names two different models to compare (given: {', '.join(models)})")
    frame = load_ledger(ledger, kind="layer")
    known = sorted(set(map(str, frame["model"].dropna())))
    for model in models:
        if model not in known:
            raise ResultsError(
                f"{ledger}: no layer results for model {model!r}; models present: {', '.join(known) or 'none'}"
            )
    picked = frame[frame["model"].isin([*models, ONEHOT])]
    out.write(render_leaderboard_text(picked, metric=metric))
    if plot is not None:
        sides = [(m, frame[frame["model"] == m]) for m in models]
        reference = None if ONEHOT in models else frame[frame["model"] == ONEHOT]
        plot_comparison(sides, plot, reference=reference, metric=metric)
        out.write(_wrote(plot))
    return 0
