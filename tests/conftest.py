"""Shared fixtures for the project's own tests."""

import functools
import os

import pytest

from pytest_plmtransfer.testing import PlmPytester, preload


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch, tmp_path_factory):
    """No test sees the user's settings or caches: the README tells users to set PLMTRANSFER_DATA,
    and a test that finds the real archive instead of its own mirror checks nothing. Every
    ``PLMTRANSFER_*`` variable is cleared, and the caches the package and the model libraries
    default to (``~/.cache``, torch hub, Hugging Face) point into this session's temp directory;
    pytester's subprocesses inherit the same."""
    for name in [n for n in os.environ if n.startswith("PLMTRANSFER_")]:
        monkeypatch.delenv(name)
    home = tmp_path_factory.getbasetemp() / "user-caches"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("HF_HOME", str(home / "huggingface"))
    # the aliases a test registers spell out later commands in this process: none leak into the next test
    from pytest_plmtransfer.models import aliases

    monkeypatch.setattr(aliases, "_SPELLED", {})


@pytest.fixture(scope="session")
def flip_root(tmp_path_factory):
    """A FLIP-layout data directory (read-only: copy it to change it): generated GB1 (60 rows) and
    SS3 (24) archives."""
    from flip_files import write_gb1, write_ss3

    root = tmp_path_factory.mktemp("flip")
    write_gb1(root, n=60, seed=3)
    write_ss3(root, n=24, seed=3)
    return root


@pytest.fixture(scope="session")
def _preloaded():
    preload()


@pytest.fixture
def pytester(pytester, _preloaded):
    """Every pytester, with the libraries a run imports loaded first: an in-process run drops the
    modules it imported, and importing torch a second time in one process crashes it."""
    return pytester


@pytest.fixture
def plm(_preloaded, pytester, flip_root):
    """``plm(**options)``: a :class:`~pytest_plmtransfer.testing.PlmPytester` over ``flip_root``."""
    return functools.partial(PlmPytester, pytester, flip_root)


@pytest.fixture
def bench(plm):
    """The shipped layer suite and the toy in a pytester directory."""
    return plm()


@pytest.fixture
def claims_bench(plm, pytester):
    """Both suites under ``benchmarks/``, the rootdir above it (as in this repository); offline, CPU."""
    pytester.makeini("[pytest]\n")
    bench = plm(suite_dir="benchmarks", claims=True)
    run = bench.run
    bench.run = lambda *args, **kw: run("benchmarks", "--plm-offline", "--plm-device=cpu", *args, **kw)
    return bench


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU the thread pool's
    spin-waiting costs far more than the work (measured: 72 s -> 8 s for the model test files)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
