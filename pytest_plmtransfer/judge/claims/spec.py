"""Claims declared as data: parsing and validating ``baselines/claims.json`` and expanding it.

File format (``"format": "plmtransfer-claims/1"``)::

    {
      "format": "plmtransfer-claims/1",
      "description": "free text",
      "claims": [
        {
          "name": "beats_onehot",              # optional, defaults to kind; prefixes test ids
          "kind": "beats_onehot",              # a registered kind (claims/kinds.py)
          "finding": "why we expect this",     # optional free text (the paper's finding)
          "protocol": "authors",               # optional: evaluated only on records of this protocol
          "models": ["antiberty", "carp_*"],   # list of globs, or one glob string ("*")
          "tasks": "gb1_*",
          "inits": ["pretrained"],             # default: the kind's default_inits
          "params": {"margin": 0.0},           # the kind's params
          "expected_failures": [               # optional; first match wins
            {"models": ["carp_600k"], "tasks": ["gb1_low_vs_high"], "inits": "*",
             "reason": "paper: 0.241 vs one-hot 0.322", "strict": true}
          ]
        }
      ]
    }

A user's file may say ``"extends": "default"``: the shipped claims apply too, and an entry with
the name of a shipped one replaces it (see ``pytest_plmtransfer.judge.defaults``).

Every problem found is reported at once, each naming the file, the entry index and the problem.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.judge.claims.base import ClaimCase
from pytest_plmtransfer.judge.claims.kinds import get_kind, kind_names
from pytest_plmtransfer.models.base import ONEHOT

FORMAT = "plmtransfer-claims/1"
#: the protocols a claim may name (``--plm-protocol``): the authors' code path, and this project's own
PROTOCOLS = ("authors", "plmtransfer")

_ENTRY_KEYS = frozenset(
    {"name", "kind", "finding", "protocol", "models", "tasks", "inits", "params", "expected_failures"}
)
_XFAIL_KEYS = frozenset({"models", "tasks", "inits", "reason", "strict"})


class ClaimsError(PlmTransferError, ValueError):
    """The claims file is invalid; the message lists every problem with file and entry index."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:  # the common case fits on one line
            super().__init__(f"{source}: invalid claims file: {problems[0]}")
            return
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid claims file ({len(problems)} problems):\n{lines}")


@dataclass(frozen=True)
class ExpectedFailure:
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    inits: tuple[str, ...]
    reason: str
    strict: bool = True

    def matches(self, model: str, task: str, init: str) -> bool:
        return _match(model, self.models) and _match(task, self.tasks) and _match(init, self.inits)


@dataclass(frozen=True)
class ClaimSpec:
    """One entry of the claims file, validated."""

    name: str
    kind: str
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    inits: tuple[str, ...]
    params: Mapping[str, Any]
    expected_failures: tuple[ExpectedFailure, ...] = ()
    finding: str = ""
    index: int = 0
    source: str = "<claims>"
    #: evaluated only on records of this protocol (None: the records' own, which must be one)
    protocol: str | None = None

    def selects(self, model: str, task: str, init: str) -> bool:
        if model == ONEHOT and not get_kind(self.kind).for_onehot:
            return False
        return _match(model, self.models) and _match(task, self.tasks) and _match(init, self.inits)


@dataclass
class ClaimsFile:
    source: str
    claims: list[ClaimSpec]
    description: str = ""

    def __iter__(self):
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)


def _match(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _selector(raw: Any, where: str, key: str, problems: list[str]) -> tuple[str, ...] | None:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x for x in raw):
        problems.append(f"{where}: '{key}' must be a glob string or a non-empty list of them, got {raw!r}")
        return None
    return tuple(raw)


