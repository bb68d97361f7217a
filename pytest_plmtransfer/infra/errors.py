"""Exceptions with messages a user can act on."""

from __future__ import annotations


class PlmTransferError(Exception):
    """Base class for every error this package raises on purpose."""


class InputError(PlmTransferError, ValueError):
    """Bad input data: the message names the file, the row and the problem."""

    def __init__(self, problem: str, *, path: object = None, row: object = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if row is not None:
            where.append(f"row {row}")
        self.path = path
        self.row = row
        self.problem = problem
        super().__init__(f"{': '.join(where)}: {problem}" if where else problem)


class BaselineError(PlmTransferError):
    """A stored baseline or the authors' reference table is unreadable or malformed."""


class ResourceUnavailable(PlmTransferError):
    """Data or weights are not present locally and cannot be downloaded.

    ``instructions`` says exactly what to download and where to put it; the plugin turns this
    into a skip (or, with ``--plm-strict``, an error).
    """

    def __init__(self, what: str, instructions: str) -> None:
        self.what = what
        self.instructions = instructions
        super().__init__(f"{what} is not available: {instructions}")
