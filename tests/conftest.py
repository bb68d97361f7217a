"""Shared fixtures for the project's own tests."""

import pytest


@pytest.fixture(scope="module")
def flip_root(tmp_path_factory):
    """A FLIP-layout data directory holding a small generated GB1 archive (60 rows), per module."""
    from flip_files import write_gb1

    root = tmp_path_factory.mktemp("flip")
    write_gb1(root, n=60, seed=3)
    return root


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU the thread pool's
    spin-waiting costs far more than the work (measured: 72 s -> 8 s for the model test files)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
