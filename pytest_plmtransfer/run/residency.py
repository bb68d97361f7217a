"""Which model is in memory: at most one adapter per process, built on first use.

Tests run group by group (plan/sharding.py orders them), so each (model, init, seed) is built
once per process; building the next releases the previous one first.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass, field

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.infra.identity import ensure_content_identity
from pytest_plmtransfer.models.base import ModelAdapter
from pytest_plmtransfer.models.registry import ModelOptions, ModelRegistry

AdapterKey = tuple[str, str, int | None]


@dataclass(eq=False)
class ModelResidency:
    registry: ModelRegistry
    model_options: ModelOptions
    _resident: tuple[AdapterKey, ModelAdapter] | None = None
    #: builds that failed for want of resources (weights): remembered, not retried per test
    _errors: dict[AdapterKey, ResourceUnavailable] = field(default_factory=dict)

    def adapter(self, model: str, init: str, seed: int | None) -> ModelAdapter:
        key = (model, init, seed)
        if key in self._errors:
            raise self._errors[key]
        if self._resident is not None and self._resident[0] == key:
            return self._resident[1]
        self.release()
        try:
            adapter = self.registry.create(model, init, seed, self.model_options)
        except ResourceUnavailable as exc:
            self._errors[key] = exc
            raise
        ensure_content_identity(adapter)  # user adapters: weights hashed into the cache key
        self._resident = (key, adapter)
        return adapter

    def release(self) -> None:
        """Drop the resident adapter and give its memory back (GPU cache included)."""
        if self._resident is None:
            return
        self._resident = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


def resolve_device(device: str) -> str:
    """``auto``: CUDA when torch sees a GPU, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
