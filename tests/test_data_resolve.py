"""Data resolution: local dir, cache, download from a local HTTP server, and every failure."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.tasks.catalog import DATASETS, get_task
from pytest_plmtransfer.tasks.readers import load_task
from pytest_plmtransfer.tasks.resolve import DataResolver, default_cache_dir, read_sidecar

try:  # tests/ as a package or as a plain directory on sys.path (pytest's default)
    from . import flip_files as ff
except ImportError:
    import flip_files as ff  # type: ignore[no-redef]

GB1 = get_task("gb1_sampled")
# generated archives have no published digest: the "recorded at first download" warning is expected
pytestmark = pytest.mark.filterwarnings("ignore::pytest_plmtransfer.tasks.resolve.UnverifiedDownloadWarning")


@pytest.fixture(autouse=True)
def _unpublished(monkeypatch):
    """The archives served here are small generated ones: as far as these tests go, no digest is
    published for them (the record-at-first-download path); test_integrity.py covers pinned ones."""
    from pytest_plmtransfer.tasks import resolve

    monkeypatch.setattr(resolve, "PUBLISHED_SHA256", {})


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (URL path -> bytes); ``server.mode`` picks a misbehaviour."""

    def do_GET(self):
        server = self.server
        server.hits.append(self.path)
        body = server.files.get(self.path)
        if server.mode == "hang":
            time.sleep(3)
            return
        if body is None:
            self.send_error(404, "Not Found")
            return
        if server.delay:
            time.sleep(server.delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.mode == "drop":
            # half the announced bytes, then the connection goes away
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.hits, srv.mode, srv.delay = {}, [], "ok", 0.0
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}/flip"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def gb1_bytes(tmp_path) -> bytes:
    return ff.write_gb1(tmp_path / "upstream", "sampled", n=30).read_bytes()


def _closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: 'no network' that fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/flip"


