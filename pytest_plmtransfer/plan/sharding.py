"""Splitting one run over N machines: whole embedding groups per shard, deterministically.

An **embedding group** is one (model, init, seed): one model build, and one forward pass per
distinct sequence set (GB1's splits share theirs). Every test of a group goes to the same shard
(and, under ``--plm-dist group``, the same xdist worker), so no embedding is computed twice and no
model is built on two machines.

Groups are assigned by longest-processing-time-first: sorted by estimated cost (largest first,
ties by group id), each goes to the shard with the least total so far (ties: lowest index). The
estimate is parameters × residues × the fraction of the model's depth that is run, where residues
come from the task catalog (its known split sizes × the residue window, or 400 residues per
sequence when no window is declared): only relative sizes matter. Every shard computes the same
plan from the same selection, and its hash goes into every record, so ``plmtransfer merge`` can
tell shards of one plan from strays.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.plan.cases import case_of

#: residues assumed per sequence when a task declares no window (FLIP's proteins are ~100-1000)
DEFAULT_SEQUENCE_LENGTH = 400
DEFAULT_TASK_SEQUENCES = 1000


class ShardError(PlmTransferError):
    pass


@dataclass(frozen=True)
class Shard:
    """``--plm-shard K/N``: this process runs shard K (0-based) of N."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if match is None:
            raise ShardError(f"--plm-shard {text!r}: expected K/N, e.g. 0/4 (K counts from 0)")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 0 <= index < count:
            raise ShardError(f"--plm-shard {text!r}: need 0 <= K < N (shards are 0/N .. {count - 1}/N)")
        return cls(index, count)

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """File-name form (ledger parts): ``shard0of4``."""
        return "shard" + self.label.replace("/", "of")


def group_id(model: str, init: str, seed: int | None) -> str:
    return f"{model}|{init}|{seed}"


@dataclass
class GroupWork:
    """The tests of one group: (task, layer) pairs, and its estimated cost."""

    cost: float
    cases: list[tuple[str, int]] = field(default_factory=list)
    #: set when the model could not be described (its tests skip; nothing to deliver)
    unavailable: bool = False


@dataclass(frozen=True)
class ShardPlan:
    count: int
    #: group id -> shard index
    assignment: Mapping[str, int]
    work: Mapping[str, GroupWork]

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "groups": {
                gid: {
                    "shard": self.assignment[gid],
                    "cost": float(self.work[gid].cost),
                    "cases": [list(c) for c in sorted(self.work[gid].cases)],
                    "unavailable": self.work[gid].unavailable,
                }
                for gid in sorted(self.work)
            },
        }

    @property
    def hash(self) -> str:
        doc = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()[:16]

    def groups_of(self, shard: int) -> set[str]:
        return {gid for gid, k in self.assignment.items() if k == shard}

    def loads(self) -> list[float]:
        totals = [0.0] * self.count
        for gid, k in self.assignment.items():
            totals[k] += self.work[gid].cost
        return totals

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ShardPlan:
        groups = doc["groups"]
        return cls(
            int(doc["count"]),
            {gid: int(g["shard"]) for gid, g in groups.items()},
            {
                gid: GroupWork(
                    float(g["cost"]), [(str(t), int(layer)) for t, layer in g["cases"]], bool(g.get("unavailable"))
                )
                for gid, g in groups.items()
            },
        )


def plan_shards(work: Mapping[str, GroupWork], count: int) -> ShardPlan:
    """Longest-processing-time-first assignment of whole groups to ``count`` shards."""
    loads = [0.0] * count
    assignment: dict[str, int] = {}
    for gid in sorted(work, key=lambda g: (-work[g].cost, g)):
        shard = min(range(count), key=lambda k: (loads[k], k))
        assignment[gid] = shard
        loads[shard] += work[gid].cost
    return ShardPlan(count, assignment, dict(work))


