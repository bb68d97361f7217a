"""Evaluate one claim case against existing per-layer results (nothing is refitted).

``evaluate(case, layer_results, baselines)`` returns a :class:`ClaimOutcome`; ``resolve`` turns
that plus the case's expected-failure declaration into the outcome recorded in the ledger
("passed", "failed", "xfailed", "xpassed", "skipped"). Each kind's evaluation is the ``evaluate``
method of its class in :mod:`pytest_plmtransfer.judge.claims.kinds`; the notes below describe the
built-in kinds.

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

Protocols: a claim that names a ``protocol`` is evaluated only on records of that protocol (a
record without the field is ``plmtransfer``); one that names none, on the records' own protocol,
which must be a single one. Under ``authors`` every built-in kind compares last layers, as the
authors' analysis does, and the ablation test is theirs (``scr/analysis/repstat.py``,
``perform_t_test``): a one-sided one-sample t-test of the ablation's replicate seeds' last-layer
values against the pretrained last-layer value (``scipy.stats.ttest_1samp``,
``alternative="less"``), significant at p < 0.05; no paired bootstrap. What follows describes
the ``plmtransfer`` protocol.

Paired tests (issue 12): when the records refer to stored test predictions (every record written
since predictions are kept), ``beats_onehot``, ``pretrained_beats_*`` and ``saturates_by``
instead compare the two sides' predictions on the same test examples with a paired bootstrap
(:mod:`pytest_plmtransfer.judge.claims.paired`, :func:`pytest_plmtransfer.measure.stats.paired_test`): seed
replicates enter through a hierarchical bootstrap, the message gives the difference, its
``1 - 2*level`` interval and the one-sided p-value, and the claim passes when ``p < level``
(``saturates_by`` fails only when the gap is significantly larger than the tolerance). Records
without predictions keep the comparisons above, and the message says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from pytest_plmtransfer.judge.baselines import BaselineError, BaselineStore
from pytest_plmtransfer.judge.claims.base import ClaimCase, ClaimOutcome
from pytest_plmtransfer.judge.claims.kinds import get_kind
from pytest_plmtransfer.judge.paper import record_protocol
from pytest_plmtransfer.measure.protocol import PLMTRANSFER
from pytest_plmtransfer.results.aggregate import normalize


def evaluate(case: ClaimCase, layer_results: pd.DataFrame, baselines: BaselineStore | None = None) -> ClaimOutcome:
    """Evaluate ``case`` on ``layer_results`` (a layer frame, e.g. ``load_ledger(path)``)."""
    if layer_results is not None and "kind" in layer_results.columns:
        layer_results = layer_results[layer_results["kind"].isna() | (layer_results["kind"] == "layer")]
    if layer_results is not None and not layer_results.empty:
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
