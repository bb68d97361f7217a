"""The one file checksum (data archives, cache entries, weights), remembered per file version where
big files are checked often, the one key of a JSON payload (embedding cache entries, probe
results), and the digest of a record or result that says it was not altered."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.tempfiles import json_default


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file_once(path: Path | str) -> str:
    """:func:`sha256_file`, computed once per process for a given version of the file (path, size,
    modification time): data archives many tests resolve, AntiBERTy's 104 MB of weights."""
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def payload_key(payload: dict[str, Any]) -> str:
    """40 hex digits of the sha256 of ``payload`` as sorted-key JSON (``default=str``).

    The exact serialization is part of every existing cache key: changing it would orphan the
    embedding and result caches users already hold.
    """
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:40]


def payload_digest(payload: Any) -> str:
    """sha256 of ``payload`` as canonical JSON (sorted keys, no whitespace, ASCII)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def plain_json(value: Any) -> Any:
    """``value`` as the plain JSON values a later read sees (what a digest must be taken over)."""
    return json.loads(json.dumps(value, default=json_default))
