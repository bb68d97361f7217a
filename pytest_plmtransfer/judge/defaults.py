"""What the installed package ships, and how a user's ``baselines/`` layers on top of it.

The package carries the benchmark suite (``pytest_plmtransfer/benchmarks``) and the default
baselines (``pytest_plmtransfer/baselines_default``: the claims file, the authors' reference
numbers and the stored baselines of the smoke suite). A user's baselines directory lies over the
shipped one when it has no ``claims.json`` or its ``claims.json`` says ``"extends": "default"``
(README): then the user's stored baseline or paper reference wins over the shipped one
(``--plm-update-baselines`` always writes the user's), and the user's claims add to the shipped
ones, an entry with a shipped claim's name replacing it. Without ``extends`` the user's files
stand alone.

An entry named like a shipped claim may leave out ``kind``: it inherits the shipped entry (kind,
selection, params, finding) and overrides only what it gives; its ``expected_failures`` come
before the shipped ones (first match wins), so an expected failure takes one entry::

    {"name": "beats_onehot",
     "expected_failures": [{"models": "my_plm", "tasks": ["gb1_low_vs_high"], "reason": "..."}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_plmtransfer.judge.baselines import BaselineStore
from pytest_plmtransfer.judge.claims.spec import ClaimsError, ClaimsFile, load_claims, parse_claims, read_claims
from pytest_plmtransfer.measure.protocol import PLMTRANSFER

PACKAGE_DIR = Path(__file__).resolve().parent
#: the shipped baselines (package data)
DEFAULT_BASELINES = PACKAGE_DIR / "baselines_default"
EXTENDS_DEFAULT = "default"


class LayeredBaselineStore(BaselineStore):
    """A user's baselines directory over the shipped defaults (reads fall back, writes do not)."""

    def __init__(self, root: Path | str, defaults: Path | str = DEFAULT_BASELINES) -> None:
        super().__init__(root)
        self.defaults = BaselineStore(defaults)
        own_claims = self.root / "claims.json"
        #: False when the user's claims.json stands alone (no "extends": "default")
        self.layered = not own_claims.is_file() or _extends(own_claims) == EXTENDS_DEFAULT

    def read_path(self, task: str, model: str, init: str, protocol: str = PLMTRANSFER) -> Path:
        own = self.path_for(task, model, init, protocol)
        if own.is_file() or not self.layered:
            return own
        shipped = self.defaults.path_for(task, model, init, protocol)
        return shipped if shipped.is_file() else own

    @property
    def paper_path(self) -> Path:
        own = self.root / "paper" / "reference.json"
        if own.is_file() or not self.layered or not self.defaults.paper_path.is_file():
            return own
        return self.defaults.paper_path

    def entries(self) -> list[tuple[str, str, str, str]]:
        shipped = set(self.defaults.entries()) if self.layered else set()
        return sorted(set(super().entries()) | shipped)

    def claims(self) -> ClaimsFile | None:
        return load_effective_claims(self.root / "claims.json", self.defaults.claims_path)


def load_effective_claims(user_path: Path, default_path: Path = DEFAULT_BASELINES / "claims.json") -> ClaimsFile | None:
    """The claims a run uses (see the module docstring); None when there are none at all."""
    defaults = load_claims(default_path) if default_path.is_file() else None
    if user_path.resolve() == default_path.resolve() or not user_path.is_file():
        return defaults
    if _extends(user_path) != EXTENDS_DEFAULT:
        return load_claims(user_path)
    if defaults is None:
        raise ClaimsError(
            str(user_path), [f"'extends': 'default' but the shipped claims file {default_path} is missing"]
        )
    own = parse_claims(_inherit(read_claims(user_path), read_claims(default_path)), str(user_path))
    replaced = {c.name for c in own.claims}
    kept = [c for c in defaults.claims if c.name not in replaced]
    return ClaimsFile(f"{default_path} + {user_path}", kept + own.claims, own.description or defaults.description)


def _inherit(doc: Any, shipped: dict) -> Any:
    """``doc`` with each kind-less entry named like a shipped claim completed from that claim."""
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list):
        return doc  # parse_claims says what is wrong
    by_name = {c.get("name", c.get("kind")): c for c in shipped.get("claims", [])}
    entries = []
    for entry in doc["claims"]:
        base = by_name.get(entry.get("name")) if isinstance(entry, dict) and "kind" not in entry else None
        if base is not None:
            entry = {
                **base,
                **entry,
                "expected_failures": entry.get("expected_failures", []) + base.get("expected_failures", []),
            }
        entries.append(entry)
    return {**doc, "claims": entries}


def _extends(path: Path) -> Any:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return doc.get("extends") if isinstance(doc, dict) else None
