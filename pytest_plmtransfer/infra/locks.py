"""File locks that do not wait in silence.

The embedding cache, the probe-result cache and the ledger are shared between processes (pytest-xdist
workers, concurrent runs) through file locks. A process that hangs while holding one (a stuck GPU,
a frozen NFS mount, a debugger) used to make every other process wait forever without a word.
:class:`PatientLock` waits ``report_after`` seconds, then says which lock file it is waiting for and
who holds it (pid, host and since when, from a ``<lock>.holder`` note the holder writes), and then
either keeps waiting or gives up with :class:`LockTimeoutError`, per :class:`LockPolicy`.

The holder note is a separate file because filelock truncates the lock file itself on every
attempt; it is informative only (a killed holder leaves it behind, and the next holder overwrites
it), never used to decide who holds the lock — the OS lock does that.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.tempfiles import atomic_write

DEFAULT_REPORT_AFTER = 300.0


class LockTimeoutError(PlmTransferError):
    """A lock was still held by another process after the policy's timeout."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LockPolicy:
    #: seconds of waiting before the holder is reported
    report_after: float = DEFAULT_REPORT_AFTER
    #: after ``report_after``: raise LockTimeoutError instead of waiting on
    fail: bool = False
    #: where the "still waiting" line goes (the plugin writes it past pytest's output capture)
    notify: Callable[[str], None] = field(default=_stderr, compare=False)


def holder_path(lock_file: str | Path) -> Path:
    return Path(str(lock_file) + ".holder")


def read_holder(lock_file: str | Path) -> dict[str, Any] | None:
    try:
        data = json.loads(holder_path(lock_file).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "held by an unknown process (no holder note)"
    since = holder.get("since")
    age = f", for {time.time() - since:.0f} s" if isinstance(since, (int, float)) else ""
    return f"held by pid {holder.get('pid')} on host {holder.get('host')}{age}"


class PatientLock:
    """A context manager around ``filelock.FileLock`` with :class:`LockPolicy` behaviour."""

    def __init__(self, lock_file: str | Path, policy: LockPolicy | None = None, *, what: str = "") -> None:
        self.lock_file = str(lock_file)
        self.policy = policy or LockPolicy()
        self.what = what
        self._lock = FileLock(self.lock_file)

    def acquire(self) -> None:
        try:
            self._lock.acquire(timeout=self.policy.report_after)
        except Timeout:
            message = (
                f"waited {self.policy.report_after:g} s for the lock {self.lock_file}"
                f"{f' ({self.what})' if self.what else ''}, {describe_holder(read_holder(self.lock_file))}"
            )
            if self.policy.fail:
                raise LockTimeoutError(
                    f"{message}; giving up (--plm-lock-fail). If that process is gone or hung, stop it and run again"
                ) from None
            self.policy.notify(f"plmtransfer: {message}; still waiting (--plm-lock-fail gives up instead)")
            self._lock.acquire(timeout=-1)
        if self._lock.lock_counter == 1:  # outermost acquisition: leave a note for waiters
            note = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
            with contextlib.suppress(OSError):
                atomic_write(holder_path(self.lock_file), json.dumps(note))

    def release(self) -> None:
        if self._lock.lock_counter == 1:
            with contextlib.suppress(OSError):
                holder_path(self.lock_file).unlink()
        self._lock.release()

    def __enter__(self) -> PatientLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