def task_residues(task_id: str) -> int:
    """Residues a task's sequences hold, estimated from the catalog (no data is read)."""
    from pytest_plmtransfer.tasks.catalog import get_task

    spec = get_task(task_id)
    sequences = sum(spec.sizes) if spec.sizes else DEFAULT_TASK_SEQUENCES
    length = spec.window[1] - spec.window[0] if spec.window else DEFAULT_SEQUENCE_LENGTH
    return sequences * length


def group_cost(parameters: int | None, embed_dim: int, num_layers: int, tasks: Iterable[str], deepest: int) -> float:
    """parameters × residues × share of the depth run (distinct sequence sets counted once)."""
    params = parameters if parameters else max(1, embed_dim) ** 2 * max(1, num_layers) * 12
    residues = sum({_sequence_set(t): task_residues(t) for t in tasks}.values())
    depth = (deepest + 1) / (num_layers + 1)
    return float(max(1, params)) * residues * depth


def _sequence_set(task_id: str) -> str:
    """Tasks with the same archive and window embed the same sequences (GB1's splits)."""
    from pytest_plmtransfer.tasks.catalog import get_task

    spec = get_task(task_id)
    return f"{spec.archive}:{spec.window}" if spec.format == "csv" else task_id


# --------------------------------------------------------------------------- pytest items
def build_plan(cases: Iterable[Any], describe: Callable[[str], Any], count: int) -> ShardPlan:
    """The plan for these layer cases (LayerCase objects), costed from model descriptions."""
    work: dict[str, GroupWork] = {}
    model_of: dict[str, str] = {}
    for case in cases:
        gid = group_id(case.model, case.init, case.seed)
        w = work.setdefault(gid, GroupWork(0.0, [], bool(case.unavailable)))
        if (case.task, case.layer) not in w.cases:
            w.cases.append((case.task, case.layer))
        model_of[gid] = case.model
    for gid, w in work.items():
        if w.unavailable:
            w.cost = 1.0
            continue
        desc = describe(model_of[gid])
        tasks = sorted({task for task, _layer in w.cases})
        deepest = max(layer for _task, layer in w.cases)
        w.cost = group_cost(desc.parameters, desc.embed_dim, desc.num_layers, tasks, deepest)
    return plan_shards(work, count)


def order_and_shard(
    items: list[Any], describe: Callable[[str], Any], shard: Shard | None
) -> tuple[list[Any], list[Any], ShardPlan, str | None]:
    """Items ordered group by group (claims last); under ``--plm-shard``, only this shard's
    groups (claims are deselected: they run on the merged ledger). Also returns the plan (its
    hash goes into every record; the ledger part header keeps the whole plan) and a line for
    the summary when claims were deselected."""
    group_rank: dict[str, int] = {}
    for item in items:
        case = case_of(item, "plm_layer_case")
        if case is not None:
            group_rank.setdefault(group_id(case.model, case.init, case.seed), len(group_rank) + 1)

    def key(item: Any) -> tuple[int, int]:
        if case_of(item, "plm_claim_case") is not None:
            return (1, 0)
        case = case_of(item, "plm_layer_case")
        return (0, group_rank[group_id(case.model, case.init, case.seed)] if case is not None else 0)

    ordered = sorted(items, key=key)
    cases = [c for c in (case_of(i, "plm_layer_case") for i in ordered) if c is not None]
    plan = build_plan(cases, describe, shard.count if shard else 1)
    if shard is None:
        return ordered, [], plan, None
    mine = plan.groups_of(shard.index)
    kept: list[Any] = []
    dropped: list[Any] = []
    for item in ordered:
        case = case_of(item, "plm_layer_case")
        if case is not None:
            (kept if group_id(case.model, case.init, case.seed) in mine else dropped).append(item)
        elif case_of(item, "plm_claim_case") is not None:
            dropped.append(item)
        else:
            kept.append(item)
    note = None
    if any(case_of(i, "plm_claim_case") is not None for i in dropped):
        note = (
            f"--plm-shard {shard.label}: claims deselected; run them on the merged ledger "
            "(plmtransfer merge ... --out merged; pytest -k test_claim --plm-from-ledger merged)"
        )
    return kept, dropped, plan, note
