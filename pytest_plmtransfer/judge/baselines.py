"""Stored baselines: reviewable JSON per (task, model, init); where the authors' table is read.

Layout under the baseline root (``baselines/`` by default)::

    baselines/claims.json                           the claims (see claims/spec.py)
    baselines/<task>/<model>--<init>.json           one stored baseline per (task, model, init), plmtransfer protocol
    baselines/<task>/<model>--<init>--<protocol>.json  the same under another protocol (--plm-protocol)
    baselines/paper/reference.json                  the authors' results table (see paper.py)

A baseline file (``"format": "plmtransfer-baseline/1"``)::

    {
      "format": "plmtransfer-baseline/1",
      "task": "gb1_sampled", "model": "antiberty", "init": "stat", "protocol": "plmtransfer",
      "task_kind": "regression", "selection_metric": "val_spearman", "test_metric": "test_spearman",
      "num_layers": 8, "seeds": [0, 42],
      "provenance": {"git_commit": ..., "plugin_version": ..., "run_id": ..., "run_timestamp": ...,
                     "written": ..., "data_sha256": ..., "data_archive": ..., "weights": "sha256:<12 hex>",
                     "device": ..., "dtype": ..., "versions": {...}},
      "tolerances": {
        "defaults":  {"*_spearman": {"atol": 0.02, "rtol": 0.0}, ...},   # rewritten on update
        "overrides": {"test_ndcg": {"atol": 0.05}}                        # kept on update (reviewers edit)
      },
      "layers": {
        "0": {"mean": {"test_spearman": 0.61, ...},
              "per_seed": {"0": {"test_spearman": 0.60, ...}, "42": {...}}},
        ...
      }
    }

A value passes when ``|current - baseline| <= atol + rtol * |baseline|`` (numpy ``isclose``
semantics, as in pytest-regressions). Records without a seed (pretrained, one-hot) are keyed
"none". A baseline is only ever compared with results of its own protocol.

Noise (issue 12): baselines store no predictions, so no paired test against them; each layer
stores the test metric's bootstrap standard error per seed instead (``"intervals": {"<seed>":
{"test_spearman": {"se", "low", "high", "n_resamples"}}}``). With a ``level`` and a standard error
on both sides, a value fails only when outside the tolerance *and* outside the noise,
``|diff| > z(1 - level/2) * sqrt(se_current^2 + se_baseline^2)`` (unpaired two-sided: conservative,
as both runs score the same test examples). Metrics or baselines without intervals keep the
tolerance alone, and the comparison notes it.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import pandas as pd

from pytest_plmtransfer.infra.errors import BaselineError, PlmTransferError
from pytest_plmtransfer.infra.table import text_table
from pytest_plmtransfer.infra.tempfiles import atomic_write_json
from pytest_plmtransfer.judge.paper import PaperReference
from pytest_plmtransfer.measure.protocol import PLMTRANSFER
from pytest_plmtransfer.options import benchmarks_command
from pytest_plmtransfer.results.aggregate import (
    NO_SEED,
    depth,
    fmt,
    measured,
    metric_columns,
    normalize,
    seed_value,
    sorted_seeds,
)

FORMAT = "plmtransfer-baseline/1"

#: default tolerances, matched in order by glob on the metric key; the first match wins
DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    **{f"*_{m}": {"atol": 0.02, "rtol": 0.0} for m in ("spearman", "pearson", "ndcg", "accuracy", "q3", "auc")},
    **{f"*_{m}": {"atol": 0.0, "rtol": 0.10} for m in ("mse", "loss")},
    "*": {"atol": 0.02, "rtol": 0.05},
}
#: copied into a stored baseline: what made the numbers, never where (no host, no paths: the file
#: is committed and read on other machines)
_PROVENANCE_FIELDS = ("git_commit", "plugin_version", "device", "dtype", "embedding_key")


class BaselineMissing(BaselineError):
    """No stored baseline for a (task, model, init); the message gives the command to create it."""

    def __init__(
        self, task: str, model: str, init: str, path: Path, seeds: list[Any] | None = None, protocol: str = PLMTRANSFER
    ) -> None:
        self.task, self.model, self.init, self.path = task, model, init, path
        self.command = update_command(model, task, init, seeds, protocol)
        under = "" if protocol == PLMTRANSFER else f" under the {protocol} protocol"
        super().__init__(
            f"no stored baseline for model {model!r}, task {task!r}, init {init!r}{under}; create it with: "
            f"{self.command}   (then review and commit {path})"
        )


def update_command(
    model: str, task: str, init: str, seeds: list[Any] | None = None, protocol: str = PLMTRANSFER
) -> str:
    real = [str(s) for s in (seeds or []) if s is not None]
    seeds_flag = "--plm-seeds " + ",".join(real) if len(real) > 1 else ""
    protocol_flag = "" if protocol == PLMTRANSFER else f"--plm-protocol {protocol}"
    return benchmarks_command(model, task, init, seeds_flag, protocol_flag, "--plm-update-baselines")


def safe_name(name: str) -> str:
    """A file-name-safe form of a model/task/init name (``hf:org/model`` -> ``hf_org__model``)."""
    return re.sub(r"[^A-Za-z0-9._@=+-]", "_", name.replace("/", "__"))


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


@dataclass(frozen=True)
class Tolerance:
    atol: float = 0.0
    rtol: float = 0.0

    def allowed(self, baseline: float) -> float:
        return self.atol + self.rtol * abs(baseline)

    def describe(self) -> str:
        parts = [f"±{self.atol:g}"] if self.atol else []
        if self.rtol:
            parts.append(f"±{self.rtol:.0%}")
        return " + ".join(parts) or "exact"


def tolerance_for(
    metric: str, overrides: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None
) -> Tolerance:
    """Tolerance for ``metric``: an exact override, a glob override, then the defaults."""
    for table in (overrides or {}, defaults or {}, DEFAULT_TOLERANCES):
        if metric in table:
            return _tol(table[metric])
        for pattern, tol in table.items():
            if fnmatch.fnmatchcase(metric, pattern):
                return _tol(tol)
    return Tolerance()


def _require_finite(value: Any, what: str) -> None:
    """A tolerance of Infinity (JSON allows it) would make a comparison that can never fail."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        raise BaselineError(f"{what} holds a non-finite number (NaN or Infinity); use finite numbers") from None


