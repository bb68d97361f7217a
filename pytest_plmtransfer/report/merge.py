"""``plmtransfer merge``: the ledgers of N shards (or workers) -> one ledger, checked complete.

Checks, in order, each failing with every offender named:

1. every record is what the plugin wrote (its content digest) and has a well-formed key; every
   input holds records of **one** shard plan (same plan hash: the same selection and the same N)
   and of **one** plugin version (records' and parts' headers');
2. records that are exactly equal (a ledger given twice, a part copied into two artifacts) are
   dropped; of records for the same (model, task, layer, init, seed, protocol) with the same
   values, the newest is kept (a re-run shard supersedes its killed first attempt). Records for
   one key with *different* values are a conflict: listed and refused, unless the user picks a
   rule (``on_conflict="newest"``);
3. every group of the plan delivered every (task, layer) it was assigned. Groups whose model
   could not even be described (their tests skip) are not expected.

The output is a ledger directory of one part, :data:`MERGED_PART` (the plan's header, then each
record with its digest), that ``plmtransfer report`` and ``pytest --plm-from-ledger`` read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.tempfiles import sweep_stale_temps
from pytest_plmtransfer.plan.sharding import ShardPlan, group_id
from pytest_plmtransfer.results.ledger import Entry, part_header, read_entries, record_key, write_part
from pytest_plmtransfer.results.records import LAYER_KEY, measurement

ON_CONFLICT = ("fail", "newest")
#: the one part of a merged ledger directory
MERGED_PART = "merged.jsonl"
#: conflicts listed in full before "... and N more"
_SHOWN = 10


class MergeError(PlmTransferError):
    pass


@dataclass
class MergeResult:
    records: list[dict[str, Any]]
    plan_header: dict[str, Any] | None
    duplicates: int
    superseded: int
    missing: dict[str, list[tuple[str, int]]]
    #: keys whose records disagreed, settled by ``on_conflict="newest"`` (described)
    conflicts: list[str] = field(default_factory=list)


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def _when(entry: Entry) -> str:
    return str(entry.record.get("timestamp") or "")


def _describe_conflict(key: tuple[Any, ...], entries: list[Entry]) -> str:
    """One line: the key, then per record where it is and the values that differ."""
    flat = [
        {**e.record.get("metrics", {}), **{k: v for k, v in measurement(e.record).items() if k != "metrics"}}
        for e in entries
    ]
    differ = sorted(k for k in set().union(*flat) if len({_canonical({"v": f.get(k)}) for f in flat}) > 1)
    head = " ".join(f"{n}={v}" for n, v in zip(LAYER_KEY, key) if n != "protocol" or v is not None)
    parts = [
        f"{', '.join(f'{k}={f.get(k)!r}' for k in differ[:3])} ({e.where}, {_when(e) or 'no timestamp'})"
        for e, f in zip(entries, flat)
    ]
    return f"  {head}: " + " vs ".join(parts)


def merge_ledgers(paths: Sequence[Path | str], *, on_conflict: str = "fail") -> MergeResult:
    entries: list[Entry] = []
    headers: list[tuple[Path, dict[str, Any]]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise MergeError(f"{path}: no such ledger")
        found, heads = read_entries(path)
        for entry in found:
            entry.record = {k: v for k, v in entry.checked(digest=True).items() if k != "digest"}
        entries.extend(found)
        headers.extend((path, h) for h in heads)

    places = [(head, f"{path}/{head.get('file', '')}".rstrip("/")) for path, head in headers]
    hashes: dict[str, set[str]] = {}
    for head, where in places:
        if head.get("plan_hash"):
            hashes.setdefault(head["plan_hash"], set()).add(where)
    for entry in entries:
        if entry.record.get("plan_hash"):
            hashes.setdefault(entry.record["plan_hash"], set())
    if len(hashes) > 1:
        where = "; ".join(f"{h}: {', '.join(sorted(files)) or 'records only'}" for h, files in sorted(hashes.items()))
        raise MergeError(
            f"the inputs come from {len(hashes)} different shard plans ({where}); shards of one run must "
            "use the same selection, --plm-shard K/N with the same N, and the same plugin version"
        )
    versions: dict[str, str] = {}  # version -> the first place it was seen
    for doc, where in [*places, *((e.record, e.where) for e in entries)]:
        if doc.get("plugin_version"):
            versions.setdefault(str(doc["plugin_version"]), where)
    if len(versions) > 1:
        raise MergeError(
            "the inputs were written by different plugin versions: "
            + ", ".join(f"{v} ({where})" for v, where in sorted(versions.items()))
        )

    firsts: dict[str, Entry] = {}
    for entry in entries:
        firsts.setdefault(_canonical(entry.record), entry)
    unique = list(firsts.values())
    by_key: dict[tuple, list[Entry]] = {}
    for entry in unique:
        if entry.record.get("kind") == "layer":
            by_key.setdefault(record_key(entry.record), []).append(entry)
    disagree = {key for key, group in by_key.items() if len({_canonical(measurement(e.record)) for e in group}) > 1}
    conflicts = [_describe_conflict(key, by_key[key]) for key in disagree]
    if conflicts and on_conflict == "fail":
        more = f"\n  ... and {len(conflicts) - _SHOWN} more" if len(conflicts) > _SHOWN else ""
        raise MergeError(
            f"{len(conflicts)} (model, task, layer, init, seed, protocol) key(s) have records with different values; "
            "nothing written. Drop the wrong input, or keep the newest record of each with "
            "--on-conflict newest:\n" + "\n".join(conflicts[:_SHOWN]) + more
        )
    # the newest record of each key (equal timestamps: the later input)
    keep = {id(max(reversed(group), key=_when)) for group in by_key.values()}
    merged = [e.record for e in unique if e.record.get("kind") != "layer" or id(e) in keep]

    plan_header = next((h for _p, h in headers if h.get("plan")), None)
    missing: dict[str, list[tuple[str, int]]] = {}
    if plan_header is not None:
        plan = ShardPlan.from_dict(plan_header["plan"])
        delivered: dict[str, set[tuple[str, int]]] = {}
        for rec in merged:
            if rec.get("kind") == "layer":
                gid = group_id(rec["model"], rec["init"], rec.get("seed"))
                delivered.setdefault(gid, set()).add((rec["task"], rec["layer"]))
        for gid, work in sorted(plan.work.items()):
            if work.unavailable:
                continue
            lacking = sorted(set(work.cases) - delivered.get(gid, set()))
            if lacking:
                missing[gid] = lacking
    superseded = sum(len(group) - 1 for key, group in by_key.items() if key not in disagree)
    return MergeResult(merged, plan_header, len(entries) - len(unique), superseded, missing, conflicts)


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
    """``out``: a ledger directory holding :data:`MERGED_PART` (replaced by a re-merge)."""
    header = dict(result.plan_header) if result.plan_header else part_header()
    header.pop("file", None)
    header.update(shard=None, worker=None, part=MERGED_PART)
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(out)  # a merge killed mid-write left its temp file here
    write_part(out / MERGED_PART, result.records, header)
