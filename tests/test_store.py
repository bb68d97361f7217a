"""EmbeddingStore: content addressing, per-layer files, reuse, corruption and interruption."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from pytest_plmtransfer.models.base import EmbeddingBatch, ModelAdapter
from pytest_plmtransfer.models.onehot import OneHotAdapter
from pytest_plmtransfer.results.store import EmbeddingStore


class CountingAdapter(ModelAdapter):
    """A deterministic 3-layer adapter that counts forward passes and the layers asked for."""

    name = "counting"
    num_layers = 3
    embed_dim = 4

    def __init__(self, fail_after: int | None = None, version: str = "v1") -> None:
        self.calls: list[list[int]] = []
        self.fail_after = fail_after
        self.version = version

    def identity(self):
        return {"model": self.name, "version": self.version}

    def embed(self, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool) -> Iterator[EmbeddingBatch]:
        self.calls.append(sorted(layers))
        for n, i in enumerate(range(len(sequences))):
            if self.fail_after is not None and n >= self.fail_after:
                raise KeyboardInterrupt("simulated interruption")
            seq = sequences[i]
            res = np.array([[ord(c) + k for k in range(4)] for c in seq], dtype=np.float32)
            per_layer = {
                layer: (res + layer * 100) if per_residue else (res + layer * 100).mean(0, keepdims=True)
                for layer in layers
            }
            yield EmbeddingBatch(indices=np.array([i]), per_layer=per_layer)


SEQS = ["ACDE", "MKV", "WYYWA"]


def test_layers_are_computed_once_and_reused(tmp_path):
    store = EmbeddingStore(tmp_path)
    adapter = CountingAdapter()
    first = store.get_or_compute(adapter, SEQS, [0, 2], per_residue=False)
    assert first.computed and adapter.calls == [[0, 2]]
    np.testing.assert_allclose(first.layer(2)[1], np.array([ord(c) for c in "MKV"]).mean() + np.arange(4) + 200)

    again = EmbeddingStore(tmp_path).get_or_compute(adapter, SEQS, [0, 2], per_residue=False)
    assert not again.computed and adapter.calls == [[0, 2]], "a warm store must not run the model"

    # Asking for one more layer computes only that one, in one pass, keeping the others.
    more = store.get_or_compute(adapter, SEQS, [0, 1, 2], per_residue=False)
    assert adapter.calls == [[0, 2], [1]]
    assert more.computed and sorted(json.loads((more.path / "manifest.json").read_text())["layers"]) == ["0", "1", "2"]


def test_key_depends_on_identity_sequences_and_pooling_not_on_names(tmp_path):
    store = EmbeddingStore(tmp_path)
    base = store.get_or_compute(CountingAdapter(), SEQS, [0], per_residue=False).key
    assert store.get_or_compute(CountingAdapter(version="v2"), SEQS, [0], per_residue=False).key != base
    assert store.get_or_compute(CountingAdapter(), SEQS[:2], [0], per_residue=False).key != base
    assert store.get_or_compute(CountingAdapter(), SEQS, [0], per_residue=True).key != base


def test_per_residue_rows_follow_offsets(tmp_path):
    entry = EmbeddingStore(tmp_path).get_or_compute(CountingAdapter(), SEQS, [1], per_residue=True)
    assert entry.offsets.tolist() == [0, 4, 7, 12]
    arr = entry.layer(1)
    assert arr.shape == (12, 4)
    assert arr[entry.offsets[2], 0] == ord("W") + 100


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "delete", "bad_manifest"])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, damage):
    adapter = CountingAdapter()
    entry = EmbeddingStore(tmp_path).get_or_compute(adapter, SEQS, [0, 1], per_residue=False)
    expected = np.array(entry.layer(1))
    target = entry.path / "L001.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-7])
    elif damage == "flip_byte":
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 0xFF
        target.write_bytes(bytes(raw))
    elif damage == "delete":
        target.unlink()
    else:
        (entry.path / "manifest.json").write_text("{not json")
    rebuilt = EmbeddingStore(tmp_path).get_or_compute(adapter, SEQS, [0, 1], per_residue=False)
    assert rebuilt.computed
    assert adapter.calls[-1] == ([1] if damage != "bad_manifest" else [0, 1])
    np.testing.assert_array_equal(rebuilt.layer(1), expected)


def test_interrupted_computation_leaves_no_partial_files(tmp_path):
    store = EmbeddingStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        store.get_or_compute(CountingAdapter(fail_after=1), SEQS, [0, 1], per_residue=False)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == [], f"half-written files left behind: {leftovers}"
    entry = store.get_or_compute(CountingAdapter(), SEQS, [0, 1], per_residue=False)
    assert entry.computed and entry.layer(0).shape == (3, 4)


def test_onehot_flattens_with_zero_padding(tmp_path):
    entry = EmbeddingStore(tmp_path).get_or_compute(OneHotAdapter(), ["AC", "ACD"], [0], per_residue=False)
    arr = entry.layer(0)
    assert arr.shape == (2, 3 * 21)
    assert arr[0, 42:].sum() == 0 and arr[1].sum() == 3
