"""The built-in claim kinds (:class:`~pytest_plmtransfer.judge.claims.base.ClaimKind` subclasses)
and the registry that names them; other packages add kinds through the
``pytest_plmtransfer_claim_kinds`` hook (a list of classes) or the ``plmtransfer.claim_kinds``
entry-point group (README, "Writing a claim kind").

Layer choice: on the validation split by the task's selection metric (lower is better for
``*_loss`` / ``*_mse``), averaged over seeds where replicated; reported on the test metric.

Significance (``pretrained_beats_random`` / ``pretrained_beats_stat``): the pretrained
representation has no seed (deterministic embeddings and heads), so it is one fixed number, while
each ablation seed gives one sample. With >= 2 ablation seeds the test is a one-sided one-sample
t-test of the ablation's per-seed values against the pretrained value (H1: mean(ablation) <
pretrained - margin; flipped for lower-is-better metrics); with a replicated pretrained side,
Welch's one-sided t-test (ablations vary far more across seeds). A t-test, not a rank test: with
3-5 seeds no rank or sign test can reach p < 0.05 (the exact sign test's smallest p with 3 seeds
is 0.125). With one seed there is no test: a plain comparison, and the message says so.

Protocols (:func:`~pytest_plmtransfer.judge.claims.evaluate.evaluate` picks the records): under
``authors`` every built-in kind compares last layers, as the authors' analysis does, and the
ablation test is theirs (``scr/analysis/repstat.py``, ``perform_t_test``: ``scipy.stats.ttest_1samp``
of the replicate seeds' last-layer values against the pretrained one, ``alternative="less"``,
significant at p < 0.05); no paired bootstrap.

Paired tests (issue 12, plmtransfer protocol; :mod:`~pytest_plmtransfer.judge.claims.paired`): with
stored test predictions, ``beats_onehot``, ``pretrained_beats_*`` and ``saturates_by`` compare the
two sides on the same test examples (seeds through a hierarchical bootstrap) and pass when
``p < level`` (``saturates_by`` fails only when the gap is significantly above the tolerance);
without, the comparisons above, and the message says so.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.judge.baselines import BaselineMissing, BaselineStore
from pytest_plmtransfer.judge.claims.base import ClaimCase, ClaimKind, ClaimOutcome, Param, level_in_range, non_negative
from pytest_plmtransfer.judge.claims.paired import compare_rows
from pytest_plmtransfer.judge.paper import format_rows
from pytest_plmtransfer.measure.stats import PairedResult
from pytest_plmtransfer.models.base import ONEHOT
from pytest_plmtransfer.options import benchmarks_command
from pytest_plmtransfer.results.aggregate import (
    Selected,
    better,
    depth,
    fmt,
    lower_is_better,
    measured,
    select,
    sorted_seeds,
    subset,
)

REPLICATE_HINT = "--plm-seeds 42,0,12345"
ENTRY_POINT_GROUP = "plmtransfer.claim_kinds"

_NUM = (int, float)


# ------------------------------------------------------------------------------ helpers of the built-in kinds


def _sel_detail(s: Selected) -> dict[str, Any]:
    return {
        "layer": s.layer,
        "selection_value": s.selection_value,
        "test_value": s.test_value,
        "test_std": None if math.isnan(s.test_std) else s.test_std,
        "n_seeds": s.n,
    }


def _rows_at(frame: pd.DataFrame, values: Mapping[str, tuple[int, float]]) -> pd.DataFrame:
    """The records of each seed key at its layer (``{seed_key: (layer, value)}``, as :func:`_values_at`)."""
    keep = pd.Series(False, index=frame.index)
    for key, (layer, _) in values.items():
        keep |= (frame["seed_key"] == key) & (frame["layer"] == layer)
    return frame[keep]


def _layer(frame: pd.DataFrame, layer: int) -> pd.DataFrame:
    return frame[frame["layer"] == layer]


def _mean(values: Mapping[str, tuple[int, float]]) -> float:
    """The seed mean of :func:`_values_at`'s values."""
    return float(np.mean([v for _, v in values.values()]))


def _seed_mean(frame: pd.DataFrame, test_m: str, layer: int) -> float | None:
    """The seed mean of ``test_m`` at ``layer`` (None when no seed has it)."""
    values = _values_at(frame, test_m, test_m, layer)
    return _mean(values) if values else None


def _beats(value: float, other: float, metric: str, margin: float) -> bool:
    """``value`` is better than ``other`` by more than ``margin`` on ``metric``."""
    return better(value, other - margin if lower_is_better(metric) else other + margin, metric)


def _by_margin(margin: float) -> str:
    return f" by more than the margin {margin:g}" if margin else ""


def _paired_detail(paired: PairedResult | str) -> dict[str, Any]:
    return {
        "paired": paired.to_dict() if isinstance(paired, PairedResult) else None,
        "paired_unavailable": paired if isinstance(paired, str) else None,
    }


def _paired_txt(paired: PairedResult | str) -> str:
    if isinstance(paired, str):
        return f" [no paired test: {paired}; plain comparison]"
    return f"; {paired.describe()}"


def _values_at(frame: pd.DataFrame, sel_m: str, test_m: str, at: Any) -> dict[str, tuple[int, float]]:
    """Per seed: (layer, test value) at the validation-chosen / last / given layer."""
    out: dict[str, tuple[int, float]] = {}
    for key in sorted_seeds(frame["seed_key"]):
        sub = frame[frame["seed_key"] == key]
        if at == "selected":
            s = select(sub, sel_m, test_m)
            if s is not None and not math.isnan(s.test_value):
                out[key] = (s.layer, s.test_value)
            continue
        layer = depth(sub) if at == "last" else int(at)
        row = sub[sub["layer"] == layer]
        if measured(row, test_m):
            v = float(pd.to_numeric(row[test_m], errors="coerce").mean())
            if not math.isnan(v):
                out[key] = (layer, v)
    return out


