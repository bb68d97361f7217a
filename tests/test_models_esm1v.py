"""ESM-1v on a tiny real ESM-1b-architecture instance (offline, seconds): registered names and
sizes, layers and shapes, the download from fair-esm's model directory (a file:// mirror here),
and the adapter contract."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from test_models_esm import official_checkpoint  # fair-esm's published ESM-1b file layout, as ESM-1v's

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.models import esm1v
from pytest_plmtransfer.models.base import collect_embeddings
from pytest_plmtransfer.models.esm import EsmAdapter, EsmConfig, build_architecture
from pytest_plmtransfer.models.inits import seeded_construction
from pytest_plmtransfer.models.registry import ModelOptions, builtin_registry
from pytest_plmtransfer.tasks.resolve import UnverifiedDownloadWarning
from pytest_plmtransfer.testing import check_adapter

pytest.importorskip("esm")
pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = "esm1v_tiny_1"
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "GW", "ACDEFGHIKLMNPQRSTVWYXBUZO", "MKV"]
DOWNLOAD = torch.hub.download_url_to_file


@pytest.fixture
def registry(monkeypatch, tmp_path):
    """The built-in registry with a 3-layer, 32-wide ESM-1v in the table; torch hub (fair-esm's
    cache) in an empty directory and no network."""
    monkeypatch.setitem(esm1v.ESM1V_CONFIGS, TINY, EsmConfig("ESM-1b", 3, 32, 4, "tiny ESM-1v"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return builtin_registry()


def test_the_five_members_are_registered_as_esm1b_architectures(registry):
    for member in range(1, 6):
        name = f"esm1v_t33_650M_UR90S_{member}"
        desc = registry.describe(name, ModelOptions())
        assert (desc.num_layers, desc.embed_dim, desc.max_residues) == (33, 1280, 1022)
        assert desc.parameters == pytest.approx(650e6, rel=0.01)
        assert registry.entry(name).inits == ("pretrained", "random", "stat")
    desc = registry.describe(TINY, ModelOptions())
    assert (desc.num_layers, desc.embed_dim, desc.max_residues) == (3, 32, 1022)


def test_random_init_builds_the_tiny_architecture_offline(registry):
    adapter = registry.create(TINY, "random", 0, ModelOptions(allow_download=False))
    assert isinstance(adapter, EsmAdapter) and adapter.family == "ESM-1b"
    assert adapter.layers == [0, 1, 2, 3] and adapter.embed_dim == 32 and adapter.max_residues == 1022
    assert adapter.identity()["weights"] is None and adapter.identity()["config"]["arch"] == "roberta_large"
    pooled = collect_embeddings(adapter, SEQS, [0, 3], per_residue=False)
    residues = collect_embeddings(adapter, SEQS, [3], per_residue=True)
    assert [v.shape for v in pooled[3]] == [(32,)] * len(SEQS)
    assert [v.shape for v in residues[3]] == [(len(s), 32) for s in SEQS]
    check_adapter(
        registry.entry(TINY).factory,
        name=TINY,
        init="random",
        seed=0,
        description=registry.describe(TINY, ModelOptions()),
    )


def test_missing_weights_name_fair_esms_url(registry, tmp_path):
    with pytest.raises(ResourceUnavailable) as err:
        registry.create("esm1v_t33_650M_UR90S_3", "pretrained", None, ModelOptions(allow_download=False))
    assert "https://dl.fbaipublicfiles.com/fair-esm/models/esm1v_t33_650M_UR90S_3.pt" in str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "esm1v_t33_650M_UR90S_3.pt") in str(err.value)


def test_pretrained_is_downloaded_from_the_model_directory_and_embeds_its_weights(registry, monkeypatch, tmp_path):
    with seeded_construction(1):
        model = build_architecture(esm1v.ESM1V_CONFIGS[TINY])
    noise = torch.Generator().manual_seed(101)
    with torch.no_grad():  # weights unlike any constructor's
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=noise))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    torch.save(official_checkpoint(model, "ESM-1b"), mirror / f"{TINY}.pt")
    monkeypatch.setattr(esm1v, "URL", f"file://{mirror}/{{name}}.pt")
    monkeypatch.setattr(torch.hub, "download_url_to_file", DOWNLOAD)  # file:// needs no network
    registry = builtin_registry()  # registered again: the URL is the family's, read at registration
    options = ModelOptions(allow_download=True)
    with pytest.warns(UnverifiedDownloadWarning, match=f"no published sha256 is known for {TINY}.pt"):
        adapter = registry.create(TINY, "pretrained", None, options)
    assert (tmp_path / "hub" / "checkpoints" / f"{TINY}.pt").is_file()
    assert adapter.identity()["weights"].startswith("sha256:")
    want = collect_embeddings(EsmAdapter(model.eval(), ModelOptions(), name="ref"), SEQS, [0, 2, 3], per_residue=False)
    got = collect_embeddings(adapter, SEQS, [0, 2, 3], per_residue=False)
    for layer in (0, 2, 3):
        np.testing.assert_allclose(np.stack(got[layer]), np.stack(want[layer]), rtol=1e-5, atol=1e-6)
    check_adapter(registry.entry(TINY).factory, name=TINY, options=ModelOptions(allow_download=False))
    # the authors' ESM-1b rules go by name ("esm1b_"): ESM-1v's random keeps the learned positions,
    # as their rules would for any name that is not ESM-1b, and re-draws the blocks
    authors = ModelOptions(allow_download=False, protocol="authors")
    ablated = registry.create(TINY, "random", 0, authors).model.state_dict()
    kept = adapter.model.state_dict()  # the pretrained weights as loaded
    assert torch.equal(ablated["embed_positions.weight"], kept["embed_positions.weight"])
    assert torch.equal(ablated["embed_tokens.weight"], kept["embed_tokens.weight"])
    assert not torch.equal(ablated["layers.0.fc1.weight"], kept["layers.0.fc1.weight"])
