"""Find a task's archive: local data directory, then the user cache, then its pinned URL (FLIP's raw
URL at a commit, or, for archives that are not FLIP's, such as TAPE's, their publisher's: the
catalog's :data:`~pytest_plmtransfer.tasks.catalog.DATASETS`). The first hit wins, and nothing
touches the network when a local copy exists:

1. ``data_dir`` (``--plm-data-dir``), else ``$PLMTRANSFER_DATA``: a directory laid out like the
   FLIP repository root, e.g. ``<dir>/splits/gb1/splits.zip``.
2. The user cache, ``<cache_dir>/flip/<archive>`` (:func:`default_cache_dir`).
3. A download into the cache from that URL, or from ``<base_url>/<archive>`` for FLIP's archives
   when a base URL is given: under a file lock (in ``<cache_dir>/locks/``) so that parallel workers
   (``pytest -n N``) download once, with a progress bar, into a temporary file in the same directory
   renamed into place, so that an interrupted or failed download leaves nothing behind. The SHA-256
   is stored beside the archive as ``<archive>.sha256`` and checked on later use.

A download must have the archive's published SHA-256 (:data:`PUBLISHED_SHA256`, or the user's
``expected_sha256``), else it is refused and nothing is kept. Where no digest is known (AAV,
Meltome, SCL) the first download's is recorded, with a warning, and later uses are checked against it.
With ``require_data_dir`` (``--plm-strict``) an explicit data directory must hold the archive: the
cache and the network are not used behind the user's back. When none works,
:class:`~pytest_plmtransfer.infra.errors.ResourceUnavailable` says which URL to fetch and exactly
where to put it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.infra.hashing import sha256_file_once
from pytest_plmtransfer.infra.tempfiles import atomic_write, make_temp
from pytest_plmtransfer.tasks.catalog import DATASETS, FLIP_REPOSITORY, Dataset
from pytest_plmtransfer.tasks.spec import TaskSpec

#: the published digests, by dataset (``expected_sha256``'s defaults)
PUBLISHED_SHA256: dict[str, str] = {name: d.sha256 for name, d in DATASETS.items() if d.sha256}
#: environment variable naming a FLIP-layout data directory
DATA_ENV = "PLMTRANSFER_DATA"
#: environment variable naming the cache root
CACHE_ENV = "PLMTRANSFER_CACHE"
_CHUNK = 1 << 16


def default_cache_dir() -> Path:
    """``$PLMTRANSFER_CACHE``, else ``$XDG_CACHE_HOME/plmtransfer``, else ``~/.cache/plmtransfer``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "plmtransfer"


def sidecar_path(archive_path: Path) -> Path:
    """Where the checksum of a downloaded archive is kept: ``splits.zip.sha256``."""
    return archive_path.with_name(archive_path.name + ".sha256")


def read_sidecar(archive_path: Path) -> str | None:
    """The recorded SHA-256 (``sha256sum`` format), or None when there is none."""
    try:
        text = sidecar_path(archive_path).read_text().strip()
    except OSError:
        return None
    return text.split()[0].lower() if text else None


class _DownloadFailed(Exception):
    """Internal: any reason a download did not produce a complete archive."""


class UnverifiedDownloadWarning(UserWarning):
    """An archive was downloaded whose published SHA-256 is not known here."""


def dataset_of(archive: str) -> Dataset | None:
    """The catalog's dataset of an archive (``splits/gb1/splits.zip`` -> gb1), None if unknown."""
    return next((d for d in DATASETS.values() if d.archive == archive.strip("/")), None)