def _constant(x: np.ndarray) -> bool:
    """No spread beyond float noise (a t statistic would be meaningless)."""
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))


def _one_sided_p(pre: list[float], other: list[float], margin: float, low: bool) -> tuple[str, float, float, float]:
    """(test name, statistic, df, p) for H1: pretrained better than ``other`` by more than margin."""
    from scipy import stats

    # orient so that "greater is better": H1 is mean(pre) - margin > mean(other)
    sign = -1.0 if low else 1.0
    a = np.array([sign * v - margin for v in pre])
    b = np.array([sign * v for v in other])
    if len(a) >= 2:
        if _constant(a) and _constant(b):  # deterministic on both sides: the comparison decides
            ahead = bool(a.mean() > b.mean())
            return "Welch t-test (no variance)", math.inf if ahead else -math.inf, math.nan, 0.0 if ahead else 1.0
        res = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else math.nan
        return "one-sided Welch t-test", float(res.statistic), float(dof), float(res.pvalue)
    target = float(a[0])
    if _constant(b):
        p = 0.0 if target > b.mean() else 1.0
        return "one-sample t-test (no variance across seeds)", math.inf if p == 0 else -math.inf, len(b) - 1, p
    res = stats.ttest_1samp(b, popmean=target, alternative="less")
    return "one-sided one-sample t-test", float(res.statistic), float(len(b) - 1), float(res.pvalue)


def _authors(case: ClaimCase) -> bool:
    """Under the authors' protocol every comparison is at the last layer (see the module docstring)."""
    return case.protocol == "authors"


def _at(case: ClaimCase) -> str:
    """Where a score is read, for messages."""
    return "at the last layer (authors' protocol)" if _authors(case) else "at the validation-chosen layer"


def _where(case: ClaimCase) -> str:
    return "last" if _authors(case) else "selected"


def _score(
    case: ClaimCase, frame: pd.DataFrame, model: str, init: str, sel_m: str, test_m: str
) -> tuple[str, float] | None:
    """(layers, seed-mean test value) of ``model``/``init`` on the case's task at the layer the
    protocol compares: the last one (authors) or the validation-chosen one per seed (plmtransfer)."""
    sub = subset(frame, model, case.task, init)
    vals = _values_at(sub, sel_m, test_m, _where(case)) if not sub.empty else {}
    if not vals:
        return None
    layers = sorted({layer for layer, _ in vals.values()})
    return "L" + "/".join(str(x) for x in layers), _mean(vals)


def _model_names(name: str, value: Any) -> str | None:
    ok = value and all(isinstance(m, str) and m for m in value)
    return None if ok else f"'{name}' must be a non-empty list of model names"


# the parameters several built-in kinds share
_LEVEL = Param(_NUM, 0.05, level_in_range)
_MARGIN = Param(_NUM, 0.0, non_negative)
_MODELS = Param((list,), None, _model_names)
#: the metrics compared (default: the task's)
_METRICS = {"metric": Param((str,)), "selection_metric": Param((str,))}
#: the parameters of a one-sided comparison at the chosen layer (beats one-hot, declines after peak)
_MARGIN_LEVEL_METRICS = {"margin": _MARGIN, "level": _LEVEL, **_METRICS}


# ------------------------------------------------------------------------------ the built-in kinds


class BeatsOnehot(ClaimKind):
    """The model's validation-chosen layer beats one-hot's on the test metric (by ``margin``)."""

    name = "beats_onehot"
    params = dict(_MARGIN_LEVEL_METRICS)
    for_onehot = False

    def comparators(self, case: ClaimCase) -> tuple[str, ...]:
        return (ONEHOT,)

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        if isinstance(mine := self.own(case, frame), ClaimOutcome):
            return mine
        sel_m, test_m = self.metrics(case, mine)
        one = subset(frame, ONEHOT, case.task)
        if one.empty:
            return self.missing(
                f"no one-hot result for task {case.task}: add onehot to the selection "
                f"({benchmarks_command(case.model + ',' + ONEHOT, case.task, case.init)}) "
                "and do not deselect it with -k"
            )
        if _authors(case):
            return self._last_layer(case, frame, sel_m, test_m)
        s_m, s_o = select(mine, sel_m, test_m), select(one, sel_m, test_m)
        if s_m is None or s_o is None or math.isnan(s_m.test_value) or math.isnan(s_o.test_value):
            return self.missing(
                f"{self.what(case)}: {sel_m}/{test_m} missing from the records of the model or of one-hot",
                selection_metric=sel_m,
                test_metric=test_m,
            )
        margin, level = self.number(case, "margin"), self.number(case, "level")
        diff = s_m.test_value - s_o.test_value
        paired = compare_rows(
            _layer(mine, s_m.layer), _layer(one, s_o.layer), test_m, (case.model, ONEHOT), margin, level
        )
        if isinstance(paired, PairedResult):
            passed, stat = paired.significant, f"{paired.describe()}; "
            tail = f" (significant: p < {level:g})" if passed else f" (not significant: p >= {level:g})"
        else:
            passed = _beats(s_m.test_value, s_o.test_value, test_m, margin)
            stat, tail = f"difference {diff:+.3f}; ", _paired_txt(paired)
        seeds = f" (mean of {s_m.n} seeds)" if s_m.n > 1 else ""
        msg = (
            f"{self.what(case)}: layer {s_m.layer} (chosen on {sel_m}={fmt(s_m.selection_value)}) has "
            f"{test_m} {fmt(s_m.test_value)}{seeds} vs one-hot {fmt(s_o.test_value)}: {stat}"
            f"{'beats' if passed else 'does not beat'} one-hot{_by_margin(margin)}{tail}"
        )
        return ClaimOutcome(
            passed,
            msg,
            {
                "selection_metric": sel_m,
                "test_metric": test_m,
                "margin": margin,
                "level": level,
                "model": _sel_detail(s_m),
                "onehot": _sel_detail(s_o),
                "difference": diff,
                **_paired_detail(paired),
            },
        )

    def _last_layer(self, case: ClaimCase, frame: pd.DataFrame, sel_m: str, test_m: str) -> ClaimOutcome:
        """The authors' 'Emb > OH': the last layer's value against one-hot's, a plain comparison."""
        mine = _score(case, frame, case.model, case.init, sel_m, test_m)
        one = _score(case, frame, ONEHOT, "none", sel_m, test_m)
        if mine is None or one is None:
            return self.missing(f"{self.what(case)}: {test_m} missing at the last layer of the model or of one-hot")
        margin = self.number(case, "margin")
        passed = _beats(mine[1], one[1], test_m, margin)
        msg = (
            f"{self.what(case)}, {test_m} at the last layer (authors' protocol): {mine[0]} {fmt(mine[1])} vs "
            f"one-hot {fmt(one[1])}: difference {mine[1] - one[1]:+.3f}; "
            f"{'beats' if passed else 'does not beat'} one-hot{_by_margin(margin)}"
            " (plain comparison, as the authors' last-layer summary)"
        )
        detail = {"test_metric": test_m, "model_value": mine[1], "onehot_value": one[1], "margin": margin}
        return ClaimOutcome(passed, msg, detail)


