"""Do two ledgers hold the same measurements, record for record?

    python tools/same_numbers.py BEFORE_LEDGER AFTER_LEDGER [--moved BEFORE_DIR AFTER_DIR ...]

For a refactoring that must change no number: every layer and claim record of one ledger has a
partner of the same key in the other, and the two agree on everything but the fields that differ
between any two runs of the same work (time, host, run bookkeeping, cache state, timings:
``results.records.measurement``). ``--moved``: a directory the first run read from (a checkout
whose baselines files claim messages name, a data directory records name) and the second run's
place for it; the first is read as the second (repeatable). Exit 0 when they agree; otherwise each
difference, one per line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from pytest_plmtransfer.results.ledger import read_records, record_key
from pytest_plmtransfer.results.records import measurement

#: differs between runs of the same work, beside results.records.RUN_SPECIFIC_FIELDS
VOLATILE = ("plugin_version",)


def keyed(path: str, moved: Sequence[Sequence[str]] = ()) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for rec in read_records(path, verify=True):
        text = json.dumps(rec)
        for old, new in moved:
            text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
        rec = json.loads(text)
        if rec["kind"] == "layer":
            key: tuple = ("layer", *record_key(rec))
        else:
            key = ("claim", rec["claim_id"], rec["model"], rec["task"], rec["init"], rec["protocol"])
        if key in out:
            raise SystemExit(f"{path}: two records of {key}")
        out[key] = {k: v for k, v in measurement(rec).items() if k not in VOLATILE}
    return out


def differences(before: dict[tuple, dict], after: dict[tuple, dict]) -> list[str]:
    lines = [f"only in before: {k}" for k in before.keys() - after.keys()]
    lines += [f"only in after: {k}" for k in after.keys() - before.keys()]
    for key in sorted(before.keys() & after.keys(), key=str):
        a, b = before[key], after[key]
        for field in sorted(a.keys() | b.keys()):
            if a.get(field) != b.get(field):
                lines.append(f"{key} {field}: {a.get(field)!r} != {b.get(field)!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--moved", nargs=2, action="append", default=[], metavar=("BEFORE_DIR", "AFTER_DIR"))
    args = parser.parse_args(argv)
    before, after = keyed(args.before, args.moved), keyed(args.after)
    for path, records in ((args.before, before), (args.after, after)):
        if not records:  # a mistyped path must not read as "the same"
            parser.error(f"{path}: no ledger records there")
    found = differences(before, after)
    print("\n".join(found) if found else f"same: {len(before)} records, every measured field equal")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