class DataResolver:
    """Resolves ``TaskSpec.archive`` to a local file (see the module docstring for the order).

    ``timeout`` bounds each network operation (connect, each read), so that a machine without a
    network fails in seconds instead of hanging a test session. ``lock_timeout`` bounds the wait
    for another process that is downloading the same archive.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        cache_dir: Path | str | None = None,
        allow_download: bool = True,
        base_url: str | None = None,
        *,
        timeout: float = 15.0,
        lock_timeout: float = 600.0,
        progress: bool | None = None,
        require_data_dir: bool = False,
        expected_sha256: Mapping[str, str] | None = None,
    ) -> None:
        if data_dir is None and os.environ.get(DATA_ENV):
            data_dir = os.environ[DATA_ENV]
        self.data_dir: Path | None = Path(data_dir).expanduser() if data_dir else None
        self.cache_dir: Path = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.allow_download = allow_download
        #: None: FLIP at the pinned commit of each archive
        self.base_url = base_url.rstrip("/") if base_url else None
        self.require_data_dir = require_data_dir
        #: dataset -> the archive's SHA-256 a download must have (published ones, then the user's)
        self.expected_sha256 = {**PUBLISHED_SHA256, **dict(expected_sha256 or {})}
        self.timeout = timeout
        self.lock_timeout = lock_timeout
        #: ``None``: a progress bar only on an interactive terminal (tqdm's own rule)
        self.progress = progress

    # ----------------------------------------------------------------------------- locations

    def url(self, spec_or_archive: TaskSpec | str) -> str:
        """The URL an archive is downloaded from."""
        archive = _archive(spec_or_archive)
        dataset = dataset_of(archive)
        if self.base_url is not None and (dataset is None or dataset.flip):  # a FLIP mirror holds FLIP's only
            return f"{self.base_url}/{archive}"
        return dataset.url if dataset else f"{FLIP_REPOSITORY}/raw/main/{archive}"

    def expected_digest(self, spec_or_archive: TaskSpec | str) -> str | None:
        dataset = dataset_of(_archive(spec_or_archive))
        return self.expected_sha256.get(dataset.name) if dataset else None

    def cache_path(self, spec_or_archive: TaskSpec | str) -> Path:
        """Where an archive lives in the user cache."""
        return self.cache_dir / "flip" / _archive(spec_or_archive)

    def local_candidates(self, spec_or_archive: TaskSpec | str) -> list[Path]:
        """Every local path looked at, in order."""
        archive = _archive(spec_or_archive)
        # a data dir pointed at our own cache root (``<cache>/flip/...``) works too
        local = [self.data_dir / archive, self.data_dir / "flip" / archive] if self.data_dir is not None else []
        return [*local, self.cache_path(archive)]

    # ----------------------------------------------------------------------------- resolving

    def resolve(self, spec: TaskSpec | str) -> Path:
        """A local path to the task's archive, downloading it into the cache if allowed."""
        archive = _archive(spec)
        if self.data_dir is not None:
            for path in self.local_candidates(archive)[:2]:
                if path.is_file():
                    return path
            if self.require_data_dir:
                raise self._unavailable(
                    spec,
                    f"the data directory {self.data_dir} has no {archive} (with --plm-strict an "
                    "explicit data directory must hold the data; the cache and downloads are not used)",
                )
        cached = self.cache_path(archive)
        corrupt = cached.is_file()  # unless it is fine
        if corrupt and self._cache_entry_ok(cached, archive):
            return cached
        if not self.allow_download:
            reason = (
                f"the cached copy {cached} is corrupt (checksum mismatch or not a {_kind(archive)} archive) "
                "and downloads are disabled"
                if corrupt
                else "no local copy was found and downloads are disabled"
            )
            raise self._unavailable(spec, reason)
        return self.download(spec)[0]  # replaces a corrupt cache entry

    def _mkdir(self, spec: TaskSpec | str, directory: Path, what: str) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unavailable(spec, f"cannot create the {what} directory {directory}: {exc}") from None

    def _cache_entry_ok(self, path: Path, archive: str) -> bool:
        """A cached archive is trusted if its checksum matches the recorded one (or none was
        recorded, e.g. a file the user placed there by hand) and it opens as an archive."""
        # the published digest when one is known, else the one recorded at the first download
        expected = self.expected_digest(archive) or read_sidecar(path)
        try:
            actual = sha256_file_once(path)  # many tests resolve the same archive
        except OSError:
            return False
        if expected is not None and actual != expected:
            return False  # corrupt or truncated: re-download it (or say how to)
        return _is_archive(path, archive)

    # ----------------------------------------------------------------------------- download

    def download(self, spec: TaskSpec | str) -> tuple[Path, str]:
        """Download an archive into the cache; returns ``(path, sha256)``. Held under a file lock
        (``<cache_dir>/locks/flip/<archive>.lock``): whoever waited for it finds the finished file
        and returns it without downloading it again."""
        archive = _archive(spec)
        dest = self.cache_path(archive)
        url = self.url(archive)
        self._mkdir(spec, dest.parent, "cache")
        # Lock files live apart from the data (flock-style lock files cannot be deleted safely,
        # so they stay behind): the archive's directory holds only finished archives.
        lock_path = self.cache_dir / "locks" / "flip" / f"{archive}.lock"
        self._mkdir(spec, lock_path.parent, "lock")
        lock = FileLock(str(lock_path), timeout=self.lock_timeout)
        try:
            with lock:
                if dest.is_file() and self._cache_entry_ok(dest, archive):
                    return dest, sha256_file_once(dest)  # another worker finished it meanwhile
                try:
                    digest = self._fetch(url, dest, self.expected_digest(archive))
                except _DownloadFailed as exc:
                    raise self._unavailable(spec, f"downloading {url} failed: {exc}") from None
                if self.expected_digest(archive) is None:
                    warnings.warn(
                        UnverifiedDownloadWarning(
                            f"{url}: no published sha256 is known for this archive, so the download "
                            f"could not be verified; recorded its sha256 {digest} in {sidecar_path(dest)} "
                            "(later uses are checked against it). Give the expected one with "
                            "--plm-flip-sha256 to verify it"
                        ),
                        stacklevel=2,
                    )
                atomic_write(sidecar_path(dest), f"{digest}  {dest.name}\n")
                return dest, digest
        except Timeout:
            raise self._unavailable(
                spec, f"timed out after {self.lock_timeout:.0f} s waiting for {lock.lock_file}"
            ) from None

    def _fetch(self, url: str, dest: Path, expected: str | None = None) -> str:
        """Stream ``url`` to a temporary file beside ``dest``, check it, then rename it into place."""
        fd, tmp = make_temp(dest, suffix=".part")
        try:
            digest = hashlib.sha256()
            received = 0
            request = urllib.request.Request(url, headers={"User-Agent": "pytest-plmtransfer"})
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=self.timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=f"{dest.parent.name}/{dest.name}",
                        disable=None if self.progress is None else not self.progress,
                        leave=False,
                    ) as bar:
                        while chunk := response.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
            except urllib.error.HTTPError as exc:
                exc.close()  # it holds the error response open
                raise _DownloadFailed(f"HTTP {exc.code} {exc.reason}") from None
            except urllib.error.URLError as exc:
                raise _DownloadFailed(f"{exc.reason}") from None
            except TimeoutError:
                raise _DownloadFailed(f"no response within {self.timeout:g} s") from None
            except (http.client.HTTPException, ConnectionError, OSError) as exc:
                raise _DownloadFailed(f"{type(exc).__name__}: {exc}") from None
            # urllib does not complain when a server closes the connection early; compare with
            # the announced length ourselves
            if total is not None and received != total:
                raise _DownloadFailed(f"connection closed after {received} of {total} bytes")
            if expected is not None and digest.hexdigest() != expected:
                raise _DownloadFailed(
                    f"the {received} bytes received have sha256 {digest.hexdigest()}, not the published "
                    f"{expected}; nothing was kept (a mirror with other files needs --plm-flip-sha256)"
                )
            if not _is_archive(tmp, str(dest)):
                raise _DownloadFailed(f"the {received} bytes received are not a {_kind(str(dest))} archive")
            os.replace(tmp, dest)  # make_temp gave it the umask's mode, as an ordinary file has
            return digest.hexdigest()
        finally:
            # on any failure, interruption included, no partial file is left behind
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------- errors

    def instructions(self, spec: TaskSpec | str) -> str:
        """What to download and where to put it, for a human."""
        archive = _archive(spec)
        url = self.url(archive)
        cache = self.cache_path(archive)
        if self.data_dir is not None:
            into_data = (
                f"{self.data_dir / archive} (inside the FLIP-layout data directory {self.data_dir}, "
                f"as given with --plm-data-dir or {DATA_ENV})"
            )
        else:
            into_data = (
                f"DIR/{archive} for a directory DIR laid out like the FLIP repository root, "
                f"passed with --plm-data-dir DIR or the {DATA_ENV}=DIR environment variable"
            )
        return (
            f"download {url} and save it either as {into_data}, or as {cache} (the user cache). "
            f"For example: mkdir -p {cache.parent} && curl -L -o {cache} {url}"
        )

    def _unavailable(self, spec: TaskSpec | str, reason: str) -> ResourceUnavailable:
        dataset = dataset_of(_archive(spec))
        what = f"{'' if dataset and not dataset.flip else 'FLIP '}archive {_archive(spec)}"
        if isinstance(spec, TaskSpec):
            what += f" (task {spec.task_id})"
        return ResourceUnavailable(what, f"{reason}. To fix, {self.instructions(spec)}")


def _kind(archive: str) -> str:
    """What an archive must open as: FLIP's are zips, TAPE's a ``.tar.gz``."""
    return "zip" if archive.endswith(".zip") else "tar"


def _is_archive(path: Path, archive: str) -> bool:
    return zipfile.is_zipfile(path) if _kind(archive) == "zip" else tarfile.is_tarfile(path)


def _archive(spec_or_archive: TaskSpec | str) -> str:
    archive = spec_or_archive.archive if isinstance(spec_or_archive, TaskSpec) else str(spec_or_archive)
    return archive.lstrip("/")
