"""The ``stat`` and ``random`` inits, the seeded-construction convention and weights identity."""

from __future__ import annotations

import argparse
import os
import urllib.error

import numpy as np
import pytest
import torch

from pytest_plmtransfer.models import carp as carp_mod
from pytest_plmtransfer.models import esm as esm_mod
from pytest_plmtransfer.models import weights as weights_mod
from pytest_plmtransfer.models.carp import CarpConfig
from pytest_plmtransfer.models.esm import EsmConfig
from pytest_plmtransfer.models.inits import apply_stat_init, build_seeded, seeded_construction
from pytest_plmtransfer.models.registry import ModelOptions

pytest.importorskip("esm")
pytest.importorskip("sequence_models.pretrained")

ESM2_TINY = EsmConfig("ESM-2", 2, 32, 4)


pytestmark = pytest.mark.usefixtures("torch_one_thread")
ESM1B_TINY = EsmConfig("ESM-1b", 2, 32, 4)
CARP_TINY = CarpConfig(d_model=16, n_layers=2, slim=True, d_embed=8, kernel_size=5, r=4)
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "GW", "ACDEFGHIKLMNPQRSTVWY", "MKV"]


def trained_like(model: torch.nn.Module, seed: int = 123) -> torch.nn.Module:
    """Perturb every parameter so that no tensor has its initializer's value (LayerNorm weights
    not all ones, biases not zero): a stand-in for pretrained weights of a tiny architecture."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def esm2_tiny(seed=0):
    return trained_like(build_seeded(lambda: esm_mod.build_architecture(ESM2_TINY), seed))


def embed_all(adapter, layers):
    out = {}
    for batch in adapter.embed(SEQS, layers, per_residue=False):
        for layer, arr in batch.per_layer.items():
            for j, i in enumerate(batch.indices):
                out[(layer, int(i))] = arr[j]
    return np.stack([np.concatenate([out[(layer, i)] for layer in layers]) for i in range(len(SEQS))])


# --------------------------------------------------------------------------- stat
def test_stat_keeps_each_tensors_multiset_and_changes_every_tensor():
    model = esm2_tiny()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    report = apply_stat_init(model, seed=42)
    # the contact-regression bias is a single number: no permutation can move it
    assert report["excluded"] == {}
    assert set(report["unchanged"]) == {"contact_head.regression.bias"}
    assert set(report["permuted"]) == set(before) - {"contact_head.regression.bias"}
    for name, param in model.named_parameters():
        old = before[name]
        assert torch.equal(torch.sort(param.detach().flatten()).values, torch.sort(old.flatten()).values), name
        if name in report["permuted"]:
            assert not torch.equal(param, old), f"{name} was not permuted"


def test_stat_is_reproducible_differs_across_seeds_and_keeps_ties():
    a, b, c = esm2_tiny(), esm2_tiny(), esm2_tiny()
    apply_stat_init(a, 1)
    apply_stat_init(b, 1)
    apply_stat_init(c, 2)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        assert pa.numel() == 1 or not torch.equal(pa, pc), name
    # ESM-2's LM head shares the token embedding tensor; it is permuted once and stays shared
    assert a.lm_head.weight is a.embed_tokens.weight


def test_stat_leaves_buffers_and_reports_them():
    model = esm2_tiny()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    report = apply_stat_init(model, 0)
    assert sorted(report["buffers_kept"]) == sorted(buffers)
    assert any("inv_freq" in k for k in buffers)  # rotary frequencies are buffers
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k])


def test_stat_reports_tensors_a_permutation_cannot_change():
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.LayerNorm(4))
    report = apply_stat_init(model, 0)
    assert "0.bias" in report["unchanged"]  # one element
    assert "1.weight" in report["unchanged"] and "1.bias" in report["unchanged"]  # all equal
    assert report["permuted"] == ["0.weight"]


def test_stat_does_not_touch_the_global_rng():
    state = torch.get_rng_state()
    apply_stat_init(esm2_tiny(), 5)
    assert torch.equal(torch.get_rng_state(), state)


# --------------------------------------------------------------------------- random
def test_seeded_construction_is_reproducible_and_restores_global_rng():
    torch.manual_seed(999)
    state = torch.get_rng_state()
    with seeded_construction(7):
        a = torch.nn.Linear(4, 4)
    assert torch.equal(torch.get_rng_state(), state)
    with seeded_construction(7):
        b = torch.nn.Linear(4, 4)
    with seeded_construction(8):
        c = torch.nn.Linear(4, 4)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


@pytest.mark.parametrize("family", ["ESM-1b", "ESM-2", "CARP"])
def test_random_changes_every_tensor_vs_pretrained(family, tmp_path, monkeypatch):
    """Build a tiny "pretrained" checkpoint, then random init through the factory: every
    parameter (embeddings, positions, LayerNorms, biases) differs from the checkpoint."""
    _hub(tmp_path, monkeypatch)
    options = ModelOptions(weights_dir=tmp_path, allow_download=False)
    pre, r1, r1b, r2 = _four_adapters(family, tmp_path, monkeypatch, options)
    pre_params = dict(pre.model.named_parameters())
    for name, p in r1.model.named_parameters():
        if p.numel() > 1:
            assert not torch.equal(p, pre_params[name]), f"{name} kept its pretrained value"
    # reproducible from the seed, different across seeds — at the parameter and embedding level
    for (name, p), q, _ in zip(r1.model.named_parameters(), r1b.model.parameters(), r2.model.parameters()):
        assert torch.equal(p, q), name
    e1, e1b, e2 = embed_all(r1, [0, 2]), embed_all(r1b, [0, 2]), embed_all(r2, [0, 2])
    np.testing.assert_array_equal(e1, e1b)
    assert not np.allclose(e1, e2)
    assert r1.identity() == r1b.identity() and r1.identity() != r2.identity()


def _hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir(exist_ok=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_network(*a, **k):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def _four_adapters(family, tmp_path, monkeypatch, options):
    """(pretrained, random seed 1, random seed 1 again, random seed 2) for a tiny model."""
    if family == "CARP":
        monkeypatch.setitem(carp_mod.CARP_CONFIGS, "carp_tiny", CARP_TINY)
        model = trained_like(build_seeded(lambda: carp_mod.build_architecture(CARP_TINY), 0))
        torch.save(
            {
                "model": "carp_tiny",
                "d_embed": 8,
                "d_model": 16,
                "n_layers": 2,
                "kernel_size": 5,
                "activation": "gelu",
                "slim": True,
                "r": 4,
                "model_state_dict": model.model.state_dict(),
            },
            tmp_path / "carp_tiny.pt",
        )
        create, name = carp_mod.create, "carp_tiny"
    else:
        cfg = ESM2_TINY if family == "ESM-2" else ESM1B_TINY
        name = "esm2_tiny" if family == "ESM-2" else "esm1b_tiny"
        monkeypatch.setitem(esm_mod.ESM_CONFIGS, name, cfg)
        model = trained_like(build_seeded(lambda: esm_mod.build_architecture(cfg), 0))
        state = {
            ("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k: v
            for k, v in model.state_dict().items()
            if not k.startswith("contact_head.regression")
        }
        if family == "ESM-2":
            data = {
                "cfg": {
                    "model": argparse.Namespace(
                        encoder_layers=2, encoder_embed_dim=32, encoder_attention_heads=4, token_dropout=True
                    )
                },
                "model": state,
            }
        else:
            data = {"args": esm_mod.esm1_args(cfg), "model": state}
        torch.save(data, tmp_path / f"{name}.pt")
        create = esm_mod.create
    pre = create(name, "pretrained", None, options)
    return (
        pre,
        create(name, "random", 1, options),
        create(name, "random", 1, options),
        create(name, "random", 2, options),
    )


@pytest.mark.parametrize("family", ["ESM-2", "CARP"])
def test_stat_through_the_factory_is_bit_reproducible(family, tmp_path, monkeypatch):
    _hub(tmp_path, monkeypatch)
    options = ModelOptions(weights_dir=tmp_path, allow_download=False)
    pre, *_ = _four_adapters(family, tmp_path, monkeypatch, options)
    create = carp_mod.create if family == "CARP" else esm_mod.create
    name = pre.name
    s1, s1b, s2 = (create(name, "stat", seed, options) for seed in (1, 1, 2))
    e1, e1b, e2, ep = (embed_all(a, [0, 2]) for a in (s1, s1b, s2, pre))
    np.testing.assert_array_equal(e1, e1b)
    assert not np.allclose(e1, e2) and not np.allclose(e1, ep)
    ident = s1.identity()
    assert ident["weights"] == pre.identity()["weights"] and ident["init"] == "stat" and ident["seed"] == 1
    assert ident["config"]["stat"]["excluded"] == {}
    for (name_, p), q in zip(s1.model.named_parameters(), pre.model.parameters()):
        assert torch.equal(torch.sort(p.flatten()).values, torch.sort(q.flatten()).values), name_


def test_stat_keeps_padding_invariance():
    """Permuting puts values into padding rows; padding must still not leak into residues."""
    model = esm2_tiny()
    apply_stat_init(model, 3)
    adapter = esm_mod.EsmAdapter(model, ModelOptions(token_budget=100_000), name="t")
    alone = esm_mod.EsmAdapter(model, ModelOptions(), name="t", max_batch_size=1)
    np.testing.assert_allclose(embed_all(adapter, [2]), embed_all(alone, [2]), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- weights identity
def test_sha256_is_cached_beside_the_file_and_invalidated_on_change(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"abc" * 1000)
    import hashlib

    digest = weights_mod.file_sha256(path)
    assert digest == hashlib.sha256(b"abc" * 1000).hexdigest()
    sidecar = tmp_path / "w.pt.sha256.json"
    assert sidecar.exists()
    # a cached digest is used as long as size and mtime match ...
    sidecar.write_text(sidecar.read_text().replace(digest, "f" * 64))
    assert weights_mod.file_sha256(path) == "f" * 64
    # ... and recomputed when the file changes
    path.write_bytes(b"abcd" * 1000)
    os.utime(path, ns=(1, 1))
    assert weights_mod.file_sha256(path) == hashlib.sha256(b"abcd" * 1000).hexdigest()


def test_sha256_cache_falls_back_to_user_cache_for_read_only_dirs(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        # root ignores directory permissions; simulate a failing write instead
        real = weights_mod.atomic_write

        def read_only_beside(target, text):
            if target.name.endswith(".sha256.json"):
                raise OSError(f"read-only: {target}")
            real(target, text)

        monkeypatch.setattr(weights_mod, "atomic_write", read_only_beside)
    ro = tmp_path / "ro"
    ro.mkdir()
    path = ro / "w.pt"
    path.write_bytes(b"xyz")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if os.geteuid() != 0:
        ro.chmod(0o555)
    try:
        digest = weights_mod.file_sha256(path)
    finally:
        ro.chmod(0o755)
    assert not (ro / "w.pt.sha256.json").exists()
    assert list((tmp_path / "cache" / "plmtransfer" / "digests").glob("*.json"))
    assert weights_mod.file_sha256(path) == digest
