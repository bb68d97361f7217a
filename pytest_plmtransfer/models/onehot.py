"""The one-hot baseline: a fixed alphabet, flattened and zero-padded; a single "layer" 0.

The alphabet is the protocol's (:mod:`pytest_plmtransfer.measure.protocol`): plmtransfer's 20 standard
residues + X, with B, Z, U and O counted as X (rare ambiguity/non-standard codes share X's column
rather than widening every feature vector); the authors' 23 letters in their order, nothing folded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pytest_plmtransfer.infra.errors import InputError
from pytest_plmtransfer.measure.protocol import PLMTRANSFER, get_protocol, protocol_of
from pytest_plmtransfer.models.base import ONEHOT, EmbeddingBatch, ModelAdapter
from pytest_plmtransfer.models.describe import ModelDescription


def residue_index(alphabet: str, fold_to_x: str = "") -> np.ndarray:
    """A byte -> column lookup for ``alphabet`` (-1: not in it); ``fold_to_x`` letters map to X."""
    index = np.full(256, -1, dtype=np.int64)
    for i, aa in enumerate(alphabet):
        index[ord(aa)] = i
    for aa in fold_to_x:
        index[ord(aa)] = alphabet.index("X")
    return index


def encode(sequence: str, index: np.ndarray) -> np.ndarray:
    """Residue indices into the alphabet ``index`` was built for; raises on letters outside it."""
    codes = index[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]
    if (codes < 0).any():
        bad = sorted({sequence[i] for i in np.flatnonzero(codes < 0)})
        raise InputError(f"unknown residue letter(s) {''.join(bad)!r} for one-hot encoding")
    return codes


class OneHotAdapter(ModelAdapter):
    name = ONEHOT
    num_layers = 0
    pooling = "flatten"
    init = "none"
    num_parameters = 0

    def __init__(self, batch_size: int = 1024, protocol: str = PLMTRANSFER) -> None:
        self.batch_size = batch_size
        rules = get_protocol(protocol)
        self.protocol = rules.name
        self.alphabet = rules.onehot_alphabet
        self.fold_to_x = rules.onehot_fold_to_x
        self.embed_dim = len(self.alphabet)
        self._index = residue_index(self.alphabet, self.fold_to_x)

    def identity(self) -> dict[str, Any]:
        return {
            "model": ONEHOT,
            "alphabet": self.alphabet,
            "fold_to_x": self.fold_to_x,
            "pooling": "flatten",
            "protocol": self.protocol,
        }

    def validate_sequences(self, sequences: Sequence[str]) -> None:
        for seq in sequences:
            encode(seq, self._index)

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
                out = np.concatenate([eye[encode(sequences[int(i)], self._index)] for i in idx])
            else:
                out = np.zeros((len(idx), width), dtype=np.float32)
                for row, i in enumerate(idx):
                    flat = eye[encode(sequences[int(i)], self._index)].reshape(-1)
                    out[row, : flat.size] = flat
            yield EmbeddingBatch(indices=idx, per_layer={0: out})


def describe(name: str, options: Any) -> ModelDescription:
    return ModelDescription(0, len(protocol_of(options).onehot_alphabet), None, 0, "fixed one-hot alphabet")


def register(registry: Any) -> None:
    registry.register(
        ONEHOT,
        lambda name, init, seed, options: OneHotAdapter(protocol=options.protocol),
        inits=("none",),
        needs_weights=(),
        description="flattened, zero-padded one-hot (20 residues + X; the authors' 23 letters under --plm-protocol authors)",
        describe=describe,
    )