def _files_under(path: Path) -> list[str]:
    """Files under a cache dir, lock files (kept apart under ``locks/``) excepted."""
    if not path.exists():
        return []
    return sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.relative_to(path).parts[0] != "locks"
    )


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ("PLMTRANSFER_DATA", "PLMTRANSFER_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------------------------ locations


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "plmtransfer"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "plmtransfer"
    monkeypatch.setenv("PLMTRANSFER_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert DataResolver().cache_dir == tmp_path / "mine"


def test_data_dir_wins_and_touches_no_network(tmp_path, server):
    archive = ff.write_gb1(tmp_path / "flip", "sampled")
    resolver = DataResolver(tmp_path / "flip", tmp_path / "cache", base_url=server.base_url)
    assert resolver.resolve(GB1) == archive
    assert server.hits == [] and _files_under(tmp_path / "cache") == []


def test_data_dir_from_environment(tmp_path, monkeypatch):
    archive = ff.write_gb1(tmp_path / "flip", "sampled")
    monkeypatch.setenv("PLMTRANSFER_DATA", str(tmp_path / "flip"))
    resolver = DataResolver(None, tmp_path / "cache", base_url=_closed_port_url())
    assert resolver.data_dir == tmp_path / "flip"
    assert resolver.resolve(GB1) == archive


def test_cache_is_used_when_data_dir_lacks_the_archive(tmp_path, server):
    cache = tmp_path / "cache"
    cached = ff.write_gb1(cache / "flip", "sampled")  # the cache is laid out like a FLIP root
    resolver = DataResolver(tmp_path / "empty", cache, allow_download=False, base_url=server.base_url)
    assert resolver.resolve(GB1) == cached
    assert server.hits == []


# ------------------------------------------------------------------------------------ download


def test_download_lands_atomically_in_cache_with_checksum(tmp_path, server, gb1_bytes):
    server.files["/flip/splits/gb1/splits.zip"] = gb1_bytes
    cache = tmp_path / "cache"
    resolver = DataResolver(None, cache, base_url=server.base_url)
    path = resolver.resolve(GB1)
    assert path == cache / "flip" / "splits" / "gb1" / "splits.zip"
    assert path.read_bytes() == gb1_bytes
    digest = hashlib.sha256(gb1_bytes).hexdigest()
    assert read_sidecar(path) == digest
    assert resolver.resolve(GB1) == path  # a second resolve checks the cached copy
    # nothing but the archive and its checksum: no temporary or lock file left over
    assert _files_under(cache) == ["flip/splits/gb1/splits.zip", "flip/splits/gb1/splits.zip.sha256"]
    assert server.hits == ["/flip/splits/gb1/splits.zip"]
    # a second resolve, even from a fresh resolver (a new session), does not hit the server
    assert DataResolver(None, cache, base_url=server.base_url).resolve(GB1) == path
    assert len(server.hits) == 1
    # and the file is what the reader reads, with the same checksum
    assert load_task(GB1, path).sha256 == digest


def test_parallel_resolves_download_once(tmp_path, server, gb1_bytes):
    server.files["/flip/splits/gb1/splits.zip"] = gb1_bytes
    server.delay = 0.3
    cache = tmp_path / "cache"
    results: list = []

    def work():
        results.append(DataResolver(None, cache, base_url=server.base_url).resolve(GB1))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3 and len(set(results)) == 1
    assert len(server.hits) == 1


def test_connection_dropped_mid_file_leaves_nothing_behind(tmp_path, server, gb1_bytes):
    server.files["/flip/splits/gb1/splits.zip"] = gb1_bytes
    server.mode = "drop"
    cache = tmp_path / "cache"
    resolver = DataResolver(None, cache, base_url=server.base_url, timeout=5)
    with pytest.raises(ResourceUnavailable) as info:
        resolver.resolve(GB1)
    assert "connection closed after" in str(info.value)
    assert _files_under(cache) == []
    # the next attempt, with the server healthy again, succeeds
    server.mode = "ok"
    assert resolver.resolve(GB1).read_bytes() == gb1_bytes


def test_not_found_and_not_a_zip(tmp_path, server):
    cache = tmp_path / "cache"
    resolver = DataResolver(None, cache, base_url=server.base_url)
    with pytest.raises(ResourceUnavailable) as info:
        resolver.resolve(GB1)
    assert "HTTP 404" in str(info.value)
    server.files["/flip/splits/gb1/splits.zip"] = b"version https://git-lfs.github.com/spec/v1\n"
    with pytest.raises(ResourceUnavailable) as info:
        resolver.resolve(GB1)
    assert "not a zip archive" in str(info.value)
    assert _files_under(cache) == []


def test_unresponsive_server_times_out(tmp_path, server):
    server.mode = "hang"
    resolver = DataResolver(None, tmp_path / "cache", base_url=server.base_url, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(ResourceUnavailable) as info:
        resolver.resolve(GB1)
    assert time.monotonic() - start < 2.5
    assert "0.3 s" in str(info.value) or "timed out" in str(info.value)
    assert _files_under(tmp_path / "cache") == []


def test_corrupt_cache_entry_is_detected_and_replaced(tmp_path, server, gb1_bytes):
    server.files["/flip/splits/gb1/splits.zip"] = gb1_bytes
    cache = tmp_path / "cache"
    path = DataResolver(None, cache, base_url=server.base_url).resolve(GB1)
    path.write_bytes(gb1_bytes[:100])  # truncated behind our back
    offline = DataResolver(None, cache, allow_download=False, base_url=server.base_url)
    with pytest.raises(ResourceUnavailable) as info:
        offline.resolve(GB1)
    assert "corrupt" in str(info.value)
    assert DataResolver(None, cache, base_url=server.base_url).resolve(GB1).read_bytes() == gb1_bytes
    assert len(server.hits) == 2


# ------------------------------------------------------------------------------------ no data


def _assert_instructions(message: str, resolver: DataResolver) -> None:
    url = "splits/gb1/splits.zip"
    assert f"{resolver.base_url}/{url}" in message
    assert str(resolver.cache_dir / "flip" / url) in message
    assert "--plm-data-dir" in message and "PLMTRANSFER_DATA" in message


def test_no_data_and_no_network_says_what_to_download_and_where(tmp_path):
    resolver = DataResolver(None, tmp_path / "cache", base_url=_closed_port_url(), timeout=2)
    start = time.monotonic()
    with pytest.raises(ResourceUnavailable) as info:
        resolver.resolve(GB1)
    assert time.monotonic() - start < 5
    message = str(info.value)
    _assert_instructions(message, resolver)
    assert "gb1_sampled" in info.value.what
    assert _files_under(tmp_path / "cache") == []


def test_download_disabled_never_touches_the_network(tmp_path, server):
    resolver = DataResolver(tmp_path / "flip", tmp_path / "cache", allow_download=False, base_url=server.base_url)
    with pytest.raises(ResourceUnavailable) as info:
        resolver.resolve(GB1)
    assert server.hits == []
    message = str(info.value)
    _assert_instructions(message, resolver)
    assert str(tmp_path / "flip" / "splits" / "gb1" / "splits.zip") in message
    assert "downloads are disabled" in info.value.instructions


def test_default_url_is_flips_raw_url_at_a_pinned_commit(tmp_path):
    resolver = DataResolver(None, tmp_path)
    assert resolver.url(GB1) == (
        "https://github.com/J-SNACKKB/FLIP/raw/0a3cf047f63e70c14f7af29e88de256222fe9ee7/splits/gb1/splits.zip"
    )
    assert resolver.url(get_task("ss3")) == (
        "https://github.com/J-SNACKKB/FLIP/raw/afea570175d6ce049ca9388f870a6a20c549948f/"
        "splits/secondary_structure/splits.zip"
    )
    assert (
        DataResolver(None, tmp_path, base_url="https://mirror/x/").url(GB1) == "https://mirror/x/splits/gb1/splits.zip"
    )


@pytest.mark.slow
def test_tape_archive_comes_from_its_publisher_recorded_and_warned(tmp_path, server, monkeypatch):
    from pytest_plmtransfer.tasks import resolve

    tape = ff.write_tape_ss(tmp_path / "upstream").read_bytes()
    route = "/proteindata/data_raw_pytorch/secondary_structure.tar.gz"
    server.files[route] = tape
    published = f"http://127.0.0.1:{server.server_address[1]}{route}"
    tape_ss = DATASETS["tape_secondary_structure"]
    assert tape_ss.url.endswith(route) and not tape_ss.flip  # TAPE's README URL
    monkeypatch.setitem(DATASETS, "tape_secondary_structure", dataclasses.replace(tape_ss, url=published))
    spec = get_task("ss3_cb513")
    cache = tmp_path / "cache"
    resolver = DataResolver(None, cache, base_url=server.base_url)  # a FLIP mirror: TAPE is not on it
    assert resolver.url(spec) == published
    with pytest.warns(resolve.UnverifiedDownloadWarning, match="no published sha256 is known"):
        path = resolver.resolve(spec)
    digest = hashlib.sha256(tape).hexdigest()
    assert path == cache / "flip" / "tape" / "secondary_structure.tar.gz" and read_sidecar(path) == digest
    assert server.hits == [route]
    assert DataResolver(None, cache).resolve(spec) == path and len(server.hits) == 1  # cached, checked
    assert load_task(spec, path).sha256 == digest
    # a digest the user expects and the cached file lacks: refused, and nothing else is kept
    other = DataResolver(None, cache, allow_download=False, expected_sha256={"tape_secondary_structure": "0" * 64})
    with pytest.raises(
        ResourceUnavailable, match=r"archive tape/secondary_structure\.tar\.gz \(task ss3_cb513\).*corrupt"
    ):
        other.resolve(spec)