def _layer_k(name: str, value: Any) -> str | None:
    if isinstance(value, dict):
        ok = value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values())
        return None if ok else f"'{name}' must map model globs to layer indices >= 0, got {value!r}"
    return non_negative(name, value)


class SaturatesBy(ClaimKind):
    """Layer k (absolute, per model glob, or a fraction of the depth) is within ``tolerance`` of
    the best layer (plmtransfer: the validation-chosen layers; authors: the last layer, their
    ``delta_layer``)."""

    name = "saturates_by"
    params = {
        "layer": Param((int, dict), None, _layer_k),
        "fraction": Param(_NUM, None, lambda n, v: None if 0 < v <= 1 else f"'{n}' must be in (0, 1], got {v}"),
        "tolerance": Param(_NUM, 0.02, non_negative),
        "level": _LEVEL,
        **_METRICS,
    }
    for_onehot = False

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        if ("layer" in params) == ("fraction" in params):
            return [
                "saturates_by needs exactly one of 'layer' (absolute layer index k) or "
                "'fraction' (k = floor(fraction * last layer index))"
            ]
        return []

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        if isinstance(mine := self.own(case, frame), ClaimOutcome):
            return mine
        sel_m, test_m = self.metrics(case, mine)
        last = depth(mine)
        if isinstance(case.params.get("layer"), dict):
            found = [v for pat, v in case.params["layer"].items() if fnmatch.fnmatchcase(case.model, pat)]
            if not found:
                return self.missing(f"{self.what(case)}: no pattern of 'layer' matches {case.model}")
            k, k_txt = int(found[0]), f"layer {found[0]}"
        elif "layer" in case.params:
            k, k_txt = int(case.params["layer"]), f"layer {int(case.params['layer'])}"
        else:
            frac = float(case.params["fraction"])
            k = int(math.floor(frac * last + 1e-9))
            k_txt = f"layer {k} (= floor({frac:g} x last layer {last}))"
        tol = self.number(case, "tolerance")
        if _authors(case):
            return self._from_k_to_last(case, mine, test_m, k, last, tol)
        layers = sorted(int(x) for x in mine["layer"].unique())
        early_layers = [x for x in layers if x <= k]
        if not early_layers:
            return self.missing(
                f"{self.what(case)}: no results for layers 0..{k}; run all layers "
                f"({benchmarks_command(case.model, case.task, case.init)} without --plm-layers)"
            )
        best, early = select(mine, sel_m, test_m), select(mine, sel_m, test_m, early_layers)
        if best is None or early is None or math.isnan(best.test_value) or math.isnan(early.test_value):
            return self.missing(f"{self.what(case)}: {sel_m}/{test_m} missing from the records")
        low = lower_is_better(test_m)
        gap = (early.test_value - best.test_value) if low else (best.test_value - early.test_value)
        level = self.number(case, "level")
        # H1 of the paired test: the best layer beats the early one by more than the tolerance.
        labels = (f"layer {best.layer}", f"layer {early.layer}")
        paired = compare_rows(_layer(mine, best.layer), _layer(mine, early.layer), test_m, labels, tol, level)
        if isinstance(paired, PairedResult):
            passed = not paired.significant
            verdict = (
                f"saturates (gap not significantly above the tolerance, p >= {level:g})"
                if passed
                else f"does not saturate (gap significantly above the tolerance, p < {level:g})"
            )
            stat_txt = "; best minus early " + paired.describe()
        else:
            passed = gap <= tol + 1e-12
            verdict = "saturates" if passed else "does not saturate"
            stat_txt = _paired_txt(paired)
        notes = f" (only layers up to {layers[-1]} of {last} were run)" if layers[-1] < last else ""
        msg = (
            f"{self.what(case)}: best layer {best.layer} chosen on {sel_m} has {test_m} {fmt(best.test_value)}; "
            f"among layers <= {k_txt} the chosen layer {early.layer} has {fmt(early.test_value)}: "
            f"gap {gap:+.3f} vs tolerance {tol:g}{stat_txt}; {verdict} by layer {k}{notes}"
        )
        curve_best = mine.groupby("layer")[test_m].mean()
        oracle = float(curve_best.min() if low else curve_best.max())
        return ClaimOutcome(
            passed,
            msg,
            {
                "selection_metric": sel_m,
                "test_metric": test_m,
                "k": k,
                "last_layer": last,
                "tolerance": tol,
                "gap": gap,
                "best": _sel_detail(best),
                "early": _sel_detail(early),
                "layers_run": layers,
                "oracle_best_test": oracle,
                "level": level,
                **_paired_detail(paired),
            },
        )

    def _from_k_to_last(
        self, case: ClaimCase, mine: pd.DataFrame, test_m: str, k: int, last: int, tol: float
    ) -> ClaimOutcome:
        """The authors' cut (scr/vis/res_vis.py, ``delta_layer``): what the layers after k add,
        last-layer value minus layer-k value, seed means."""
        v_k, v_last = _seed_mean(mine, test_m, k), _seed_mean(mine, test_m, last)
        if v_k is None or v_last is None:
            return self.missing(f"{self.what(case)}: {test_m} missing at layer {k} or at the last layer {last}")
        gain = (v_k - v_last) if lower_is_better(test_m) else (v_last - v_k)
        passed = gain <= tol + 1e-12
        msg = (
            f"{self.what(case)}, {test_m} (authors' protocol): layer {k} {fmt(v_k)}, last layer {last} {fmt(v_last)}: "
            f"the layers after {k} add {gain:+.3f} vs tolerance {tol:g}; "
            f"{'saturates' if passed else 'does not saturate'} by layer {k}"
        )
        detail = dict(
            test_metric=test_m, k=k, last_layer=last, tolerance=tol, value_k=v_k, value_last=v_last, gain=gain
        )
        return ClaimOutcome(passed, msg, detail)


