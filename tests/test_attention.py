"""SDPA attention (``--plm-attention sdpa``) against each library's own attention, layer by layer.

Tiny real architectures of every fair-esm family (ESM-1 with bias_k/bias_v, ESM-1b, ESM-2 with
rotary embeddings), batches with padding, weights perturbed so nothing is trivially symmetric.
Every layer's representation must agree within 1e-5 on the real (non-padding) positions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_plmtransfer.models.attention import attention_option, check_attention, install_sdpa, uninstall_sdpa
from pytest_plmtransfer.models.esm import EsmAdapter, EsmConfig, build_architecture
from pytest_plmtransfer.models.inits import seeded_construction
from pytest_plmtransfer.models.registry import ModelOptions

esm = pytest.importorskip("esm")
pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAMILIES = ["ESM-1", "ESM-1b", "ESM-2"]
# lengths 1..40: every batch below is padded, and one sequence is a single residue
SEQS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRV", "G", "ACDEFGHIKLMNPQRSTVWYXBUZO", "MKV", "PEPTIDE"]


def tiny(family: str, seed: int = 3) -> torch.nn.Module:
    with seeded_construction(seed):
        model = build_architecture(EsmConfig(family, 3, 48, 4))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def tokens(family: str) -> tuple[torch.Tensor, torch.Tensor]:
    alphabet = esm.Alphabet.from_architecture("ESM-1" if family == "ESM-1" else "ESM-1b")
    _, _, toks = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(SEQS)])
    return toks, toks != alphabet.padding_idx


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.slow
def test_sdpa_equals_library_per_layer_with_padding(family):
    model = tiny(family)
    toks, real = tokens(family)
    assert (~real).any(), "the batch must contain padding"
    layers = list(range(4))
    with torch.inference_mode():
        ref = model(toks, repr_layers=layers)["representations"]
        assert install_sdpa(model) == 3
        calls = []
        real_sdpa = torch.nn.functional.scaled_dot_product_attention

        def counting(*args, **kwargs):
            calls.append(kwargs.get("attn_mask"))
            return real_sdpa(*args, **kwargs)

        torch.nn.functional.scaled_dot_product_attention = counting
        try:
            out = model(toks, repr_layers=layers)["representations"]
        finally:
            torch.nn.functional.scaled_dot_product_attention = real_sdpa
    assert len(calls) == 3 and all(m is not None for m in calls), "SDPA ran with the padding mask"
    for layer in layers:
        diff = (out[layer] - ref[layer])[real].abs().max().item()
        scale = ref[layer][real].abs().max().item()
        assert diff <= 1e-5 * max(1.0, scale), (family, layer, diff, scale)


@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_without_padding_and_single_sequence(family):
    model = tiny(family, seed=5)
    alphabet = esm.Alphabet.from_architecture("ESM-1" if family == "ESM-1" else "ESM-1b")
    _, _, toks = alphabet.get_batch_converter()([("a", SEQS[0])])
    with torch.inference_mode():
        ref = model(toks, repr_layers=[3])["representations"][3]
        install_sdpa(model)
        out = model(toks, repr_layers=[3])["representations"][3]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_attention_weights_requests_fall_back_to_the_library():
    """return_contacts needs per-head attention maps: the library's path must serve it."""
    model = tiny("ESM-2")
    toks, _ = tokens("ESM-2")
    with torch.inference_mode():
        ref = model(toks, return_contacts=True)["contacts"]
        install_sdpa(model)
        out = model(toks, return_contacts=True)["contacts"]
    torch.testing.assert_close(out, ref)


