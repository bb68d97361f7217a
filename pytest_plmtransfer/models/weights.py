"""Finding, downloading, identifying and loading checkpoint files.

Resolution order for a checkpoint called ``<name>.pt`` (see :func:`resolve_checkpoint`):

1. an explicit path (a model name that is itself a ``.pt`` path, or ``<base>@<path>``);
2. ``<options.weights_dir>/<name>.pt`` (``--plm-weights-dir``);
3. the libraries' own cache: fair-esm and sequence-models both download through
   ``torch.hub.load_state_dict_from_url`` into ``torch.hub.get_dir()/checkpoints/<basename of the
   URL>`` (sequence-models' ``?download=1`` query is not part of the file name);
4. only if ``options.allow_download``: the library's own URL, downloaded into that same cache
   (so the library itself would find the file later), atomically and under a file lock. We use
   torch's ``download_url_to_file`` because the libraries' loaders then ``torch.load`` with
   torch>=2.6's ``weights_only=True`` default and fail on ESM's pickled ``argparse.Namespace``.

Failure raises :class:`~pytest_plmtransfer.infra.errors.ResourceUnavailable` naming the exact file and
every place it may be put.

The weights identity is the sha256 of the checkpoint file. Hashing 2.5 GB takes seconds, so the
digest is cached next to the file in ``<file>.sha256.json`` keyed by (size, mtime), or where that
directory is read-only under ``$XDG_CACHE_HOME/plmtransfer/digests``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import urllib.error
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.errors import PlmTransferError, ResourceUnavailable
from pytest_plmtransfer.infra.hashing import sha256_file
from pytest_plmtransfer.infra.tempfiles import atomic_write, default_file_mode

_DIGEST_SUFFIX = ".sha256.json"


def hub_checkpoint_dir() -> Path:
    """Where torch hub (and so fair-esm and sequence-models) caches downloaded checkpoints."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "plmtransfer"


def split_name(name: str) -> tuple[str, str | None]:
    """``"carp_640M@step=78810"`` -> ``("carp_640M", "step=78810")``; no ``@`` -> ``(name, None)``."""
    base, at, tag = name.partition("@")
    return base, tag if at else None


@dataclass(frozen=True)
class CheckpointRequest:
    """What to look for: ``filename`` in the search dirs, or an explicit ``path``; the ``url`` to
    download from and the ``sha256`` its publisher gives (None: a download is recorded and warned about)."""

    model: str
    filename: str
    library: str
    url: str | None = None
    path: Path | None = None
    #: other file names of the same checkpoint, looked for after ``filename`` in each directory
    alternatives: tuple[str, ...] = ()
    sha256: str | None = None


def checkpoint_request(name: str, library: str, url_template: str | None) -> CheckpointRequest:
    """Turn a model name into what to look for.

    * ``esm2_t6_8M_UR50D`` -> ``esm2_t6_8M_UR50D.pt``, downloadable from the library's URL;
    * ``carp_640M@step=78810`` (a pretraining checkpoint) -> ``carp_640M@step=78810.pt``, local
      only (no public URL is known for intermediate checkpoints);
    * ``carp_640M@/some/file.pt`` -> that file; ``carp_640M@https://host/file.pt`` -> that URL,
      cached as ``<hub checkpoints>/<basename>``;
    * ``/some/dir/esm1b_t33_650M_UR50S.pt`` (a path) -> that file.
    """
    path = Path(name).expanduser()
    if name.endswith(".pt") and ("@" not in name or path.is_file()):
        # a file path (possibly with '@' in it, e.g. <dir>/carp_640M@step=78810.pt)
        return CheckpointRequest(path.stem, path.name, library, None, path)
    base, tag = split_name(name)
    if tag is None:
        url = url_template.format(name=name) if url_template else None
        return CheckpointRequest(name, f"{name}.pt", library, url)
    if tag.startswith(("http://", "https://")):
        fname = Path(tag.split("?", 1)[0]).name or f"{base}.pt"
        return CheckpointRequest(name, fname, library, tag)
    tag_path = Path(tag).expanduser()
    if tag.endswith(".pt") and ("/" in tag or tag_path.exists()):
        return CheckpointRequest(name, tag_path.name, library, None, tag_path)
    return CheckpointRequest(name, f"{name}.pt", library, None)


