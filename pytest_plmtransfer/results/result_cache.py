"""Cached probe results, checked before they are trusted.

One file per result key, ``<root>/<key[:2]>/<key>.json``::

    {"result_format": 2, "sha256": "<hex>", "result": {"metrics": ..., "head": ..., ...}}

``sha256`` is taken over the canonical JSON of ``result`` (:func:`payload_digest`), so that an
edited value, a truncated file or a bit flip is noticed: such an entry is reported with a
:class:`CachedResultWarning` and recomputed, never reported as a measurement. More fields can join
``result`` without changing the format.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.hashing import payload_digest, plain_json
from pytest_plmtransfer.infra.locks import LockPolicy, PatientLock
from pytest_plmtransfer.infra.tempfiles import atomic_write_json

RESULT_FORMAT = 2


class CachedResultWarning(UserWarning):
    """A cached probe result failed its integrity check and is recomputed."""


class ResultCache:
    def __init__(self, root: Path | str, lock_policy: LockPolicy | None = None) -> None:
        self.root = Path(root)
        self.lock_policy = lock_policy

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached result, or None if absent or failing its check."""
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        problem = None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            doc, problem = None, f"unreadable ({exc})"
        if problem is None:
            shape = isinstance(doc, dict) and isinstance(doc.get("result"), dict) and "sha256" in doc
            if not shape or doc.get("result_format") != RESULT_FORMAT:
                problem = f"not a cached probe result this version reads (format {RESULT_FORMAT})"
            elif payload_digest(doc["result"]) != doc["sha256"]:
                problem = "its content does not match its sha256 (edited or damaged)"
        if problem is not None:
            warnings.warn(CachedResultWarning(f"cached probe result {path}: {problem}; recomputing it"), stacklevel=2)
            return None
        return doc["result"]

    def put(self, key: str, result: dict[str, Any]) -> None:
        plain = plain_json(result)
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with PatientLock(str(path) + ".lock", self.lock_policy, what="probe result"):
            atomic_write_json(path, {"result_format": RESULT_FORMAT, "sha256": payload_digest(plain), "result": plain})
