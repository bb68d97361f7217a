"""End-of-session lines: why benchmark tests skipped (all or some), and where the report went."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

#: how many distinct skip reasons are printed before "and N more"
MAX_REASONS = 5


def _headline(reason: str) -> str:
    """The first sentence of a skip reason, without the task it names (so tasks of one archive
    group together)."""
    first = reason.split(". ", 1)[0].split("\n", 1)[0]
    return re.sub(r"\s*\(task [^)]*\)", "", first).strip()


def skipped_explanation(skip_reasons: Iterable[str], others: int) -> str | None:
    """One block when benchmark tests skipped, grouped by reason (``others`` counts the benchmark
    tests with any other outcome): pytest lists skip reasons only under ``-rs``, and a run where
    only some skipped looks complete without it. None when none skipped."""
    reasons = [r.removeprefix("Skipped: ").strip() for r in skip_reasons]
    if not reasons:
        return None
    counts = Counter(_headline(r) for r in reasons)
    full = {_headline(r): r for r in reversed(reasons)}  # the first full message of each headline
    if others:
        head = f"plmtransfer: {len(reasons)} of {len(reasons) + others} benchmark test(s) skipped. Why:"
    else:
        head = f"plmtransfer: all {len(reasons)} benchmark test(s) skipped, so nothing was measured. Why:"
    lines = [head]
    for headline, n in counts.most_common(MAX_REASONS):
        lines.append(f"  {n} x {headline}")
    if len(counts) > MAX_REASONS:
        lines.append(f"  ... and {len(counts) - MAX_REASONS} more reason(s) (see -rs)")
    top = full[counts.most_common(1)[0][0]]
    if top != counts.most_common(1)[0][0]:
        lines.append(f"  the first in full: {top}")
    text = " ".join(reasons)
    hints = []
    if "splits.zip" in text or "FLIP" in text:
        hints.append(
            "FLIP data: --plm-data-dir=DIR (a FLIP checkout's root, or PLMTRANSFER_DATA), "
            "or let it download (no --plm-offline)"
        )
    if ".pt" in text or "checkpoint" in text or "weights" in text:
        hints.append("weights: --plm-weights-dir=DIR holding <name>.pt, or let the library download them")
    if "baseline" in text:
        hints.append("baselines: run once with --plm-update-baselines and commit baselines/")
    hints.append("--plm-strict (or --plm-gate) makes a missing input an error instead of a skip")
    lines.append("To run them: " + "; ".join(hints) + ".")
    return "\n".join(lines)


def report_written_lines(written: Mapping[str, object], out_dir: Path, cwd: Path | None = None) -> list[str]:
    """``report written to DIR`` and one line per file, paths relative to ``cwd`` when inside it."""
    cwd = cwd or Path.cwd()

    def show(p: object) -> str:
        path = Path(str(p))
        try:
            return os.path.relpath(path, cwd) if path.resolve().is_relative_to(cwd.resolve()) else str(path)
        except ValueError:
            return str(path)

    lines = [f"plmtransfer: report written to {show(out_dir)}/"]
    for kind, value in written.items():
        if isinstance(value, Mapping):  # e.g. one PNG per task
            value = list(value.values())
        paths = value if isinstance(value, (list, tuple)) else [value]
        paths = [p for p in paths if p]
        if paths:
            lines.append(f"  {kind}: " + ", ".join(show(p) for p in paths))
    return lines