def _two_inits(
    kind: ClaimKind, case: ClaimCase, frame: pd.DataFrame, init: str, other: str
) -> tuple[pd.DataFrame, pd.DataFrame] | ClaimOutcome:
    """The records of ``init`` and ``other`` of the case's model, or a missing outcome that says what to run."""
    a, b = subset(frame, case.model, case.task, init), subset(frame, case.model, case.task, other)
    if a.empty or b.empty:
        return kind.missing(
            f"no {init if a.empty else other} results for {case.model} on {case.task}; run: "
            f"{benchmarks_command(case.model, case.task, init + ',' + other, REPLICATE_HINT)}"
        )
    return a, b


def _at_layer(name: str, value: Any) -> str | None:
    if isinstance(value, str) and value not in ("selected", "last"):
        return f'\'{name}\' must be "selected", "last" or a layer index, got {value!r}'
    return None


class _InitBeats(ClaimKind):
    """The ``base_init`` representation beats the ``other_init`` one of the same model, significantly."""

    #: the init that should win, and the one it is compared with
    base_init: ClassVar[str] = "pretrained"
    other_init: ClassVar[str] = ""
    params = {"level": _LEVEL, "margin": _MARGIN, "at_layer": Param((str, int), "selected", _at_layer), **_METRICS}
    for_onehot = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.fixed_inits = cls.default_inits = (cls.base_init,)

    def applies_to(self, model: str, model_inits: Iterable[str]) -> bool:
        # a model without the ablation init has nothing to compare with
        return {self.base_init, self.other_init} <= set(model_inits)

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        mine_init, other_init = self.base_init, self.other_init
        if isinstance(got := _two_inits(self, case, frame, mine_init, other_init), ClaimOutcome):
            return got
        pre, oth = got
        sel_m, test_m = self.metrics(case, pre)
        # the authors compare last layers with their replicate-seed t-test (repstat.py), never a bootstrap
        at = "last" if _authors(case) else case.params.get("at_layer", "selected")
        level, margin = self.number(case, "level"), self.number(case, "margin")
        low = lower_is_better(test_m)
        pv, ov = _values_at(pre, sel_m, test_m, at), _values_at(oth, sel_m, test_m, at)
        if not pv or not ov:
            return self.missing(
                f"{case.model} on {case.task}: {test_m} at layer {at!r} missing for {mine_init if not pv else other_init}"
            )
        p_vals, o_vals = [v for _, v in pv.values()], [v for _, v in ov.values()]
        p_mean, o_mean = _mean(pv), _mean(ov)
        at_txt = {"selected": "the validation-chosen layer", "last": "the last layer"}.get(at, f"layer {at}")
        if _authors(case):
            at_txt += " (authors' protocol)"
        pre_txt = f"{mine_init} {fmt(p_mean)} (L{', L'.join(str(l) for l, _ in pv.values())})"
        oth_txt = (
            f"{other_init} {fmt(o_mean)}"
            + (f"±{fmt(float(np.std(o_vals, ddof=1)))}" if len(o_vals) > 1 else "")
            + f" over {len(o_vals)} seed(s) [{', '.join(ov)}] (L{', L'.join(str(l) for l, _ in ov.values())})"
        )
        detail: dict[str, Any] = {
            "test_metric": test_m,
            "selection_metric": sel_m,
            "at_layer": at,
            "level": level,
            "margin": margin,
            mine_init: {k: {"layer": l, "value": v} for k, (l, v) in pv.items()},
            other_init: {k: {"layer": l, "value": v} for k, (l, v) in ov.items()},
            f"{mine_init}_mean": p_mean,
            f"{other_init}_mean": o_mean,
        }
        paired: PairedResult | str = "the authors' protocol uses their replicate-seed t-test"
        if not _authors(case):
            paired = compare_rows(_rows_at(pre, pv), _rows_at(oth, ov), test_m, (mine_init, other_init), margin, level)
        head = f"{case.model} on {case.task}, {test_m} at {at_txt}: {pre_txt} vs {oth_txt}; "
        tail = "" if _authors(case) else _paired_txt(paired)
        if isinstance(paired, PairedResult):
            passed = paired.significant
            detail.update(test="paired bootstrap", p_value=paired.p_value, paired=paired.to_dict())
            stat_txt = f"{mine_init} minus {other_init} {paired.describe()}"
            tail = f" (margin {margin:g})" if margin else ""
        else:
            if not _authors(case):
                detail["paired_unavailable"] = paired
            if len(o_vals) < 2:
                passed = better(p_mean - (-margin if low else margin), o_mean, test_m)
                detail.update(test="none (single seed)", p_value=None)
                msg = (
                    f"{head}{mine_init} {'better' if passed else 'NOT better'}{_by_margin(margin)} "
                    f"(single seed: plain comparison, no significance test; add {REPLICATE_HINT} for one){tail}"
                )
                return ClaimOutcome(passed, msg, detail)
            name, stat, dof, p = _one_sided_p(p_vals, o_vals, margin, low)
            passed = p < level
            margin_txt = f" - margin {margin:g}" if margin else ""
            h1 = (
                f"mean({other_init}) {'<' if not low else '>'} {mine_init}{margin_txt}"
                if len(p_vals) < 2
                else f"mean({mine_init}){margin_txt} {'>' if not low else '<'} mean({other_init})"
            )
            detail.update(test=name, statistic=stat, df=dof, p_value=p, h1=h1)
            stat_txt = f"{name}, H1: {h1}: t={stat:.2f}, df={dof:.1f}, p={p:.3g}"
        msg = (
            f"{head}{stat_txt} {'<' if passed else '>='} {level:g} -> "
            f"{f'{mine_init} significantly better' if passed else 'not significant'}{tail}"
        )
        return ClaimOutcome(passed, msg, detail)


