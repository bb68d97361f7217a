"""The figures of both papers, regenerated from a ledger (nothing is recomputed).

:func:`render_figures` draws every figure of :data:`FIGURES` that the records allow and says why
it skipped the others. Each figure names the paper figure it regenerates:

* the workshop paper (Li et al. 2022, ``/work/shared/papers``): per-model grids of layer curves
  over every task and init (Fig. 1 is ESM-1b's, Fig. 3 CARP-640M's), and the model-size panels
  (Figs. 2 and 4 on GB1 - sampled, the appendix's Figs. A3-A10 on every task): one column per
  size, absolute layers, rows the appendix's metrics;
* the ICML 2024 paper, drawn as the authors' analysis code draws them (microsoft/protein-transfer
  ``scr/vis/res_vis.py``; the ICML full text is not at hand, so its figure numbers are not cited):
  pretrained vs one-hot, best layer and relative depth, values at the layer cuts, random and stat
  minus one-hot, performance vs pretraining fraction and vs MLM loss, performance vs model size.

Choices, stated once: the workshop paper plots NDCG for regression and ROC-AUC for
classification (its §3.1), which is what ``metrics=None`` draws per task. A "best" layer is
chosen per protocol: under ``authors`` as their code does, the argmax of the plotted test
metric itself (``res_vis.py`` ``get_bestorlast_metric_df``, lines 944-963); otherwise on the
validation counterpart of that metric (the project's rule, as in the report's tables). Intervals
are the records' bootstrap intervals (combined with the seed spread as the report's tables
combine them), else a t interval over seeds, else none; differences of two values carry the
conservative independent sum of both half-widths in quadrature. Records of different
protocols are never drawn together: each protocol gets its own files. Colours are Okabe-Ito's.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pytest_plmtransfer.measure.protocol import PLMTRANSFER
from pytest_plmtransfer.models.base import ONEHOT
from pytest_plmtransfer.report.plots import pyplot, safe_name
from pytest_plmtransfer.report.tables import INIT_ORDER, interval_half_widths
from pytest_plmtransfer.results.aggregate import (
    ResultsError,
    best_layer,
    curve,
    depth,
    measured,
    normalize,
    task_metrics,
)

#: Okabe & Ito's colour-blind-safe palette (blue, orange, bluish green, vermillion, reddish purple,
#: sky blue, yellow, black)
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: the workshop paper's colours (pretrained orange, random init blue, stat transfer green, one-hot
#: black dotted), taken from Okabe-Ito
INIT_COLOR = {"pretrained": OKABE_ITO[1], "random": OKABE_ITO[5], "stat": OKABE_ITO[2]}
INIT_LINE = {"pretrained": "-", "random": "--", "stat": "-."}
MARKERS = ("o", "X", "s", "^", "D", "v", "P", "*")
#: layers the authors cut at, per architecture (their scr/params/emb.py ARCH_CUT_DICT)
LAYER_CUTS = {"esm": (2, 3, 4, 6), "carp": (2, 4, 6, 12)}
#: the appendix A.3 rows: train/val/test loss, then the two test performance metrics
A3_ROWS = {
    "regression": ("train_mse", "val_mse", "test_mse", "test_ndcg", "test_spearman"),
    "classification": ("train_loss", "val_loss", "test_loss", "test_accuracy", "test_auc"),
}
#: the workshop paper's metric per task: NDCG where recorded (regression), else ROC-AUC
PAPER_METRICS = ("test_ndcg", "test_auc")
INTERVALS = "bands and bars: 95% intervals (bootstrap over test examples, else a t interval over seeds)"


@dataclass(frozen=True)
class FigureFile:
    """One rendered figure: a PNG and the SVG beside it."""

    path: Path
    svg: Path
    title: str
    #: the paper figure this regenerates, e.g. "workshop Fig. 1"
    paper_ref: str
    description: str


class RenderedFigures(list[FigureFile]):
    """What :func:`render_figures` wrote; ``skipped`` holds one line per figure not drawn, and why."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: list[str] = []

    def copy_to(self, out_dir: Path) -> list[FigureFile]:
        """The same files in ``out_dir``, copied rather than drawn again."""
        from pytest_plmtransfer.infra.tempfiles import atomic_write

        out_dir.mkdir(parents=True, exist_ok=True)
        for src in (p for f in self for p in (f.path, f.svg)):
            atomic_write(out_dir / src.name, src.read_bytes())
        return [dataclasses.replace(f, path=out_dir / f.path.name, svg=out_dir / f.svg.name) for f in self]


