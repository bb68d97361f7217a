"""CARP adapter on tiny real sequence-models ByteNet architectures (offline, seconds)."""

from __future__ import annotations

import json
import urllib.error

import numpy as np
import pytest
import torch

from pytest_plmtransfer.infra.errors import InputError, PlmTransferError, ResourceUnavailable
from pytest_plmtransfer.models import carp as carp_mod
from pytest_plmtransfer.models import weights as weights_mod
from pytest_plmtransfer.models.carp import CarpAdapter, CarpConfig, build_architecture, create
from pytest_plmtransfer.models.inits import seeded_construction
from pytest_plmtransfer.models.registry import ModelOptions, builtin_registry
from pytest_plmtransfer.options import ICML_CHECKPOINTS, SUITES
from pytest_plmtransfer.testing import check_adapter

sm_pretrained = pytest.importorskip("sequence_models.pretrained")
from sequence_models.collaters import SimpleCollater  # noqa: E402
from sequence_models.constants import PROTEIN_ALPHABET  # noqa: E402

SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "GW", "ACDEFGHIKLMNPQRSTVWYBZXJOU", "MKV", "PEPTIDEPEPTIDEPEPTIDE", "Q"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")
TINY = CarpConfig(d_model=16, n_layers=3, slim=True, d_embed=8, kernel_size=5, r=4)


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


def tiny_model(seed: int = 1, cfg: CarpConfig = TINY) -> torch.nn.Module:
    with seeded_construction(seed):
        model = build_architecture(cfg)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def library_reference(model, seqs, layers):
    """sequence-models' own path: SimpleCollater tokens, CARP forward; layer 0 is out[0]."""
    (tokens,) = SimpleCollater(PROTEIN_ALPHABET, pad=True)([(s,) for s in seqs])
    with torch.no_grad():
        out = model(tokens, repr_layers=list(layers), logits=False)
    reps = {layer: out[0] if layer == 0 else out["representations"][layer] for layer in layers}
    return {layer: [reps[layer][i, : len(s)].numpy() for i, s in enumerate(seqs)] for layer in layers}


def checkpoint_dict(model, cfg: CarpConfig, name: str = "carp_tiny") -> dict:
    """sequence-models' checkpoint file layout (what load_model_and_alphabet reads)."""
    return {
        "model": name,
        "d_embed": cfg.d_embed,
        "d_model": cfg.d_model,
        "n_layers": cfg.n_layers,
        "kernel_size": cfg.kernel_size,
        "activation": cfg.activation,
        "slim": cfg.slim,
        "r": cfg.r,
        "model_state_dict": model.model.state_dict(),
    }


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return hub