def parse_claims(doc: Any, source: str = "<claims>") -> ClaimsFile:
    """Validate a parsed claims document; raise :class:`ClaimsError` listing every problem."""
    problems: list[str] = []
    if isinstance(doc, list):  # a bare list of entries is accepted too
        doc = {"format": FORMAT, "claims": doc}
    if not isinstance(doc, dict):
        raise ClaimsError(source, [f"top level must be an object with a 'claims' list, got {type(doc).__name__}"])
    if (fmt := doc.get("format", FORMAT)) != FORMAT:
        problems.append(f"'format' is {fmt!r}; this plugin reads {FORMAT!r}")
    if unknown_top := set(doc) - {"format", "description", "claims", "extends"}:
        problems.append(
            f"unknown top-level key(s) {sorted(unknown_top)}; allowed: format, description, extends, claims"
        )
    if doc.get("extends", "default") != "default":
        # resolved by pytest_plmtransfer.judge.defaults: the shipped claims plus (overriding by name) these
        problems.append(f"'extends' is {doc['extends']!r}; the only value is \"default\" (the shipped claims)")
    entries = doc.get("claims")
    if not isinstance(entries, list):
        problems.append("'claims' must be a list of claim entries")
        raise ClaimsError(source, problems)

    specs: list[ClaimSpec] = []
    names: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"claims[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be an object, got {type(entry).__name__}")
            continue
        kind = entry.get("kind")
        if kind is None:
            problems.append(
                f"{where} ({entry.get('name', '?')}): no 'kind'. Only an entry named like a shipped claim "
                '(beats_onehot, saturates_by, ...) in a file with "extends": "default" may leave it out '
                "(it inherits the shipped one's)"
            )
            continue
        if not isinstance(kind, str) or kind not in kind_names():
            problems.append(f"{where}: 'kind' is {kind!r}; must be one of {', '.join(kind_names())}")
            continue
        claim_kind = get_kind(kind)
        where = f"claims[{i}] ({entry.get('name', kind)})"
        for key in sorted(set(entry) - _ENTRY_KEYS):
            problems.append(f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(_ENTRY_KEYS))}")
        name = entry.get("name", kind)
        if not isinstance(name, str) or not name or any(c in name for c in "[] "):
            problems.append(f"{where}: 'name' must be a non-empty string without '[', ']' or spaces")
            continue
        if name in names:
            problems.append(
                f"{where}: name {name!r} is already used by claims[{names[name]}]; "
                "give each entry a distinct 'name' so that test ids stay unique"
            )
        names.setdefault(name, i)
        models, tasks = (_selector(entry.get(k, "*"), where, k, problems) for k in ("models", "tasks"))
        inits = _selector(entry.get("inits", list(claim_kind.default_inits)), where, "inits", problems)
        if inits and (problem := claim_kind.check_inits(inits)):
            problems.append(f"{where}: {problem}")
        params, param_problems = claim_kind.validate_params(entry.get("params"))
        problems += [f"{where}: {p}" for p in param_problems]
        protocol = entry.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            problems.append(f"{where}: 'protocol' is {protocol!r}; must be one of {', '.join(PROTOCOLS)}")
        finding = entry.get("finding", "")
        if not isinstance(finding, str):
            problems.append(f"{where}: 'finding' must be a string")
            finding = str(finding)
        xfails: list[ExpectedFailure] = []
        raw_x = entry.get("expected_failures", [])
        if not isinstance(raw_x, list):
            problems.append(f"{where}: 'expected_failures' must be a list")
            raw_x = []
        for j, xf in enumerate(raw_x):
            xwhere = f"{where}.expected_failures[{j}]"
            if not isinstance(xf, dict):
                problems.append(f"{xwhere}: must be an object")
                continue
            for key in sorted(set(xf) - _XFAIL_KEYS):
                problems.append(f"{xwhere}: unknown key {key!r}; allowed: {', '.join(sorted(_XFAIL_KEYS))}")
            reason = xf.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                problems.append(f"{xwhere}: a 'reason' (non-empty string) is required")
                reason = ""
            strict = xf.get("strict", True)
            if not isinstance(strict, bool):
                problems.append(f"{xwhere}: 'strict' must be true or false")
                strict = True
            xm, xt, xi = (_selector(xf.get(k, "*"), xwhere, k, problems) for k in ("models", "tasks", "inits"))
            if xm and xt and xi:
                xfails.append(ExpectedFailure(xm, xt, xi, reason, strict))
        if models and tasks and inits:
            specs.append(
                ClaimSpec(name, kind, models, tasks, inits, params, tuple(xfails), finding, i, source, protocol)
            )
    if problems:
        raise ClaimsError(source, problems)
    description = doc.get("description", "")
    return ClaimsFile(source, specs, description if isinstance(description, str) else "")


