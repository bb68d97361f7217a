"""TorchAdapter: batching plan, validation, pooling, per-residue order, dtype, OOM back-off.

The base is exercised through a tiny real ESM-2 (2 layers, 32 dims, built by fair-esm) and,
where exact hand-computable numbers help, a minimal torch adapter whose layer k is
``embedding + k``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from pytest_plmtransfer.infra.errors import InputError
from pytest_plmtransfer.models.registry import ModelOptions
from pytest_plmtransfer.models.torch_base import TorchAdapter, block_inputs, is_oom, plan_batches

SEQS = ["MKTAYIAKQR", "GW", "ACDEFGHIKLMNPQRSTVWY", "MKV", "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP", "QE", "LLLLA"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


class AddLayerAdapter(TorchAdapter):
    """Layer k of residue r is ``emb[token r] + k``; BOS gets a huge value so leaking it into
    pooling would show. Token ids: letters 'A'..'Z' -> 1..26, BOS 27, padding 0."""

    alphabet = "ABCDEFGHIKLMNPQRSTVWXYZ"
    special_tokens_per_seq = 1

    def __init__(self, options: ModelOptions, **kw) -> None:
        torch.manual_seed(0)
        emb = torch.nn.Embedding(28, 3)
        with torch.no_grad():
            emb.weight[27] = 1e6
        self.forward_batches: list[int] = []
        super().__init__(emb, options, name="addlayer", num_layers=4, embed_dim=3, **kw)

    def _tokenize(self, seqs: list[str]):
        width = max(map(len, seqs)) + 1
        tokens = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.bool)
        for i, s in enumerate(seqs):
            tokens[i, 0] = 27
            tokens[i, 1 : len(s) + 1] = torch.tensor([ord(c) - 64 for c in s])
            mask[i, 1 : len(s) + 1] = True
        return tokens, mask

    def _forward(self, tokens, max_layer: int, layers: Sequence[int]):
        self.forward_batches.append(tokens.shape[0])
        e = self.model(tokens)
        return {k: e + k for k in layers}


def expected(adapter: AddLayerAdapter, seq: str, layer: int) -> np.ndarray:
    w = adapter.model.weight.detach().numpy()
    return np.stack([w[ord(c) - 64] + layer for c in seq])


def collect(adapter, seqs, layers, per_residue=False):
    """Adapter output rearranged into input order: {layer: (N, D)} or {layer: [(len_i, D)]}."""
    out: dict[int, list] = {layer: [None] * len(seqs) for layer in layers}
    seen: list[int] = []
    for batch in adapter.embed(seqs, layers, per_residue=per_residue):
        assert set(batch.per_layer) == set(layers)
        seen.extend(batch.indices.tolist())
        for layer, arr in batch.per_layer.items():
            assert arr.dtype == np.float32
            if per_residue:
                offsets = np.cumsum([0] + [len(seqs[i]) for i in batch.indices])
                assert arr.shape[0] == offsets[-1]
                for j, i in enumerate(batch.indices):
                    out[layer][i] = arr[offsets[j] : offsets[j + 1]]
            else:
                for j, i in enumerate(batch.indices):
                    out[layer][i] = arr[j]
    assert sorted(seen) == list(range(len(seqs))), "every sequence exactly once"
    if per_residue:
        return out
    return {layer: np.stack(rows) for layer, rows in out.items()}


# --------------------------------------------------------------------------- planning
def test_plan_batches_covers_everything_longest_first_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=200).tolist()
    batches = plan_batches(lengths, token_budget=1000, max_batch_size=8, special_tokens=2)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(200))
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)
    for b in batches:
        assert len(b) <= 8
        assert len(b) * (max(lengths[i] for i in b) + 2) <= 1000


def test_plan_batches_oversized_sequence_gets_its_own_batch():
    batches = plan_batches([5000, 10, 10], token_budget=100, max_batch_size=16)
    assert [b.tolist() for b in batches] == [[0], [1, 2]]


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("per_residue", [False, True])
def test_pooling_and_per_residue_exclude_special_tokens_and_padding(per_residue):
    adapter = AddLayerAdapter(ModelOptions(token_budget=40))
    got = collect(adapter, SEQS, [0, 2, 4], per_residue=per_residue)
    for layer in (0, 2, 4):
        for i, seq in enumerate(SEQS):
            ref = expected(adapter, seq, layer)
            if per_residue:
                np.testing.assert_allclose(got[layer][i], ref, rtol=1e-6, atol=1e-6)
            else:
                np.testing.assert_allclose(got[layer][i], ref.mean(0), rtol=1e-6, atol=1e-6)


def test_results_independent_of_token_budget_and_batch_cap():
    ref = collect(AddLayerAdapter(ModelOptions(token_budget=10_000)), SEQS, [1, 3])
    for budget, cap in [(8, 16), (40, 2), (100, 1), (64, 3)]:
        adapter = AddLayerAdapter(ModelOptions(token_budget=budget), max_batch_size=cap)
        got = collect(adapter, SEQS, [1, 3])
        for layer in (1, 3):
            # padding changes the float summation order, so equal up to rounding, not bitwise
            np.testing.assert_allclose(got[layer], ref[layer], rtol=1e-6, atol=1e-6)
        assert max(adapter.forward_batches) <= cap


def test_default_batch_cap_and_extra_override():
    assert AddLayerAdapter(ModelOptions()).max_batch_size == 16
    assert AddLayerAdapter(ModelOptions(extra={"max_batch_size": 4})).max_batch_size == 4


# --------------------------------------------------------------------------- validation
def test_bad_letters_empty_and_too_long_sequences_raise_input_error():
    adapter = AddLayerAdapter(ModelOptions(), max_residues=25)
    with pytest.raises(InputError, match=r"sequence 1 .*'j'"):
        list(adapter.embed(["MKV", "MKjV"], [0], per_residue=False))
    with pytest.raises(InputError, match="sequence 0 is empty"):
        list(adapter.embed(["", "MK"], [0], per_residue=False))
    with pytest.raises(InputError, match="31 residues"):
        list(adapter.embed(SEQS, [0], per_residue=False))


def test_layers_out_of_range_raise():
    adapter = AddLayerAdapter(ModelOptions())
    with pytest.raises(ValueError, match="layers 0..4"):
        list(adapter.embed(["MK"], [5], per_residue=False))
    with pytest.raises(ValueError):
        list(adapter.embed(["MK"], [], per_residue=False))


def test_half_precision_falls_back_to_float32_on_cpu():
    with pytest.warns(UserWarning, match="only used on CUDA"):
        adapter = AddLayerAdapter(ModelOptions(dtype="bf16"))
    assert adapter.dtype == torch.float32
    assert adapter.identity()["dtype"] == "float32"


def test_progress_bar_runs(capsys):
    adapter = AddLayerAdapter(ModelOptions(progress=True, token_budget=20))
    got = collect(adapter, SEQS, [0])
    assert got[0].shape == (len(SEQS), 3)


# --------------------------------------------------------------------------- OOM back-off
def test_is_oom_recognizes_cuda_and_allocator_errors():
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ... out of memory"))
    assert not is_oom(RuntimeError("shape mismatch"))


def test_oom_halves_batch_and_retries(monkeypatch):
    adapter = AddLayerAdapter(ModelOptions(token_budget=10_000))
    ref = collect(AddLayerAdapter(ModelOptions(token_budget=10_000)), SEQS, [0, 2])
    real_forward = adapter._forward
    attempted: list[int] = []

    def flaky_forward(tokens, max_layer, layers):
        attempted.append(tokens.shape[0])
        if tokens.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real_forward(tokens, max_layer, layers)

    monkeypatch.setattr(adapter, "_forward", flaky_forward)
    with pytest.warns(UserWarning, match="out of memory"):
        got = collect(adapter, SEQS, [0, 2])
    for layer in (0, 2):
        np.testing.assert_allclose(got[layer], ref[layer], rtol=1e-6, atol=1e-6)
    assert attempted[0] == len(SEQS)  # one batch of 7 first, then 3, then batches of <= 2
    assert max(attempted[1:]) <= 3 and attempted[-1] <= 2


def test_oom_on_single_sequence_reraises(monkeypatch):
    adapter = AddLayerAdapter(ModelOptions())

    def always_oom(tokens, max_layer, layers):
        raise RuntimeError("CUDA out of memory (injected)")

    monkeypatch.setattr(adapter, "_forward", always_oom)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="out of memory"):
            collect(adapter, SEQS, [0])


def test_other_errors_are_not_retried(monkeypatch):
    adapter = AddLayerAdapter(ModelOptions())
    calls = []

    def broken(tokens, max_layer, layers):
        calls.append(1)
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(adapter, "_forward", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        collect(adapter, SEQS, [0])
    assert len(calls) == 1


# --------------------------------------------------------------------------- identity / modes
def test_identity_is_json_and_model_is_frozen_in_eval_mode():
    import json

    adapter = AddLayerAdapter(ModelOptions(), seed=3, weights_identity="sha256:abc")
    ident = adapter.identity()
    json.dumps(ident)
    assert ident["seed"] == 3 and ident["weights"] == "sha256:abc" and ident["libraries"]["torch"]
    assert not adapter.model.training
    assert not any(p.requires_grad for p in adapter.model.parameters())


def test_tokenizer_residue_count_mismatch_is_caught(monkeypatch):
    adapter = AddLayerAdapter(ModelOptions())
    real = adapter._tokenize

    def drops_last(seqs):
        tokens, mask = real(seqs)
        mask[0, len(seqs[0])] = False
        return tokens, mask

    monkeypatch.setattr(adapter, "_tokenize", drops_last)
    with pytest.raises(Exception, match="residue positions"):
        collect(adapter, ["MKV", "GW"], [0])


def test_block_inputs_stops_at_the_deepest_layer_and_leaves_no_hook_behind():
    blocks = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(3))
    ran: list[int] = []

    def forward():
        x = torch.ones(1, 2)
        for i, block in enumerate(blocks):
            x = block(x)
            ran.append(i)

    got = block_inputs(blocks, 1, [0, 1], forward, "m")
    assert ran == [0] and sorted(got) == [0, 1]  # block 1's input is layer 1: the pass stops there

    def out_of_memory():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    for call in (
        lambda: block_inputs(blocks, 2, [2], out_of_memory, "m"),
        lambda: block_inputs(blocks, 5, [5], forward, "m"),
    ):
        with pytest.raises((torch.cuda.OutOfMemoryError, IndexError)):
            call()
    assert not any(block._forward_pre_hooks for block in blocks)
