"""The progress line shown while a model embeds a task: model, init, task, sequences/s, ETA.

Pytest captures a test's output, so a bar written from inside a test would never be seen. The
plugin hands :class:`ProgressLine` a stream that writes with capture suspended (pytest's capture
manager) to the real terminal; the bar is drawn on the line below pytest's ``file.py ...`` line
and erased when the model is done (``leave=False``); on a terminal the cursor then goes back to
the end of pytest's line, so its dots continue there.

On by default when the terminal is interactive, off under ``-q``, when ``CI`` is set, when output
is not a terminal, and in xdist workers; ``--plm-progress`` forces it on, ``--plm-no-progress`` off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO


def progress_enabled(mode: str, *, interactive: bool, verbosity: int, worker: bool, env=os.environ) -> bool:
    """``mode``: "on", "off" or "auto" (interactive, not -q, not CI, not an xdist worker)."""
    if mode in ("on", "off"):
        return mode == "on"
    return interactive and verbosity >= 0 and not worker and not env.get("CI")


@dataclass(eq=False)
class UncapturedStream:
    """A file-like object that writes past pytest's capture, to the terminal.

    ``suspend`` is a context manager factory that lifts capture (pytest's
    ``CaptureManager.global_and_fixture_disabled``); ``before_first_write`` starts a fresh line
    so the bar does not overwrite pytest's own progress output.
    """

    target: TextIO
    suspend: Callable[[], Any]
    before_first_write: Callable[[], None] | None = None
    after_last_write: Callable[[], None] | None = None
    written: bool = False

    def write(self, text: str) -> int:
        with self.suspend():
            if not self.written and self.before_first_write is not None:
                self.before_first_write()
            self.written = True
            self.target.write(text)
            self.target.flush()
        return len(text)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        """After the bar is erased: hand the line back to pytest (``after_last_write``)."""
        if self.written and self.after_last_write is not None:
            with self.suspend():
                self.after_last_write()
                self.target.flush()

    def isatty(self) -> bool:  # tqdm checks it for dynamic width
        return bool(getattr(self.target, "isatty", lambda: False)())


@dataclass(eq=False)
class ProgressLine:
    """Opens one tqdm bar per embedding pass on a stream from ``stream_factory``."""

    stream_factory: Callable[[], Any]

    @contextmanager
    def bar(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        from tqdm import tqdm

        stream = self.stream_factory()
        bar = tqdm(total=total, desc=label, unit="seq", leave=False, mininterval=0.5, file=stream, dynamic_ncols=True)
        try:
            yield bar.update
        finally:
            bar.close()
            if hasattr(stream, "finish"):
                stream.finish()


@dataclass(eq=False)
class CountingAdapter:
    """Wraps an adapter so that an embedding pass shows a progress line (only when the model
    actually runs: a cache hit never calls ``embed``). Everything else is the wrapped adapter's."""

    _adapter: Any
    _progress: ProgressLine
    _label: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def embed(self, sequences, layers, *, per_residue):
        with self._progress.bar(self._label, len(sequences)) as advance:
            for batch in self._adapter.embed(sequences, layers, per_residue=per_residue):
                advance(len(batch.indices))
                yield batch