def read_claims(path: Path | str) -> Any:
    """The JSON document of a claims file, not yet validated."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClaimsError(str(path), ["file not found"]) from None
    except json.JSONDecodeError as exc:
        raise ClaimsError(str(path), [f"not valid JSON: {exc}"]) from exc


def load_claims(path: Path | str) -> ClaimsFile:
    """Read and validate a claims file (``baselines/claims.json``)."""
    return parse_claims(read_claims(path), str(Path(path)))


def check_selectors(
    claims: ClaimsFile | Sequence[ClaimSpec],
    *,
    models: Iterable[str],
    tasks: Iterable[str],
    inits: Iterable[str],
    source: str | None = None,
) -> None:
    """Raise :class:`ClaimsError` naming every model, task or init pattern (of an entry or of its
    expected failures) that matches none of the known names (``models``: the registry's and the
    selected ones): a typo such as ``gb1_sampledd`` would otherwise make a CI gate apply to nothing."""
    known = {"models": sorted(set(models)), "tasks": sorted(set(tasks)), "inits": sorted(set(inits))}
    # per file: a user's file that extends the shipped one has its problems named under its own path
    problems: dict[str, list[str]] = {}
    for spec in claims:
        where = f"claims[{spec.index}] ({spec.name})"
        selectors = [(where, "models", spec.models), (where, "tasks", spec.tasks), (where, "inits", spec.inits)]
        for j, xf in enumerate(spec.expected_failures):
            xw = f"{where}.expected_failures[{j}]"
            selectors += [(xw, "models", xf.models), (xw, "tasks", xf.tasks), (xw, "inits", xf.inits)]
        for at, key, patterns in selectors:
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(name, pattern) for name in known[key]):
                    shown = ", ".join(known[key]) if len(known[key]) <= 40 else ", ".join(known[key][:40]) + ", ..."
                    problems.setdefault(source or spec.source, []).append(
                        f"{at}: {key[:-1]} {pattern!r} matches no known {key[:-1]} (known: {shown})"
                    )
    for src, found in problems.items():
        raise ClaimsError(src, found)


def expand_claims(
    claims: ClaimsFile | Sequence[ClaimSpec], available: Iterable[tuple[str, str, str]]
) -> list[ClaimCase]:
    """One :class:`ClaimCase` per (claim entry, available (model, task, init)) it selects, in file
    order, then ``available``'s (duplicates ignored). A comparator a case needs (one-hot, random,
    stat, a baseline) may be absent: the case then evaluates to a "missing" outcome."""
    avail = list(dict.fromkeys((str(m), str(t), str(i)) for m, t, i in available))
    cases: list[ClaimCase] = []
    for spec in claims:
        for model, task, init in avail:
            if not spec.selects(model, task, init):
                continue
            xfail = next((x for x in spec.expected_failures if x.matches(model, task, init)), None)
            cases.append(
                ClaimCase(
                    name=spec.name,
                    kind=spec.kind,
                    model=model,
                    task=task,
                    init=init,
                    params=dict(spec.params),
                    finding=spec.finding,
                    xfail_reason=xfail.reason if xfail else None,
                    strict=xfail.strict if xfail else True,
                    index=spec.index,
                    source=spec.source,
                    protocol=spec.protocol,
                )
            )
    return cases
