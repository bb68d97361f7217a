"""Benchmark: the cost of appending one record to a ledger that holds 100 vs 10,000 records.

Run explicitly (it is not part of ``tests/``)::

    python -m pytest perf/test_ledger_append.py -s -p no:cacheprovider

"before" is the single-file ledger of commit 85ee8b0, whose ``Ledger.append`` is copied verbatim
below (:class:`SingleFileLedger`): under a file lock it re-reads the whole JSON file and rewrites
it atomically (temp file, fsync, rename) for every record. "after" is
:class:`pytest_plmtransfer.results.ledger.Ledger`: one ``write`` of one line to the process's own JSON
Lines part. Records are realistic layer records (:func:`pytest_plmtransfer.testing.layer_record`,
about 1.3 kB each). Each ledger is pre-filled to 99 / 9,999 records, then record 100 / 10,000 is
timed; the four cases are interleaved round by round (the machine is shared) and the medians
compared. ``benchmark`` times the after-side append at 10,000; the ratios are in ``extra_info``.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_plmtransfer.results.ledger import Ledger
from pytest_plmtransfer.testing import synthetic_records

ROUNDS = 15
SIZES = (100, 10_000)


# ----------------------------------------------------------- before: commit 85ee8b0, verbatim
def _old_read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    doc = json.loads(path.read_text(encoding="utf-8"))
    return list(doc["records"]) if isinstance(doc, dict) else [{"kind": "layer", **r} for r in doc]


def _old_atomic_write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SingleFileLedger:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")

    def append(self, records) -> None:
        new = list(records)
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            existing = _old_read_records(self.path)
            _old_atomic_write_json(self.path, {"schema_version": 2, "records": existing + new})


# ----------------------------------------------------------- the measurement
def _records(n: int) -> list[dict[str, Any]]:
    base = synthetic_records(models={"tiny_esm": 32}, tasks=["gb1_sampled"], inits=["random"], seeds=[1, 2, 3])
    return [dict(r, layer=i) for i, r in zip(range(n), itertools.cycle(base))]


def _prefilled(kind: str, root: Path, n: int):
    records = _records(n - 1)
    if kind == "before":
        ledger = SingleFileLedger(root / f"before-{n}.json")
        _old_atomic_write_json(ledger.path, {"schema_version": 2, "records": records})
    else:
        ledger = Ledger(root / f"after-{n}", run_id="bench")
        ledger.append(records)
    return ledger


def _time_append(ledger, record) -> float:
    start = time.perf_counter()
    ledger.append([record])
    return time.perf_counter() - start


def test_ledger_append_cost_does_not_grow(benchmark, tmp_path):
    record = _records(1)[0]
    ledgers = {(kind, n): _prefilled(kind, tmp_path, n) for kind in ("before", "after") for n in SIZES}
    times: dict[tuple[str, int], list[float]] = {key: [] for key in ledgers}
    for _ in range(ROUNDS):  # interleaved: each round times all four once
        for key, ledger in ledgers.items():
            times[key].append(_time_append(ledger, record))
    median = {key: statistics.median(v) for key, v in times.items()}
    ratio_after = median[("after", 10_000)] / median[("after", 100)]
    ratio_before = median[("before", 10_000)] / median[("before", 100)]
    benchmark.pedantic(ledgers[("after", 10_000)].append, args=([record],), rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        {f"{kind}_{n}_ms": round(m * 1e3, 3) for (kind, n), m in median.items()},
        ratio_after_10000_vs_100=round(ratio_after, 2),
        ratio_before_10000_vs_100=round(ratio_before, 1),
        before_over_after_at_10000=round(median[("before", 10_000)] / median[("after", 10_000)], 1),
    )
    print(
        f"\nappend record 10,000 vs 100: after x{ratio_after:.2f} "
        f"({median[('after', 100)] * 1e3:.3f} -> {median[('after', 10_000)] * 1e3:.3f} ms); "
        f"before x{ratio_before:.0f} ({median[('before', 100)] * 1e3:.1f} -> {median[('before', 10_000)] * 1e3:.1f} ms)"
    )
    assert ratio_after < 3, f"append cost grows with the ledger: x{ratio_after:.2f}"
    assert ratio_before > ratio_after