class PretrainedBeatsRandom(_InitBeats):
    name = "pretrained_beats_random"
    other_init = "random"


class PretrainedBeatsStat(_InitBeats):
    name = "pretrained_beats_stat"
    other_init = "stat"


class StatBeatsRandom(_InitBeats):
    """Stat transfer beats random init (both replicated: Welch's one-sided t-test over seeds, or
    the paired bootstrap when predictions are kept)."""

    name = "stat_beats_random"
    base_init = "stat"
    other_init = "random"


def _metric_globs(name: str, value: Any) -> str | None:
    return None if all(isinstance(m, str) for m in value) else f"'{name}' must be a list of metric-key globs"


class NoRegression(ClaimKind):
    """No metric moved significantly from the stored baseline of this (task, model, init)."""

    name = "no_regression"
    params = {"metrics": Param((list,), None, _metric_globs), "level": _LEVEL}
    default_inits = ("*",)

    def skip_reason(self, options: Any) -> str | None:
        if options.update_baselines:
            return "--plm-update-baselines: this run rewrites the baselines it would compare with"
        return _subsample_reason(options)

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        if isinstance(mine := self.own(case, frame), ClaimOutcome):
            return mine
        store = baselines or BaselineStore()
        try:
            cmp = store.compare(mine, case.params.get("metrics"), level=self.number(case, "level"))
        except BaselineMissing as exc:
            return self.missing(str(exc), command=exc.command, path=str(exc.path))
        return ClaimOutcome(
            cmp.ok,
            cmp.format(only_failures=not cmp.ok),
            {
                "baseline": str(cmp.path),
                "notes": cmp.notes,
                "n_values": len(cmp.rows),
                "n_failed": len(cmp.failures),
                "failures": cmp.to_frame().query("status != 'OK'").to_dict("records") if cmp.rows else [],
            },
        )


def _subsample_reason(options: Any) -> str | None:
    limit = getattr(options, "limit", None)
    if limit is None:
        return None
    return f"--plm-limit {limit}: a subsample is not compared with numbers measured on the whole task"


class MatchesPaper(ClaimKind):
    """Every value the authors' table has for this (task, model, init) is matched, within
    ``tolerance``, by the last layer of records of the table's protocol."""

    name = "matches_paper"
    params = {"tolerance": Param(_NUM, None, non_negative)}
    default_inits = ("pretrained", "none")

    def skip_reason(self, options: Any) -> str | None:
        return _subsample_reason(options)

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        if isinstance(mine := self.own(case, frame), ClaimOutcome):
            return mine
        store = baselines or BaselineStore()
        if (ref := store.paper()) is None:
            return self.missing(f"no paper reference file at {store.paper_path}")
        if not ref.values_for(case.task, case.model, case.init):
            return self.missing(f"{store.paper_path} has no value for {self.what(case)}; nothing to compare")
        if case.protocol != ref.protocol:
            return self.missing(
                f"{self.what(case)}: the table is of protocol {ref.protocol!r}, these records are "
                f"{case.protocol!r}; run with --plm-protocol {ref.protocol}"
            )
        rows = ref.compare(mine, case.params.get("tolerance"))
        if not rows or all(r.current is None for r in rows):
            return self.missing(
                f"{self.what(case)}: none of the table's metrics at the last layer; run all layers: "
                f"{benchmarks_command(case.model, case.task, case.init)}"
            )
        compared = [r for r in rows if r.current is not None]
        passed = all(r.ok for r in compared)
        worst = max(compared, key=lambda r: abs(r.diff or 0.0))
        msg = (
            f"{self.what(case)}: last layer {worst.layer} {worst.ref.metric} {fmt(worst.current)} (seed "
            f"{worst.seed_used}) vs the authors' {fmt(worst.ref.value)} ({ref.source_of(worst.ref)}): difference "
            f"{worst.diff:+.3f}, tolerance ±{worst.tolerance:g} -> {'OK' if passed else 'FAIL'}\n" + format_rows(rows)
        )
        detail = {
            "values": [
                {"metric": r.ref.metric, "reference": r.ref.value, "current": r.current, "status": r.status}
                for r in rows
            ],
            "tolerance": worst.tolerance,
            "layer": worst.layer,
            "source": ref.source_of(worst.ref),
        }
        return ClaimOutcome(passed, msg, detail)


