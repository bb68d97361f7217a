"""Evaluate one claim case against existing per-layer results (nothing is refitted), and
:func:`resolve` the outcome with the case's expected-failure declaration into the ledger's
("passed", "failed", "xfailed", "xpassed", "skipped").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from pytest_plmtransfer.judge.baselines import BaselineError, BaselineStore
from pytest_plmtransfer.judge.claims.base import ClaimCase, ClaimOutcome
from pytest_plmtransfer.judge.claims.kinds import get_kind
from pytest_plmtransfer.measure.protocol import PLMTRANSFER
from pytest_plmtransfer.results.aggregate import normalize, record_protocol


def evaluate(case: ClaimCase, layer_results: pd.DataFrame, baselines: BaselineStore | None = None) -> ClaimOutcome:
    """Evaluate ``case`` on ``layer_results`` (a layer frame, e.g. ``load_ledger(path)``)."""
    layer_results = layer_results[layer_results["kind"] == "layer"]
    if not layer_results.empty:
        # before normalize(): records of two protocols must not replace each other there
        protocols = record_protocol(layer_results)
        present = sorted(set(protocols))
        wanted = case.protocol or (present[0] if len(present) == 1 else None)
        if wanted is None:
            return ClaimOutcome(
                False,
                f"{case.id}: the records mix the protocols {', '.join(present)} and the claim names none; "
                "give it a 'protocol' (results of different protocols are never compared)",
                missing=True,
            )
        layer_results = layer_results[protocols == wanted]
        if layer_results.empty:
            return ClaimOutcome(
                False,
                f"{case.id}: no records of protocol {wanted!r} (the records are {', '.join(present)}); "
                f"run with --plm-protocol {wanted}",
                missing=True,
            )
        case = replace(case, protocol=wanted)
    try:
        outcome = get_kind(case.kind).evaluate(case, normalize(layer_results), baselines)
    except BaselineError as exc:  # unreadable baseline files: a failure that says why
        return ClaimOutcome(False, str(exc), {"error": str(exc)})
    outcome.detail.setdefault("claim", case.name)
    outcome.detail.setdefault("kind", case.kind)
    if case.protocol:
        outcome.detail.setdefault("protocol", case.protocol)
    if case.finding:
        outcome.detail.setdefault("finding", case.finding)
    return outcome


def protocol_skip(case: ClaimCase, options: Any) -> str | None:
    """Why a claim of another protocol than the run's is skipped (never failed, even under
    ``--plm-gate``): it could only be judged on records this run does not make. Claims read from
    ``--plm-from-ledger`` are judged on the ledger's records, whatever the run's protocol."""
    run = getattr(options, "protocol", None) or PLMTRANSFER
    if case.protocol is None or case.protocol == run or getattr(options, "from_ledger", None) is not None:
        return None
    return f"claim of protocol {case.protocol!r}, this run is {run!r} (--plm-protocol {case.protocol} to judge it)"


# --------------------------------------------------------------------------------------------


def resolve(case: ClaimCase, outcome: ClaimOutcome, *, strict_missing: bool = False) -> tuple[str, str]:
    """The ledger outcome and message for ``outcome`` given the case's expected-failure status
    (missing inputs: "skipped", or "failed" under ``--plm-strict``, i.e. ``strict_missing``)."""
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
