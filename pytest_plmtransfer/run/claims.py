"""Running one claim case: gather the layer records it reads, judge them, record the outcome.

The records come from this process's layer tests, from cached probe results (a layer a claim
needs but no test selected is computed, never refitted when cached), or, under
``--plm-from-ledger``, from the ledger alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.judge.claims.evaluate import claim_record, evaluate, protocol_skip
from pytest_plmtransfer.judge.claims.kinds import get_kind, register_plugin_kinds, unregister_kind
from pytest_plmtransfer.plan.cases import Planner, claim_models
from pytest_plmtransfer.results.ledger import records_to_frame
from pytest_plmtransfer.run.recorder import Recorder
from pytest_plmtransfer.run.runner import LayerRunner


def skip_reason(claim, options) -> str | None:
    """Why a claim case is skipped before anything runs (a claim of another protocol, or its
    kind's own reason), or None."""
    return protocol_skip(claim, options) or get_kind(claim.kind).skip_reason(options)


def run_claim(
    claim, planner: Planner, runner: LayerRunner, recorder: Recorder, baselines, *, strict: bool
) -> tuple[Any, dict[str, Any]]:
    """The claim's outcome on the per-layer results, and its ledger record."""
    causes: list[str] = []
    if planner.options.from_ledger is not None:
        models = claim_models(claim)
        records = [r for r in planner.ledger_records() if r["task"] == claim.task and r["model"] in models]
    else:
        records = []
        for case in planner.claim_layer_cases(claim):
            done = recorder.layer_records.get(case.embedding_request + (case.layer,))
            if done is not None:  # measured by a layer test of this process: no rebuild
                records.append(done)
                continue
            try:
                records.append(recorder.layer_record(runner.run(case)))
            except ResourceUnavailable as exc:
                causes += [str(exc)] if str(exc) not in causes else []
    outcome = evaluate(claim, records_to_frame(records), baselines)
    if outcome.missing and causes:
        # the command the kind suggests would skip the same way: say why instead
        more = f" (and {len(causes) - 1} more missing input(s))" if len(causes) > 1 else ""
        outcome = replace(outcome, message=f"{claim.id} cannot be judged here: {causes[0]}{more}")
    fields = claim_record(claim, outcome, strict_missing=strict)
    return outcome, recorder.claim_record(fields, runner.prober.protocol.name)


#: the plugin registers plugins' claim kinds through this stage (and forgets them at the end)
__all__ = ["register_plugin_kinds", "run_claim", "skip_reason", "unregister_kind"]
