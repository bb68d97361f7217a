"""The one-hot baseline: a fixed alphabet, flattened and zero-padded; a single "layer" 0."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pytest_plmtransfer.errors import InputError
from pytest_plmtransfer.models import describe as describe_model
from pytest_plmtransfer.models.base import ONEHOT, EmbeddingBatch, ModelAdapter

#: 20 standard residues + X. B, Z, U and O are rare ambiguity/non-standard codes; they share X's
#: column rather than widening every feature vector for a handful of residues.
ALPHABET = "ACDEFGHIKLMNPQRSTVWYX"
_FOLD_TO_X = "BZUO"
_INDEX = np.full(256, -1, dtype=np.int64)
for _i, _aa in enumerate(ALPHABET):
    _INDEX[ord(_aa)] = _i
for _aa in _FOLD_TO_X:
    _INDEX[ord(_aa)] = ALPHABET.index("X")


def encode(sequence: str) -> np.ndarray:
    """Residue indices into :data:`ALPHABET`; raises on letters outside it."""
    codes = _INDEX[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]
    if (codes < 0).any():
        bad = sorted({sequence[i] for i in np.flatnonzero(codes < 0)})
        raise InputError(f"unknown residue letter(s) {''.join(bad)!r} for one-hot encoding")
    return codes


class OneHotAdapter(ModelAdapter):
    name = ONEHOT
    num_layers = 0
    embed_dim = len(ALPHABET)
    pooling = "flatten"
    init = "none"
    num_parameters = 0

    def __init__(self, batch_size: int = 1024) -> None:
        self.batch_size = batch_size

    def identity(self) -> dict[str, Any]:
        return {"model": ONEHOT, "alphabet": ALPHABET, "fold_to_x": _FOLD_TO_X, "pooling": "flatten"}

    def feature_dim(self, sequences: Sequence[str], *, per_residue: bool) -> int:
        if per_residue:
            return self.embed_dim
        return max(len(s) for s in sequences) * self.embed_dim

    def embed(self, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool) -> Iterator[EmbeddingBatch]:
        if set(layers) != {0}:
            raise ValueError(f"one-hot has only layer 0, asked for {sorted(layers)}")
        width = self.feature_dim(sequences, per_residue=per_residue)
        eye = np.eye(self.embed_dim, dtype=np.float32)
        for start in range(0, len(sequences), self.batch_size):
            idx = np.arange(start, min(start + self.batch_size, len(sequences)))
            if per_residue:
                out = np.concatenate([eye[encode(sequences[i])] for i in idx])
            else:
                out = np.zeros((len(idx), width), dtype=np.float32)
                for row, i in enumerate(idx):
                    flat = eye[encode(sequences[i])].reshape(-1)
                    out[row, : flat.size] = flat
            yield EmbeddingBatch(indices=idx, per_layer={0: out})


def register(registry) -> None:
    registry.register(
        ONEHOT,
        lambda name, init, seed, options: OneHotAdapter(),
        inits=("none",),
        needs_weights=(),
        description="flattened, zero-padded one-hot over 20 residues + X",
        describe=describe_model.onehot,
    )