def search_dirs(options: Any) -> list[Path]:
    weights_dir = getattr(options, "weights_dir", None)
    return ([] if weights_dir is None else [Path(weights_dir).expanduser()]) + [hub_checkpoint_dir()]


def resolve_checkpoint(request: CheckpointRequest, options: Any) -> Path:
    """The local file for ``request``, downloading it when allowed; else ResourceUnavailable."""
    if request.path is not None:
        if request.path.is_file():
            return request.path
        raise ResourceUnavailable(
            f"{request.library} checkpoint {request.path}",
            f"the file {request.path} does not exist; give the path of an existing checkpoint",
        )
    names = (request.filename, *request.alternatives)
    candidates = [d / filename for d in search_dirs(options) for filename in names]
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is not None:
        return found
    looked = ", ".join(map(str, candidates))
    allow = bool(getattr(options, "allow_download", False))
    if request.url is None:
        raise ResourceUnavailable(
            f"{request.library} checkpoint {request.filename} for model {request.model}",
            f"no local file (looked at {looked}) and no download URL is known; put the "
            f"checkpoint file {' or '.join(names)} in --plm-weights-dir",
        )
    target = hub_checkpoint_dir() / request.filename
    if not allow:
        raise ResourceUnavailable(
            f"{request.library} checkpoint {request.filename} for model {request.model}",
            f"no local file (looked at {looked}) and downloads are disabled; download "
            f"{request.url} and save it as {target} or as <--plm-weights-dir>/{request.filename}",
        )
    try:
        _download(request.url, target, progress=bool(getattr(options, "progress", False)))
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        raise ResourceUnavailable(
            f"{request.library} checkpoint {request.filename} for model {request.model}",
            f"download of {request.url} failed ({error}); download it yourself and save it as "
            f"{target} or as <--plm-weights-dir>/{request.filename}",
        ) from error
    _check_download(request, target)
    return target


def _check_download(request: CheckpointRequest, target: Path) -> None:
    """A fresh download against its published digest (removed on a mismatch); without one, a
    warning says it could not be verified and its digest is recorded (:func:`file_sha256`)."""
    import warnings

    from pytest_plmtransfer.tasks.resolve import UnverifiedDownloadWarning

    digest = file_sha256(target)
    expected = request.sha256
    if expected is None:
        warnings.warn(
            UnverifiedDownloadWarning(
                f"{request.url}: no published sha256 is known for {request.filename}, so the download could "
                f"not be verified; its sha256 {digest} is recorded in {target}{_DIGEST_SUFFIX} and in "
                "every record's weights identity"
            ),
            stacklevel=3,
        )
    elif digest != expected:
        target.unlink(missing_ok=True)
        raise ResourceUnavailable(
            f"{request.library} checkpoint {request.filename} for model {request.model}",
            f"the download of {request.url} has sha256 {digest}, not the published {expected}; nothing was kept",
        )


def _download(url: str, target: Path, *, progress: bool) -> None:
    """Download into the torch hub cache: atomic (torch writes a temp file and renames) and
    under a file lock so parallel pytest-xdist workers fetch a file once."""
    import torch.hub
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():  # another worker got it while we waited
            return
        torch.hub.download_url_to_file(url, str(target), progress=progress)
        with contextlib.suppress(OSError):  # torch's temp file is 0600; a checkpoint is shared data
            os.chmod(target, default_file_mode())