@dataclass(frozen=True)
class _Curve:
    layers: np.ndarray
    mean: np.ndarray
    #: half-width of the 95% interval per layer (NaN: none recorded)
    half: np.ndarray
    depth: int
    best: int | None

    def at(self, layer: int) -> tuple[float, float]:
        i = int(np.searchsorted(self.layers, layer))
        if i >= len(self.layers) or self.layers[i] != layer:
            return math.nan, math.nan
        return float(self.mean[i]), float(self.half[i])


def _family(model: str) -> str | None:
    return next((f for f in LAYER_CUTS if model.startswith(f)), None)


def _base(model: str) -> str:
    return model.split("@", 1)[0]


class _Records:
    """One protocol's normalized layer records, with per-(model, task, init) curves on demand."""

    def __init__(self, data: pd.DataFrame, protocol: str, suffix: str) -> None:
        self.data, self.protocol, self.suffix = data, protocol, suffix
        self.groups = {k: g for k, g in data.groupby(["model", "task", "init"], sort=True)}
        self.tasks = sorted(data["task"].unique())
        self.models = sorted(data["model"].unique(), key=lambda m: (m != ONEHOT, self.parameters(m) or 0, m))
        #: (model, task, init, metric) -> its curve, None when not measured
        self.curve = functools.cache(self._curve)

    def parameters(self, model: str) -> int | None:
        """A model's parameter count: the records' ``model_params``, else the description tables."""
        found = self.data.loc[self.data["model"] == model, "model_params"].dropna()
        if not found.empty:
            return int(found.iloc[0])
        return _described_parameters(_base(model))

    def metric(self, task: str, spec: str | None) -> str | None:
        """The column drawn for ``task``: ``spec`` when its records carry it, the paper's choice
        (NDCG, else ROC-AUC, else the task's test metric) when ``spec`` is None."""
        sub = self.data[self.data["task"] == task]
        candidates = [spec] if spec else [*PAPER_METRICS, task_metrics(sub)[1]]
        return next((m for m in candidates if measured(sub, m)), None)

    def _curve(self, model: str, task: str, init: str, metric: str) -> _Curve | None:
        sub = self.groups.get((model, task, init))
        if sub is None or not measured(sub, metric):
            return None
        selection = metric if self.protocol == "authors" else metric.replace("test_", "val_", 1)
        if not measured(sub, selection):
            selection = task_metrics(sub)[0]
        c = curve(sub, [metric, selection])
        half = interval_half_widths(sub, metric)
        if not half and (c["n"] > 1).any():
            from scipy.stats import t

            half = {
                int(l): float(t.ppf(0.975, r["n"] - 1) * r[f"{metric}_std"] / math.sqrt(r["n"]))
                for l, r in c.iterrows()
                if r["n"] > 1
            }
        layers = c.index.to_numpy(dtype=int)
        halves = np.array([half.get(int(l), math.nan) for l in layers])
        return _Curve(layers, c[metric].to_numpy(float), halves, depth(sub), best_layer(c[selection], selection))

    def onehot(self, task: str, metric: str) -> tuple[float, float]:
        c = self.curve(ONEHOT, task, "none", metric)
        return c.at(int(c.layers[0])) if c is not None else (math.nan, math.nan)


@functools.cache
def _described_parameters(model: str) -> int | None:
    """Parameters from the model's registry description (config tables; never builds a model)."""
    from pytest_plmtransfer.infra.errors import PlmTransferError
    from pytest_plmtransfer.models.registry import ModelOptions, builtin_registry

    try:
        entry = builtin_registry().entry(model)
        found = entry.describe(model, ModelOptions(allow_download=False)) if entry.describe else None
    except (PlmTransferError, OSError):  # a user's model the built-in registry does not know
        return None
    return found.parameters if found is not None else None


# --------------------------------------------------------------------------------------------
# the shared parts: a figure, a layer-curve panel, error bars, saving


def _figure(n_panels: int, cols: int, size: tuple[float, float] = (4.2, 3.2)):
    plt = pyplot()
    cols = max(1, min(cols, n_panels))
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(size[0] * cols, size[1] * rows + 0.9), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n_panels:]:
        ax.axis("off")
    return fig, list(axes.flat[:n_panels])


