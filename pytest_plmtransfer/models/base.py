"""The adapter interface every model implements.

An adapter turns protein sequences into per-layer representations. Layers are numbered 0..L where
layer 0 is whatever the family defines as its input representation (ESM's embedding
output, CARP's embedder output, BERT's ``hidden_states[0]``) and ``num_layers`` is L.

Embeddings are produced as a stream of :class:`EmbeddingBatch` so that the embedding store can
write each batch straight into per-layer memory-mapped files: a large task never needs all
layers of all sequences in RAM at once.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Pooling = Literal["mean", "flatten"]
#: the weight inits every torch model supports (models/inits.py); ``--plm-inits`` accepts these
INITS = ("pretrained", "random", "stat")
#: compute dtype spellings ``--plm-dtype`` accepts -> torch dtype names (models/torch_base.py)
DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
}
#: the one-hot baseline's model name (models/onehot.py): reports and claims compare against it
ONEHOT = "onehot"


@dataclass(frozen=True)
class EmbeddingBatch:
    """One batch of embeddings; ``indices`` are positions in the ``sequences`` given to
    :meth:`ModelAdapter.embed` (batches may come in any order, e.g. length-sorted).

    ``per_layer[layer]`` is a float32 array: per sequence ``(len(indices), feature_dim)``; per
    residue, the batch's residue vectors concatenated in the order of ``indices``.
    """

    indices: np.ndarray
    per_layer: dict[int, np.ndarray]


class ModelAdapter(abc.ABC):
    """A model that yields per-layer representations of protein sequences.

    Subclasses set ``name``, ``num_layers`` (L; layers are 0..L), ``embed_dim`` and
    ``max_residues`` (longer sequences are cut by the 511+511 rule before they reach the
    adapter), and implement :meth:`embed` and :meth:`identity`.
    """

    name: str
    num_layers: int
    embed_dim: int
    max_residues: int | None = None
    #: how a per-sequence representation is made from residue vectors
    pooling: Pooling = "mean"
    init: str = "pretrained"
    seed: int | None = None
    #: parameter count, for records and scaling plots (None: not known)
    num_parameters: int | None = None

    @property
    def layers(self) -> list[int]:
        return list(range(self.num_layers + 1))

    def feature_dim(self, sequences: Sequence[str], *, per_residue: bool) -> int:
        """Width of one feature row for these sequences (one-hot's flattening depends on them)."""
        return self.embed_dim

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything that determines the numbers: name, weights identity (checksum or version),
        init, seed, architecture config, dtype, library versions. JSON-serializable; it is
        hashed into the embedding cache key and written to the ledger."""

    @abc.abstractmethod
    def embed(self, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool) -> Iterator[EmbeddingBatch]:
        """Yield batches covering every sequence exactly once, with exactly ``layers`` in each.

        The model must run only up to ``max(layers)``. Per-sequence output is pooled over real
        residues only (no BOS/EOS/padding) according to :attr:`pooling`.
        """

    def validate_sequences(self, sequences: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~pytest_plmtransfer.infra.errors.InputError` for sequences this model cannot read."""


def collect_embeddings(
    adapter: ModelAdapter, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool
) -> dict[int, list[np.ndarray]]:
    """Run ``adapter.embed`` and return ``{layer: [array per sequence, in input order]}``.

    For small inputs (tests, notebooks): the embedding store streams batches to disk instead.
    """
    out: dict[int, list[np.ndarray]] = {layer: [None] * len(sequences) for layer in layers}  # type: ignore[list-item]
    for batch in adapter.embed(sequences, layers, per_residue=per_residue):
        offset = 0
        for row, i in enumerate(batch.indices):
            length = len(sequences[i])
            for layer in layers:
                arr = batch.per_layer[layer]
                out[layer][i] = arr[offset : offset + length] if per_residue else arr[row]
            offset += length
    return out
