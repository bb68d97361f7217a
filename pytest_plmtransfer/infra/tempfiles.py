"""Temp files that say who wrote them, respect the umask, and are swept when their writer died.

Every file this package writes through a temp file (cache layers, manifests, probe results, the
ledger, downloads) is created by :func:`make_temp` in the target's directory, named
``.<name>.<host>.<pid>.<random><suffix>``. A ``kill -9`` leaves such a file behind;
:func:`sweep_stale_temps` removes it on a later run when its writer is certainly gone: the pid no
longer exists on this host, or (for writers on other hosts sharing the directory, whose pids we
cannot check) the file has not been modified for ``max_age`` seconds.

``tempfile.mkstemp`` creates files with mode 0600 whatever the umask, which makes a shared cache or
ledger unreadable to teammates once renamed into place; :func:`make_temp` gives the file the mode
an ordinary ``open()`` would (0666 minus the umask).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

#: temp files of writers on other hosts are removed once untouched this long (seconds)
DEFAULT_MAX_AGE = 24 * 3600.0
_HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
# .<name>.<host>.<pid>.<random><suffix>; <name> may contain dots, the host has none
_TEMP = re.compile(
    r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.(?P<rand>[A-Za-z0-9_]+)(?P<suffix>\.[A-Za-z0-9.]+)$"
)


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic dance (not thread-safe, done rarely)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0666 minus the umask."""
    return 0o666 & ~current_umask()


def make_temp(target: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create ``.<target name>.<host>.<pid>.<random><suffix>`` beside ``target``; returns the open
    descriptor and the path. The file has the umask's mode, not mkstemp's 0600."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{_HOST}.{os.getpid()}.", suffix=suffix, dir=target.parent)
    with contextlib.suppress(OSError):  # e.g. a filesystem without modes; the file is still usable
        os.fchmod(fd, default_file_mode())
    return fd, Path(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(path: Path, *, max_age: float = DEFAULT_MAX_AGE, now: float | None = None) -> bool:
    """True if ``path`` is one of our temp files whose writer is gone (see the module doc)."""
    match = _TEMP.match(path.name)
    if match is None:
        return False
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    if match["host"] == _HOST and int(match["pid"]) != os.getpid():
        return not _pid_alive(int(match["pid"])) or age > max_age
    return age > max_age


def sweep_stale_temps(directory: Path, *, max_age: float = DEFAULT_MAX_AGE, recursive: bool = False) -> list[Path]:
    """Remove the stale temp files (see :func:`is_stale`) in ``directory``; returns what went."""
    removed: list[Path] = []
    try:
        candidates = directory.rglob(".*") if recursive else directory.glob(".*")
        for path in candidates:
            if path.is_file() and is_stale(path, max_age=max_age):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    except OSError:  # an unreadable or vanished directory: nothing to sweep
        pass
    return removed


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is down: a full disk first writes short, then raises ENOSPC;
    a write that makes no progress is treated as that error, never as done."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _not_regular(path: Path) -> OSError:
    return OSError(errno.EEXIST, "is a link or not a regular file; refusing to write through or over it", str(path))


def open_append(path: Path) -> int:
    """Open ``path`` for appending (and reading back), created if absent, never through a symbolic link planted at
    it (``O_NOFOLLOW``) and only if it is a regular file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_regular(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device would block or swallow records
        os.close(fd)
        raise _not_regular(path)
    return fd


def atomic_write(path: Path, data: str | bytes | Callable[[BinaryIO], None]) -> None:
    """Every file this package writes whole goes through here: written to a temp file beside
    ``path`` (``data``: text, bytes, or a function writing to the open file), fsync'd, then
    renamed over ``path``. Something other than a regular file at ``path`` (a planted link, a
    directory) is refused; an error names ``path``, not the temp file, and leaves no temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise _not_regular(path)
    fd, tmp = make_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename != str(path):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


def json_default(obj: Any) -> Any:
    """JSON for what records, results and baselines hold besides plain values: numpy scalars,
    paths, typed records (``to_dict``)."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot store {type(obj).__name__} as JSON")


def atomic_write_json(path: Path, doc: Any) -> None:
    """``doc`` as indented JSON through :func:`atomic_write`."""
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=False, default=json_default) + "\n")
