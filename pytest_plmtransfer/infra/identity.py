"""Content hashes in adapter identities, so a changed model never reuses stale embeddings.

An adapter's ``identity()`` is hashed into the embedding cache key. A user adapter that returns a
fixed ``{"weights": "v1"}`` would keep getting the embeddings of its old weights after they
change (and a CI gate with a restored ``~/.cache/plmtransfer`` would miss the change). So, for
adapters that are not built in:

* if the identity already carries a content hash (a ``*sha256*`` / ``*hash*`` / ``*checksum*`` /
  ``*digest*`` key with a value, or a ``sha256:...`` / 64-hex-digit value), nothing changes;
* else, if the adapter holds a ``torch.nn.Module``, the sha256 of its ``state_dict`` (names,
  dtypes, shapes and bytes of every tensor) is added as ``"weights_sha256"``;
* else a :class:`IdentityWarning` says that the cache cannot notice a change of this model.

Users can put the digest in their identity themselves with :func:`state_dict_sha256` (torch) or
:func:`pytest_plmtransfer.infra.hashing.sha256_file` (weight files).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from typing import Any

_HASH_KEY = re.compile(r"sha256|sha1|md5|hash|checksum|digest", re.IGNORECASE)
_HASH_VALUE = re.compile(r"^(sha256:)?[0-9a-f]{64}$")
_EMBEDDED_HASH = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
#: modules of the built-in adapters (they hash their checkpoints themselves; random inits have none)
_BUILTIN_PREFIX = "pytest_plmtransfer."


class IdentityWarning(UserWarning):
    """An adapter identity that cannot tell one version of the model's weights from another."""


def has_content_hash(identity: Any) -> bool:
    """Whether an identity (nested dicts/lists) carries a content hash anywhere."""
    if isinstance(identity, dict):
        return any(
            (_HASH_KEY.search(str(key)) and value not in (None, "", {}, [])) or has_content_hash(value)
            for key, value in identity.items()
        )
    if isinstance(identity, (list, tuple)):
        return any(has_content_hash(v) for v in identity)
    return isinstance(identity, str) and bool(_HASH_VALUE.match(identity))


def state_dict_sha256(module: Any) -> str:
    """sha256 over a torch module's state_dict: every tensor's name, dtype, shape and bytes."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        # bytes through uint8 (bf16 has no numpy dtype)
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def torch_modules(adapter: Any) -> list[Any]:
    """The ``torch.nn.Module`` attributes of an adapter (none when torch was never imported)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found = [v for _, v in sorted(vars(adapter).items()) if isinstance(v, torch.nn.Module)]
    return [adapter] if isinstance(adapter, torch.nn.Module) else found


def ensure_content_identity(adapter: Any) -> str | None:
    """Add a state_dict hash to a user adapter's identity, or warn that it has none; returns the
    digest added (None when nothing was added). Built-in adapters are left alone."""
    if type(adapter).__module__.startswith(_BUILTIN_PREFIX):
        return None
    base = adapter.identity
    if has_content_hash(base()):
        return None
    modules = torch_modules(adapter)
    if not modules:
        warnings.warn(
            IdentityWarning(
                f"model {getattr(adapter, 'name', type(adapter).__name__)!r}: its identity() carries no "
                "content hash of its weights, so cached embeddings are reused even after the weights "
                "change. Add e.g. 'weights_sha256': pytest_plmtransfer.infra.hashing.sha256_file(<weights file>) "
                "(or hold the torch module as an attribute and it is hashed for you)."
            ),
            stacklevel=2,
        )
        return None
    digest = hashlib.sha256("".join(state_dict_sha256(m) for m in modules).encode()).hexdigest()

    def identity() -> dict[str, Any]:
        return {**base(), "weights_sha256": digest}

    adapter.identity = identity  # the instance's identity; the class is untouched
    return digest


def portable(value: Any) -> Any:
    """``value`` (nested dicts/lists) with machine-specific strings made portable: an absolute path
    becomes its last component, ``hf:<path>`` the directory's name. For files a repository
    commits (baselines) and for telling weights apart across machines."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    if isinstance(value, str):
        prefix, path = ("hf:", value[3:]) if value.startswith("hf:") else ("", value)
        if os.path.isabs(path) or path.startswith(("./", "../", "~")):
            return prefix + (os.path.basename(os.path.normpath(os.path.expanduser(path))) or path)
    return value


def _hashes(identity: Any) -> list[str]:
    if isinstance(identity, dict):
        out = []
        for key, value in identity.items():
            if _HASH_KEY.search(str(key)) and isinstance(value, str) and value:
                out.append(value)
            else:
                out += _hashes(value)
        return out
    if isinstance(identity, (list, tuple)):
        return [h for v in identity for h in _hashes(v)]
    # a digest inside a value too, e.g. "antiberty==0.1.3:sha256:<64 hex>"
    return _EMBEDDED_HASH.findall(identity) if isinstance(identity, str) else []


def weights_label(identity: Any) -> str | None:
    """A short string naming the weights a record was measured with, equal across machines and
    seeds: ``sha256:<12 hex>`` of the identity's content hashes (the weights' own digest when it
    has one), else of the identity itself (no init, no seed, paths made portable). None for a
    record without an identity."""
    if not isinstance(identity, dict) or not identity:
        return None
    hashes = sorted(set(_hashes(identity)))
    if hashes:
        text = "\n".join(h.rsplit(":", 1)[-1] for h in hashes)
    else:
        rest = {k: v for k, v in identity.items() if k not in ("init", "seed")}
        text = json.dumps(portable(rest), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]