def test_install_is_per_instance_and_reversible():
    from esm.multihead_attention import MultiheadAttention

    a, b = tiny("ESM-2"), tiny("ESM-2")
    install_sdpa(a)
    install_sdpa(a)  # idempotent
    assert all("forward" in m.__dict__ for m in a.modules() if isinstance(m, MultiheadAttention))
    assert not any("forward" in m.__dict__ for m in b.modules() if isinstance(m, MultiheadAttention))
    assert "forward" not in vars(MultiheadAttention) or MultiheadAttention.forward.__module__.startswith("esm")
    uninstall_sdpa(a)
    assert not any("forward" in m.__dict__ for m in a.modules() if isinstance(m, MultiheadAttention))


def test_fused_projection_follows_weight_changes():
    """The cached q/k/v weight is rebuilt when a projection's parameters change in place (the
    stat init permutes parameters after a model is built)."""
    model = tiny("ESM-1b")
    toks, real = tokens("ESM-1b")
    install_sdpa(model)
    with torch.inference_mode():
        model(toks, repr_layers=[3])
    with torch.no_grad():
        for layer in model.layers:
            layer.self_attn.k_proj.weight.mul_(1.5)
    with torch.inference_mode():
        out = model(toks, repr_layers=[3])["representations"][3]
        uninstall_sdpa(model)
        ref = model(toks, repr_layers=[3])["representations"][3]
    torch.testing.assert_close(out[real], ref[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_layers_match_between_attention_modes(family):
    seqs = SEQS + ["W" * 60]
    got = {}
    for mode in ("library", "sdpa"):
        adapter = EsmAdapter(tiny(family), ModelOptions(extra={"attention": mode}), name=f"tiny-{family}")
        assert adapter.identity()["config"]["attention"] == mode
        pooled = {l: np.zeros((len(seqs), 48), np.float32) for l in adapter.layers}
        for batch in adapter.embed(seqs, adapter.layers, per_residue=False):
            for l in adapter.layers:
                pooled[l][batch.indices] = batch.per_layer[l]
        got[mode] = pooled
        # a truncated pass (stop after layer 2) goes through the same attention
        partial = {}
        for batch in adapter.embed(seqs, [1, 2], per_residue=True):
            partial.setdefault(2, []).append(batch.per_layer[2])
        got[mode + "-partial"] = np.concatenate(partial[2])
    for l in got["sdpa"]:
        np.testing.assert_allclose(got["sdpa"][l], got["library"][l], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["sdpa-partial"], got["library-partial"], rtol=1e-5, atol=1e-5)


def test_attention_option_values():
    assert check_attention(None) == "sdpa"
    assert check_attention(" Library ") == "library"
    assert attention_option(ModelOptions()) == "sdpa"
    assert attention_option(ModelOptions(extra={"attention": "library"})) == "library"
    with pytest.raises(ValueError, match="--plm-attention"):
        check_attention("flash")


@pytest.mark.slow
def test_hf_bert_sdpa_equals_eager_per_layer_with_padding():
    """AntiBERTy / hf: BERT models use transformers' own SDPA attention; it must equal the eager
    (explicit softmax) attention layer by layer on a padded batch."""
    transformers = pytest.importorskip("transformers")
    from pytest_plmtransfer.models.hf import select_hf_attention

    config = transformers.BertConfig(
        vocab_size=30, hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=96, max_position_embeddings=64,
    )  # fmt: skip
    with seeded_construction(0):
        model = transformers.BertModel(config, add_pooling_layer=False).eval()
    ids = torch.tensor([[2] + [5 + i % 20 for i in range(30)] + [3], [2, 7, 8, 3] + [0] * 28])
    mask = (ids != 0).long()
    out = {}
    for mode in ("eager", "sdpa"):
        if mode == "sdpa":
            assert select_hf_attention(model, ModelOptions(extra={"attention": "sdpa"})) == "sdpa"
        else:
            model.set_attn_implementation("eager")
        with torch.inference_mode():
            out[mode] = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    real = mask.bool()
    for layer, (a, b) in enumerate(zip(out["eager"], out["sdpa"], strict=True)):
        assert (a - b)[real].abs().max().item() <= 1e-5, layer
