"""Checks made once, before any embedding is computed (an hour of computing is lost if its
records cannot be written at the end).

The ledger's directory must be writable and an existing ledger well formed: a damaged one is
reported with its path, left as it is, and the run refused. A cache that cannot be written only
warns: a warm read-only cache still serves what it holds. Stale temp files of killed writers
(infra/tempfiles.py) beside the ledger and in the result cache are swept here too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.tempfiles import make_temp, sweep_stale_temps
from pytest_plmtransfer.tasks.resolve import default_cache_dir

#: free space below which appending to the ledger is refused up front
LEDGER_MIN_FREE = 1 << 20


class PreflightError(PlmTransferError):
    """The ledger (or another place the run must write) cannot be used; one line with the path."""


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def writable_dir(directory: Path) -> str | None:
    """None if files can be created in ``directory`` (or, if it does not exist yet, in its
    nearest existing ancestor), else the reason. Checked by creating and removing a temp file:
    ``os.access`` says yes to root on a directory without write permission."""
    existing = nearest_existing(directory)
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        fd, probe = make_temp(existing / "write-probe")
    except OSError as exc:
        return f"cannot create files in {existing}: {exc.strerror or exc}"
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return None


def check_ledger(path: Path) -> None:
    """Raise :class:`PreflightError` unless records can be appended to the ledger at ``path``."""
    from pytest_plmtransfer.results.ledger import LedgerError, read_records

    what = f"--plm-ledger {path}"
    if path.exists() and not path.is_dir():
        raise PreflightError(f"{what}: not a directory (a ledger is a directory of JSON Lines parts)")
    directory = path if path.is_dir() else path.parent
    problem = writable_dir(directory)
    if problem:
        raise PreflightError(f"{what}: the ledger cannot be written ({problem}); choose another --plm-ledger")
    if path.exists():
        try:
            read_records(path)
        except LedgerError as exc:
            raise PreflightError(
                f"{exc}. The file was left as it is; move it aside, or choose another --plm-ledger"
            ) from None
        except OSError as exc:
            raise PreflightError(f"{what}: cannot be read ({exc.strerror or exc})") from None
    existing = nearest_existing(directory)
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        free = None
    if free is not None and free < LEDGER_MIN_FREE:
        raise PreflightError(
            f"{what}: only {free} bytes free on its filesystem, {LEDGER_MIN_FREE} needed to append to it; "
            "free some space or choose another --plm-ledger"
        )
    if path.is_dir():  # temps of killed writers (a part written whole: merge, unsaved records)
        sweep_stale_temps(path)


def check_cache(cache_dir: Path | None) -> str | None:
    """None if the cache (None: the default one) can be written; else a line for the user (the
    run goes on: a warm read-only cache still serves)."""
    cache_dir = cache_dir or default_cache_dir()
    problem = writable_dir(cache_dir)
    if problem is None:
        results = cache_dir / "results"
        if results.is_dir():
            sweep_stale_temps(results, recursive=True)
        return None
    return (
        f"plmtransfer: the cache {cache_dir} is not writable ({problem}); only embeddings and "
        "results already in it can be used (choose a writable --plm-cache-dir to compute new ones)"
    )
