"""Disk space for cache entries: check before computing, reserve before writing.

A layer file is written through a memory map. On a full filesystem a store into a memory-mapped
page that has no disk block behind it does not raise: the kernel sends SIGBUS and the whole pytest
process dies ("Fatal Python error: Bus error") with no summary and no ledger. So the store

1. checks the free space for the entry's estimated size before running the model
   (:func:`check_free_space`), failing with a message that says how much is needed, where, and how
   to need less; and
2. reserves every layer file's blocks before the first store into its map (:func:`preallocate`):
   ``posix_fallocate``, or ordinary zero writes where the filesystem cannot, so that running out of
   space (a concurrent writer, a quota) is an ``OSError(ENOSPC)`` raised by a system call, never a
   signal.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np

from pytest_plmtransfer.infra.errors import PlmTransferError

#: errno values that mean "no room": disk full, quota exceeded, file too large
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: what an .npy header may take (numpy pads it to a multiple of 64; 128 in practice)
NPY_HEADER_BYTES = 4096
#: left free beside an entry so that manifests, results and the ledger can still be written
RESERVE_BYTES = 1 << 20
_ZERO_CHUNK = 1 << 22


class CacheSpaceError(PlmTransferError):
    """Not enough disk space for an embedding cache entry."""


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def layer_bytes(n_rows: int, dim: int, dtype: np.dtype | str) -> int:
    """Upper bound of one layer file's size."""
    return NPY_HEADER_BYTES + int(n_rows) * int(dim) * np.dtype(dtype).itemsize


def free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def is_out_of_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in OUT_OF_SPACE_ERRNOS


def space_message(directory: Path, needed: int, free: int | None, what: str) -> str:
    have = f"{format_bytes(free)} free" if free is not None else "the filesystem ran out of space"
    return (
        f"not enough disk space for {what} in the embedding cache {directory}: needs "
        f"{format_bytes(needed)}, {have}. Choose a cache on a bigger disk with --plm-cache-dir "
        "(or PLMTRANSFER_CACHE), probe fewer layers with --plm-layers, or store embeddings as "
        "float16 with --plm-cache-dtype float16 (half the size)"
    )


def check_free_space(directory: Path, needed: int, what: str, *, shown: Path | None = None) -> None:
    """Raise :class:`CacheSpaceError` unless ``needed`` bytes (+ a reserve) are free in
    ``directory``; the message names ``shown`` (the cache root) or ``directory``."""
    try:
        free = free_bytes(directory)
    except OSError:
        return  # cannot tell (e.g. an exotic mount): the preallocation still catches it
    if free < needed + RESERVE_BYTES:
        raise CacheSpaceError(space_message(shown or directory, needed, free, what))


def preallocate(path: Path, size: int, data_offset: int = 0) -> None:
    """Give ``path`` real disk blocks for its first ``size`` bytes; ENOSPC raises OSError.

    ``data_offset``: where the (still unwritten) data starts; the bytes before it (the .npy
    header) are kept when zeros have to be written instead of ``posix_fallocate``."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        except AttributeError:  # pragma: no cover - no posix_fallocate (macOS, Windows)
            pass
        # the filesystem cannot reserve: write zeros over the range (the data comes later)
        os.lseek(fd, data_offset, os.SEEK_SET)
        left = size - data_offset
        zeros = bytes(min(_ZERO_CHUNK, max(left, 0)))
        while left > 0:
            left -= os.write(fd, zeros[: min(left, len(zeros))])
        os.fsync(fd)
    finally:
        os.close(fd)