_ANY_INIT = ("pretrained", "random", "stat", "none")


class Equivalent(ClaimKind):
    """The case's init and ``other_init`` of the same model score the same within ``margin``:
    the paired bootstrap's ``1 - 2*level`` interval of the difference inside [-margin, margin] (two
    one-sided tests), else (no predictions; authors: last layers) seed means within ``margin``."""

    name = "equivalent"
    params = {
        "other_init": Param((str,), None, lambda n, v: None if v in _ANY_INIT else f"'{n}' must be one of {_ANY_INIT}"),
        "margin": Param(_NUM, 0.03, non_negative),
        "level": _LEVEL,
        **_METRICS,
    }
    default_inits = ("stat",)
    for_onehot = False

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        return [] if "other_init" in params else ["equivalent needs 'other_init' (the init compared with)"]

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        other = str(case.params["other_init"])
        if isinstance(got := _two_inits(self, case, frame, case.init, other), ClaimOutcome):
            return got
        a, b = got
        sel_m, test_m = self.metrics(case, a)
        margin, level = self.number(case, "margin"), self.number(case, "level")
        va, vb = _values_at(a, sel_m, test_m, _where(case)), _values_at(b, sel_m, test_m, _where(case))
        if not va or not vb:
            return self.missing(f"{self.what(case)}: {test_m} missing for {case.init if not va else other}")
        ma, mb = _mean(va), _mean(vb)
        head = (
            f"{self.what(case)}, {test_m} {_at(case)}: {case.init} {fmt(ma)} vs {other} {fmt(mb)}, "
            f"difference {ma - mb:+.3f}; "
        )
        paired: PairedResult | str = "authors' protocol: seed means"
        if not _authors(case):
            paired = compare_rows(_rows_at(a, va), _rows_at(b, vb), test_m, (case.init, other), level=level)
        if isinstance(paired, PairedResult):
            passed = -margin <= paired.low and paired.high <= margin
            msg = head + f"{paired.describe()}; the interval is {'inside' if passed else 'not inside'} ±{margin:g}"
        else:
            passed = abs(ma - mb) <= margin + 1e-12
            msg = head + f"{'within' if passed else 'outside'} ±{margin:g} (plain comparison: {paired})"
        detail = {"test_metric": test_m, "value": ma, "other_value": mb, "margin": margin}
        return ClaimOutcome(passed, msg + (" -> equivalent" if passed else " -> not equivalent"), detail)


class _AcrossModels(ClaimKind):
    """Base of the kinds that compare the case's model with the ``models`` of its family on the
    case's task (each scored at the protocol's layer: :func:`_score`)."""

    for_onehot = False

    def family(self, case: ClaimCase) -> tuple[str, ...]:
        return tuple(dict.fromkeys([case.model, *case.params.get("models", [])]))

    def comparators(self, case: ClaimCase) -> tuple[str, ...]:
        return tuple(m for m in self.family(case) if m != case.model)

    def scores(self, case: ClaimCase, frame: pd.DataFrame) -> tuple[dict[str, tuple[str, float]], str] | ClaimOutcome:
        """Each family model's (layers, score), and the test metric; or what is missing."""
        if isinstance(mine := self.own(case, frame), ClaimOutcome):
            return mine
        sel_m, test_m = self.metrics(case, mine)
        out: dict[str, tuple[str, float]] = {}
        for model in self.family(case):
            got = _score(case, frame, model, case.init, sel_m, test_m)
            if got is None:
                return self.missing(
                    f"{self.what(case)}: no {case.init} {test_m} for {model}; run: "
                    f"{benchmarks_command(','.join(self.family(case)), case.task, case.init)}"
                )
            out[model] = got
        return out, test_m

    @staticmethod
    def listing(scores: Mapping[str, tuple[str, float]]) -> str:
        return ", ".join(f"{m} {fmt(v)} ({layer})" for m, (layer, v) in scores.items())


class SimilarAcrossModels(_AcrossModels):
    """The best score is similar across model sizes (bigger is not better): the family's scores
    span at most ``margin`` (max minus min)."""

    name = "similar_across_models"
    params = {"models": _MODELS, "margin": Param(_NUM, 0.03, non_negative), **_METRICS}

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        return [] if "models" in params else ["similar_across_models needs 'models' (the family compared)"]

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        if isinstance(got := self.scores(case, frame), ClaimOutcome):
            return got
        scores, test_m = got
        values = [v for _, v in scores.values()]
        spread = max(values) - min(values)
        margin = self.number(case, "margin")
        passed = spread <= margin + 1e-12
        msg = (
            f"{case.task}, {case.init} {test_m} at the {'last' if _authors(case) else 'validation-chosen'} layer: "
            f"{self.listing(scores)}; spread {spread:.3f} {'<=' if passed else '>'} margin {margin:g} -> "
            f"{'similar across models' if passed else 'not similar'}"
        )
        return ClaimOutcome(passed, msg, {"test_metric": test_m, "scores": scores, "spread": spread, "margin": margin})


