"""Benchmark: ``pytest benchmarks --plm-suite icml --plm-inits random --collect-only``.

Run explicitly (it is not part of ``tests/``; it builds models in the "before" tree)::

    PLMTRANSFER_BEFORE_TREE=/path/to/checkout-of-85ee8b0 python -m pytest perf/test_collect_only.py -s -p no:cacheprovider

Each side runs in a fresh interpreter with its own ``PYTHONPATH`` (this checkout; the "before"
checkout of commit 85ee8b0, which built every selected model to read its layer count) and one
torch/BLAS thread, and reports its wall time and its peak RSS (``ru_maxrss`` of the child). Both
collect the same test ids (asserted). Without ``PLMTRANSFER_BEFORE_TREE`` only "after" is
measured. The wall-time ratio and both peak RSS figures go into ``benchmark.extra_info``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
COMMAND = [
    "benchmarks",
    "--plm-suite",
    "icml",
    "--plm-inits",
    "random",
    "--collect-only",
    "-q",
    "-p",
    "no:cacheprovider",
]
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

#: runs pytest in a child and prints "<seconds> <peak RSS KiB>" of that child
_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run([sys.executable, "-m", "pytest", *sys.argv[2:]], cwd=sys.argv[1],
                      capture_output=True, text=True)
seconds = time.perf_counter() - start
sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
ids = sorted(line for line in proc.stdout.splitlines() if "::test_" in line)
print(seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, proc.returncode, len(ids), hash(tuple(ids)))
"""


def measure(tree: Path) -> dict[str, float]:
    env = {**os.environ, **THREADS, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(tree), *COMMAND], env=env, capture_output=True, text=True, check=True
    )
    seconds, rss_kib, code, n_ids, ids_hash = out.stdout.split()
    assert int(code) == 0, f"collection failed in {tree}:\n{out.stderr}"
    return {"seconds": float(seconds), "peak_rss_mib": int(rss_kib) / 1024, "tests": int(n_ids), "ids": ids_hash}


def test_collect_only_icml_random(benchmark):
    before_tree = os.environ.get("PLMTRANSFER_BEFORE_TREE")
    before = measure(Path(before_tree)) if before_tree else None
    after = benchmark.pedantic(measure, args=(HERE,), rounds=1, iterations=1)
    benchmark.extra_info.update(
        after_seconds=after["seconds"], after_peak_rss_mib=after["peak_rss_mib"], tests=after["tests"]
    )
    line = f"after: {after['seconds']:.1f} s, peak RSS {after['peak_rss_mib']:.0f} MiB, {after['tests']} tests"
    if before is not None:
        assert before["tests"] == after["tests"] and before["ids"] == after["ids"], (before, after)
        benchmark.extra_info.update(
            before_seconds=before["seconds"],
            before_peak_rss_mib=before["peak_rss_mib"],
            speedup=before["seconds"] / after["seconds"],
            rss_ratio=before["peak_rss_mib"] / after["peak_rss_mib"],
        )
        line += (
            f"; before: {before['seconds']:.1f} s, peak RSS {before['peak_rss_mib']:.0f} MiB "
            f"(x{before['seconds'] / after['seconds']:.1f} time, x{before['peak_rss_mib'] / after['peak_rss_mib']:.1f} RSS)"
        )
    print("\n" + line)


if __name__ == "__main__":  # pragma: no cover - quick manual run
    for tree in [Path(p) for p in sys.argv[1:]] or [HERE]:
        start = time.perf_counter()
        print(tree, measure(tree))
