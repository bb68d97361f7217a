"""One node, many GPUs: ``pytest -n G --plm-dist group``.

* :class:`GroupScheduling` is xdist's own ``LoadScopeScheduling`` with a different notion of
  scope: every layer test of one embedding group (model, init, seed) is one work unit, so one
  worker builds the model once and embeds each sequence set once, while the other workers take
  other groups instead of waiting on its cache locks. Node ids are unchanged (unlike
  ``xdist_group`` marks, which append ``@name``); the group is read back from the test id that
  :class:`~pytest_plmtransfer.plan.cases.LayerCase` writes. Other tests (claims, users' own) are each
  their own unit.
* :func:`device_for_worker` pins worker ``gwI`` to entry ``I mod len`` of the controller's
  ``CUDA_VISIBLE_DEVICES``. The plugin sets it in the worker's environment before the worker
  process starts (``XSpec.env``, applied by execnet before Python imports anything of ours or
  torch) and also passes it in ``workerinput`` for the records.
* ``-n auto`` with ``--plm-dist group`` starts one worker per visible GPU; with no GPU it returns
  None and xdist falls back to its usual CPU count.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pytest_plmtransfer.infra.errors import PlmTransferError

#: LayerCase.id: "{model}-{task}-L{nn}|Lall-{init}[-s{seed}]"; tasks and inits contain no '-',
#: models may (hf:org/some-model), so the model is whatever precedes the last three fields
_CASE_ID = re.compile(r"^(?P<model>.+)-(?P<task>[^-]+)-(?P<layer>L\d+|Lall)-(?P<init>[^-]+?)(?:-s(?P<seed>-?\d+))?$")
#: a CUDA_VISIBLE_DEVICES entry: an index, or a GPU / MIG UUID
_DEVICE = re.compile(r"\d+|GPU-[0-9A-Fa-f-]+|MIG-[0-9A-Za-z/-]+")


def group_of_case_id(case_id: str) -> str | None:
    """``"esm2_t6_8M_UR50D-gb1_sampled-L03-random-s42"`` -> ``"esm2_t6_8M_UR50D|random|42"``."""
    match = _CASE_ID.match(case_id)
    if match is None:
        return None
    return f"{match['model']}|{match['init']}|{match['seed']}"


def group_of_nodeid(nodeid: str) -> str | None:
    """The embedding group of a layer test's node id, None for any other test."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    name, _, param = nodeid[:-1].partition("[")
    if not name.rsplit("::", 1)[-1]:
        return None
    return group_of_case_id(param)


def visible_devices(environ: Mapping[str, str] | None = None) -> list[str]:
    """The controller's GPUs: ``CUDA_VISIBLE_DEVICES`` entries, else every device torch counts.

    An entry that names no GPU (``abc``) or a GPU listed twice (``0,0``) is an error: CUDA would
    silently hide the devices after it, and two workers pinned to one GPU share its memory."""
    environ = os.environ if environ is None else environ
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is not None:
        devices = [d.strip() for d in raw.split(",") if d.strip() and d.strip() != "-1"]
        where = f"CUDA_VISIBLE_DEVICES={raw!r}"
        bad = next((d for d in devices if not _DEVICE.fullmatch(d)), None)
        if bad is not None:
            raise PlmTransferError(f"{where}: {bad!r} is not a GPU index or UUID (GPU-..., MIG-...)")
        twice = next((d for i, d in enumerate(devices) if d in devices[:i]), None)
        if twice is not None:
            raise PlmTransferError(
                f"{where}: GPU {twice!r} is listed twice; --plm-dist group gives each worker its own GPU"
            )
        return devices
    try:
        import torch

        # device_count() asks NVML where it can and does not initialize CUDA in this process
        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def worker_index(worker_id: str) -> int:
    match = re.fullmatch(r"gw(\d+)", worker_id)
    if match is None:
        raise ValueError(f"not an xdist worker id: {worker_id!r}")
    return int(match[1])


def device_for_worker(worker_id: str, devices: list[str]) -> str | None:
    """``gw0 -> devices[0]``, ``gw1 -> devices[1]``, rotating when workers outnumber GPUs."""
    if not devices:
        return None
    return devices[worker_index(worker_id) % len(devices)]


def make_group_scheduler(config, log=None):
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """LoadScopeScheduling whose scope is the test's embedding group."""

        def _split_scope(self, nodeid: str) -> str:
            group = group_of_nodeid(nodeid)
            return f"plm-group:{group}" if group is not None else nodeid

    return GroupScheduling(config, log)