def _tol(raw: Any) -> Tolerance:
    if isinstance(raw, (int, float)):
        return Tolerance(atol=float(raw))
    return Tolerance(atol=float(raw.get("atol", 0.0)), rtol=float(raw.get("rtol", 0.0)))


@dataclass
class DiffRow:
    layer: int
    metric: str
    baseline: float | None
    current: float | None
    tolerance: Tolerance
    status: str  # "OK", "FAIL", "MISSING" (metric absent in the current run), "NEW" (no baseline)
    #: z * sqrt(se_current^2 + se_baseline^2) when both sides have a bootstrap SE, else None
    noise: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def diff(self) -> float | None:
        return None if self.baseline is None or self.current is None else self.current - self.baseline


@dataclass
class Comparison:
    """Per-layer differences between a run and the stored baseline of one (task, model, init)."""

    task: str
    model: str
    init: str
    path: Path
    rows: list[DiffRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: "the weights differ from the baseline's: ..." when the run's weights identity is not the stored one
    weights_changed: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[DiffRow]:
        return [r for r in self.rows if not r.ok]

    def summary(self) -> str:
        bad, what = len(self.failures), f"{self.model}/{self.init} on {self.task}"
        if bad == 0:
            return f"{what}: all {len(self.rows)} values within tolerance of {self.path}"
        line = f"{what}: {bad} of {len(self.rows)} values outside tolerance of {self.path}"
        return line + (f"; {self.weights_changed}" if self.weights_changed else "")

    def to_frame(self) -> pd.DataFrame:
        rows = [{**vars(r), "diff": r.diff, "tolerance": r.tolerance.describe()} for r in self.rows]
        columns = ["layer", "metric", "baseline", "current", "diff", "tolerance", "noise", "status"]
        return pd.DataFrame(rows, columns=columns if rows else None)

    def format(self, only_failures: bool = False) -> str:
        """A pytest-regressions style table: layer, metric, baseline, current, diff, tolerance, status."""
        rows = self.failures if only_failures else self.rows
        lines = [self.summary(), *(f"note: {n}" for n in self.notes)]
        if not rows:
            return "\n".join(lines)
        header = ("layer", "metric", "baseline", "current", "diff", "tolerance", "status")
        body = [
            (
                str(r.layer),
                r.metric,
                fmt(r.baseline, 4),
                fmt(r.current, 4),
                "n/a" if r.diff is None else f"{r.diff:+.4f}",
                r.tolerance.describe() + ("" if r.noise is None else f" & noise ±{r.noise:.4f}"),
                r.status,
            )
            for r in rows
        ]
        lines += text_table(header, body, "rlrrrrr")  # metric names left, numbers right
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


# ------------------------------------------------------------------------------ two ledgers (``plmtransfer compare``)

#: what a row of a ledger comparison is keyed by (rows of two protocols are never compared)
LEDGER_KEY = ["model", "task", "init", "protocol", "layer"]


def ledger_values(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Seed-averaged ``metric`` per (model, task, init, protocol, layer), with the seeds that went in and the
    mean bootstrap standard error (NaN unless every seed has one). ``metric="auto"``: each record's
    own test metric."""
    data = normalize(frame)
    if data.empty:
        return pd.DataFrame(columns=[*LEDGER_KEY, "value", "seeds", "metric"])
    auto = data["test_metric"].where(data["test_metric"].notna(), "test_spearman").astype(str)
    data["metric"] = auto if metric == "auto" else metric
    data["value"] = float("nan")
    for name in data["metric"].unique():
        if measured(data, name):
            mask = data["metric"] == name
            data.loc[mask, "value"] = pd.to_numeric(data.loc[mask, name], errors="coerce")
    data["se"] = [
        iv.get(m, {}).get("se") if isinstance(iv, dict) and isinstance(iv.get(m), dict) else None
        for iv, m in zip(data["intervals"], data["metric"])
    ]
    data["se"] = pd.to_numeric(data["se"], errors="coerce")
    out = data.groupby(LEDGER_KEY, sort=True).agg(
        value=("value", "mean"),
        metric=("metric", "first"),
        seeds=("seed_key", lambda s: ",".join(sorted_seeds(s))),
        se=("se", lambda s: s.mean() if s.notna().all() else float("nan")),
    )
    return out.reset_index()


@dataclass
class LedgerComparison:
    """Ledger B against ledger A, row by (model, task, init, layer): ``diff = B - A``, a row flagged
    above ``fail_above`` (with ``outside_interval``: only when also outside the bootstrap noise)."""

    both: pd.DataFrame
    only_a: pd.DataFrame
    only_b: pd.DataFrame
    metric: str
    fail_above: float | None
    outside_interval: bool

    @classmethod
    def of(
        cls,
        a: pd.DataFrame,
        b: pd.DataFrame,
        metric: str = "auto",
        fail_above: float | None = None,
        outside_interval: bool = False,
        level: float = 0.05,
    ) -> LedgerComparison:
        from statistics import NormalDist

        if outside_interval and fail_above is None:
            raise PlmTransferError("--outside-interval needs --fail-above (the fixed threshold it adds to)")
        merged = ledger_values(a, metric).merge(
            ledger_values(b, metric), on=LEDGER_KEY, how="outer", suffixes=("_a", "_b"), indicator=True
        )
        both = merged[merged["_merge"] == "both"].copy()
        both["diff"] = both["value_b"] - both["value_a"]
        # the bootstrap noise of the difference, z * sqrt(se_A^2 + se_B^2) (unpaired, so
        # conservative); with outside_interval a row is flagged only when |diff| exceeds it as well
        z = NormalDist().inv_cdf(1.0 - level / 2.0)
        both["noise"] = z * (both["se_a"] ** 2 + both["se_b"] ** 2) ** 0.5
        both["flagged"] = both["diff"].abs() > fail_above if fail_above is not None else False
        if outside_interval:
            both["flagged"] &= both["diff"].abs() > both["noise"].fillna(0.0)
        side = merged["_merge"]
        return cls(
            both, merged[side == "left_only"], merged[side == "right_only"], metric, fail_above, outside_interval
        )

    @property
    def compared(self) -> pd.DataFrame:
        """The common rows where both ledgers have the metric."""
        return self.both.dropna(subset=["diff"])

    @property
    def exit_status(self) -> int:
        """1 when a row is flagged, or, with a threshold, nothing could be compared; else 0."""
        return int(self.fail_above is not None and (self.compared.empty or bool(self.compared["flagged"].any())))

    def _table(self, only_diffs: bool) -> list[str]:
        shown = self.both[self.both["flagged"]] if only_diffs else self.both
        if shown.empty:
            return []
        thr = self.fail_above
        body = []
        for row in shown.itertuples(index=False):
            nan = pd.isna(row.value_a) or pd.isna(row.value_b)
            status = "n/a" if nan else ("FAIL" if row.flagged else "OK")
            note = "" if row.seeds_a == row.seeds_b else f"seeds A={row.seeds_a} B={row.seeds_b}"
            if self.outside_interval and not nan:
                within = pd.isna(row.noise) or abs(row.diff) <= row.noise
                extra = "no interval" if pd.isna(row.noise) else f"noise ±{row.noise:.4f}"
                if thr is not None and abs(row.diff) > thr and within and not pd.isna(row.noise):
                    extra += ": within noise"
                note = f"{note}; {extra}" if note else extra
            body.append(
                [
                    row.model,
                    row.task,
                    row.init if row.protocol == PLMTRANSFER else f"{row.init} ({row.protocol})",
                    str(row.layer),
                    str(row.metric_a),
                    "n/a" if pd.isna(row.value_a) else f"{row.value_a:.4f}",
                    "n/a" if pd.isna(row.value_b) else f"{row.value_b:.4f}",
                    "n/a" if nan else f"{row.diff:+.4f}",
                    status,
                    note,
                ]
            )
        header = ["model", "task", "init", "layer", "metric", "A", "B", "diff", "status", "note"]
        return text_table(header, body, "lllrlrrrll")

    @staticmethod
    def _only(rows: pd.DataFrame, label: str, path: Path | str) -> list[str]:
        if rows.empty:
            return []
        lines = [f"only in {label} ({path}), not compared: {len(rows)} row(s)"]
        for (model, task, init), sub in rows.groupby(["model", "task", "init"], sort=True):
            lines.append(f"  {model}/{init} on {task}: layers {_ranges(sorted(int(x) for x in sub['layer']))}")
        return lines

    def format(self, path_a: Path | str, path_b: Path | str, only_diffs: bool = False) -> str:
        """The report ``plmtransfer compare`` prints: what is compared, the table, the rows only
        one ledger has, and a summary line (with a threshold: OK or FAIL)."""
        metric_txt = "each task's test metric" if self.metric == "auto" else self.metric
        lines = [
            f"comparing {metric_txt}, averaged over seeds, per (model, task, init, layer)",
            f"  A = {path_a}",
            f"  B = {path_b}   (diff = B - A)",
        ]
        lines += self._table(only_diffs)
        lines += self._only(self.only_a, "A", path_a) + self._only(self.only_b, "B", path_b)
        valid = self.compared
        if len(self.both) > len(valid):
            lines.append(
                f"{len(self.both) - len(valid)} common row(s) lack the metric in one ledger (n/a), not compared"
            )
        if valid.empty:
            lines.append("nothing to compare: the ledgers share no (model, task, init, layer) with the metric")
            return "\n".join(lines) + "\n"
        worst = valid.loc[valid["diff"].abs().idxmax()]
        summary = (
            f"{len(valid)} row(s) compared; max |diff| {abs(worst['diff']):.4f} "
            f"({worst['model']}/{worst['init']} on {worst['task']}, layer {worst['layer']})"
        )
        if self.fail_above is not None:
            n_bad = int(valid["flagged"].sum())
            what = f"above {self.fail_above:g}" + (" and outside the noise" if self.outside_interval else "")
            summary += f"; {n_bad} {what}: FAIL" if n_bad else f"; none {what}: OK"
        lines.append(summary)
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the store


class BaselineStore:
    """Reviewable per-(task, model, init) baselines under ``root``."""

    def __init__(self, root: Path | str = Path("baselines")) -> None:
        self.root = Path(root)
        #: files :meth:`update_from` left alone because their values did not change
        self.unchanged: list[Path] = []

    # paths and files ------------------------------------------------------------------------

    def path_for(self, task: str, model: str, init: str, protocol: str = PLMTRANSFER) -> Path:
        """Where the baseline of (task, model, init) under ``protocol`` is written (``hf:<local
        dir>`` models are keyed by a stable name, see :func:`stable_model_key`)."""
        suffix = "" if protocol == PLMTRANSFER else f"--{safe_name(protocol)}"
        return self.root / safe_name(task) / f"{safe_name(stable_model_key(model))}--{safe_name(init)}{suffix}.json"

    def read_path(self, task: str, model: str, init: str, protocol: str = PLMTRANSFER) -> Path:
        """Where the baseline of (task, model, init, protocol) is read from (a layered store may fall back)."""
        return self.path_for(task, model, init, protocol)

    @property
    def paper_path(self) -> Path:
        return self.root / "paper" / "reference.json"

    @property
    def claims_path(self) -> Path:
        return self.root / "claims.json"

    def _read(self, path: Path, protocol: str | None = None) -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BaselineError(
                f"{path}: not valid JSON ({exc}); fix it or re-create it with --plm-update-baselines"
            ) from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("layers"), dict):
            raise BaselineError(
                f"{path}: not a plmtransfer baseline (expected 'format': {FORMAT!r} and a 'layers' object)"
            )
        _require_finite(doc.get("tolerances"), f"{path}: 'tolerances'")
        if protocol is not None and doc.get("protocol") != protocol:
            raise BaselineError(
                f"{path}: a baseline of the {doc.get('protocol')!r} protocol, compared with results of "
                f"the {protocol!r} protocol; protocols are never compared with each other"
            )
        return doc

    def entries(self) -> list[tuple[str, str, str, str]]:
        """(task, model, init, protocol) of every stored baseline."""
        out = []
        for path in sorted(self.root.glob("*/*--*.json")):
            if path.parent.name == "paper":
                continue
            try:
                doc = self._read(path)
            except BaselineError:
                continue
            out.append((doc["task"], doc["model"], doc["init"], doc.get("protocol", PLMTRANSFER)))
        return out

    def paper(self) -> PaperReference | None:
        """The authors' results table, or None when the file is absent."""
        path = self.paper_path
        return PaperReference.load(path) if path.is_file() else None

    # writing --------------------------------------------------------------------------------

    def update_from(self, frame: pd.DataFrame) -> list[Path]:
        """Rewrite the baseline of every (task, model, init) in ``frame`` from its newest records
        (per-layer seed means and per-seed values), keeping reviewer-set tolerance ``overrides``;
        returns the paths written. A file whose values would not change is left as it is,
        provenance included; records of a subsample (``--plm-limit``) are never stored."""
        data = normalize(frame[frame["limit"].isna()])
        self.unchanged = []
        if data.empty:
            return []
        metrics = metric_columns(data)
        written: list[Path] = []
        for key, sub in data.groupby(["task", "model", "init", "protocol"], sort=True):
            path = self.path_for(*key)
            overrides: dict[str, Any] = {}
            if path.is_file():
                with suppress(BaselineError):
                    overrides = self._read(path).get("tolerances", {}).get("overrides", {}) or {}
            doc = _document(key, sub, metrics, overrides)
            if path.is_file() and _same_values(path, doc):
                self.unchanged.append(path)
                continue  # provenance-only changes would churn reviewable files: keep the old one
            atomic_write_json(path, doc)
            written.append(path)
        return written

    # comparing ------------------------------------------------------------------------------

    def compare(
        self, frame: pd.DataFrame, metrics: Iterable[str] | None = None, level: float | None = None
    ) -> Comparison:
        """Compare the results of ONE (task, model, init) with its stored baseline (else
        :class:`BaselineMissing`). ``metrics``: globs of the metric keys compared (default: all
        stored); ``level``: a failing value must also be outside the bootstrap noise (module docstring)."""
        data = normalize(frame)
        if data.empty:
            raise BaselineError("no layer results to compare with a baseline")
        groups = data[["task", "model", "init", "protocol"]].drop_duplicates()
        if len(groups) != 1:
            combos = ", ".join(f"{t}/{m}/{i}/{p}" for t, m, i, p in groups.itertuples(index=False))
            raise BaselineError(f"compare() takes the results of one (task, model, init, protocol); got {combos}")
        task, model, init, protocol = groups.iloc[0]
        path = self.read_path(task, model, init, protocol)
        if not path.is_file():
            seeds = [seed_value(k) for k in sorted_seeds(data["seed_key"])]
            raise BaselineMissing(task, model, init, path, seeds, protocol)
        doc = self._read(path, protocol)
        tol_doc = doc.get("tolerances", {}) or {}
        overrides, defaults = tol_doc.get("overrides", {}), tol_doc.get("defaults", {})
        patterns = list(metrics) if metrics is not None else None
        cmp = Comparison(task, model, init, path)
        cmp.weights_changed = _weights_change(data, doc)

        run_seeds = set(data["seed_key"])
        base_seeds = {NO_SEED if s is None else str(s) for s in doc.get("seeds", [])}
        # Seeds in both compare value for value (a baseline of seed 42 still checks seed 42 of a
        # 3-seed run); only with no seed in common are the seed means compared.
        shared = run_seeds & base_seeds
        if shared:
            data = data[data["seed_key"].isin(shared)]
        if run_seeds != base_seeds:
            if not shared:
                how = "comparing the run's seed mean with the baseline's seed mean"
            elif shared == run_seeds:
                how = "comparing against the baseline's values for the run's seeds"
            else:
                how = f"comparing the shared seed(s) {_seeds(shared)} value for value"
            cmp.notes.append(f"the run has seeds {_seeds(run_seeds)}, the baseline {_seeds(base_seeds)}: {how}")
        run_seeds = shared or run_seeds
        current_layers = sorted(int(x) for x in data["layer"].unique())
        absent = sorted(int(x) for x in doc["layers"] if int(x) not in current_layers)
        if absent:
            cmp.notes.append(f"baseline layers not in this run (not compared): {_ranges(absent)}")

        no_noise: set[str] = set()
        for layer in current_layers:
            cur = data[data["layer"] == layer]
            entry = doc["layers"].get(str(layer))
            if entry is None:
                cmp.rows.append(DiffRow(layer, "*", None, None, Tolerance(), "NEW"))
                continue
            base_vals = (_seed_mean(entry.get("per_seed", {}), shared) if shared else {}) or entry.get("mean", {})
            for metric in sorted(base_vals):
                if patterns is not None and not any(fnmatch.fnmatchcase(metric, p) for p in patterns):
                    continue
                base = _num(base_vals[metric])
                tol = tolerance_for(metric, overrides, defaults)
                if metric not in cur.columns:
                    cmp.rows.append(DiffRow(layer, metric, base, None, tol, "MISSING"))
                    continue
                current = _num(pd.to_numeric(cur[metric], errors="coerce").mean())
                noise = None if level is None else _noise(entry.get("intervals", {}), run_seeds, cur, metric, level)
                if level is not None and noise is None:
                    no_noise.add(metric)
                if base is None or current is None:
                    status = "OK" if base is None and current is None else "FAIL"
                else:  # outside the tolerance fails, unless (with a level) within the bootstrap noise
                    diff = abs(current - base)
                    within = diff <= tol.allowed(base) + 1e-12 or (noise is not None and diff <= noise)
                    status = "OK" if within else "FAIL"
                cmp.rows.append(DiffRow(layer, metric, base, current, tol, status, noise))
        if level is not None and no_noise:
            cmp.notes.append(
                f"no bootstrap interval on both sides for {', '.join(sorted(no_noise))}: "
                "tolerance only (the baseline predates intervals, or the metric has none)"
            )
        if any(r.status == "NEW" for r in cmp.rows):
            cmp.notes.append(
                "layers marked NEW have no stored baseline (did the model's depth change?); "
                f"if intended, run: {update_command(model, task, init, protocol=protocol)}"
            )
        return cmp


def _document(key: tuple[Any, ...], sub: pd.DataFrame, metrics: list[str], overrides: dict[str, Any]) -> dict[str, Any]:
    """The baseline document of one (task, model, init, protocol) ``key`` from its records ``sub``."""
    from pytest_plmtransfer.infra.provenance import utc_now

    task, model, init, protocol = key
    sub = sub.sort_values(["layer", "seed_key"])
    present = [m for m in metrics if sub[m].notna().any()]
    layers: dict[str, Any] = {}
    for layer, lsub in sub.groupby("layer", sort=True):
        per_seed = {
            row.seed_key: {m: _num(getattr(row, m)) for m in present if _num(getattr(row, m)) is not None}
            for row in lsub[["seed_key", *present]].itertuples(index=False)
        }
        layers[str(int(layer))] = {"mean": _mean_of(list(per_seed.values()), present), "per_seed": per_seed}
        if stored := _stored_intervals(lsub):
            layers[str(int(layer))]["intervals"] = stored
    last = sub.sort_values("timestamp").iloc[-1]
    data_info = last.get("data") if isinstance(last.get("data"), dict) else {}
    prov: dict[str, Any] = {
        **{k: _plain(last[k]) for k in _PROVENANCE_FIELDS},
        "run_id": _plain(last.get("run_id")),
        "run_timestamp": _plain(last.get("timestamp")),
        "written": utc_now(),
        "data_sha256": data_info.get("sha256"),
        "data_archive": data_info.get("archive"),
        "data_window": data_info.get("window"),
        "weights": _plain(last.get("weights")),
        "versions": _plain(last.get("versions")),
    }
    first = sub.iloc[0]
    return {
        "format": FORMAT,
        "task": task,
        "model": model,
        "init": init,
        "protocol": protocol,
        "task_kind": _plain(first.get("task_kind")),
        "selection_metric": _plain(first.get("selection_metric")),
        "test_metric": _plain(first.get("test_metric")),
        "num_layers": depth(sub),
        "seeds": [seed_value(k) for k in sorted_seeds(sub["seed_key"])],
        "provenance": prov,
        "tolerances": {"defaults": DEFAULT_TOLERANCES, "overrides": overrides},
        "layers": layers,
    }


def _same_values(path: Path, doc: dict[str, Any]) -> bool:
    """Whether the file at ``path`` holds ``doc``'s values (every part but its provenance)."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    new = json.loads(json.dumps(doc))  # the document as it would read back (tuples -> lists ...)
    return all(_close(old.get(k), new[k]) for k in new if k != "provenance")


#: relative difference below which two stored numbers are "the same value": last-digit noise from
#: another BLAS or summation order (seen: 0.9560224351666189 vs ...186) must not churn a reviewed
#: file, and no baseline tolerance is anywhere near this small
SAME_VALUE_RTOL = 1e-9


def _close(a: Any, b: Any) -> bool:
    """Equal structure and equal values, numbers within :data:`SAME_VALUE_RTOL`."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=SAME_VALUE_RTOL, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def _weights_change(data: pd.DataFrame, doc: dict[str, Any]) -> str | None:
    """Why a failing comparison may be no regression at all: the run measured other weights
    than the baseline (a new model version), or None when they are the same or unknown."""
    from pytest_plmtransfer.infra.identity import weights_label

    if (data["seed_key"] != NO_SEED).any():
        return None  # random/stat weights differ by seed by construction
    stored = (doc.get("provenance") or {}).get("weights")
    base = stored if isinstance(stored, str) else weights_label(stored)
    run = sorted({w for w in data["weights"].dropna() if isinstance(w, str)})
    if base is None or not run or run == [base]:
        return None
    return (
        f"the weights differ from the baseline's (run {', '.join(run)}, baseline {base}): a new model version "
        "is expected to move the numbers; after review, --plm-update-baselines stores the new ones"
    )


def stable_model_key(model: str) -> str:
    """The name a model's baselines are keyed by: ``hf:<local directory>`` by the directory's name
    (``hf:../m`` and ``hf:/abs/m`` are the same model in two checkouts), any other name (hub names,
    aliases such as ``my_plm=hf:./path``) by itself."""
    if model.startswith("hf:"):
        spec = model[3:]
        if spec.startswith((".", "/", "~")) or Path(spec).expanduser().is_dir():
            return "hf:" + (Path(spec).expanduser().resolve().name or spec)
    return model


def _stored_intervals(rows: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """Per seed key, the records' bootstrap intervals (standard error and bounds only)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, ivs in zip(rows["seed_key"], rows["intervals"]):
        if not isinstance(ivs, dict):
            continue
        kept = {
            m: {k: _plain(v.get(k)) for k in ("se", "low", "high", "n_resamples", "level")}
            for m, v in ivs.items()
            if isinstance(v, dict) and _num(v.get("se")) is not None
        }
        if kept:
            out[str(key)] = kept
    return out


def _noise(stored: dict[str, Any], seeds: set[str], cur: pd.DataFrame, metric: str, level: float) -> float | None:
    """z * sqrt(se_current^2 + se_baseline^2), SEs averaged over the compared seeds."""
    from statistics import NormalDist

    base = [v for s in seeds if (v := _num(stored.get(s, {}).get(metric, {}).get("se"))) is not None]
    now = [
        v for iv in cur["intervals"] if isinstance(iv, dict) and (v := _num(iv.get(metric, {}).get("se"))) is not None
    ]
    if not base or not now:
        return None
    se_b, se_c = sum(base) / len(base), sum(now) / len(now)
    return NormalDist().inv_cdf(1.0 - level / 2.0) * math.sqrt(se_b**2 + se_c**2)


def _mean_of(values: list[dict[str, Any]], keys: Iterable[str]) -> dict[str, float]:
    """Per key, the mean of the values that have it (summed in the order given)."""
    return {k: sum(vals) / len(vals) for k in keys if (vals := [v[k] for v in values if v.get(k) is not None])}


def _seed_mean(per_seed: dict[str, dict[str, float]], seeds: set[str]) -> dict[str, float]:
    chosen = [per_seed[s] for s in sorted_seeds(seeds) if s in per_seed]  # one summation order
    return _mean_of(chosen, set().union(*chosen))


def _seeds(keys: set[str]) -> str:
    return "[" + ", ".join(sorted_seeds(keys)) + "]"


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    runs = [[v for _, v in run] for _, run in groupby(enumerate(sorted(values)), lambda iv: iv[1] - iv[0])]
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _plain(x: Any) -> Any:
    """JSON-friendly: numpy scalars to Python, NaN to None."""
    if hasattr(x, "item") and not isinstance(x, (dict, list, str)):
        try:
            x = x.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(x, float) and math.isnan(x):
        return None
    return x
