"""``plmtransfer``: reports and comparisons from ledgers, without recomputing anything.

::

    plmtransfer report LEDGER [--out DIR] [--run-id ID | --latest] [--metric M ...]
                       [--figures DIR [--model X ...] [--task T ...] [--init I ...]]
    plmtransfer compare LEDGER_A LEDGER_B [--metric auto|M] [--fail-above 0.02] [--only-diffs]
                        [--outside-interval [--level 0.05]] [--plot OUT.png]
    plmtransfer compare LEDGER --model X --model Y [--plot OUT.png]
    plmtransfer show LEDGER
    plmtransfer paper LEDGER [--baselines DIR] [--tolerance 0.05] [--all]
    plmtransfer merge LEDGER... --out DIR [--allow-missing] [--on-conflict fail|newest]

A LEDGER is a ledger directory (JSON Lines parts, what pytest and ``merge`` write) or one part.

Exit status: 0 fine; 1 ``compare`` found a difference above ``--fail-above`` (or, with
``--fail-above``, nothing to compare), or ``paper`` found a number outside tolerance; 2 usage or
input errors (missing or unreadable ledger, unknown run id).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import pandas as pd

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.report.merge import ON_CONFLICT
from pytest_plmtransfer.results.aggregate import latest_run, select_runs
from pytest_plmtransfer.results.ledger import load_ledger


class CliError(PlmTransferError):
    pass


def _ledger_path(raw: str) -> Path:
    path = Path(raw)
    if not path.exists():
        raise CliError(f"{path}: no such ledger (directory or part)")
    return path


def _load(
    path: Path, run_id: str | None = None, latest: bool = False, out: TextIO | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    layers = load_ledger(path, kind="layer")
    claims = load_ledger(path, kind="claim")
    if latest and out is not None and not layers.empty:
        out.write(latest_run(layers)[1] + "\n")  # which run, and a fuller earlier one
    if run_id is not None or latest:
        layers = select_runs(layers, run_id=run_id, latest=latest)
        if layers.empty and run_id is not None:
            claims = claims[claims["run_id"] == run_id]
        else:
            claims = claims[claims["run_id"].isin(set(layers["run_id"]))]
    return layers, claims


# --------------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_plmtransfer.report.figures import render_figures
    from pytest_plmtransfer.report.tables import render_tables_text, render_text

    path = _ledger_path(args.ledger)
    layers, claims = _load(path, args.run_id, args.latest, out)
    if layers.empty and claims.empty:
        out.write(f"{path}: no records{' for that run' if args.run_id or args.latest else ''}\n")
        return 0
    metrics = args.metric or [None]
    out.write("".join(render_tables_text(layers, metric=m) + "\n" for m in metrics[:-1]))
    out.write(render_text(layers, claims, metric=metrics[-1]))
    filters = dict(models=args.model, tasks=args.task, inits=args.init, metrics=args.metric)
    figs = render_figures(layers, args.figures, **filters) if args.figures else None
    if args.out:
        from pytest_plmtransfer.report.summary import report_written_lines, write_report

        # unfiltered, they are the very figures --out draws: drawn once, copied there
        same = figs is not None and not layers.empty and not any(filters.values())
        written = write_report(layers, claims, args.out, metric=metrics[0], paper_figures=figs if same else None)
        out.write("\n" + "\n".join(report_written_lines(written, args.out)) + "\n")
    if figs is not None:
        out.write(f"\nwrote {len(figs)} figure(s) (PNG, SVG beside) to {args.figures}:\n")
        out.write("".join(f"  {f.path.name}: {f.paper_ref}\n" for f in figs))
        out.write("".join(f"  not drawn: {line}\n" for line in figs.skipped))
    return 0


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_plmtransfer.judge.baselines import LedgerComparison

    metric = None if args.metric == "auto" else args.metric
    if args.model:
        from pytest_plmtransfer.report.plots import compare_models

        if args.ledger_b is not None:
            raise CliError("--model compares two models of one ledger: give one ledger")
        return compare_models(_ledger_path(args.ledger_a), args.model, args.plot, out, metric=metric)
    if args.ledger_b is None:
        raise CliError("give two ledgers, or one ledger and --model X --model Y")
    pa, pb = _ledger_path(args.ledger_a), _ledger_path(args.ledger_b)
    cmp = LedgerComparison.of(
        load_ledger(pa, kind="layer"),
        load_ledger(pb, kind="layer"),
        args.metric,
        args.fail_above,
        args.outside_interval,
        args.level,
    )
    out.write(cmp.format(pa, pb, only_diffs=args.only_diffs))
    if args.plot:
        from pytest_plmtransfer.report.plots import compare_ledgers_plot

        compare_ledgers_plot(pa, pb, args.plot, out, metric=metric)
    return cmp.exit_status


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_plmtransfer.results.ledger import describe_ledger

    out.write(describe_ledger(_ledger_path(args.ledger)))
    return 0


def cmd_paper(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_plmtransfer.judge.baselines import BaselineStore
    from pytest_plmtransfer.judge.paper import run_paper

    path = _ledger_path(args.ledger)
    store = BaselineStore(args.baselines)
    ref = store.paper()
    if ref is None:
        raise CliError(f"no paper reference at {store.paper_path}")
    layers, _ = _load(path, args.run_id, args.latest, out)
    return run_paper(path, ref, layers, args.tolerance, out, show_all=args.all)


def cmd_merge(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_plmtransfer.report.merge import describe_missing, merge_ledgers, write_merged

    _check_merge_out(args.out)
    result = merge_ledgers([_ledger_path(p) for p in args.ledgers], on_conflict=args.on_conflict)
    if result.missing and not args.allow_missing:
        raise CliError(
            f"{len(result.missing)} group(s) of the shard plan were not delivered by any shard "
            f"(nothing written to {args.out}); rerun their shards:\n" + describe_missing(result)
        )
    write_merged(result, args.out)
    out.write(
        f"wrote {args.out}: {len(result.records)} record(s) from {len(args.ledgers)} ledger(s); "
        f"{result.duplicates} exact duplicate(s) dropped, {result.superseded} re-run record(s) with the same "
        f"values superseded by the newest"
        + (f", {len(result.conflicts)} conflict(s) settled by --on-conflict newest" if result.conflicts else "")
        + "\n"
    )
    if result.conflicts:
        out.write("conflicts (the newest record of each kept):\n" + "\n".join(result.conflicts) + "\n")
    if result.missing:
        out.write("missing (--allow-missing):\n" + describe_missing(result) + "\n")
    return 0


def _check_merge_out(out: Path) -> None:
    """--out is a new directory or an earlier merge's output (its part is replaced), never
    anything else: not a file, not a ledger that parts would be mixed into."""
    from pytest_plmtransfer.report.merge import MERGED_PART
    from pytest_plmtransfer.results.ledger import read_records

    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise CliError(f"{out}: exists and is not a directory; --out writes a new ledger directory")
    others = sorted(p.name for p in out.iterdir() if p.name != MERGED_PART and not p.name.startswith("."))
    try:
        read_records(out)
    except PlmTransferError:
        others = others or [MERGED_PART]
    if others:
        raise CliError(f"{out}: holds {', '.join(others)}, not only an earlier merge's output; refusing to write there")


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_plmtransfer.report.scaffold import next_steps, scaffold

    target = Path(args.directory)
    written = scaffold(target, args.model, force=args.force, hf=args.hf)
    for path in written:
        out.write(f"wrote {path}\n")
    out.write(next_steps(args.model, args.hf, wrote_ini=target / "pytest.ini" in written) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plmtransfer",
        description="Reports and comparisons from pytest-plmtransfer ledgers (nothing is recomputed), "
        "and `init` to scaffold a repository that gates a new PLM.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("report", help="per-task layer tables and claim outcomes; --out writes md/csv/png")
    p.add_argument("ledger", help="a ledger: the directory pytest writes (.plmtransfer/ledger) or merge's")
    p.add_argument("--out", type=Path, help="directory for report.md, results.csv and layer-curve PNGs")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--run-id", help="only the records of this run")
    runs.add_argument(
        "--latest",
        action="store_true",
        help="only the records of the most recent run (it says which, and names a fuller one)",
    )
    p.add_argument(
        "--metric",
        action="append",
        help="metric shown in the tables and figures, repeatable (default: each task's test metric in the tables, "
        "the workshop paper's NDCG / ROC-AUC in the figures)",
    )
    p.add_argument("--figures", type=Path, help="directory for every paper figure the records allow (PNG and SVG)")
    for flag in ("model", "task", "init"):
        p.add_argument(f"--{flag}", action="append", help=f"figures: only this {flag} (repeatable; one-hot stays)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "compare",
        help="per-(model, task, init, layer) differences between two ledgers (runs), or two models of one ledger",
    )
    p.add_argument("ledger_a")
    p.add_argument("ledger_b", nargs="?", help="the second ledger (omit with --model X --model Y)")
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="twice: compare these two models of LEDGER_A (their best layers per task, and --plot)",
    )
    p.add_argument("--plot", type=Path, metavar="OUT.png", help="draw both sides' layer curves (PNG, SVG beside it)")
    p.add_argument(
        "--metric",
        default="auto",
        help="metric to compare, e.g. test_spearman (default 'auto': each record's test metric)",
    )
    p.add_argument("--fail-above", type=float, default=None, metavar="X", help="exit 1 when any |B - A| exceeds X")
    p.add_argument("--only-diffs", action="store_true", help="list only rows above --fail-above")
    p.add_argument(
        "--outside-interval",
        action="store_true",
        help="flag a row only when |B - A| is also outside the bootstrap noise "
        "z*sqrt(se_A^2 + se_B^2) of the records' intervals (rows without intervals: threshold only)",
    )
    p.add_argument(
        "--level",
        type=float,
        default=0.05,
        help="two-sided level of the noise band for --outside-interval (default 0.05: z=1.96)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("show", help="schema, record counts and runs of a ledger")
    p.add_argument("ledger")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("init", help="scaffold a repository that gates a new PLM in CI")
    p.add_argument("directory", nargs="?", default=".", help="where to write (default: here)")
    p.add_argument("--model", default="my_plm", help="the model's name (default my_plm)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument(
        "--hf",
        metavar="DIR_OR_REPO",
        help="a Hugging Face model: no model code is written, pytest.ini declares MODEL=hf:DIR_OR_REPO",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("paper", help="the authors' results table beside a ledger's numbers (protocol authors)")
    p.add_argument("ledger")
    p.add_argument("--baselines", type=Path, default=Path("baselines"), help="baseline root (default baselines/)")
    p.add_argument("--tolerance", type=float, default=None, help="override the reference file's tolerance")
    p.add_argument("--all", action="store_true", help="list every reference value, also those the ledger lacks")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--run-id")
    runs.add_argument("--latest", action="store_true")
    p.set_defaults(func=cmd_paper)

    p = sub.add_parser("merge", help="combine the ledgers of the shards of one run into one ledger")
    p.add_argument("ledgers", nargs="+", help="ledger directories or parts (one per shard, or one holding all)")
    p.add_argument("--out", type=Path, required=True, help="the merged ledger directory to write")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="write even if some groups of the plan were not delivered (they are listed)",
    )
    p.add_argument(
        "--on-conflict",
        choices=ON_CONFLICT,
        default="fail",
        help="records of one (model, task, layer, init, seed, protocol) with different values: 'fail' lists them and "
        "writes nothing (default); 'newest' keeps the newest of each and lists them",
    )
    p.set_defaults(func=cmd_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, sys.stdout))
    except PlmTransferError as exc:
        print(f"plmtransfer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable file, directory given as a ledger, ...
        print(f"plmtransfer {args.command}: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
