"""Scientific claims as data (``baselines/claims.json``), expanded into cases and evaluated on
existing per-layer results.

>>> from pytest_plmtransfer.claims import load_claims, expand_claims, evaluate, resolve
"""

from pytest_plmtransfer.claims.evaluate import (
    ClaimOutcome,
    claim_record,
    evaluate,
    resolve,
)
from pytest_plmtransfer.claims.spec import (
    CLAIM_KINDS,
    ClaimCase,
    ClaimsError,
    ClaimsFile,
    ClaimSpec,
    ExpectedFailure,
    expand_claims,
    load_claims,
    parse_claims,
)

__all__ = [
    "CLAIM_KINDS",
    "ClaimCase",
    "ClaimOutcome",
    "ClaimSpec",
    "ClaimsError",
    "ClaimsFile",
    "ExpectedFailure",
    "claim_record",
    "evaluate",
    "expand_claims",
    "load_claims",
    "parse_claims",
    "resolve",
]