def _layer_panel(ax: Any, recs: _Records, model: str, task: str, metric: str, inits: Sequence[str]) -> bool:
    """Layer curves of ``model`` on ``task`` (one per init, 95% bands) and the one-hot level."""
    drawn = False
    for init in inits:
        c = recs.curve(model, task, init, metric)
        if c is None:
            continue
        color = INIT_COLOR.get(init, OKABE_ITO[4])
        ax.plot(c.layers, c.mean, INIT_LINE.get(init, ":"), color=color, lw=1.6, label=init)
        if np.isfinite(c.half).any():
            ax.fill_between(c.layers, c.mean - c.half, c.mean + c.half, color=color, alpha=0.2, lw=0)
        drawn = True
    value, half = recs.onehot(task, metric)
    if drawn and math.isfinite(value):
        ax.axhline(value, color="black", ls=":", lw=1.4, label="one-hot")
        if math.isfinite(half):
            ax.axhspan(value - half, value + half, color="black", alpha=0.08, lw=0)
    ax.set_xlabel("layer")
    ax.set_ylabel(metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    return drawn


def _quad(*halves: float) -> float:
    """Half-width of a difference, taking its terms as independent (conservative for values
    scored on the same test set, which are positively correlated)."""
    return math.sqrt(sum(h * h for h in halves)) if all(math.isfinite(h) for h in halves) else math.nan


def _bars(values: Sequence[float]) -> Any:
    return None if not any(math.isfinite(v) for v in values) else [0.0 if not math.isfinite(v) else v for v in values]


def _marks(ax: Any, x: Any, y: Any, xerr: Sequence[float] | None, yerr: Sequence[float], **style: Any) -> None:
    """Markers with their 95% bars, a dark edge keeping the yellow visible."""
    ax.errorbar(x, y, xerr=None if xerr is None else _bars(xerr), yerr=_bars(yerr), mec="#333333", mew=0.5, **style)


def _legend(fig: Any, axes: Sequence[Any], title: str | None = None) -> None:
    """One legend for the figure: below a grid of panels, right of a single axes."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        where = {"loc": "outside right center"} if len(axes) == 1 else {"loc": "outside lower center", "ncol": 6}
        fig.legend(list(handles.values()), list(handles), title=title, fontsize=8, title_fontsize=8, **where)


def _save(fig: Any, out_dir: Path, stem: str, title: str, paper_ref: str, description: str) -> FigureFile:
    """Write the PNG and the SVG beside it, each to a temp file renamed into place."""
    import matplotlib.pyplot as plt

    from pytest_plmtransfer.infra.tempfiles import atomic_write

    fig.suptitle(f"{title}\n[{paper_ref}]", fontsize=10)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    try:
        for path in paths:
            atomic_write(path, functools.partial(fig.savefig, format=path.suffix[1:], dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return FigureFile(paths[0], paths[1], title, paper_ref, description)


# --------------------------------------------------------------------------------------------
# the figures: each yields FigureFiles, or strings saying what it could not draw and why

Out = Iterator["FigureFile | str"]


@dataclass(frozen=True)
class _Ctx:
    recs: _Records
    out_dir: Path
    inits: tuple[str, ...]
    metrics: tuple[str | None, ...]
    #: models named in the filter (checkpoints get grids only when named)
    named: frozenset[str]

    def stem(self, *parts: str) -> str:
        return safe_name("_".join(p for p in (*parts, self.recs.suffix) if p))

    def label(self, spec: str | None) -> str:
        return spec or "NDCG (regression) / ROC-AUC (classification)"

    def tag(self, spec: str | None) -> str:
        return spec or "paper"

    @property
    def rule(self) -> str:
        """How a best layer was chosen (see the module docstring)."""
        if self.recs.protocol == "authors":
            return "best layer = argmax of the test metric itself, as the authors' code"
        return "best layer chosen on the validation counterpart of the metric"

    def plain_models(self) -> list[str]:
        return [m for m in self.recs.models if m != ONEHOT and ("@" not in m or m in self.named)]


def _grid(ctx: _Ctx) -> Out:
    refs = {"esm1b_t33_650M_UR50S": "workshop Fig. 1", "carp_640M": "workshop Fig. 3"}
    for model in ctx.plain_models():
        for spec in ctx.metrics:
            found = [(t, ctx.recs.metric(t, spec)) for t in ctx.recs.tasks]
            panels = [(t, m) for t, m in found if m and any(ctx.recs.curve(model, t, i, m) for i in ctx.inits)]
            if not panels:
                yield f"workshop grid of {model} ({ctx.tag(spec)}): no records of it carry that metric"
                continue
            fig, axes = _figure(len(panels), 4)
            for ax, (task, metric) in zip(axes, panels):
                _layer_panel(ax, ctx.recs, model, task, metric, ctx.inits)
                ax.set_title(task, fontsize=9)
            _legend(fig, axes)
            title = f"{model}: layer transfer on every task, {ctx.label(spec)} ({ctx.recs.protocol} protocol)"
            ref = refs.get(model, "workshop Figs. 1 and 3 (their layout, for this model)")
            desc = (
                f"One panel per task, x = layer, y = {ctx.label(spec)}; inits {', '.join(ctx.inits)} and the "
                f"one-hot level (dotted); {INTERVALS}."
            )
            yield _save(fig, ctx.out_dir, ctx.stem("workshop_grid", model, ctx.tag(spec)), title, ref, desc)


def _sizes(ctx: _Ctx) -> Out:
    if "pretrained" not in ctx.inits:
        yield "workshop model-size panels: they draw pretrained models and the init filter excludes them"
        return
    refs = {
        "esm": {"gb1_sampled": "workshop Fig. 2 (and Fig. A4)", "gb1": "Fig. A4", "aav": "Fig. A3"},
        "carp": {"gb1_sampled": "workshop Fig. 4 (and Fig. A8)", "gb1": "Fig. A8", "aav": "Fig. A7"},
    }
    refs["esm"].update(meltome="Fig. A5", scl="Fig. A6")
    refs["carp"].update(meltome="Fig. A9", scl="Fig. A10")
    for family, name in (("esm", "ESM"), ("carp", "CARP")):
        models = [m for m in ctx.plain_models() if _family(m) == family and "@" not in m]
        if len(models) < 2:
            yield f"workshop {name} model-size panels: fewer than two {name} models in the records"
            continue
        for task in ctx.recs.tasks:
            sub = ctx.recs.data[ctx.recs.data["task"] == task]
            kind = "regression" if measured(sub, "test_ndcg") else "classification"
            rows = [r for r in (A3_ROWS[kind] if ctx.metrics == (None,) else ctx.metrics) if r]
            rows = [r for r in rows if measured(sub, r)]
            cols = [m for m in models if any(ctx.recs.curve(m, task, "pretrained", r) for r in rows)]
            if not rows or len(cols) < 2:
                yield f"workshop {name} model-size panels on {task}: fewer than two {name} models with these metrics"
                continue
            fig, axes = _figure(len(rows) * len(cols), len(cols), (3.4, 2.4))
            for i, row in enumerate(rows):
                for j, model in enumerate(cols):
                    ax = axes[i * len(cols) + j]
                    _layer_panel(ax, ctx.recs, model, task, row, ["pretrained"])
                    ax.set_title(model if i == 0 else "", fontsize=8)
                    ax.set_ylabel(row if j == 0 else "")
                for ax in axes[i * len(cols) + 1 : (i + 1) * len(cols)]:  # one y scale per row, as in A.3
                    ax.sharey(axes[i * len(cols)])
            _legend(fig, axes)
            ref = refs[family].get(task) or refs[family].get(task.split("_")[0], "Figs. A3-A10 (their layout)")
            ref = ref if ref.startswith("workshop") else f"workshop {ref}"
            title = f"{name} sizes on {task}: pretrained layer curves, absolute layers ({ctx.recs.protocol} protocol)"
            desc = (
                f"Columns: {', '.join(cols)} (by parameters); rows: {', '.join(rows)}; x = absolute layer; "
                f"one-hot dotted; {INTERVALS}."
            )
            yield _save(fig, ctx.out_dir, ctx.stem("workshop_sizes", family, task), title, ref, desc)


_POINT_COLUMNS = ["task", "model", "metric", "layer", "depth", "value", "half", "onehot", "onehot_half"]


def _points(ctx: _Ctx, spec: str | None, init: str, layer: str) -> pd.DataFrame:
    """Per (task, model): value and half-width at the ``best`` or ``last`` layer, the one-hot's."""
    rows = []
    for task in ctx.recs.tasks:
        metric = ctx.recs.metric(task, spec)
        for model in ctx.plain_models() if metric else ():
            c = ctx.recs.curve(model, task, init, metric or "")
            at = c.best if c is not None and layer == "best" else None if c is None else int(c.layers[-1])
            if c is None or metric is None or at is None:
                continue
            rows.append((task, model, metric, at, c.depth, *c.at(at), *ctx.recs.onehot(task, metric)))
    return pd.DataFrame(rows, columns=_POINT_COLUMNS if rows else None)


def _task_style(tasks: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Colour per task (Okabe-Ito), and a second marker once the eight colours are used up."""
    return {t: (OKABE_ITO[i % 8], "o" if i < 8 else "s") for i, t in enumerate(tasks)}


def _icml_onehot(ctx: _Ctx) -> Out:
    for spec in ctx.metrics:
        pts = _points(ctx, spec, "pretrained", "best")
        pts = pts[np.isfinite(pts["onehot"])] if not pts.empty else pts
        if pts.empty:
            yield f"ICML pretrained vs one-hot ({ctx.tag(spec)}): needs pretrained and one-hot records of one task"
            continue
        fig, (ax,) = _figure(1, 1, (6.5, 5.5))
        style = _task_style(list(dict.fromkeys(pts["task"])))
        for (task, model), r in pts.set_index(["task", "model"]).iterrows():
            marker = "X" if _family(model) == "esm" else style[task][1]
            xy, bars = (r["onehot"], r["value"]), ([r["onehot_half"]], [r["half"]])
            _marks(ax, *xy, *bars, fmt=marker, color=style[task][0], ms=8, alpha=0.85, label=task)
        lo, hi = min(pts["onehot"].min(), pts["value"].min()), max(pts["onehot"].max(), pts["value"].max())
        ax.plot([lo, hi], [lo, hi], ":", color="grey")
        ax.set_xlabel("one-hot")
        ax.set_ylabel("best-layer pretrained embedding")
        ax.grid(alpha=0.3)
        _legend(fig, [ax], "task (ESM: X, CARP: o)")
        title = f"Best-layer pretrained embedding vs one-hot, {ctx.label(spec)} ({ctx.recs.protocol} protocol)"
        ref = "ICML 2024: embedding vs one-hot (the authors' scr/vis/res_vis.py plot_emb_onehot)"
        desc = f"One point per (task, model), colour = task; diagonal = parity; {ctx.rule}; {INTERVALS}."
        yield _save(fig, ctx.out_dir, ctx.stem("icml_pretrained_vs_onehot", ctx.tag(spec)), title, ref, desc)


def _icml_best_layer(ctx: _Ctx) -> Out:
    for spec in ctx.metrics:
        pts = _points(ctx, spec, "pretrained", "best")
        if pts.empty:
            yield f"ICML best layer ({ctx.tag(spec)}): no pretrained records"
            continue
        tasks, models = list(dict.fromkeys(pts["task"])), list(dict.fromkeys(pts["model"]))
        fig, (ax,) = _figure(1, 1, (max(8.0, 0.22 * len(tasks) * len(models)), 4.5))
        width = 0.8 / len(models)
        for j, model in enumerate(models):
            sub = pts[pts["model"] == model].set_index("task")
            xs = [i + j * width for i, t in enumerate(tasks) if t in sub.index]
            rel = [sub.loc[t, "layer"] / max(sub.loc[t, "depth"], 1) for t in tasks if t in sub.index]
            hatch = "//" if _family(model) == "esm" else None
            ax.bar(xs, rel, width, color=OKABE_ITO[j % 8], hatch=hatch, edgecolor="white", label=model)
            for x, r, t in zip(xs, rel, [t for t in tasks if t in sub.index]):
                ax.text(x, r + 0.01, str(int(sub.loc[t, "layer"])), ha="center", va="bottom", fontsize=6)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tasks))], tasks, rotation=20, fontsize=8)
        ax.set_ylabel("best layer / last layer")
        ax.set_ylim(0, 1.1)
        _legend(fig, [ax], "model (ESM hatched)")
        title = f"Best pretrained layer per task and model, {ctx.label(spec)} ({ctx.recs.protocol} protocol)"
        ref = "ICML 2024: best embedding layer (the authors' scr/vis/res_vis.py plot_emb_df_best_layer_bar)"
        desc = f"Bar = relative depth of the best layer ({ctx.rule}); the number above = the absolute layer."
        yield _save(fig, ctx.out_dir, ctx.stem("icml_best_layer", ctx.tag(spec)), title, ref, desc)


def _icml_cuts(ctx: _Ctx) -> Out:
    for family, cuts in LAYER_CUTS.items():
        models = [m for m in ctx.plain_models() if _family(m) == family and "@" not in m]
        for spec in ctx.metrics:
            pts = _points(ctx, spec, "pretrained", "last")
            pts = pts[pts["model"].isin(models)] if not pts.empty else pts
            if pts.empty:
                yield f"ICML layer cuts for {family.upper()} ({ctx.tag(spec)}): no pretrained {family} records"
                continue
            fig, axes = _figure(len(cuts), 4, (4.0, 3.8))
            style = _task_style(list(dict.fromkeys(pts["task"])))
            for ax, cut in zip(axes, cuts):
                for _, r in pts.iterrows():
                    c = ctx.recs.curve(r["model"], r["task"], "pretrained", r["metric"])
                    if c is None or not 0 < cut < c.depth:  # the authors' delta_layer bounds
                        continue
                    (f0, h0), (fx, hx), (fl, hl) = c.at(int(c.layers[0])), c.at(cut), c.at(int(c.layers[-1]))
                    fmt, color = MARKERS[models.index(r["model"]) % 8], style[r["task"]][0]
                    bars = [_quad(hx, h0)], [_quad(hl, hx)]
                    _marks(ax, fx - f0, fl - fx, *bars, fmt=fmt, color=color, ms=6, alpha=0.85, label=r["task"])
                ax.axhline(0, color="grey", lw=0.8)
                ax.axvline(0, color="grey", lw=0.8)
                ax.set_title(f"x = layer {cut}", fontsize=9)
                ax.set_xlabel("f(x) - f(layer 0)")
                ax.set_ylabel("f(last) - f(x)")
                ax.grid(alpha=0.3)
            _legend(fig, axes, "task; marker = " + ", ".join(f"{MARKERS[i % 8]} {m}" for i, m in enumerate(models)))
            title = f"{family.upper()}: gain up to layer x and after it, {ctx.label(spec)} ({ctx.recs.protocol})"
            ref = "ICML 2024: values at layer cuts (the authors' scr/vis/res_vis.py plot_layer_delta_simple)"
            desc = (
                f"Per cut x in {cuts} (the authors' ARCH_CUT_DICT), one point per (task, model): "
                "x = f(x) - f(0), y = f(last) - f(x); models whose last layer is <= x are left out; "
                "bars: both values' 95% half-widths in quadrature."
            )
            yield _save(fig, ctx.out_dir, ctx.stem("icml_layer_cuts", family, ctx.tag(spec)), title, ref, desc)


def _icml_gaps(ctx: _Ctx) -> Out:
    ablations = [i for i in ("random", "stat") if i in ctx.inits]
    for spec in ctx.metrics:
        pts = {i: _points(ctx, spec, i, "last") for i in ("pretrained", *ablations)}
        pts = {i: p[np.isfinite(p["onehot"])] for i, p in pts.items() if not p.empty}
        pts = {i: p for i, p in pts.items() if not p.empty}
        if not any(i in pts for i in ablations):
            yield f"ICML random/stat minus one-hot ({ctx.tag(spec)}): no random or stat records with a one-hot"
            continue
        tasks = list(dict.fromkeys(t for p in pts.values() for t in p["task"]))
        fig, axes = _figure(len(tasks), 3, (5.0, 3.4))
        for ax, task in zip(axes, tasks):
            models = list(dict.fromkeys(m for p in pts.values() for m in p.loc[p["task"] == task, "model"]))
            for k, (init, p) in enumerate(pts.items()):
                sub = p[p["task"] == task].set_index("model").reindex(models)  # NaN: no bar for that model
                ys = list(sub["value"] - sub["onehot"])
                hs = [_quad(h, o) for h, o in zip(sub["half"], sub["onehot_half"])]
                xs = np.arange(len(models)) + (k - 1) * 0.27
                ax.bar(xs, ys, 0.27, yerr=_bars(hs), color=INIT_COLOR[init], label=f"{init} - one-hot", capsize=2)
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xticks(range(len(models)), models, rotation=35, ha="right", fontsize=7)
            ax.set_title(task, fontsize=9)
            ax.set_ylabel("last layer - one-hot")
        _legend(fig, axes)
        title = f"Last layer minus one-hot per init, {ctx.label(spec)} ({ctx.recs.protocol} protocol)"
        ref = "ICML 2024: random init and stat transfer vs one-hot (the authors' res_vis.py plot_emb_layer_bar)"
        desc = (
            "One panel per task, bars per model: pretrained, random init and stat transfer at the last layer minus "
            "the one-hot (the authors' last-layer variant); bars: 95% half-widths in quadrature."
        )
        yield _save(fig, ctx.out_dir, ctx.stem("icml_ablation_gaps", ctx.tag(spec)), title, ref, desc)


def _icml_pretraining(ctx: _Ctx, x: str) -> Out:
    what = {"checkpoint_fraction": "pretraining fraction", "mlm_loss": "MLM loss"}[x]
    data = ctx.recs.data
    if data[x].isna().all():
        yield f"ICML performance vs {what}: the records carry no {x} (no checkpoint models among the records drawn)"
        return
    ckpt = data[data["checkpoint_fraction"].notna()]
    ckpt = ckpt[ckpt["init"] == "pretrained"]
    bases = sorted({_base(m) for m in ckpt["model"]}, key=lambda b: (ctx.recs.parameters(b) or 0, b))
    for spec in ctx.metrics:
        tasks = [t for t in ctx.recs.tasks if ctx.recs.metric(t, spec) and t in set(ckpt["task"])]
        if not tasks:
            yield f"ICML performance vs {what} ({ctx.tag(spec)}): no checkpoint records carry that metric"
            continue
        fig, axes = _figure(len(tasks), 4, (4.0, 3.2))
        for ax, task in zip(axes, tasks):
            metric = ctx.recs.metric(task, spec) or ""
            for k, base in enumerate(bases):
                sub = ckpt[(ckpt["task"] == task) & (ckpt["model"].map(_base) == base)]
                cols = list(dict.fromkeys([x, "checkpoint_fraction"]))
                steps = sub.groupby("model")[cols].first().sort_values("checkpoint_fraction")
                full = steps.index[-1] if not steps.empty else None
                ref_curve = ctx.recs.curve(full, task, "pretrained", metric) if full else None
                if ref_curve is None or ref_curve.best is None:
                    continue
                vals = [ctx.recs.curve(m, task, "pretrained", metric) for m in steps.index]
                ys = [c.at(ref_curve.best) if c is not None else (math.nan, math.nan) for c in vals]
                style = dict(fmt=MARKERS[k % 8] + "-", color=OKABE_ITO[k % 8], ms=5, capsize=2, label=base)
                _marks(ax, steps[x], [y for y, _ in ys], None, [h for _, h in ys], **style)
            oh, oh_half = ctx.recs.onehot(task, metric)
            if math.isfinite(oh):
                ax.axhline(oh, color="black", ls=":", lw=1.4, label="one-hot")
            if x == "mlm_loss":
                ax.invert_xaxis()  # as the authors: loss falls left to right
            ax.set_title(task, fontsize=9)
            ax.set_xlabel(what)
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        _legend(fig, axes)
        title = f"CARP checkpoints: {ctx.label(spec)} vs {what} ({ctx.recs.protocol} protocol)"
        ref = f"ICML 2024: performance vs {what} (the authors' scr/vis/res_vis.py plot_pretrain_degree)"
        desc = (
            f"One panel per task, one line per CARP size over its checkpoints (x = {x} from the records), each at "
            f"the layer the last checkpoint does best on (as the authors' _append_ptp; {ctx.rule}); one-hot dotted; "
            f"{INTERVALS}."
        )
        stem = ctx.stem("icml_pretraining", x.split("_")[-1], ctx.tag(spec))
        yield _save(fig, ctx.out_dir, stem, title, ref, desc)


def _icml_size(ctx: _Ctx) -> Out:
    for spec in ctx.metrics:
        pts = _points(ctx, spec, "pretrained", "last")
        if not pts.empty:  # the authors leave ESM-1b out of their size plot (res_vis.py:2775)
            pts = pts[(pts["model"] != "esm1b_t33_650M_UR50S") & ~pts["model"].str.contains("@")]
            pts = pts.assign(params=[ctx.recs.parameters(m) for m in pts["model"]])
            pts = pts[pts["params"].notna() & np.isfinite(pts["onehot"])]
        if pts.empty:
            yield f"ICML performance vs model size ({ctx.tag(spec)}): no parameter counts or no one-hot to compare"
            continue
        fig, (ax,) = _figure(1, 1, (7.0, 5.0))
        style = _task_style(list(dict.fromkeys(pts["task"])))
        for (task, family), sub in pts.groupby(["task", pts["model"].map(_family).fillna("other")], sort=False):
            sub = sub.sort_values("params")
            hs = [_quad(h, o) for h, o in zip(sub["half"], sub["onehot_half"])]
            ax.errorbar(
                sub["params"] / 1e6,
                sub["value"] - sub["onehot"],
                yerr=_bars(hs),
                capsize=2,
                ms=7,
                fmt="o" + ("-" if family == "carp" else ":"),
                mfc="none" if family == "esm" else None,
                color=style[task][0],
                label=task,
            )
        ax.axhline(0, color="grey", ls="--", lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("parameters (millions, log)")
        ax.set_ylabel("last layer - one-hot")
        ax.grid(alpha=0.3)
        _legend(fig, [ax], "task; CARP solid, ESM-1 dotted (open)")
        title = f"Last layer minus one-hot vs model size, {ctx.label(spec)} ({ctx.recs.protocol} protocol)"
        ref = "ICML 2024: performance vs model size (the authors' scr/vis/res_vis.py plot_arch_size)"
        desc = (
            "x = parameters (the records' model_params, else the package's description tables), y = last-layer "
            "value minus one-hot, one line per (task, family), ESM-1b left out as the authors; bars: 95% "
            "half-widths in quadrature."
        )
        yield _save(fig, ctx.out_dir, ctx.stem("icml_model_size", ctx.tag(spec)), title, ref, desc)


_DEGREE = "ICML 2024 (res_vis.py plot_pretrain_degree)"
#: name, paper figure(s), drawing function
FIGURES: tuple[tuple[str, str, Callable[[_Ctx], Out]], ...] = (
    ("workshop_grid", "workshop Figs. 1 and 3", _grid),
    ("workshop_sizes", "workshop Figs. 2, 4 and A3-A10", _sizes),
    ("icml_pretrained_vs_onehot", "ICML 2024 (res_vis.py plot_emb_onehot)", _icml_onehot),
    ("icml_best_layer", "ICML 2024 (res_vis.py plot_emb_df_best_layer_bar)", _icml_best_layer),
    ("icml_layer_cuts", "ICML 2024 (res_vis.py plot_layer_delta_simple)", _icml_cuts),
    ("icml_ablation_gaps", "ICML 2024 (res_vis.py plot_emb_layer_bar)", _icml_gaps),
    ("icml_pretraining_fraction", _DEGREE, functools.partial(_icml_pretraining, x="checkpoint_fraction")),
    ("icml_pretraining_loss", _DEGREE, functools.partial(_icml_pretraining, x="mlm_loss")),
    ("icml_model_size", "ICML 2024 (res_vis.py plot_arch_size)", _icml_size),
)


def _filter(data: pd.DataFrame, column: str, wanted: Sequence[str] | None, keep: str) -> pd.DataFrame:
    """Rows whose ``column`` is in ``wanted`` (and the one-hot baseline's, ``keep``); unknown
    values are an error naming what the records hold."""
    if not wanted:
        return data
    known = set(data[column])
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ResultsError(
            f"no records with {column} {', '.join(unknown)}; the records hold: {', '.join(sorted(known))}"
        )
    return data[data[column].isin([*wanted, keep])]


def render_figures(
    frame: pd.DataFrame,
    out_dir: Path | str,
    *,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    inits: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> RenderedFigures:
    """Draw every figure of :data:`FIGURES` the layer records allow into ``out_dir`` (PNG + SVG).

    ``models``/``tasks``/``inits`` filter the records (the one-hot baseline stays: it is every
    figure's reference); ``metrics`` are metric columns, each drawn in its own figures (the
    model-size panels draw them as rows); None draws the workshop paper's NDCG / ROC-AUC. Returns
    the figures written; ``.skipped`` says which could not be drawn and why.
    """
    out = RenderedFigures()
    if frame is None or frame.empty:
        out.skipped.append("all figures: no layer records")
        return out
    frame = frame.assign(protocol=frame["protocol"].astype(object).fillna(PLMTRANSFER))
    # normalized per protocol: its newest-record rule must not let one protocol replace another's
    data = pd.concat([normalize(g) for _, g in frame.groupby("protocol")], ignore_index=True)
    data = _filter(data, "model", models, ONEHOT)
    data = _filter(data, "task", tasks, "")
    data = _filter(data, "init", inits, "none")
    chosen = tuple(sorted({i for i in data["init"] if i != "none"}, key=lambda i: (INIT_ORDER.get(i, 9), i)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocols = sorted(data["protocol"].unique())
    for protocol in protocols:  # never two protocols in one figure
        recs = _Records(data[data["protocol"] == protocol].copy(), protocol, protocol if len(protocols) > 1 else "")
        ctx = _Ctx(recs, out_dir, chosen, tuple(metrics or (None,)), frozenset(models or ()))
        for name, _ref, draw in FIGURES:
            for item in draw(ctx):
                if isinstance(item, str):
                    out.skipped.append(f"{name}: {item}" + (f" [{protocol}]" if len(protocols) > 1 else ""))
                else:
                    out.append(item)
    return out
