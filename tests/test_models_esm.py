"""ESM-1 / ESM-1b / ESM-2 adapters on tiny real fair-esm architectures (offline, seconds)."""

from __future__ import annotations

import argparse
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_plmtransfer.infra.errors import InputError, ResourceUnavailable
from pytest_plmtransfer.models import esm as esm_mod
from pytest_plmtransfer.models import weights as weights_mod
from pytest_plmtransfer.models.esm import EsmAdapter, EsmConfig, build_architecture, create
from pytest_plmtransfer.models.inits import seeded_construction
from pytest_plmtransfer.models.registry import ModelOptions, UnknownModelError, builtin_registry
from pytest_plmtransfer.testing import check_adapter

esm = pytest.importorskip("esm")

SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "GW", "ACDEFGHIKLMNPQRSTVWYXBUZO", "MKV", "PEPTIDEPEPTIDEPEPTIDE", "QE"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")
FAMILIES = ["ESM-1", "ESM-1b", "ESM-2"]
TINY = {f: EsmConfig(f, 3, 32, 4, f"tiny {f}") for f in FAMILIES}
TINY_NAMES = {"ESM-1": "esm1_tiny_test", "ESM-1b": "esm1b_tiny_test", "ESM-2": "esm2_tiny_test"}


def collect(adapter, seqs, layers, per_residue=False):
    out: dict[int, list] = {layer: [None] * len(seqs) for layer in layers}
    seen: list[int] = []
    for batch in adapter.embed(seqs, layers, per_residue=per_residue):
        seen.extend(batch.indices.tolist())
        for layer, arr in batch.per_layer.items():
            if per_residue:
                offsets = np.cumsum([0] + [len(seqs[i]) for i in batch.indices])
                for j, i in enumerate(batch.indices):
                    out[layer][i] = arr[offsets[j] : offsets[j + 1]]
            else:
                for j, i in enumerate(batch.indices):
                    out[layer][i] = arr[j]
    assert sorted(seen) == list(range(len(seqs)))
    return out if per_residue else {k: np.stack(v) for k, v in out.items()}


def tiny_model(family: str, seed: int = 1) -> torch.nn.Module:
    with seeded_construction(seed):
        model = build_architecture(TINY[family])
    # make every tensor non-trivial, like trained weights (LayerNorm weights not all ones ...)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def library_reference(model, family, seqs, layers):
    """fair-esm's own path: BatchConverter tokens, forward with repr_layers, per sequence."""
    alphabet = esm.Alphabet.from_architecture("ESM-1" if family == "ESM-1" else "ESM-1b")
    converter = alphabet.get_batch_converter()
    _, _, tokens = converter([(str(i), s) for i, s in enumerate(seqs)])
    with torch.no_grad():
        reps = model(tokens, repr_layers=list(layers))["representations"]
    per_res = {layer: [reps[layer][i, 1 : 1 + len(s)].numpy() for i, s in enumerate(seqs)] for layer in layers}
    return per_res


