"""Head hyper-parameters from the command line / ini (``--plm-head-*``), validated once.

The parsed dict holds only what the user set, as :class:`~pytest_plmtransfer.measure.probe.ProbeSettings`
field names (``max_epochs``, ``patience``, ``batch_size``, ``lr``, ``alphas``); everything else keeps
the heads' documented defaults. The settings a head actually used are written into every record's
``head`` section by :mod:`pytest_plmtransfer.measure.probe`, and a non-default setting is part of the
probe-result cache key, so changing one refits instead of reusing a cached result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

#: option suffix (after ``head-``) -> (ProbeSettings field, parser, help); options.py registers them
HEAD_OPTIONS: dict[str, tuple[str, Callable[[str], Any], str]] = {}


def _number(
    name: str, convert: Callable[[str], Any], what: str, ok: Callable[[Any], bool], bound: str
) -> Callable[[str], Any]:
    """A parser for ``--plm-head-<name>``: ``convert`` the text (else "is not <what>"), then check it."""

    def parse(text: str) -> Any:
        try:
            value = convert(str(text).strip())
        except ValueError:
            raise ValueError(f"--plm-head-{name}: {text!r} is not {what}") from None
        if not ok(value):
            raise ValueError(f"--plm-head-{name}: must be {bound}, got {value if convert is int else repr(text)}")
        return value

    return parse


def _positive_int(name: str) -> Callable[[str], int]:
    return _number(name, int, "a whole number", lambda v: v >= 1, "at least 1")


def _positive_float(name: str) -> Callable[[str], float]:
    return _number(name, float, "a number", lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def _alphas(text: str) -> list[float]:
    parts = [p.strip() for p in str(text).replace("\n", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("--plm-head-alphas: give at least one penalty, e.g. 0.1,1,10")
    return [_positive_float("alphas")(p) for p in parts]


HEAD_OPTIONS.update(
    {
        "epochs": ("max_epochs", _positive_int("epochs"), "softmax probe: most training epochs (default 100)"),
        "patience": (
            "patience",
            _positive_int("patience"),
            "softmax probe: epochs without validation improvement before stopping (default 5)",
        ),
        "batch-size": (
            "batch_size",
            _positive_int("batch-size"),
            "softmax probe: rows per mini-batch (default 256; 1024 for per-residue tasks)",
        ),
        "lr": ("lr", _positive_float("lr"), "softmax probe: Adam learning rate (default 1e-3)"),
        "alphas": ("alphas", _alphas, "ridge probe: comma-separated penalty grid (default logspace(-3, 6, 19))"),
    }
)


def parse_head_options(get: Callable[[str], Any]) -> dict[str, Any]:
    """``{ProbeSettings field: value}`` for every ``--plm-head-*`` option (or ini key) that is set.

    ``get(name)`` returns an option's raw value by its dest suffix (``head_epochs`` ...).
    """
    out: dict[str, Any] = {}
    for suffix, (field_name, parse, _help) in HEAD_OPTIONS.items():
        raw = get("head_" + suffix.replace("-", "_"))
        if raw in (None, "", [], False):
            continue
        out[field_name] = parse(raw)
    return out


__all__ = ["HEAD_OPTIONS", "parse_head_options"]
