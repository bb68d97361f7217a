"""End-of-session lines: the benchmark tests' outcomes, why they skipped (all or some), the
report, and where it went; and the report's files (:func:`write_report`: md, csv, curves, html,
the papers' figures)."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pandas import DataFrame

    from pytest_plmtransfer.report.figures import RenderedFigures

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
    lines = [head, *(f"  {n} x {headline}" for headline, n in counts.most_common(MAX_REASONS))]
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


def write_report(
    frame: DataFrame,
    claims: Any,
    out_dir: Path | str,
    *,
    metric: str | None = None,
    extra_figures: Sequence[Any] = (),
    paper_figures: RenderedFigures | None = None,
) -> dict[str, Any]:
    """Write ``report.md``, ``report.html``, ``results.csv``, the layer curves (PNG and SVG) and
    the papers' figures (``paper_figures``: already drawn, copied rather than drawn again) into
    ``out_dir``; ``extra_figures`` (objects with ``path``, ``svg``, ``title``, ``paper_ref``) join
    the HTML report. Returns the paths written by kind (html, markdown, csv, png, svg, figures)."""
    from pytest_plmtransfer.infra.tempfiles import atomic_write
    from pytest_plmtransfer.report.figures import render_figures
    from pytest_plmtransfer.report.html import write_html
    from pytest_plmtransfer.report.plots import plot_layer_curves
    from pytest_plmtransfer.report.tables import render_markdown, results_table

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = plot_layer_curves(frame, out_dir, metric=metric)
    images = {task: p.name for task, p in pngs.items()}
    md = out_dir / "report.md"
    atomic_write(md, render_markdown(frame, claims, metric=metric, images=images))
    csv = out_dir / "results.csv"
    atomic_write(csv, results_table(frame).to_csv(index=False))
    papers = out_dir / "figures"
    drawn = render_figures(frame, papers) if paper_figures is None else paper_figures.copy_to(papers)
    figures = [*drawn, *extra_figures]
    html = write_html(frame, claims, out_dir / "report.html", curves=pngs, metric=metric, extra_figures=figures)
    svgs = {task: p.with_suffix(".svg") for task, p in pngs.items()}
    return {"html": html, "markdown": md, "csv": csv, "png": pngs, "svg": svgs, "figures": [f.path for f in figures]}


def report_written_lines(written: Mapping[str, object], out_dir: Path, cwd: Path | None = None) -> list[str]:
    """``report written to DIR`` and one line per file, paths relative to ``cwd`` when inside it."""
    cwd = cwd or Path.cwd()

    def show(p: object) -> str:
        path = Path(str(p))
        return os.path.relpath(path, cwd) if path.resolve().is_relative_to(cwd.resolve()) else str(path)

    lines = [f"plmtransfer: report written to {show(out_dir)}/"]
    for kind, value in written.items():
        if isinstance(value, Mapping):  # e.g. one PNG per task
            value = list(value.values())
        paths = value if isinstance(value, (list, tuple)) else [value]
        paths = [p for p in paths if p]
        if paths:
            lines.append(f"  {kind}: " + ", ".join(show(p) for p in paths))
    return lines


@dataclass(eq=False)  # registered with pluggy, which keeps plugins in sets
class BenchmarkOutcomes:
    """The benchmark tests' outcomes, from pytest's own reports (registered as a plugin on the
    controller, which sees every report under xdist too)."""

    skips: list[str] = field(default_factory=list)
    #: benchmark tests with any outcome but a skip
    others: int = 0
    failed_claims: list[str] = field(default_factory=list)
    #: claims given a verdict (passed, failed, or an expected failure): what a gate checked
    judged_claims: int = 0
    #: set when --plm-fail-on-empty (or --plm-gate) turned the run into a failure
    empty_failure: str | None = None

    def pytest_runtest_logreport(self, report) -> None:
        claim = "plm_claim" in report.keywords
        if not ("plm_layer" in report.keywords or claim):
            return
        skipped = report.skipped and not hasattr(report, "wasxfail")
        if skipped:
            self.skips.append(report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr))
        elif report.when == "call" or report.failed:
            self.others += 1
        if claim and report.when == "call":
            self.failed_claims += [report.nodeid.split("::", 1)[-1]] if report.failed else []
            self.judged_claims += 0 if skipped else 1

    def empty_failure_for(self, options) -> str | None:
        """The line that fails a run which measured nothing (--plm-fail-on-empty, --plm-gate),
        or a gate that judged no claim; None when the run stands."""
        if self.skips and not self.others and (options.fail_on_empty or options.gate):
            flag = "--plm-fail-on-empty" if options.fail_on_empty else "--plm-gate"
            self.empty_failure = f"plmtransfer: nothing was measured, and {flag} makes that a failure (exit 1)"
        elif options.gate and not self.judged_claims:
            self.empty_failure = (
                "plmtransfer: --plm-gate judged no claim (none selected, or all skipped); a gate that checked "
                "nothing fails (exit 1)"
            )
        return self.empty_failure


def end_of_run_lines(
    outcomes: BenchmarkOutcomes, stages, *, stopped: bool, started: bool, cwd: Path
) -> list[tuple[str, str]]:
    """The terminal summary's lines as (style, text): style "" plain, "yellow"/"red", or "sep"
    for a section title. ``stages`` is None when no benchmark suite ran; ``stopped``: by SIGTERM,
    ``started``: after the stages were built."""
    out: list[tuple[str, str]] = []
    if stopped and started:
        ledger = stages.recorder.ledger
        done = ledger.records(run_id=ledger.run_id, kind="layer")
        out.append(
            (
                "yellow",
                f"plmtransfer: stopped by SIGTERM; {len(done)} layer result(s) of run {ledger.run_id} are saved in "
                f"{ledger.path} (embeddings and results computed so far are cached: a rerun resumes from them)",
            )
        )
    elif stopped:
        out.append(("yellow", "plmtransfer: stopped by SIGTERM before anything was computed"))
    why = skipped_explanation(outcomes.skips, outcomes.others)
    out += [("yellow", why)] if why else []
    out += [("red", outcomes.empty_failure)] if outcomes.empty_failure else []
    if stages is None:
        return out
    options = stages.options
    out += [("", note) for note in stages.notes]
    failed = outcomes.failed_claims
    if options.update_baselines and failed:
        # a reference run whose claims fail would make every later --plm-gate run fail the same way
        out.append(
            (
                "yellow",
                f"plmtransfer: {len(failed)} claim(s) failed on this reference run "
                f"({', '.join(failed[:3])}{', ...' if len(failed) > 3 else ''}); "
                f"--plm-gate will fail on them too. Fix the model, or declare them in "
                f'{options.baselines_dir / "claims.json"} as "expected_failures" with a reason '
                f"(or drop the claim) after review.",
            )
        )
    if not (options.report or options.report_dir):
        return out
    from pytest_plmtransfer.report.tables import render_text
    from pytest_plmtransfer.results.ledger import records_to_frame
    from pytest_plmtransfer.run.timing import render_timing_text

    ledger = stages.recorder.ledger
    layer_records = ledger.records(run_id=ledger.run_id, kind="layer")
    claim_records = ledger.records(run_id=ledger.run_id, kind="claim")
    layer_frame = records_to_frame(layer_records)
    if layer_frame.empty:
        return [*out, ("", "plmtransfer: no layer results in this run; nothing to report")]
    out.append(("sep", "plmtransfer report"))
    if options.report:
        out.append(("", render_text(layer_frame, claim_records)))
    if options.report_dir:
        written = write_report(layer_frame, claim_records, options.report_dir)
        out += [("", line) for line in report_written_lines(written, options.report_dir, cwd)]
    timing = render_timing_text(layer_records) if options.report else None
    if timing:  # a section of its own: timings change from run to run, the results above do not
        out += [("sep", "plmtransfer time per model"), ("", timing)]
    return out
