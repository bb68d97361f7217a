"""What every claim kind builds on, importing none of the other claims modules: the case a claim
is applied to, the outcome it finds, and :class:`ClaimKind` (one class per kind: its name,
parameters, inits, what it applies to and compares with, when it is skipped, how it evaluates).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from pytest_plmtransfer.judge.baselines import BaselineStore
from pytest_plmtransfer.options import benchmarks_command
from pytest_plmtransfer.results.aggregate import subset, task_metrics


@dataclass(frozen=True, eq=False)
class ClaimCase:
    """One claim applied to one (model, task, init): one test."""

    name: str
    kind: str
    model: str
    task: str
    init: str
    params: Mapping[str, Any] = field(default_factory=dict)
    finding: str = ""
    xfail_reason: str | None = None
    strict: bool = True
    index: int = 0
    source: str = "<claims>"
    protocol: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}[{self.param_id}]"

    @property
    def param_id(self) -> str:
        """The part inside the brackets, for ``pytest.param(..., id=case.param_id)``."""
        return f"{self.model}-{self.task}-{self.init}"

    @property
    def expected_to_fail(self) -> bool:
        return self.xfail_reason is not None

    def pytest_marks(self) -> list[Any]:
        """``[pytest.mark.xfail(reason=..., strict=...)]`` for an expected failure, else ``[]``."""
        if self.xfail_reason is None:
            return []
        import pytest

        # raises=AssertionError: only the claim's own `assert outcome.passed` is the expected
        # failure; a missing input failed under --plm-gate, or an error computing a layer, fails
        # (pytest would otherwise count a setup failure of an xfail-marked test as XFAIL, and the
        # gate would pass without the claim ever being evaluated)
        return [pytest.mark.xfail(reason=self.xfail_reason, strict=self.strict, raises=AssertionError)]

    def unexpected_pass(self, message: str) -> str:
        """Why a strict expected failure that passed fails the run, and the two ways out."""
        return (
            f"[XPASS(strict)] {self.id} holds on {self.model}/{self.task}/{self.init}, but {self.source} "
            f"declares it an expected failure there ({self.xfail_reason}): {message.rstrip('.')}. "
            f"If it now holds, narrow that entry's expected_failures (e.g. its 'tasks') to where it fails; "
            f'to accept either outcome, give the expected failure "strict": false.'
        )

    def param(self) -> Any:
        """This case as a ``pytest.param`` with its id and marks."""
        import pytest

        return pytest.param(self, id=self.param_id, marks=self.pytest_marks())


@dataclass
class ClaimOutcome:
    """What a claim case found. ``missing``: the inputs were absent, ``message`` says what to run."""

    passed: bool
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    missing: bool = False


# ------------------------------------------------------------------------------ parameters


def non_negative(name: str, value: Any) -> str | None:
    """A :attr:`Param.check`: ``value >= 0``."""
    return None if value >= 0 else f"'{name}' must be >= 0, got {value}"


def level_in_range(name: str, value: Any) -> str | None:
    """A :attr:`Param.check` for a one-sided test's level: a level >= 0.5 would pass on a coin flip."""
    return None if 0 < value < 0.5 else f"'{name}' must be in (0, 0.5), got {value}"


@dataclass(frozen=True)
class Param:
    """One parameter of a claim kind: the accepted ``types`` (never ``bool`` for numbers), the
    ``default`` (``None``: absent unless given) and ``check(name, value)``, the problem with a
    well-typed value or ``None`` (applied to defaults too)."""

    types: tuple[type, ...]
    default: Any = None
    check: Callable[[str, Any], str | None] | None = None


