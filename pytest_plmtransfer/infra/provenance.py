"""Machine, commit and library provenance recorded with every ledger record."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

LIBRARIES = (
    "pytest-plmtransfer",
    "torch",
    "numpy",
    "scikit-learn",
    "pandas",
    "scipy",
    "fair-esm",
    "sequence-models",
    "antiberty",
    "transformers",
)


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = None
    return out


@functools.lru_cache(maxsize=8)
def git_commit(root: str) -> str | None:
    """HEAD of the repository holding ``root`` (with ``-dirty`` when the tree has changes)."""
    git = functools.partial(subprocess.run, cwd=root, capture_output=True, text=True, timeout=10)
    try:
        head = git(["git", "rev-parse", "HEAD"])
        if head.returncode != 0:
            return None
        dirty = git(["git", "status", "--porcelain", "--untracked-files=no"])
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(root: Path | str) -> dict[str, Any]:
    import torch

    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(str(root)),
        "versions": library_versions(),
    }


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def effective_runtime(adapter: Any) -> dict[str, str]:
    """Where and in what precision an adapter really computes, not what was asked: a torch
    adapter's resolved device and dtype (half precision falls back to float32 on CPU); anything
    else (one-hot, numpy user models) runs on the CPU in float32."""
    device = getattr(adapter, "device", None)
    dtype = getattr(adapter, "dtype", None)
    return {
        "device": str(device) if device is not None else "cpu",
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else "float32",
    }
