"""Evaluate one claim case against existing per-layer results (nothing is refitted).

``evaluate(case, layer_results, baselines)`` returns a :class:`ClaimOutcome`; ``resolve`` turns
that plus the case's expected-failure declaration into the outcome recorded in the ledger
("passed", "failed", "xfailed", "xpassed", "skipped").

Layer choice: a model's layer is always chosen on the validation split by the task's selection
metric (``val_spearman``, ``val_loss`` …; lower is better for ``*_loss`` / ``*_mse``), with the
metric first averaged over seeds where replicated, and is reported on the test metric.

Significance (``pretrained_beats_random`` / ``pretrained_beats_stat``): the pretrained
representation has no seed (its embeddings and ridge/early-stopped heads are deterministic), so
it is one fixed number, while each ablation seed gives one sample. With >= 2 ablation seeds the
test is a one-sided one-sample t-test of the ablation's per-seed values against the pretrained
value (H1: mean(ablation) < pretrained - margin; for lower-is-better metrics the direction
flips). When the pretrained side is itself replicated (>= 2 values) it is Welch's one-sided
t-test (unequal variances: ablations vary far more across seeds than pretrained does). A t-test
is used rather than a rank test because with 3-5 seeds no rank or sign test can reach p < 0.05 at
all (e.g. the exact sign test's smallest p with 3 seeds is 0.125). With one seed there is no
test: a plain comparison, and the message says so.

Paired tests (issue 12): when the records refer to stored test predictions (every record written
since predictions are kept), ``beats_onehot``, ``pretrained_beats_*`` and ``saturates_by``
instead compare the two sides' predictions on the same test examples with a paired bootstrap
(:mod:`pytest_plmtransfer.claims.paired`, :func:`pytest_plmtransfer.stats.paired_test`): seed
replicates enter through a hierarchical bootstrap, the message gives the difference, its
``1 - 2*level`` interval and the one-sided p-value, and the claim passes when ``p < level``
(``saturates_by`` fails only when the gap is significantly larger than the tolerance). Records
without predictions keep the comparisons above, and the message says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pytest_plmtransfer.aggregate import (
    Selected,
    better,
    depth,
    fmt,
    lower_is_better,
    normalize,
    select,
    sorted_seeds,
    subset,
    task_metrics,
)
from pytest_plmtransfer.baselines import (
    BaselineError,
    BaselineMissing,
    BaselineStore,
    format_paper_rows,
)
from pytest_plmtransfer.claims.paired import compare_rows
from pytest_plmtransfer.claims.spec import ONEHOT, ClaimCase
from pytest_plmtransfer.options import benchmarks_command
from pytest_plmtransfer.stats import PairedResult

REPLICATE_HINT = "--plm-seeds 42,0,12345"


@dataclass
class ClaimOutcome:
    """What a claim case found. ``missing``: the inputs were absent, ``message`` says what to run."""

    passed: bool
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    missing: bool = False


def _missing(message: str, **detail: Any) -> ClaimOutcome:
    return ClaimOutcome(False, message, {"missing": True, **detail}, missing=True)


def _what(case: ClaimCase) -> str:
    return f"{case.model}/{case.init} on {case.task}"


def _metrics(case: ClaimCase, frame: pd.DataFrame) -> tuple[str, str]:
    sel, test = task_metrics(frame, case.task)
    return case.params.get("selection_metric") or sel, case.params.get("metric") or test


def _sel_detail(s: Selected) -> dict[str, Any]:
    return {"layer": s.layer, "selection_value": s.selection_value, "test_value": s.test_value,
            "test_std": None if math.isnan(s.test_std) else s.test_std, "n_seeds": s.n}


def evaluate(case: ClaimCase, layer_results: pd.DataFrame,
             baselines: BaselineStore | None = None) -> ClaimOutcome:
    """Evaluate ``case`` on ``layer_results`` (a layer frame, e.g. ``load_ledger(path)``)."""
    return _evaluate(case, normalize(layer_results), baselines)


def _evaluate(case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
    handler = _HANDLERS[case.kind]
    try:
        outcome = handler(case, frame, baselines)
    except BaselineError as exc:  # unreadable baseline files: a failure that says why
        return ClaimOutcome(False, str(exc), {"error": str(exc)})
    outcome.detail.setdefault("claim", case.name)
    outcome.detail.setdefault("kind", case.kind)
    if case.finding:
        outcome.detail.setdefault("finding", case.finding)
    return outcome


# --------------------------------------------------------------------------------------------


def _own(case: ClaimCase, frame: pd.DataFrame) -> pd.DataFrame | ClaimOutcome:
    mine = subset(frame, case.model, case.task, case.init)
    if mine.empty:
        return _missing(
            f"no layer results for {_what(case)}; run: {benchmarks_command(case.model, case.task, case.init)}"
        )
    return mine


def _rows_at(frame: pd.DataFrame, layers: dict[str, int]) -> pd.DataFrame:
    """The records of each seed key at its layer (``{seed_key: layer}``)."""
    keep = pd.Series(False, index=frame.index)
    for key, layer in layers.items():
        keep |= (frame["seed_key"] == key) & (frame["layer"] == layer)
    return frame[keep]


def _paired_txt(paired: PairedResult | str) -> str:
    if isinstance(paired, str):
        return f" [no paired test: {paired}; plain comparison]"
    return f"; {paired.describe()}"


def _beats_onehot(case: ClaimCase, frame: pd.DataFrame, _b: BaselineStore | None) -> ClaimOutcome:
    mine = _own(case, frame)
    if isinstance(mine, ClaimOutcome):
        return mine
    sel_m, test_m = _metrics(case, mine)
    one = subset(frame, ONEHOT, case.task)
    if one.empty:
        return _missing(
            f"no one-hot result for task {case.task}: add onehot to the selection "
            f"({benchmarks_command(case.model + ',' + ONEHOT, case.task, case.init)}) "
            "and do not deselect it with -k"
        )
    s_m = select(mine, sel_m, test_m)
    s_o = select(one, sel_m, test_m)
    if s_m is None or s_o is None or math.isnan(s_m.test_value) or math.isnan(s_o.test_value):
        return _missing(f"{_what(case)}: {sel_m}/{test_m} missing from the records of the model or of one-hot",
                        selection_metric=sel_m, test_metric=test_m)
    margin = float(case.params.get("margin", 0.0))
    level = float(case.params.get("level", 0.05))
    low = lower_is_better(test_m)
    threshold = s_o.test_value - margin if low else s_o.test_value + margin
    diff = s_m.test_value - s_o.test_value
    paired = compare_rows(
        _rows_at(mine, {k: s_m.layer for k in mine["seed_key"].unique()}),
        _rows_at(one, {k: s_o.layer for k in one["seed_key"].unique()}),
        test_m, margin=margin, level=level, labels=(case.model, ONEHOT),
    )
    significance = ""
    if isinstance(paired, PairedResult):
        passed = paired.significant
        significance = f" (significant: p < {level:g})" if passed else f" (not significant: p >= {level:g})"
    else:
        passed = better(s_m.test_value, threshold, test_m)
    verdict = "beats" if passed else "does not beat"
    seeds = f" (mean of {s_m.n} seeds)" if s_m.n > 1 else ""
    margin_txt = f" by more than the margin {margin:g}" if margin else ""
    msg = (
        f"{_what(case)}: layer {s_m.layer} (chosen on {sel_m}={fmt(s_m.selection_value)}) has "
        f"{test_m} {fmt(s_m.test_value)}{seeds} vs one-hot {fmt(s_o.test_value)}: "
        + (f"{paired.describe()}; " if isinstance(paired, PairedResult) else f"difference {diff:+.3f}; ")
        + f"{verdict} one-hot{margin_txt}{significance}"
        + ("" if isinstance(paired, PairedResult) else _paired_txt(paired))
    )
    return ClaimOutcome(passed, msg, {
        "selection_metric": sel_m, "test_metric": test_m, "margin": margin, "level": level,
        "model": _sel_detail(s_m), "onehot": _sel_detail(s_o), "difference": diff,
        "paired": paired.to_dict() if isinstance(paired, PairedResult) else None,
        "paired_unavailable": paired if isinstance(paired, str) else None,
    })


def _saturates_by(case: ClaimCase, frame: pd.DataFrame, _b: BaselineStore | None) -> ClaimOutcome:
    mine = _own(case, frame)
    if isinstance(mine, ClaimOutcome):
        return mine
    sel_m, test_m = _metrics(case, mine)
    last = depth(mine)
    if "layer" in case.params:
        k = int(case.params["layer"])
        k_txt = f"layer {k}"
    else:
        frac = float(case.params["fraction"])
        k = int(math.floor(frac * last + 1e-9))
        k_txt = f"layer {k} (= floor({frac:g} x last layer {last}))"
    tol = float(case.params.get("tolerance", 0.02))
    layers = sorted(int(x) for x in mine["layer"].unique())
    early_layers = [x for x in layers if x <= k]
    if not early_layers:
        return _missing(
            f"{_what(case)}: no results for layers 0..{k}; run all layers "
            f"({benchmarks_command(case.model, case.task, case.init)} without --plm-layers)"
        )
    best = select(mine, sel_m, test_m)
    early = select(mine, sel_m, test_m, early_layers)
    if best is None or early is None or math.isnan(best.test_value) or math.isnan(early.test_value):
        return _missing(f"{_what(case)}: {sel_m}/{test_m} missing from the records")
    low = lower_is_better(test_m)
    gap = (early.test_value - best.test_value) if low else (best.test_value - early.test_value)
    level = float(case.params.get("level", 0.05))
    seeds = {key: best.layer for key in mine["seed_key"].unique()}
    # H1 of the paired test: the best layer beats the early one by more than the tolerance.
    paired = compare_rows(
        _rows_at(mine, seeds), _rows_at(mine, {k: early.layer for k in seeds}), test_m,
        margin=tol, level=level, labels=(f"layer {best.layer}", f"layer {early.layer}"),
    )
    if isinstance(paired, PairedResult):
        passed = not paired.significant
        verdict = (
            f"saturates (gap not significantly above the tolerance, p >= {level:g})" if passed
            else f"does not saturate (gap significantly above the tolerance, p < {level:g})"
        )
        stat_txt = "; best minus early " + paired.describe()
    else:
        passed = gap <= tol + 1e-12
        verdict = "saturates" if passed else "does not saturate"
        stat_txt = _paired_txt(paired)
    notes = ""
    if layers[-1] < last:
        notes = f" (only layers up to {layers[-1]} of {last} were run)"
    msg = (
        f"{_what(case)}: best layer {best.layer} chosen on {sel_m} has {test_m} {fmt(best.test_value)}; "
        f"among layers <= {k_txt} the chosen layer {early.layer} has {fmt(early.test_value)}: "
        f"gap {gap:+.3f} vs tolerance {tol:g}{stat_txt}; {verdict} by layer {k}{notes}"
    )
    curve_best = mine.groupby("layer")[test_m].mean()
    oracle = float(curve_best.min() if low else curve_best.max())
    return ClaimOutcome(passed, msg, {
        "selection_metric": sel_m, "test_metric": test_m, "k": k, "last_layer": last,
        "tolerance": tol, "gap": gap, "best": _sel_detail(best), "early": _sel_detail(early),
        "layers_run": layers, "oracle_best_test": oracle, "level": level,
        "paired": paired.to_dict() if isinstance(paired, PairedResult) else None,
        "paired_unavailable": paired if isinstance(paired, str) else None,
    })


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
        if not row.empty and test_m in row.columns:
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


def _pretrained_beats(case: ClaimCase, frame: pd.DataFrame, _b: BaselineStore | None) -> ClaimOutcome:
    other_init = "random" if case.kind == "pretrained_beats_random" else "stat"
    pre = subset(frame, case.model, case.task, "pretrained")
    oth = subset(frame, case.model, case.task, other_init)
    if pre.empty or oth.empty:
        which = "pretrained" if pre.empty else other_init
        return _missing(
            f"no {which} results for {case.model} on {case.task}; run: "
            f"{benchmarks_command(case.model, case.task, 'pretrained,' + other_init, REPLICATE_HINT)}"
        )
    sel_m, test_m = _metrics(case, pre)
    at = case.params.get("at_layer", "selected")
    level = float(case.params.get("level", 0.05))
    margin = float(case.params.get("margin", 0.0))
    low = lower_is_better(test_m)
    pv = _values_at(pre, sel_m, test_m, at)
    ov = _values_at(oth, sel_m, test_m, at)
    if not pv or not ov:
        return _missing(f"{case.model} on {case.task}: {test_m} at layer {at!r} missing for "
                        f"{'pretrained' if not pv else other_init}")
    p_vals = [v for _, v in pv.values()]
    o_vals = [v for _, v in ov.values()]
    p_mean, o_mean = float(np.mean(p_vals)), float(np.mean(o_vals))
    o_std = float(np.std(o_vals, ddof=1)) if len(o_vals) > 1 else math.nan
    at_txt = {"selected": "the validation-chosen layer", "last": "the last layer"}.get(at, f"layer {at}")
    pre_txt = f"pretrained {fmt(p_mean)} (L{', L'.join(str(l) for l, _ in pv.values())})"
    oth_txt = (
        f"{other_init} {fmt(o_mean)}" + (f"±{fmt(o_std)}" if len(o_vals) > 1 else "")
        + f" over {len(o_vals)} seed(s) [{', '.join(ov)}] (L{', L'.join(str(l) for l, _ in ov.values())})"
    )
    detail: dict[str, Any] = {
        "test_metric": test_m, "selection_metric": sel_m, "at_layer": at, "level": level,
        "margin": margin, "pretrained": {k: {"layer": l, "value": v} for k, (l, v) in pv.items()},
        other_init: {k: {"layer": l, "value": v} for k, (l, v) in ov.items()},
        "pretrained_mean": p_mean, f"{other_init}_mean": o_mean,
    }
    margin_txt = f" - margin {margin:g}" if margin else ""
    paired = compare_rows(
        _rows_at(pre, {k: l for k, (l, _) in pv.items()}),
        _rows_at(oth, {k: l for k, (l, _) in ov.items()}),
        test_m, margin=margin, level=level, labels=("pretrained", other_init),
    )
    if isinstance(paired, PairedResult):
        passed = paired.significant
        detail.update(test="paired bootstrap", p_value=paired.p_value, paired=paired.to_dict())
        msg = (
            f"{case.model} on {case.task}, {test_m} at {at_txt}: {pre_txt} vs {oth_txt}; "
            f"pretrained minus {other_init} {paired.describe()} "
            f"{'<' if passed else '>='} {level:g} -> "
            f"{'pretrained significantly better' if passed else 'not significant'}"
            f"{f' (margin {margin:g})' if margin else ''}"
        )
        return ClaimOutcome(passed, msg, detail)
    detail["paired_unavailable"] = paired
    if len(o_vals) < 2:
        passed = better(p_mean - (-margin if low else margin), o_mean, test_m)
        detail.update(test="none (single seed)", p_value=None)
        msg = (
            f"{case.model} on {case.task}, {test_m} at {at_txt}: {pre_txt} vs {oth_txt}; "
            f"{'pretrained better' if passed else 'pretrained NOT better'}"
            f"{f' by more than the margin {margin:g}' if margin else ''} "
            f"(single seed: plain comparison, no significance test; add {REPLICATE_HINT} for one)"
            f"{_paired_txt(paired)}"
        )
        return ClaimOutcome(passed, msg, detail)
    name, stat, dof, p = _one_sided_p(p_vals, o_vals, margin, low)
    passed = p < level
    direction = ">" if not low else "<"
    h1 = (f"mean({other_init}) {'<' if not low else '>'} pretrained{margin_txt}" if len(p_vals) < 2
          else f"mean(pretrained){margin_txt} {direction} mean({other_init})")
    detail.update(test=name, statistic=stat, df=dof, p_value=p, h1=h1)
    msg = (
        f"{case.model} on {case.task}, {test_m} at {at_txt}: {pre_txt} vs {oth_txt}; "
        f"{name}, H1: {h1}: t={stat:.2f}, df={dof:.1f}, p={p:.3g} "
        f"{'<' if passed else '>='} {level:g} -> "
        f"{'pretrained significantly better' if passed else 'not significant'}{_paired_txt(paired)}"
    )
    return ClaimOutcome(passed, msg, detail)


def _no_regression(case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
    mine = _own(case, frame)
    if isinstance(mine, ClaimOutcome):
        return mine
    store = baselines or BaselineStore()
    try:
        cmp = store.compare(mine, case.params.get("metrics"), level=float(case.params.get("level", 0.05)))
    except BaselineMissing as exc:
        return _missing(str(exc), command=exc.command, path=str(exc.path))
    table = cmp.format(only_failures=not cmp.ok)
    return ClaimOutcome(cmp.ok, table, {
        "baseline": str(cmp.path), "notes": cmp.notes, "n_values": len(cmp.rows),
        "n_failed": len(cmp.failures), "failures": cmp.to_frame().query("status != 'OK'").to_dict("records")
        if cmp.rows else [],
    })


def _matches_paper(case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
    mine = _own(case, frame)
    if isinstance(mine, ClaimOutcome):
        return mine
    store = baselines or BaselineStore()
    ref = store.paper()
    if ref is None:
        return _missing(f"no paper reference file at {store.paper_path}")
    if ref.value(case.task, case.model, case.init) is None:
        return _missing(f"{store.paper_path} has no number for {_what(case)}; nothing to compare")
    rows = ref.compare(mine, case.params.get("tolerance"))
    row = rows[0]
    if row.current is None:
        return _missing(
            f"{_what(case)}: no {ref.metric} at the last layer ({row.layer}); run all layers: "
            f"{benchmarks_command(case.model, case.task, case.init)}"
        )
    passed = row.ok
    scope = "" if row.gating else (
        f" (informational only: our {case.init} init differs from the authors', see {store.paper_path})"
    )
    msg = (
        f"{_what(case)}: last layer {row.layer} {ref.metric} {fmt(row.current)} (seed {row.seed_used}) vs "
        f"the authors' {fmt(row.reference)}: difference {row.diff:+.3f}, tolerance ±{row.tolerance:g} -> "
        f"{row.status}{scope}\n" + format_paper_rows(rows, ref.metric)
    )
    return ClaimOutcome(passed, msg, {
        "reference": row.reference, "current": row.current, "difference": row.diff,
        "tolerance": row.tolerance, "layer": row.layer, "gating": row.gating, "source": ref.source,
    })


_HANDLERS = {
    "beats_onehot": _beats_onehot,
    "saturates_by": _saturates_by,
    "pretrained_beats_random": _pretrained_beats,
    "pretrained_beats_stat": _pretrained_beats,
    "no_regression": _no_regression,
    "matches_paper": _matches_paper,
}


# --------------------------------------------------------------------------------------------


def resolve(case: ClaimCase, outcome: ClaimOutcome, *, strict_missing: bool = False) -> tuple[str, str]:
    """The ledger outcome and message for ``outcome`` given the case's expected-failure status.

    passed -> "passed"; failed -> "failed"; expected failure that fails -> "xfailed";
    expected failure that passes -> "failed" with ``XPASS(strict)`` when strict, else "xpassed";
    missing inputs -> "skipped" (or "failed" with ``strict_missing``, i.e. ``--plm-strict``).
    """
    if outcome.missing:
        return ("failed" if strict_missing else "skipped"), outcome.message
    if not case.expected_to_fail:
        return ("passed" if outcome.passed else "failed"), outcome.message
    if not outcome.passed:
        return "xfailed", f"XFAIL ({case.xfail_reason}): {outcome.message}"
    if case.strict:
        return "failed", (
            f"XPASS(strict): expected to fail ({case.xfail_reason}) but passed; the finding changed, "
            f"update the claim's expected_failures: {outcome.message}"
        )
    return "xpassed", f"XPASS ({case.xfail_reason}): {outcome.message}"


def claim_record(case: ClaimCase, outcome: ClaimOutcome, *, strict_missing: bool = False) -> dict[str, Any]:
    """The claim-specific fields of a ledger claim record (the caller adds run_id, provenance…)."""
    final, message = resolve(case, outcome, strict_missing=strict_missing)
    return {
        "kind": "claim",
        "claim": case.name,
        "claim_kind": case.kind,
        "claim_id": case.id,
        "model": case.model,
        "task": case.task,
        "init": case.init,
        "outcome": final,
        "passed": outcome.passed,
        "expected_failure": case.xfail_reason,
        "strict": case.strict,
        "message": message,
        "detail": outcome.detail,
    }
