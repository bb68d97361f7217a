"""``testing.check_adapter`` on the one-hot baseline and on a user's toy adapter: what it accepts,
and that each broken promise fails with a message saying which."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from pytest_plmtransfer.infra.errors import InputError
from pytest_plmtransfer.models.base import EmbeddingBatch
from pytest_plmtransfer.models.describe import ModelDescription
from pytest_plmtransfer.models.registry import ModelOptions, ModelRegistry, builtin_registry
from pytest_plmtransfer.testing import ToyAdapter, check_adapter, register_toy


class CheckedToy(ToyAdapter):
    """A user's adapter that validates its input (ToyAdapter reads any letter as a table row)."""

    def validate_sequences(self, sequences: Sequence[str]) -> None:
        for i, seq in enumerate(sequences):
            bad = sorted(set(seq) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
            if bad:
                raise InputError(f"sequence {i} has letter(s) {''.join(bad)!r} that {self.name} cannot read")


def toy_factory(cls: type[ToyAdapter] = CheckedToy):
    registry = ModelRegistry()
    register_toy(registry, "my_plm", num_layers=3, cls=cls)
    return registry.entry("my_plm").factory


@pytest.mark.parametrize("init, seed", [("pretrained", None), ("random", 3), ("stat", 3)])
def test_a_toy_user_adapter_keeps_the_contract(init, seed):
    described = ModelDescription(3, 8)
    adapter = check_adapter(toy_factory(), name="my_plm", init=init, seed=seed, description=described)
    assert adapter.num_layers == 3 and adapter.init == init


def test_onehot_keeps_the_contract():
    registry = builtin_registry()
    options = ModelOptions()
    check_adapter(
        registry.entry("onehot").factory, name="onehot", init="none", description=registry.describe("onehot", options)
    )


class Shuffled(CheckedToy):
    """Reports its batches under the wrong indices: sequence order leaks into the numbers."""

    def embed(self, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool) -> Iterator[EmbeddingBatch]:
        for batch in super().embed(sequences, layers, per_residue=per_residue):
            yield EmbeddingBatch(indices=(batch.indices + 1) % len(sequences), per_layer=batch.per_layer)


class Float64(CheckedToy):
    def embed(self, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool) -> Iterator[EmbeddingBatch]:
        for batch in super().embed(sequences, layers, per_residue=per_residue):
            yield EmbeddingBatch(batch.indices, {k: v.astype(np.float64) for k, v in batch.per_layer.items()})


class ExtraLayer(CheckedToy):
    def embed(self, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool) -> Iterator[EmbeddingBatch]:
        yield from super().embed(sequences, sorted({*layers, 0}), per_residue=per_residue)


class FixedIdentity(CheckedToy):
    def identity(self) -> dict:
        return {"model": self.name, "weights": "v1"}


@pytest.mark.parametrize(
    "cls, init, seed, description, problem",
    [
        (ToyAdapter, "pretrained", None, None, "validate_sequences accepted 'MK1V'"),
        (CheckedToy, "pretrained", None, ModelDescription(2, 8), r"described as \(layers, width\) \(2, 8\)"),
        (Shuffled, "pretrained", None, None, "depend on the order of the sequences"),
        (Float64, "pretrained", None, None, r"layer 0 \(pooled\) is float64 \(1, 8\), not float32"),
        (ExtraLayer, "pretrained", None, None, r"asked for layers \[3\], a batch has \[0, 3\]"),
        (FixedIdentity, "pretrained", None, None, "carries no content hash"),
        (FixedIdentity, "random", 0, None, "carries no content hash"),
    ],
)
def test_a_broken_promise_is_named(cls, init, seed, description, problem):
    with pytest.raises(AssertionError, match=problem):
        check_adapter(toy_factory(cls), name="my_plm", init=init, seed=seed, description=description)


def test_a_seed_that_changes_nothing_is_caught():
    class SeedBlind(CheckedToy):
        def identity(self) -> dict:
            return {**super().identity(), "seed": None, "weights_sha256": "0" * 64}

    with pytest.raises(AssertionError, match="seeds 0 and 1 have the same identity"):
        check_adapter(toy_factory(SeedBlind), name="my_plm", init="random", seed=0)
