"""Scientific claims as data (``baselines/claims.json``), expanded into cases and evaluated on
existing per-layer results; each kind is a :class:`ClaimKind` subclass (built-in ones in ``kinds.py``).

>>> from pytest_plmtransfer.judge.claims import load_claims, expand_claims, evaluate, resolve
"""

from pytest_plmtransfer.judge.claims.base import ClaimCase, ClaimKind, ClaimOutcome, Param
from pytest_plmtransfer.judge.claims.evaluate import claim_record, evaluate, resolve
from pytest_plmtransfer.judge.claims.kinds import get_kind, kind_names, register_kind, unregister_kind
from pytest_plmtransfer.judge.claims.spec import (
    ClaimsError,
    ClaimsFile,
    ClaimSpec,
    ExpectedFailure,
    expand_claims,
    load_claims,
    parse_claims,
)

__all__ = [
    "ClaimCase",
    "ClaimKind",
    "ClaimOutcome",
    "ClaimSpec",
    "ClaimsError",
    "ClaimsFile",
    "ExpectedFailure",
    "Param",
    "claim_record",
    "evaluate",
    "expand_claims",
    "get_kind",
    "kind_names",
    "load_claims",
    "parse_claims",
    "register_kind",
    "resolve",
    "unregister_kind",
]