@pytest.mark.parametrize("per_residue", [False, True])
def test_adapter_matches_library_forward_including_layer0(per_residue):
    model = tiny_model()
    layers = [0, 1, 2, 3]
    ref = library_reference(model, SEQS, layers)
    adapter = CarpAdapter(model, TINY, ModelOptions(token_budget=50), name="tiny")
    got = collect(adapter, SEQS, layers, per_residue=per_residue)
    for layer in layers:
        for i in range(len(SEQS)):
            want = ref[layer][i] if per_residue else ref[layer][i].mean(0)
            np.testing.assert_allclose(got[layer][i], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers", [[0], [2], [0, 1], [3]])
def test_layer_subsets_match_library(layers):
    model = tiny_model()
    ref = library_reference(model, SEQS, layers)
    got = collect(CarpAdapter(model, TINY, ModelOptions(), name="t"), SEQS, layers)
    for layer in layers:
        np.testing.assert_allclose(got[layer], np.stack([r.mean(0) for r in ref[layer]]), rtol=1e-5, atol=1e-5)


def test_runs_only_up_to_the_deepest_requested_layer():
    model = tiny_model()
    adapter = CarpAdapter(model, TINY, ModelOptions(), name="t")
    blocks = model.model.embedder.layers
    calls: list[str] = []
    hooks = [b.register_forward_hook(lambda *_, i=i: calls.append(f"block{i}")) for i, b in enumerate(blocks)]
    hooks.append(model.model.decoder.register_forward_hook(lambda *_: calls.append("decoder")))
    hooks.append(model.model.last_norm.register_forward_hook(lambda *_: calls.append("last_norm")))
    try:
        collect(adapter, SEQS[:2], [0, 2])
        assert calls == ["block0", "block1"]
        calls.clear()
        collect(adapter, SEQS[:2], [0])
        assert calls == []
    finally:
        for h in hooks:
            h.remove()
    assert model.model.embedder.layers is blocks and len(blocks) == 3


def test_batching_order_invariance():
    model = tiny_model()
    ref = collect(CarpAdapter(model, TINY, ModelOptions(token_budget=100_000), name="t"), SEQS, [0, 3])
    for budget, cap in [(1, 16), (30, 16), (60, 2)]:
        adapter = CarpAdapter(model, TINY, ModelOptions(token_budget=budget), name="t", max_batch_size=cap)
        got = collect(adapter, SEQS, [0, 3])
        for layer in (0, 3):
            np.testing.assert_allclose(got[layer], ref[layer], rtol=1e-5, atol=1e-5)


def test_letters_are_validated_before_the_tokenizer():
    adapter = CarpAdapter(tiny_model(), TINY, ModelOptions(), name="t")
    with pytest.raises(InputError, match=r"sequence 1 .*'kmv'"):
        list(adapter.embed(["MKV", "mkv"], [0], per_residue=False))
    with pytest.raises(InputError, match="'-'"):
        list(adapter.embed(["MK-V"], [0], per_residue=False))  # '-' is CARP's padding token


def test_checkpoint_file_loads_like_sequence_models(tmp_path, monkeypatch, empty_hub):
    model = tiny_model(seed=3)
    path = tmp_path / "carp_tiny.pt"
    torch.save(checkpoint_dict(model, TINY), path)
    lib_model, _collater = sm_pretrained.load_model_and_alphabet(str(path))
    want = collect(CarpAdapter(lib_model, TINY, ModelOptions(), name="lib"), SEQS, [0, 1, 3])

    monkeypatch.setitem(carp_mod.CARP_CONFIGS, "carp_tiny", TINY)
    options = ModelOptions(weights_dir=tmp_path, allow_download=False)
    adapter = create("carp_tiny", "pretrained", None, options)
    got = collect(adapter, SEQS, [0, 1, 3])
    for layer in (0, 1, 3):
        np.testing.assert_allclose(got[layer], want[layer], rtol=1e-6, atol=1e-6)
    assert adapter.identity()["weights"] == "sha256:" + weights_mod.file_sha256(path)
    assert adapter.identity()["libraries"]["sequence-models"]

    # a path given as the model name
    from_path = builtin_registry().create(str(path), "pretrained", None, options)
    assert from_path.name == "carp_tiny" and isinstance(from_path, CarpAdapter)
    np.testing.assert_allclose(collect(from_path, SEQS, [3])[3], got[3], rtol=1e-6, atol=1e-6)


def test_pretraining_checkpoint_step_names(tmp_path, monkeypatch, empty_hub):
    monkeypatch.setitem(carp_mod.CARP_CONFIGS, "carp_tiny", TINY)
    options = ModelOptions(weights_dir=tmp_path, allow_download=False)
    early, late = tiny_model(seed=10), tiny_model(seed=11)
    torch.save(checkpoint_dict(early, TINY), tmp_path / "carp_tiny@step=100.pt")
    torch.save(checkpoint_dict(late, TINY), tmp_path / "carp_tiny@step=900.pt")
    registry = builtin_registry()
    monkeypatch.setattr(registry, "_entries", {**registry._entries, "carp_tiny": registry.entry("carp_600k")})
    a = registry.create("carp_tiny@step=100", "pretrained", None, options)
    b = registry.create("carp_tiny@step=900", "pretrained", None, options)
    assert a.name == "carp_tiny@step=100"
    assert a.identity()["weights"] != b.identity()["weights"]
    ea, eb = collect(a, SEQS, [3])[3], collect(b, SEQS, [3])[3]
    assert not np.allclose(ea, eb)
    np.testing.assert_allclose(
        ea, collect(CarpAdapter(early, TINY, ModelOptions(), name="x"), SEQS, [3])[3], rtol=1e-6, atol=1e-6
    )
    # a checkpoint named by its path after '@'
    c = create(f"carp_tiny@{tmp_path / 'carp_tiny@step=900.pt'}", "pretrained", None, options)
    assert c.identity()["weights"] == b.identity()["weights"]


def test_missing_step_checkpoint_names_the_file(tmp_path, empty_hub):
    options = ModelOptions(weights_dir=tmp_path, allow_download=True)
    with pytest.raises(ResourceUnavailable) as err:
        create("carp_640M@step=78810", "pretrained", None, options)
    assert str(tmp_path / "carp_640M@step=78810.pt") in str(err.value)


def test_missing_weights_without_download_names_file_and_url(tmp_path, empty_hub):
    with pytest.raises(ResourceUnavailable) as err:
        create("carp_600k", "stat", 0, ModelOptions(weights_dir=tmp_path, allow_download=False))
    msg = str(err.value)
    assert "carp_600k.pt" in msg and "zenodo.org/record/6564798/files/carp_600k.pt" in msg
    assert str(empty_hub / "checkpoints" / "carp_600k.pt") in msg


def test_random_init_of_carp_600k_is_the_real_architecture(empty_hub):
    adapter = create("carp_600k", "random", 0, ModelOptions(allow_download=False))
    assert adapter.num_layers == 16 and adapter.embed_dim == 128
    assert sum(p.numel() for p in adapter.model.parameters()) == pytest.approx(0.61e6, rel=0.05)
    out = collect(adapter, ["MKTAYIAK", "GW"], [0, 16])
    assert out[16].shape == (2, 128) and np.isfinite(out[16]).all()


def test_registry_knows_carp_models():
    assert {"carp_600k", "carp_38M", "carp_76M", "carp_640M"} <= set(builtin_registry().names())


def test_step_checkpoint_given_as_a_path(tmp_path, empty_hub):
    path = tmp_path / "carp_tiny@step=100.pt"
    torch.save(checkpoint_dict(tiny_model(seed=4), TINY), path)
    adapter = builtin_registry().create(str(path), "pretrained", None, ModelOptions(allow_download=False))
    assert adapter.name == "carp_tiny@step=100" and adapter.num_layers == TINY.n_layers


# ------------------------------------------------------------------------------------ pretraining checkpoints


def test_checkpoint_names_carry_the_authors_steps_and_losses():
    # microsoft/protein-transfer scr/params/emb.py:94-126
    assert carp_mod.parse_checkpoint("carp_640M@0.125") == carp_mod.CarpCheckpoint(
        "carp_640M", 78810, 0.125, 2.1455246604919718
    )
    assert carp_mod.parse_checkpoint("carp_640M@step=78810") == carp_mod.parse_checkpoint("carp_640M@0.125")
    assert carp_mod.parse_checkpoint("carp_600k@0.5") == carp_mod.CarpCheckpoint(
        "carp_600k", 239263, 0.5, 2.5123053303486858
    )
    assert carp_mod.parse_checkpoint("carp_76M@0.25").step == 162959
    assert carp_mod.parse_checkpoint("carp_38M@0.125").step == 129575
    # the published model is the 100% point: no step in the authors' table, their final loss
    assert carp_mod.parse_checkpoint("carp_38M") == carp_mod.CarpCheckpoint("carp_38M", None, 1.0, 2.3030167711945997)
    assert carp_mod.parse_checkpoint("carp_38M@1") == carp_mod.parse_checkpoint("carp_38M")
    # a step of one's own: local files only, no fraction or loss claimed for it
    assert carp_mod.parse_checkpoint("carp_640M@step=5") == carp_mod.CarpCheckpoint("carp_640M", 5, None, None)
    assert carp_mod.parse_checkpoint("carp_640M@/a/file.pt") is None and carp_mod.parse_checkpoint("esm1b") is None
    with pytest.raises(PlmTransferError, match=r"no carp_640M checkpoint at 0.3 of pretraining.*0.125, 0.25, 0.5, 1"):
        carp_mod.parse_checkpoint("carp_640M@0.3")
    with pytest.raises(PlmTransferError, match="must be an integer"):
        carp_mod.parse_checkpoint("carp_640M@step=late")
    # every loss falls as pretraining goes on, and the icml suite names exactly these checkpoints
    for losses in carp_mod.CARP_CHECKPOINT_LOSSES.values():
        assert [losses[f] for f in sorted(losses)] == sorted(losses.values(), reverse=True)
    assert SUITES["icml"]["models"][-12:] == ICML_CHECKPOINTS == carp_mod.checkpoint_model_names()


def test_checkpoints_are_described_from_the_tables_without_files(tmp_path, empty_hub):
    registry = builtin_registry()
    options = ModelOptions(weights_dir=tmp_path, allow_download=False)  # empty: nothing to read
    desc = registry.describe("carp_640M@0.25", options)
    assert (desc.num_layers, desc.embed_dim) == (56, 1280)
    assert (desc.checkpoint_step, desc.checkpoint_fraction, desc.mlm_loss) == (154698, 0.25, 2.094229900229448)
    full = registry.describe("carp_640M", options)
    assert (full.checkpoint_step, full.checkpoint_fraction, full.mlm_loss) == (None, 1.0, 2.0194828284458466)
    # a checkpoint's random init would repeat the base model's (same architecture, same seeds)
    assert "random" in registry.entry("carp_640M").inits
    assert registry.entry("carp_640M@0.25").inits == tuple(
        i for i in registry.entry("carp_640M").inits if i != "random"
    )
    with pytest.raises(PlmTransferError, match="does not support init 'random'"):
        registry.create("carp_640M@0.25", "random", 0, options)
    other = registry.describe("esm1_t6_43M_UR50S", options)
    assert (other.checkpoint_step, other.checkpoint_fraction, other.mlm_loss) == (None, None, None)


@pytest.fixture
def tiny_checkpoints(monkeypatch):
    """carp_tiny as a table model with checkpoints at steps 100 (1/8) and 200 (1/4)."""
    monkeypatch.setitem(carp_mod.CARP_CONFIGS, "carp_tiny", TINY)
    monkeypatch.setitem(carp_mod.CARP_CHECKPOINT_STEPS, "carp_tiny", {0.125: 100, 0.25: 200})
    monkeypatch.setitem(carp_mod.CARP_CHECKPOINT_LOSSES, "carp_tiny", {0.125: 3.0, 0.25: 2.9, 1.0: 2.5})


def training_checkpoint(model) -> dict:
    """The authors' training-checkpoint layout (what CARPEncoder reads, encoding_classes.py:682-690):
    ``model_state_dict`` under DDP's ``module.`` prefix, next to optimizer state; no sizes."""
    state = {f"module.{k}": v for k, v in model.model.state_dict().items()}
    return {"model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []}, "epoch": 3}


def test_fraction_names_resolve_both_file_layouts(tmp_path, empty_hub, tiny_checkpoints):
    early, mid = tiny_model(seed=20), tiny_model(seed=21)
    torch.save(checkpoint_dict(early, TINY), tmp_path / "carp_tiny@step=100.pt")  # sequence-models' format
    (tmp_path / "carp_tiny").mkdir()
    torch.save(training_checkpoint(mid), tmp_path / "carp_tiny" / "checkpoint200.tar")  # the authors' layout
    options = ModelOptions(weights_dir=tmp_path, allow_download=False)
    for name, model, path in (
        ("carp_tiny@0.125", early, tmp_path / "carp_tiny@step=100.pt"),
        ("carp_tiny@step=200", mid, tmp_path / "carp_tiny" / "checkpoint200.tar"),
        ("carp_tiny@0.25", mid, tmp_path / "carp_tiny" / "checkpoint200.tar"),
    ):
        adapter = create(name, "pretrained", None, options)
        assert adapter.name == name and adapter.num_layers == TINY.n_layers
        assert adapter.identity()["weights"] == "sha256:" + weights_mod.file_sha256(path)
        assert adapter.num_parameters == sum(p.numel() for p in model.parameters())
        want = collect(CarpAdapter(model, TINY, ModelOptions(), name="ref"), SEQS, [0, 3])
        got = collect(adapter, SEQS, [0, 3])
        for layer in (0, 3):
            np.testing.assert_allclose(got[layer], want[layer], rtol=1e-6, atol=1e-6)


def test_checkpoint_files_that_do_not_fit_are_refused_naming_them(tmp_path, empty_hub, tiny_checkpoints):
    other = CarpConfig(d_model=8, n_layers=2, slim=True, r=4)
    torch.save(checkpoint_dict(tiny_model(seed=5, cfg=other), other), tmp_path / "carp_tiny@step=100.pt")
    (tmp_path / "carp_tiny").mkdir()
    torch.save(training_checkpoint(tiny_model(seed=6, cfg=other)), tmp_path / "carp_tiny" / "checkpoint200.tar")
    options = ModelOptions(weights_dir=tmp_path, allow_download=False)
    with pytest.raises(PlmTransferError, match=r"carp_tiny@step=100.pt: holds a CARP with 2 layers of width 8, not"):
        create("carp_tiny@0.125", "pretrained", None, options)
    with pytest.raises(PlmTransferError, match=r"checkpoint200.tar: its weights do not fit the CARP architecture"):
        create("carp_tiny@0.25", "pretrained", None, options)


def test_missing_checkpoint_lists_both_layouts_and_no_url(tmp_path, empty_hub):
    with pytest.raises(ResourceUnavailable) as err:
        create("carp_38M@0.5", "pretrained", None, ModelOptions(weights_dir=tmp_path, allow_download=True))
    message = str(err.value)
    assert str(tmp_path / "carp_38M@step=517622.pt") in message
    assert str(tmp_path / "carp_38M" / "checkpoint517622.tar") in message
    assert "no download URL is known" in message


def test_full_model_download_is_recorded_and_warned_or_refused(tmp_path, monkeypatch, tiny_checkpoints):
    """``carp_tiny@1`` is the published model: downloaded (here from a file:// mirror) into the
    torch hub cache; without a published digest it is recorded and warned about, with a wrong one
    refused and removed."""
    from pytest_plmtransfer.tasks.resolve import UnverifiedDownloadWarning

    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    torch.save(checkpoint_dict(tiny_model(seed=7), TINY), mirror / "carp_tiny.pt")
    monkeypatch.setattr(carp_mod, "URL", f"file://{mirror}/{{name}}.pt")
    options = ModelOptions(weights_dir=tmp_path / "empty", allow_download=True)
    with pytest.warns(UnverifiedDownloadWarning, match="no published sha256 is known for carp_tiny.pt"):
        adapter = create("carp_tiny@1", "pretrained", None, options)
    target = hub / "checkpoints" / "carp_tiny.pt"
    digest = weights_mod.file_sha256(target)
    assert adapter.identity()["weights"] == f"sha256:{digest}"
    assert json.loads((hub / "checkpoints" / "carp_tiny.pt.sha256.json").read_text())["sha256"] == digest
    target.unlink()
    published = weights_mod.CheckpointRequest(
        "carp_tiny", "carp_tiny.pt", "sequence-models", carp_mod.URL.format(name="carp_tiny"), sha256="0" * 64
    )
    with pytest.raises(ResourceUnavailable, match=f"has sha256 {digest}, not the published 0000"):
        weights_mod.resolve_checkpoint(published, options)
    assert not target.exists()


def test_keeps_the_adapter_contract(monkeypatch):
    monkeypatch.setitem(carp_mod.CARP_CONFIGS, "carp_tiny", TINY)
    description = builtin_registry().describe("carp_tiny", ModelOptions())
    check_adapter(create, name="carp_tiny", init="random", seed=0, description=description)
