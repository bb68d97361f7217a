"""``plmtransfer merge``: the ledgers of N shards (or workers) -> one ledger, checked complete.

Checks, in order, each failing with every offender named:

1. every input holds records of **one** shard plan (same plan hash: the same selection and the
   same N) and of **one** plugin version;
2. records that are exactly equal (a ledger given twice, a part copied into two artifacts) are
   dropped; of two records for the same (model, task, layer, init, seed), the newer is kept (a
   re-run shard supersedes the records of its killed first attempt);
3. every group of the plan delivered every (task, layer) it was assigned. Groups whose model
   could not even be described (their tests skip) are not expected.

The output is a single-file ledger (schema 3: ``{"schema_version", "plans", "records"}``) that
``plmtransfer report`` and ``pytest --plm-from-ledger`` read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_plmtransfer.errors import PlmTransferError
from pytest_plmtransfer.ledger import LAYER_KEY, SCHEMA_VERSION, atomic_write_json, read_ledger
from pytest_plmtransfer.sharding import ShardPlan, group_id


class MergeError(PlmTransferError):
    pass


@dataclass
class MergeResult:
    records: list[dict[str, Any]]
    plan_header: dict[str, Any] | None
    duplicates: int
    superseded: int
    missing: dict[str, list[tuple[str, int]]]


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def merge_ledgers(paths: Sequence[Path | str]) -> MergeResult:
    records: list[dict[str, Any]] = []
    headers: list[tuple[Path, dict[str, Any]]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise MergeError(f"{path}: no such ledger")
        recs, heads = read_ledger(path)
        records.extend(recs)
        headers.extend((path, h) for h in heads)

    hashes: dict[str, set[str]] = {}
    for path, head in headers:
        if head.get("plan_hash"):
            hashes.setdefault(head["plan_hash"], set()).add(f"{path}/{head.get('file', '')}".rstrip("/"))
    for rec in records:
        if rec.get("plan_hash"):
            hashes.setdefault(rec["plan_hash"], set())
    if len(hashes) > 1:
        where = "; ".join(f"{h}: {', '.join(sorted(files)) or 'records only'}" for h, files in sorted(hashes.items()))
        raise MergeError(
            f"the inputs come from {len(hashes)} different shard plans ({where}); shards of one run must "
            "use the same selection, --plm-shard K/N with the same N, and the same plugin version"
        )
    versions = sorted({str(r.get("plugin_version")) for r in records if r.get("plugin_version")})
    if len(versions) > 1:
        raise MergeError(f"the inputs were written by different plugin versions: {', '.join(versions)}")

    seen: set[str] = set()
    unique: list[dict[str, Any]] = []
    for rec in records:
        key = _canonical(rec)
        if key not in seen:
            seen.add(key)
            unique.append(rec)
    duplicates = len(records) - len(unique)
    newest: dict[tuple, int] = {}
    for i, rec in enumerate(unique):
        if rec.get("kind", "layer") != "layer":
            continue
        layer_key = tuple(rec.get(k) for k in LAYER_KEY)
        j = newest.get(layer_key)
        if j is None or str(rec.get("timestamp") or "") >= str(unique[j].get("timestamp") or ""):
            newest[layer_key] = i
    keep = set(newest.values())
    merged = [r for i, r in enumerate(unique) if r.get("kind", "layer") != "layer" or i in keep]
    superseded = len(unique) - len(merged)

    plan_header = next((h for _p, h in headers if h.get("plan")), None)
    missing: dict[str, list[tuple[str, int]]] = {}
    if plan_header is not None:
        plan = ShardPlan.from_dict(plan_header["plan"])
        delivered: dict[str, set[tuple[str, int]]] = {}
        for rec in merged:
            if rec.get("kind", "layer") == "layer":
                gid = group_id(rec["model"], rec["init"], rec.get("seed"))
                delivered.setdefault(gid, set()).add((rec["task"], int(rec["layer"])))
        for gid, work in sorted(plan.work.items()):
            if work.unavailable:
                continue
            lacking = sorted(set(work.cases) - delivered.get(gid, set()))
            if lacking:
                missing[gid] = lacking
    return MergeResult(merged, plan_header, duplicates, superseded, missing)


def describe_missing(result: MergeResult) -> str:
    plan = ShardPlan.from_dict(result.plan_header["plan"]) if result.plan_header else None
    lines = []
    for gid, lacking in result.missing.items():
        model, init, seed = gid.rsplit("|", 2)
        shard = f" (shard {plan.assignment[gid]}/{plan.count})" if plan else ""
        total = len(plan.work[gid].cases) if plan else len(lacking)
        tasks = sorted({t for t, _ in lacking})
        lines.append(
            f"  group model={model} init={init} seed={seed}{shard}: {len(lacking)} of {total} "
            f"result(s) missing (tasks {', '.join(tasks)})"
        )
    return "\n".join(lines)


def write_merged(result: MergeResult, out: Path) -> None:
    header = dict(result.plan_header) if result.plan_header else None
    if header is not None:
        header.pop("file", None)
        header.update(shard=None, worker=None, part=None)
    atomic_write_json(
        out, {"schema_version": SCHEMA_VERSION, "plans": [header] if header else [], "records": result.records}
    )


__all__ = ["MergeError", "MergeResult", "describe_missing", "merge_ledgers", "write_merged"]