def _digest_cache_path(path: Path) -> Path:
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()
    return user_cache_dir() / "digests" / f"{key}.json"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The file's sha256 (hex), cached by (size, mtime_ns) so big checkpoints are hashed once."""
    path = Path(path)
    st = path.stat()
    key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    beside = path.with_name(path.name + _DIGEST_SUFFIX)
    for cache in (beside, _digest_cache_path(path)):
        try:
            data = json.loads(cache.read_text())
            if data.get("size") == key["size"] and data.get("mtime_ns") == key["mtime_ns"]:
                return str(data["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    digest = sha256_file(path)
    payload = json.dumps({**key, "sha256": digest, "file": path.name})
    for cache in (beside, _digest_cache_path(path)):
        # a read-only checkpoint directory: try the next place (the cache is an optimisation, never an error)
        try:
            atomic_write(cache, payload)
            break
        except OSError:
            continue
    return digest


def weights_identity(path: str | os.PathLike[str]) -> str:
    return f"sha256:{file_sha256(path)}"


def load_checkpoint(path: str | os.PathLike[str], *, safe_globals: Sequence[Any] = ()) -> Any:
    """``torch.load`` on CPU with ``weights_only=True`` (torch>=2.6's default, kept on purpose:
    a checkpoint must not run code), allowing only ``argparse.Namespace`` (ESM-1/ESM-1b keep
    their training arguments in one) plus ``safe_globals``."""
    import torch

    allowed = [argparse.Namespace, *safe_globals]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(path, str(error)) from None


class UnsafeCheckpointError(PlmTransferError):
    """A checkpoint needs more than tensors and plain containers to load: refused, in one line.
    torch's own message suggests ``weights_only=False`` (running whatever the pickle says); ours
    says what to do instead."""

    def __init__(self, path: object, detail: str) -> None:
        found = re.search(r"GLOBAL ([\w.]+)", detail) or re.search(r"global[s]? ['`]?([\w.]+)", detail)
        what = f"it references {found.group(1)}" if found else "it holds pickled Python objects"
        super().__init__(
            f"{path}: refused as unsafe: {what}, which loading could execute; checkpoints are only "
            "loaded with torch.load(weights_only=True). Use the library's official checkpoint, or "
            "re-save this one as a plain state_dict (torch.save(model.state_dict(), path)) where you "
            "trust it"
        )


class _ArgsUnpickler(pickle.Unpickler):
    """Reads plain values, dicts and ``argparse.Namespace``; tensors come back as None (their
    storages are persistent ids that are never loaded) and any other class as an opaque stub,
    so nothing from the file is executed."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda *a, **k: None
        return _Opaque

    def persistent_load(self, pid: Any) -> Any:
        return None


class _Opaque:
    """Stands in for any class other than the few whose content we read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def peek_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The top-level dict of a torch checkpoint with every tensor replaced by None, read from the
    pickled object tree only (``data.pkl`` of the zip format, or the legacy format's object pickle),
    never the tensor data: a 2.5 GB ESM-1b file costs a few hundred kilobytes. Nothing is executed."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                member = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                if member is None:
                    raise PlmTransferError(f"{path}: a zip file without data.pkl is not a torch checkpoint")
                obj = _ArgsUnpickler(io.BytesIO(zf.read(member))).load()
        else:
            with path.open("rb") as fh:
                legacy = _ArgsUnpickler(fh)
                for _ in range(3):  # magic number, protocol version, sys info
                    legacy.load()
                obj = legacy.load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as error:
        raise PlmTransferError(f"{path}: cannot read the checkpoint's saved arguments ({error})") from error
    if not isinstance(obj, dict):
        raise PlmTransferError(f"{path}: not a checkpoint dict")
    return obj


def peek_keys(path: Path) -> set[str]:
    """Top-level keys of a ``.pt`` checkpoint dict, cheaply (:func:`peek_checkpoint`); empty for
    anything else. How the path resolvers recognize a checkpoint's format."""
    if path.suffix != ".pt" or not path.is_file():
        return set()
    try:
        return {k for k in peek_checkpoint(path) if isinstance(k, str)}
    except Exception:
        return set()
