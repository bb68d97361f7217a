"""The one file checksum (data archives, cache entries, weights) and the one key of a JSON payload
(embedding cache entries, probe results)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_file(path: Path | str, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def payload_key(payload: dict[str, Any]) -> str:
    """40 hex digits of the sha256 of ``payload`` as sorted-key JSON (``default=str``).

    The exact serialization is part of every existing cache key: changing it would orphan the
    embedding and result caches users already hold.
    """
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:40]