def official_checkpoint(model: torch.nn.Module, family: str) -> dict:
    """A checkpoint dict in fair-esm's published file layout (what esm.pretrained reads)."""
    state = model.state_dict()
    if family == "ESM-2":
        cfg = argparse.Namespace(
            encoder_layers=model.num_layers,
            encoder_embed_dim=model.embed_dim,
            encoder_attention_heads=model.attention_heads,
            token_dropout=True,
        )
        return {
            "cfg": {"model": cfg},
            "model": {
                ("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k: v
                for k, v in state.items()
                if not k.startswith("contact_head.regression")
            },
        }
    a = model.args
    if family == "ESM-1b":
        args = argparse.Namespace(
            arch="roberta_large",
            encoder_layers=a.layers,
            encoder_embed_dim=a.embed_dim,
            encoder_ffn_embed_dim=a.ffn_embed_dim,
            encoder_attention_heads=a.attention_heads,
            max_positions=a.max_positions,
            token_dropout=True,
        )
        keys = {
            ("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k: v
            for k, v in state.items()
            if not k.startswith("contact_head.regression")
        }
        return {"args": args, "model": keys}
    args = argparse.Namespace(**vars(a))
    return {
        "args": args,
        "model": {"decoder." + k: v for k, v in state.items() if not k.startswith("contact_head.regression")},
    }


@pytest.fixture
def tiny_table(monkeypatch):
    """Register the tiny configs as if they were published models (for name-based lookup)."""
    for family, name in TINY_NAMES.items():
        monkeypatch.setitem(esm_mod.ESM_CONFIGS, name, TINY[family])
    return TINY_NAMES


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """Point torch hub (fair-esm's cache) at an empty directory: no real cache, no download."""
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return hub


# --------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("per_residue", [False, True])
def test_adapter_matches_library_forward(family, per_residue):
    model = tiny_model(family)
    layers = [0, 1, 2, 3]
    ref = library_reference(model, family, SEQS, layers)
    adapter = EsmAdapter(model, ModelOptions(token_budget=64), name="tiny")
    assert adapter.num_layers == 3 and adapter.embed_dim == 32
    got = collect(adapter, SEQS, layers, per_residue=per_residue)
    for layer in layers:
        for i in range(len(SEQS)):
            want = ref[layer][i] if per_residue else ref[layer][i].mean(0)
            np.testing.assert_allclose(got[layer][i], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layers", [[0], [1], [0, 2]])
def test_layer_subsets_match_library(family, layers):
    model = tiny_model(family)
    ref = library_reference(model, family, SEQS, layers)
    got = collect(EsmAdapter(model, ModelOptions(), name="tiny"), SEQS, layers)
    for layer in layers:
        want = np.stack([r.mean(0) for r in ref[layer]])
        np.testing.assert_allclose(got[layer], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_runs_only_up_to_the_deepest_requested_layer(family):
    model = tiny_model(family)
    adapter = EsmAdapter(model, ModelOptions(), name="tiny")
    calls: list[str] = []
    hooks = [blk.register_forward_hook(lambda *_, i=i: calls.append(f"block{i}")) for i, blk in enumerate(model.layers)]
    for attr in ("emb_layer_norm_after", "lm_head"):
        if getattr(model, attr, None) is not None:
            hooks.append(getattr(model, attr).register_forward_hook(lambda *_, a=attr: calls.append(a)))
    try:
        collect(adapter, SEQS[:2], [0, 1])
        assert calls == ["block0"], calls  # one batch: block 1 only; no final LN, no LM head
        calls.clear()
        collect(adapter, SEQS[:2], [0])
        assert calls == []
        calls.clear()
        collect(adapter, SEQS[:2], [3])
        want = ["block0", "block1", "block2"] + (["emb_layer_norm_after"] if family != "ESM-1" else [])
        assert calls == want  # the LM head never runs
    finally:
        for h in hooks:
            h.remove()
    # the temporary truncation is undone
    assert len(model.layers) == 3 and not hasattr(model.layers[0], "store")


@pytest.mark.parametrize("family", FAMILIES)
def test_batching_order_invariance(family):
    model = tiny_model(family)
    ref = collect(EsmAdapter(model, ModelOptions(token_budget=100_000), name="t"), SEQS, [0, 3])
    for budget, cap in [(1, 16), (30, 16), (60, 2)]:
        got = collect(EsmAdapter(model, ModelOptions(token_budget=budget), name="t", max_batch_size=cap), SEQS, [0, 3])
        for layer in (0, 3):
            np.testing.assert_allclose(got[layer], ref[layer], rtol=1e-5, atol=1e-5)
    shuffled = SEQS[::-1]
    got = collect(EsmAdapter(model, ModelOptions(token_budget=40), name="t"), shuffled, [3])
    np.testing.assert_allclose(got[3][::-1], ref[3], rtol=1e-5, atol=1e-5)


def test_tokens_match_fair_esm_batch_converter():
    for family in FAMILIES:
        adapter = EsmAdapter(tiny_model(family), ModelOptions(), name="t")
        alphabet = esm.Alphabet.from_architecture("ESM-1" if family == "ESM-1" else "ESM-1b")
        _, _, want = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(SEQS)])
        tokens, mask = adapter._tokenize(SEQS)
        assert torch.equal(tokens, want)
        assert mask.sum().item() == sum(map(len, SEQS))


def test_unknown_letters_raise_instead_of_becoming_unk():
    adapter = EsmAdapter(tiny_model("ESM-2"), ModelOptions(), name="t")
    with pytest.raises(InputError, match="'a'"):
        list(adapter.embed(["MKa"], [0], per_residue=False))


def test_max_residues_per_family():
    assert EsmAdapter(tiny_model("ESM-1b"), ModelOptions(), name="t").max_residues == 1022
    assert EsmAdapter(tiny_model("ESM-2"), ModelOptions(), name="t").max_residues == 1022
    assert EsmAdapter(tiny_model("ESM-1"), ModelOptions(), name="t").max_residues == 1023


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("family", FAMILIES)
def test_official_format_checkpoint_loads_offline_like_fair_esm(family, tmp_path, tiny_table, empty_hub):
    model = tiny_model(family, seed=7)
    name = tiny_table[family]
    path = tmp_path / f"{name}.pt"
    torch.save(official_checkpoint(model, family), path)
    # fair-esm's own local loader needs the contact-regression file beside the checkpoint
    reg = {k: v for k, v in model.state_dict().items() if k.startswith("contact_head.regression")}
    torch.save({"model": reg}, tmp_path / f"{name}-contact-regression.pt")
    with torch.serialization.safe_globals([argparse.Namespace]):
        lib_model, _ = esm.pretrained.load_model_and_alphabet_local(str(path))
    want = collect(EsmAdapter(lib_model.eval(), ModelOptions(), name="lib"), SEQS, [0, 2, 3])

    options = ModelOptions(weights_dir=tmp_path, allow_download=False)
    adapter = create(name, "pretrained", None, options)
    got = collect(adapter, SEQS, [0, 2, 3])
    for layer in (0, 2, 3):
        np.testing.assert_allclose(got[layer], want[layer], rtol=1e-5, atol=1e-5)
    ident = adapter.identity()
    assert ident["weights"] == "sha256:" + weights_mod.file_sha256(path)
    assert ident["config"]["family"] == family and ident["libraries"]["fair-esm"]

    # the same file given as a path is recognized by the registry's path resolver
    registry = builtin_registry()
    from_path = registry.create(str(path), "pretrained", None, options)
    assert from_path.name == name  # the file stem
    np.testing.assert_allclose(collect(from_path, SEQS, [3])[3], got[3], rtol=1e-6, atol=1e-6)


def test_legacy_serialization_checkpoint_is_recognized(tmp_path):
    model = tiny_model("ESM-1b")
    path = tmp_path / "old_format.pt"
    torch.save(official_checkpoint(model, "ESM-1b"), path, _use_new_zipfile_serialization=False)
    assert {"args", "model"} <= weights_mod.peek_keys(path)
    entry = builtin_registry().entry(str(path))
    adapter = entry.factory(str(path), "pretrained", None, ModelOptions(allow_download=False))
    assert adapter.name == "old_format" and adapter.num_layers == 3


def test_unrecognized_pt_file_is_an_unknown_model(tmp_path):
    path = tmp_path / "whatever.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(UnknownModelError, match="no model family recognizes"):
        builtin_registry().entry(str(path))


def test_random_init_of_a_path_uses_the_files_architecture(tmp_path):
    model = tiny_model("ESM-2")
    path = tmp_path / "my_esm.pt"
    torch.save(official_checkpoint(model, "ESM-2"), path)
    adapter = create(str(path), "random", 5, ModelOptions(allow_download=False))
    assert adapter.num_layers == 3 and adapter.embed_dim == 32 and adapter.identity()["weights"] is None
    loaded = dict(adapter.model.named_parameters())
    assert not any(torch.equal(loaded[k], v) for k, v in model.named_parameters() if v.numel() > 1)


# --------------------------------------------------------------------------- missing weights
def test_missing_weights_without_download_names_the_file(tmp_path, empty_hub):
    options = ModelOptions(weights_dir=tmp_path / "weights", allow_download=False)
    with pytest.raises(ResourceUnavailable) as err:
        create("esm2_t6_8M_UR50D", "pretrained", None, options)
    msg = str(err.value)
    assert "esm2_t6_8M_UR50D.pt" in msg
    assert str(empty_hub / "checkpoints" / "esm2_t6_8M_UR50D.pt") in msg
    assert "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t6_8M_UR50D.pt" in msg
    assert str(tmp_path / "weights") in msg


def test_failed_download_becomes_resource_unavailable(empty_hub):
    with pytest.raises(ResourceUnavailable, match="download of https://dl.fbaipublicfiles.com"):
        create("esm1_t6_43M_UR50S", "stat", 0, ModelOptions(allow_download=True))


def test_random_init_needs_no_weights(empty_hub):
    adapter = create("esm2_t6_8M_UR50D", "random", 0, ModelOptions(allow_download=False))
    assert adapter.num_layers == 6 and adapter.embed_dim == 320 and adapter.max_residues == 1022
    assert sum(p.numel() for p in adapter.model.parameters()) == pytest.approx(7.5e6, rel=0.05)
    out = collect(adapter, ["MKTAYIAK", "GW"], [0, 6])
    assert out[6].shape == (2, 320) and np.isfinite(out[6]).all()


def test_registry_knows_every_esm_model():
    names = set(builtin_registry().names())
    assert set(esm_mod.ESM_CONFIGS) <= names
    assert {
        "esm1_t6_43M_UR50S",
        "esm1_t12_85M_UR50S",
        "esm1_t34_670M_UR50S",
        "esm1b_t33_650M_UR50S",
        "esm2_t6_8M_UR50D",
        "esm2_t12_35M_UR50D",
        "esm2_t30_150M_UR50D",
        "esm2_t33_650M_UR50D",
        "esm2_t36_3B_UR50D",
        "esm2_t48_15B_UR50D",
    } <= names


def test_checkpoint_request_names():
    req = weights_mod.checkpoint_request("esm2_t6_8M_UR50D", "fair-esm", esm_mod.FAIR_ESM_MODEL_URL)
    assert req.filename == "esm2_t6_8M_UR50D.pt" and req.url.endswith("/esm2_t6_8M_UR50D.pt")
    req = weights_mod.checkpoint_request("/x/y/esm1b_t33_650M_UR50S.pt", "fair-esm", None)
    assert req.path == Path("/x/y/esm1b_t33_650M_UR50S.pt") and req.model == "esm1b_t33_650M_UR50S"


@pytest.mark.parametrize("family", FAMILIES)
def test_keeps_the_adapter_contract(family, tiny_table):
    name = tiny_table[family]
    description = builtin_registry().describe(name, ModelOptions())
    check_adapter(create, name=name, init="random", seed=0, description=description)