class NotAlwaysBeatsOnehot(_AcrossModels):
    """Existential: for at least one model of the family, the case's init (random by default)
    does not beat one-hot (its score is at most one-hot's plus ``margin``)."""

    name = "not_always_beats_onehot"
    params = {"models": _MODELS, "margin": _MARGIN, **_METRICS}
    default_inits = ("random",)

    def comparators(self, case: ClaimCase) -> tuple[str, ...]:
        return (*super().comparators(case), ONEHOT)

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        if isinstance(got := self.scores(case, frame), ClaimOutcome):
            return got
        scores, test_m = got
        sel_m, _ = self.metrics(case, subset(frame, case.model, case.task))
        one = _score(case, frame, ONEHOT, "none", sel_m, test_m)
        if one is None:
            return self.missing(f"no one-hot {test_m} on {case.task}; add onehot to the selection")
        margin = self.number(case, "margin")
        witnesses = [m for m, (_, v) in scores.items() if not _beats(v, one[1], test_m, margin)]
        passed = bool(witnesses)
        msg = f"{case.task}, {case.init} {test_m} {_at(case)} vs one-hot {fmt(one[1])}: {self.listing(scores)}; " + (
            f"not beating one-hot: {', '.join(witnesses)}" if passed else f"every model's {case.init} beats one-hot"
        )
        return ClaimOutcome(
            passed, msg, {"test_metric": test_m, "onehot": one[1], "scores": scores, "witnesses": witnesses}
        )


class DeclinesAfterPeak(ClaimKind):
    """Performance falls after its peak: the peak layer's test value exceeds the last layer's by
    more than ``margin`` (plmtransfer: the validation-chosen layer, paired bootstrap when
    predictions are kept; authors: the layer of the best test value, as their best-layer table)."""

    name = "declines_after_peak"
    params = dict(_MARGIN_LEVEL_METRICS)
    for_onehot = False

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        if isinstance(mine := self.own(case, frame), ClaimOutcome):
            return mine
        sel_m, test_m = self.metrics(case, mine)
        last = depth(mine)
        peak = select(mine, test_m if _authors(case) else sel_m, test_m)
        v_last = _seed_mean(mine, test_m, last)
        if peak is None or v_last is None or math.isnan(peak.test_value):
            return self.missing(f"{self.what(case)}: {test_m} missing at the peak or at the last layer {last}")
        drop = (v_last - peak.test_value) if lower_is_better(test_m) else (peak.test_value - v_last)
        margin, level = self.number(case, "margin"), self.number(case, "level")
        paired: PairedResult | str = "authors' protocol: curve of test values"
        if not _authors(case):
            labels = (f"layer {peak.layer}", f"layer {last}")
            paired = compare_rows(_layer(mine, peak.layer), _layer(mine, last), test_m, labels, margin, level)
        passed = paired.significant if isinstance(paired, PairedResult) else drop > margin
        how = paired.describe() if isinstance(paired, PairedResult) else f"plain comparison ({paired})"
        msg = (
            f"{self.what(case)}, {test_m}: peak layer {peak.layer} "
            f"({'best test value' if _authors(case) else f'chosen on {sel_m}'}) {fmt(peak.test_value)}, "
            f"last layer {last} {fmt(v_last)}: drop {drop:+.3f} vs margin {margin:g}; {how} -> "
            f"{'declines after its peak' if passed else 'does not decline'}"
        )
        detail = dict(test_metric=test_m, peak=_sel_detail(peak), last_value=v_last, drop=drop, margin=margin)
        return ClaimOutcome(passed, msg, detail)


_AXES = ("layer", "checkpoint", "size")


def _expect(name: str, value: Any) -> str | None:
    return None if value in ("increasing", "not_increasing") else f"'{name}' must be increasing or not_increasing"


def _fractions(name: str, value: Any) -> str | None:
    ok = value and all(isinstance(f, _NUM) and 0 < f < 1 for f in value)
    return None if ok else f"'{name}' must list fractions in (0, 1)"


