"""Benchmark: the per-residue softmax probe on one-hot SS3, before and after issue 8.

    python -m pytest perf/test_softmax_probe.py -p no:cacheprovider -s

Data: real FLIP secondary-structure proteins (``PLMTRANSFER_DATA`` or ``/work/shared/flip``;
skipped if absent), every k-th protein of the task (``PLMTRANSFER_PERF_SS3_PROTEINS``, default
800, so train/val/test keep their proportions), one-hot per-residue features exactly as the
``onehot`` model gives them, through :func:`pytest_plmtransfer.measure.probe.probe` (standardization,
fit with early stopping, every metric), seed 0, torch on 1 thread (the probe's default).

Sides, interleaved, fastest of ``ROUNDS`` each:

* ``before``: the autograd training step with 256-row batches (the path before issue 8);
* ``fused_256``: the fused step at the old batch size (what the step alone buys);
* ``after``: today's defaults for per-residue tasks (fused step, 1,024-row batches).

``extra_info``: seconds and speed-up of each side, its test Q3, epochs and best epoch. Asserted:
the Q3 of every side within 0.005 of ``before`` (nothing about time).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_plmtransfer.measure.probe import ProbeInput, ProbeSettings, probe

N_PROTEINS = int(os.environ.get("PLMTRANSFER_PERF_SS3_PROTEINS", "800"))
ROUNDS = 2
Q3_TOLERANCE = 0.005
SIDES = {
    "before": ProbeSettings(engine="autograd", batch_size=256),
    "fused_256": ProbeSettings(engine="fused", batch_size=256),
    "after": ProbeSettings(),
}


def _flip_root() -> Path | None:
    for c in (
        os.environ.get("PLMTRANSFER_DATA"),
        Path(__file__).resolve().parents[2] / "shared" / "flip",
        "/work/shared/flip",
    ):
        if c and (Path(c) / "splits" / "secondary_structure" / "splits.zip").is_file():
            return Path(c)
    return None


@pytest.fixture(scope="module")
def onehot_ss3() -> ProbeInput:
    from pytest_plmtransfer.models.onehot import OneHotAdapter
    from pytest_plmtransfer.tasks.catalog import get_task
    from pytest_plmtransfer.tasks.readers import load_task

    root = _flip_root()
    if root is None:
        pytest.skip("FLIP secondary_structure data not found (set PLMTRANSFER_DATA)")
    spec = get_task("ss3")
    data = load_task(spec, root / "splits" / "secondary_structure" / "splits.zip")
    keep = np.arange(0, len(data.sequences), max(1, len(data.sequences) // N_PROTEINS))
    seqs = [data.sequences[i] for i in keep]
    adapter = OneHotAdapter()
    parts: dict[int, np.ndarray] = {}
    for batch in adapter.embed(seqs, [0], per_residue=True):
        offset = 0
        for i in batch.indices:
            n = len(seqs[i])
            parts[int(i)] = batch.per_layer[0][offset : offset + n]
            offset += n
    X = np.concatenate([parts[i] for i in range(len(seqs))])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    return ProbeInput(
        kind="per_residue", X=X, offsets=offsets, targets=[data.targets[i] for i in keep],
        splits=np.asarray(data.splits)[keep],
        residue_masks=None if data.residue_masks is None else [data.residue_masks[i] for i in keep],
        selection_metric=spec.selection_metric,
    )  # fmt: skip


@pytest.mark.benchmark(group="softmax probe, one-hot ss3")
def test_softmax_probe_onehot_ss3(benchmark: Any, onehot_ss3: ProbeInput) -> None:
    best: dict[str, float] = {}
    results: dict[str, Any] = {}

    def all_rounds() -> None:
        for _ in range(1 if benchmark.disabled else ROUNDS):
            for name, settings in SIDES.items():
                start = time.perf_counter()
                results[name] = probe(onehot_ss3, seed=0, settings=settings)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)

    benchmark.pedantic(all_rounds, rounds=1, iterations=1)
    q3 = {name: r.metrics["test_q3"] for name, r in results.items()}
    info: dict[str, Any] = {"residues": int(onehot_ss3.X.shape[0]), "proteins": len(onehot_ss3.targets)}
    for name, r in results.items():
        info[f"{name}_seconds"] = round(best[name], 3)
        info[f"{name}_q3"] = round(q3[name], 5)
        info[f"{name}_epochs"] = r.head["epochs"]
        info[f"{name}_best_epoch"] = r.head["best_epoch"]
        if name != "before":
            info[f"speedup_{name}"] = round(best["before"] / best[name], 2)
    benchmark.extra_info.update(info)
    print(f"\nsoftmax probe, one-hot ss3, {info['proteins']} proteins / {info['residues']} residues:")
    for name in results:
        print(f"  {name:10s} {best[name]:7.2f} s  Q3 {q3[name]:.4f}  epochs {info[f'{name}_epochs']} "
              f"(best {info[f'{name}_best_epoch']})"
              + (f"  {info[f'speedup_{name}']:.2f}x" if name != "before" else ""))  # fmt: skip
    for name in results:
        assert abs(q3[name] - q3["before"]) <= Q3_TOLERANCE, (name, q3)