class ClaimKind:
    """Base class of a claim kind. Subclass it, set :attr:`name` and :attr:`params`, implement
    :meth:`evaluate`, and override the other members where the defaults do not fit."""

    #: the ``"kind"`` of a claims-file entry (no spaces or brackets: it can become a test id)
    name: ClassVar[str] = ""
    #: parameter name -> :class:`Param`
    params: ClassVar[Mapping[str, Param]] = {}
    #: the inits an entry applies to when it gives no ``"inits"``
    default_inits: ClassVar[tuple[str, ...]] = ("pretrained",)
    #: the inits an entry must keep (``None``: any); the kind reads these whatever the entry says
    fixed_inits: ClassVar[tuple[str, ...] | None] = None
    #: whether the kind applies to the one-hot baseline (a single layer, no init)
    for_onehot: ClassVar[bool] = True

    # -- validation ------------------------------------------------------------------------

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        """Problems that involve several parameters (each parameter's own check runs before)."""
        return []

    def validate_params(self, raw: Any) -> tuple[dict[str, Any], list[str]]:
        """The parameters of an entry with defaults filled in, and every problem found (each
        without the entry's location, which the caller prefixes)."""
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            return {}, [f"'params' must be an object, got {type(raw).__name__}"]
        problems: list[str] = []
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in self.params:
                problems.append(f"unknown parameter {key!r} for {self.name}; known: {', '.join(sorted(self.params))}")
                continue
            types = self.params[key].types
            if isinstance(value, bool) or not isinstance(value, types):
                names = "/".join(t.__name__ for t in types)
                problems.append(f"parameter {key!r} must be {names}, got {value!r}")
                continue
            if isinstance(value, float) and not math.isfinite(value):  # JSON's NaN/Infinity: a claim that cannot fail
                problems.append(f"parameter {key!r} must be a finite number, got {value!r}")
                continue
            out[key] = value
        for key, param in self.params.items():
            if key not in out and param.default is not None:
                out[key] = param.default
            if key in out and param.check is not None and (problem := param.check(key, out[key])):
                problems.append(problem)
        problems += self.check_params(out)
        return out, problems

    def check_inits(self, inits: tuple[str, ...]) -> str | None:
        """The problem with an entry's ``"inits"``, if the kind reads fixed inits."""
        if self.fixed_inits is None or inits == self.fixed_inits:
            return None
        return (
            f"{self.name} always compares init '{', '.join(self.fixed_inits)}'; drop 'inits' or set it "
            f"to {json.dumps(list(self.fixed_inits))}"
        )

    # -- what it applies to and reads ----------------------------------------------------------

    def applies_to(self, model: str, model_inits: Iterable[str]) -> bool:
        """Whether the kind can apply to ``model``, which has (or was run with) ``model_inits``."""
        return True

    def comparators(self, case: ClaimCase) -> tuple[str, ...]:
        """Other models whose layer results on ``case.task`` the kind compares with; the session
        computes them even when they were not selected (the case's own model always is)."""
        return ()

    def skip_reason(self, options: Any) -> str | None:
        """Why the case is skipped under these run options (:class:`~pytest_plmtransfer.options.PlmOptions`)."""
        return None

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(self, case: ClaimCase, frame: pd.DataFrame, baselines: BaselineStore | None) -> ClaimOutcome:
        """The outcome of ``case`` on ``frame`` (layer records, normalized: see
        :func:`pytest_plmtransfer.results.aggregate.normalize`). Missing inputs: :meth:`missing`."""
        raise NotImplementedError(f"claim kind {self.name!r} does not implement evaluate()")

    # helpers for evaluate()

    @staticmethod
    def missing(message: str, **detail: Any) -> ClaimOutcome:
        """The inputs are absent: the case skips (fails under ``--plm-strict``); ``message``
        should say what to run."""
        return ClaimOutcome(False, message, {"missing": True, **detail}, missing=True)

    @staticmethod
    def what(case: ClaimCase) -> str:
        return f"{case.model}/{case.init} on {case.task}"

    def own(self, case: ClaimCase, frame: pd.DataFrame) -> pd.DataFrame | ClaimOutcome:
        """The case's own layer results, or a missing outcome naming the command that makes them."""
        mine = subset(frame, case.model, case.task, case.init)
        if mine.empty:
            return self.missing(
                f"no layer results for {self.what(case)}; run: {benchmarks_command(case.model, case.task, case.init)}"
            )
        return mine

    def number(self, case: ClaimCase, key: str) -> float:
        """The numeric parameter ``key`` of ``case``, or its declared default."""
        return float(case.params.get(key, self.params[key].default))

    @staticmethod
    def metrics(case: ClaimCase, frame: pd.DataFrame) -> tuple[str, str]:
        """(selection metric, test metric): the task's, unless the case's params name others."""
        sel, test = task_metrics(frame, case.task)
        return case.params.get("selection_metric") or sel, case.params.get("metric") or test