class Trend(ClaimKind):
    """A monotone trend of the score along ``axis``, measured as the authors did
    (scr/vis/res_vis_task.py, ``task_summary``): Spearman's rho of the score against the axis,
    a trend when rho >= ``threshold`` (their ``rho_cutoff`` 0.9); ``expect``: ``increasing`` (a
    trend passes) or ``not_increasing`` (no trend passes: "does not scale").

    ``axis``: ``layer`` (the case's per-layer seed means), ``checkpoint`` (the model (1.0) and its
    checkpoints ``<model>@<fraction>`` in ``fractions``, placed by ``checkpoint_fraction``, else the
    name) or ``size`` (the model and ``models``, placed by ``model_params``), each model scored at
    the protocol's layer.
    """

    name = "trend"
    params = {
        "axis": Param((str,), None, lambda n, v: None if v in _AXES else f"'{n}' must be one of {', '.join(_AXES)}"),
        "expect": Param((str,), "increasing", _expect),
        "threshold": Param(_NUM, 0.9, lambda n, v: None if -1 <= v <= 1 else f"'{n}' must be in [-1, 1]"),
        "models": _MODELS,
        "fractions": Param((list,), None, _fractions),
        **_METRICS,
    }
    for_onehot = False

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        need = {"checkpoint": "fractions", "size": "models"}.get(params.get("axis", ""))
        if "axis" not in params:
            return ["trend needs 'axis' (layer, checkpoint or size)"]
        return [f"trend along {params['axis']} needs '{need}'"] if need and need not in params else []

    def comparators(self, case: ClaimCase) -> tuple[str, ...]:
        if case.params.get("axis") == "checkpoint":
            return tuple(f"{case.model}@{f:g}" for f in case.params.get("fractions", []))
        if case.params.get("axis") == "size":
            return tuple(m for m in case.params.get("models", []) if m != case.model)
        return ()

    def _position(self, case: ClaimCase, frame: pd.DataFrame, model: str) -> float | None:
        axis = case.params["axis"]
        column = "checkpoint_fraction" if axis == "checkpoint" else "model_params"
        rows = subset(frame, model, case.task, case.init)
        if rows[column].notna().any():
            return float(pd.to_numeric(rows[column], errors="coerce").dropna().iloc[0])
        if axis == "checkpoint":
            return float(model.rsplit("@", 1)[1]) if "@" in model else 1.0
        return None

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        from scipy import stats

        if isinstance(mine := self.own(case, frame), ClaimOutcome):
            return mine
        sel_m, test_m = self.metrics(case, mine)
        axis = case.params["axis"]
        points: list[tuple[float, float, str]] = []
        if axis == "layer":
            curve = mine.groupby("layer")[test_m].mean()
            points = [(float(layer), float(v), f"L{layer}") for layer, v in curve.items() if not math.isnan(v)]
        else:
            for model in (case.model, *self.comparators(case)):
                got, where = _score(case, frame, model, case.init, sel_m, test_m), self._position(case, frame, model)
                if got is None or where is None:
                    return self.missing(
                        f"{self.what(case)}: no {test_m}"
                        + (" or model_params" if axis == "size" else "")
                        + f" for {model}; run: {benchmarks_command(model, case.task, case.init)}"
                    )
                points.append((where, got[1], model))
        if len(points) < 3:
            return self.missing(f"{self.what(case)}: a trend along {axis} needs >= 3 points, got {len(points)}")
        points.sort()
        rho = float(stats.spearmanr([p[0] for p in points], [p[1] for p in points])[0])
        if lower_is_better(test_m):
            rho = -rho
        threshold = self.number(case, "threshold")
        expect = case.params.get("expect", "increasing")
        rising = rho >= threshold
        passed = rising if expect == "increasing" else not rising
        shown = (
            f"{_at(case)}: " + ", ".join(f"{name} {fmt(v)}" for _, v, name in points)
            if axis != "layer"
            else f"{len(points)} layers"
        )
        msg = (
            f"{self.what(case)}, {test_m} along {axis} ({shown}): Spearman rho {rho:+.3f} "
            f"{'>=' if rising else '<'} {threshold:g} -> {'increases' if rising else 'does not increase'}"
            f" (expected: {expect.replace('_', ' ')})"
        )
        detail = {"test_metric": test_m, "axis": axis, "rho": rho, "threshold": threshold, "points": points}
        return ClaimOutcome(passed, msg, detail)


# ------------------------------------------------------------------------------ the registry

#: the kinds this package ships, in the order error messages list them
BUILTIN_KINDS: tuple[type[ClaimKind], ...] = (
    BeatsOnehot,
    SaturatesBy,
    PretrainedBeatsRandom,
    PretrainedBeatsStat,
    StatBeatsRandom,
    Equivalent,
    SimilarAcrossModels,
    NotAlwaysBeatsOnehot,
    DeclinesAfterPeak,
    Trend,
    NoRegression,
    MatchesPaper,
)


class ClaimKindError(PlmTransferError, ValueError):
    """A claim kind cannot be registered (not a ClaimKind subclass, bad name, name taken)."""


_REGISTRY: dict[str, ClaimKind] = {cls.name: cls() for cls in BUILTIN_KINDS}


def register_kind(cls: type[ClaimKind]) -> None:
    """Make ``cls`` usable as ``"kind": cls.name`` in claims files. Registering the same class
    again does nothing; another class under a registered name is refused."""
    if not (isinstance(cls, type) and issubclass(cls, ClaimKind)):
        raise ClaimKindError(f"a claim kind must be a subclass of ClaimKind, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name or any(c in name for c in "[] "):
        raise ClaimKindError(
            f"claim kind {cls.__qualname__}: 'name' must be a non-empty string without '[', ']' or spaces"
        )
    bad = [k for k, p in cls.params.items() if not isinstance(p, Param)]
    if bad:
        raise ClaimKindError(f"claim kind {name!r}: params {bad} must be Param(...) declarations")
    if "evaluate" not in {m for klass in cls.__mro__ if klass is not ClaimKind for m in vars(klass)}:
        raise ClaimKindError(f"claim kind {name!r} ({cls.__qualname__}) does not implement evaluate()")
    if (existing := _REGISTRY.get(name)) is not None:
        if type(existing) is cls:
            return
        raise ClaimKindError(
            f"claim kind {name!r} of {cls.__module__}.{cls.__qualname__} is already registered by "
            f"{type(existing).__module__}.{type(existing).__qualname__}"
        )
    _REGISTRY[name] = cls()


def unregister_kind(name: str) -> None:
    """Forget a kind registered by a plugin (the built-in kinds stay)."""
    if name not in {cls.name for cls in BUILTIN_KINDS}:
        _REGISTRY.pop(name, None)


def get_kind(name: str) -> ClaimKind:
    """The registered kind called ``name`` (``KeyError`` when there is none)."""
    return _REGISTRY[name]


def kind_names() -> tuple[str, ...]:
    """The registered kinds' names: the built-in ones first, then in registration order."""
    return tuple(_REGISTRY)


def register_plugin_kinds(hook: Any) -> list[str]:
    """Register the kinds of the ``plmtransfer.claim_kinds`` entry points and of every
    ``pytest_plmtransfer_claim_kinds`` implementation (``hook``: ``config.hook``); returns the
    names registered now, for :func:`unregister_kind` at the end of the session."""
    found: list[type[ClaimKind]] = [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for result in hook.pytest_plmtransfer_claim_kinds():
        if result is not None and not isinstance(result, (list, tuple)):
            raise ClaimKindError(
                f"pytest_plmtransfer_claim_kinds must return a list of ClaimKind classes, got {result!r}"
            )
        found.extend(result or ())
    added = []
    for cls in found:
        new = getattr(cls, "name", None) not in _REGISTRY
        register_kind(cls)
        if new:
            added.append(cls.name)
    return added
