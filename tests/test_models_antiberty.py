"""AntiBERTy from the weights antiberty==0.1.3 ships: equal to BertModel's own hidden_states,
no [UNK] residues, three inits, early stop. The models are built once per module."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pytest_plmtransfer.infra.errors import InputError, PlmTransferError  # noqa: E402
from pytest_plmtransfer.models.antiberty import (  # noqa: E402
    MAX_RESIDUES,
    antiberty_files,
    create_antiberty,
    load_model,
    load_tokenizer,
)
from pytest_plmtransfer.models.base import collect_embeddings  # noqa: E402
from pytest_plmtransfer.models.hf import ResidueTokenizer  # noqa: E402
from pytest_plmtransfer.models.registry import ModelOptions, ModelRegistry, builtin_registry  # noqa: E402

try:
    FILES = antiberty_files()
except Exception as error:
    pytest.skip(f"antiberty weights not available: {error}", allow_module_level=True)

#: a heavy chain, a light chain, the GB1 window, and a short one with an ambiguity code
SEQS = [
    "EVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMS",
    "DIQMTQSPSSLSASVGDRVTITC",
    "MQYKLILNGKTLKGETTTEAVDAATAEKVFKQYANDNGVDGEWTYDDATKTFTVTE",
    "ACXWY",
]
OPTIONS = ModelOptions(allow_download=False)


@pytest.fixture(scope="module")
def pretrained():
    return create_antiberty("antiberty", "pretrained", None, OPTIONS)


@pytest.fixture(scope="module")
def ablations():
    return {
        "random": create_antiberty("antiberty", "random", 0, OPTIONS),
        "stat": create_antiberty("antiberty", "stat", 0, OPTIONS),
    }


@pytest.mark.slow
def test_tokens_are_residues_not_unk(pretrained):
    tok = pretrained.tokenizer
    unk = tok.tokenizer.unk_token_id
    tokens, mask = tok(SEQS[:3])
    assert unk not in tokens[mask].tolist()
    assert tok.tokenizer.convert_ids_to_tokens(tokens[0, 1:5].tolist()) == list("EVQL")
    assert (tok.prefix, tok.suffix) == ([tok.tokenizer.cls_token_id], [tok.tokenizer.sep_token_id])
    # X (and B Z U O) are not in AntiBERTy's vocabulary: fed as [UNK], by design
    tokens, _ = tok(["ACXWY"])
    assert tokens[0].tolist()[3] == unk
    assert pretrained.identity()["config"]["unknown_residues_as_unk"] == "XBZUO"


def test_vocab_file_trap_is_caught():
    """With transformers 5, BertTokenizer(vocab_file=...) ignores the file and maps every residue
    to [UNK]; such a tokenizer must be refused, not silently used."""
    from transformers import BertTokenizer

    broken = BertTokenizer(vocab_file=str(FILES.vocab), do_lower_case=False)
    if broken.convert_tokens_to_ids("A") != broken.unk_token_id:
        pytest.skip("this transformers version honours vocab_file")
    with pytest.raises(PlmTransferError, match="one token per residue"):
        ResidueTokenizer(broken, model_name="antiberty")


@pytest.mark.slow
def test_equals_bertmodel_hidden_states(pretrained):
    from transformers import BertModel

    reference = BertModel.from_pretrained(str(FILES.model_dir), add_pooling_layer=False).eval()
    tokenizer = load_tokenizer()
    layers = list(range(9))
    assert pretrained.num_layers == 8 and pretrained.embed_dim == 512
    pooled = collect_embeddings(pretrained, SEQS, layers, per_residue=False)
    residues = collect_embeddings(pretrained, SEQS, layers, per_residue=True)
    for i, seq in enumerate(SEQS):
        enc = tokenizer(" ".join(seq), return_tensors="pt")
        with torch.inference_mode():
            hidden = reference(**enc, output_hidden_states=True).hidden_states
        assert len(hidden) == 9
        for layer in layers:
            ref = hidden[layer][0, 1:-1].numpy()  # no [CLS]/[SEP]; unpadded
            assert ref.shape == (len(seq), 512)
            np.testing.assert_allclose(residues[layer][i], ref, atol=1e-5, rtol=0)
            np.testing.assert_allclose(pooled[layer][i], ref.mean(axis=0), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_runs_only_to_deepest_layer(pretrained):
    ran: list[int] = []
    hooks = [
        block.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
        for i, block in enumerate(pretrained.model.encoder.layer)
    ]
    try:
        part = collect_embeddings(pretrained, SEQS[:2], [0, 3], per_residue=False)
        assert sorted(set(ran)) == [0, 1, 2]
        ran.clear()
        collect_embeddings(pretrained, SEQS[:2], [0], per_residue=False)
        assert ran == []
        full = collect_embeddings(pretrained, SEQS[:2], [0, 3, 8], per_residue=False)
        assert sorted(set(ran)) == list(range(8))
    finally:
        for h in hooks:
            h.remove()
    for i in range(2):
        np.testing.assert_allclose(part[3][i], full[3][i], atol=1e-6)
        np.testing.assert_array_equal(part[0][i], full[0][i])


@pytest.mark.slow
def test_inits_differ(pretrained, ablations):
    last = {
        name: np.stack(collect_embeddings(a, SEQS, [1, 8], per_residue=False)[8])
        for name, a in {"pretrained": pretrained, **ablations}.items()
    }
    for a, b in (("pretrained", "random"), ("pretrained", "stat"), ("random", "stat")):
        assert not np.allclose(last[a], last[b], atol=1e-3), (a, b)
    assert ablations["random"].identity()["init"] == "random"
    assert ablations["stat"].identity()["config"]["stat"]["method"] == "permute-within-tensor"


@pytest.mark.slow
def test_stat_preserves_each_tensor_multiset(pretrained, ablations):
    pre = dict(pretrained.model.named_parameters())
    stat = dict(ablations["stat"].model.named_parameters())
    assert pre.keys() == stat.keys()
    moved = 0
    for name, p in pre.items():
        # numpy's sort: ~10x faster than torch.sort on CPU for the 25M values
        a, b = p.detach().numpy().ravel(), stat[name].detach().numpy().ravel()
        np.testing.assert_array_equal(np.sort(a), np.sort(b), err_msg=name)
        moved += not np.array_equal(a, b)
    assert moved == len(pre)  # AntiBERTy's trained tensors all hold distinct values


@pytest.mark.slow
def test_random_is_a_full_seeded_reinit(pretrained, ablations):
    rand = dict(ablations["random"].model.named_parameters())
    again, _ = load_model("random", 0)
    other, _ = load_model("random", 1)
    again_p, other_p = dict(again.named_parameters()), dict(other.named_parameters())
    for name, p in rand.items():
        assert torch.equal(p, again_p[name]), name  # same seed, same weights
    assert not torch.equal(rand["encoder.layer.0.attention.self.query.weight"],
                           other_p["encoder.layer.0.attention.self.query.weight"])  # fmt: skip
    pre = dict(pretrained.model.named_parameters())
    # BERT's own initializers: LayerNorms reset to 1/0, no tensor kept from the checkpoint
    assert torch.equal(rand["embeddings.LayerNorm.weight"], torch.ones(512))
    assert not any(torch.equal(p, pre[name]) for name, p in rand.items())


@pytest.mark.slow
def test_identity_and_limits(pretrained):
    ident = pretrained.identity()
    digest = hashlib.sha256(FILES.weights.read_bytes()).hexdigest()
    assert ident["weights"] == f"antiberty=={FILES.version}:sha256:{digest}"
    assert ident["libraries"]["antiberty"] == FILES.version
    assert pretrained.max_residues == MAX_RESIDUES == 510
    pretrained.validate_sequences(["A" * 510])
    with pytest.raises(InputError, match="at most 510"):
        pretrained.validate_sequences(["A" * 511])
    with pytest.raises(InputError):
        pretrained.validate_sequences(["EVQLv"])


def test_registered_and_imports_stay_lazy():
    """``import antiberty`` costs 6.6 s and transformers seconds more: neither may be imported
    at module level (checked statically, so the test costs no interpreter start)."""
    import ast
    import inspect

    from pytest_plmtransfer.models import antiberty, hf

    assert "antiberty" in builtin_registry().names()
    registry = ModelRegistry()
    antiberty.register(registry)
    assert registry.entry("antiberty").inits == ("pretrained", "random", "stat")
    for module in (antiberty, hf):
        tree = ast.parse(inspect.getsource(module))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.split(".")[0] in {"transformers", "antiberty"}], module.__name__


def test_keeps_the_adapter_contract():
    from pytest_plmtransfer.models.antiberty import describe
    from pytest_plmtransfer.testing import check_adapter

    description = describe("antiberty", OPTIONS)
    check_adapter(create_antiberty, name="antiberty", options=OPTIONS, description=description)
