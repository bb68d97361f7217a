"""The cached embeddings of one (model, init, seed, task), as users' own tests see them.

``plm_embeddings`` (a fixture) and ``plm_embeddings_of`` (an explicit request) return a
:class:`CaseEmbeddings`: the task's data and the embedding cache entry the layer tests use —
the same entry, so asking for it costs no second forward pass. Arrays are memory-mapped per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_plmtransfer.results.store import EmbeddingEntry
from pytest_plmtransfer.tasks.spec import SplitName, TaskData


@dataclass(frozen=True)
class CaseEmbeddings:
    model: str
    init: str
    seed: int | None
    task: str
    #: the layer of the parametrized test asking (None for an explicit request)
    layer: int | None
    data: TaskData
    entry: EmbeddingEntry

    @property
    def per_residue(self) -> bool:
        return self.data.spec.per_residue

    @property
    def layers(self) -> list[int]:
        """Layers present in the cache entry (at least those asked for)."""
        return list(self.entry.layers)

    @property
    def offsets(self) -> np.ndarray | None:
        """Per-residue tasks: sequence ``i``'s residues are rows ``offsets[i]:offsets[i+1]``."""
        return self.entry.offsets

    def features(self, layer: int | None = None) -> np.ndarray:
        """One layer's features in task order: ``(N, D)`` per sequence, or ``(R, D)`` residues
        (per-residue tasks, memory-mapped, see :attr:`offsets`)."""
        layer = self.layer if layer is None else layer
        if layer is None:
            raise ValueError("features(): give a layer (this is not a parametrized layer case)")
        return self.entry.layer(layer) if self.per_residue else self.entry.rows(layer, self.data.sequences)

    @property
    def X(self) -> np.ndarray:
        """The features of the test's own layer."""
        return self.features()

    def split(self, name: SplitName) -> np.ndarray:
        """Row indices (sequences) of ``train`` / ``val`` / ``test``."""
        return self.data.indices(name)

    @property
    def targets(self) -> list:
        return self.data.targets
