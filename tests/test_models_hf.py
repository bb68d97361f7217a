"""``hf:<dir>``: tiny real-architecture transformers models built offline in a temp directory.

Two tokenizer styles are covered: HF ESM (residues concatenated or spaced, ``<cls>``/``<eos>``,
pad id 1, rotary positions, a final LayerNorm on the last layer) and a BERT WordPiece tokenizer
with AntiBERTy's vocabulary (space-separated residues, ``[CLS]``/``[SEP]``, no X in the vocab).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pytest_plmtransfer.infra.errors import InputError, PlmTransferError, ResourceUnavailable  # noqa: E402
from pytest_plmtransfer.models.base import collect_embeddings  # noqa: E402
from pytest_plmtransfer.models.describe import max_residues_from_config  # noqa: E402
from pytest_plmtransfer.models.hf import (  # noqa: E402
    ResidueTokenizer,
    create_hf_adapter,
    resolve_source,
)
from pytest_plmtransfer.models.registry import ModelOptions  # noqa: E402

ESM_VOCAB = [
    "<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K",
    "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>",
]  # fmt: skip
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"ACDEFGHIKLMNPQRSTVWY"]
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "ACDEFGHIKLMNPQRSTVWY", "MQYKL", "GEWTYDDATKTFTVTEX"]
OPTIONS = ModelOptions(allow_download=False)


def _perturb(model: torch.nn.Module) -> None:
    """Give every parameter distinct values, like a trained model (fresh inits have all-zero
    biases and all-one LayerNorms, which a permutation cannot change)."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


@pytest.fixture(scope="module")
def esm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    d = tmp_path_factory.mktemp("tiny_esm")
    (d / "vocab.txt").write_text("\n".join(ESM_VOCAB) + "\n")
    tokenizer = EsmTokenizer(str(d / "vocab.txt"))
    config = EsmConfig(
        vocab_size=len(ESM_VOCAB), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, pad_token_id=1, mask_token_id=32, position_embedding_type="rotary",
        max_position_embeddings=1026, token_dropout=True, emb_layer_norm_before=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = EsmForMaskedLM(config)
    _perturb(model)
    model.save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("tiny_bert")
    vocab = d / "src_vocab.txt"
    vocab.write_text("\n".join(BERT_VOCAB) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab), do_lower_case=False)
    config = BertConfig(
        vocab_size=len(BERT_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(1)
    model = BertModel(config, add_pooling_layer=False)
    _perturb(model)
    model.save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def esm_adapter(esm_dir: Path):
    return create_hf_adapter(f"hf:{esm_dir}", "pretrained", None, OPTIONS)


@pytest.fixture(scope="module")
def bert_adapter(bert_dir: Path):
    return create_hf_adapter(f"hf:{bert_dir}", "pretrained", None, OPTIONS)


def _reference(model_dir: Path, seqs, spaced: bool):
    """The model's own hidden_states, one unpadded sequence at a time, specials stripped."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    refs = []
    for s in seqs:
        enc = tok(" ".join(s) if spaced else s, return_tensors="pt")
        assert enc["input_ids"].shape[1] == len(s) + 2
        with torch.inference_mode():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        refs.append([h[0, 1:-1].numpy() for h in hidden])
    return refs


@pytest.mark.parametrize("which", ["esm", "bert"])
@pytest.mark.slow
def test_outputs_equal_models_own_hidden_states(which, request):
    adapter = request.getfixturevalue(f"{which}_adapter")
    model_dir = request.getfixturevalue(f"{which}_dir")
    seqs = SEQS if which == "esm" else [s.replace("X", "") for s in SEQS]
    refs = _reference(model_dir, seqs, spaced=(which == "bert"))
    layers = adapter.layers
    assert adapter.num_layers == (3 if which == "esm" else 2)
    pooled = collect_embeddings(adapter, seqs, layers, per_residue=False)
    residues = collect_embeddings(adapter, seqs, layers, per_residue=True)
    for i in range(len(seqs)):
        for layer in layers:
            ref = refs[i][layer]
            np.testing.assert_allclose(residues[layer][i], ref, atol=1e-5, rtol=0)
            np.testing.assert_allclose(pooled[layer][i], ref.mean(axis=0), atol=1e-5, rtol=0)


def test_tokenizer_styles_detected(esm_adapter, bert_adapter):
    esm_tok, bert_tok = esm_adapter.tokenizer, bert_adapter.tokenizer
    assert (esm_tok.prefix, esm_tok.suffix) == ([0], [2])  # <cls> ... <eos>
    assert (bert_tok.prefix, bert_tok.suffix) == ([2], [3])  # [CLS] ... [SEP]
    tokens, mask = bert_tok(["ACD", "M"])
    assert tokens.tolist() == [[2, 5, 6, 7, 3], [2, 15, 3, -1, -1]]  # -1 marks padding
    assert mask.tolist() == [[False, True, True, True, False], [False, True, False, False, False]]
    inputs = bert_tok.model_inputs(tokens)
    assert inputs["input_ids"][1].tolist() == [2, 15, 3, 0, 0]
    assert inputs["attention_mask"][1].tolist() == [1, 1, 1, 0, 0]
    assert bert_tok.unk_id not in bert_tok(["ACDEFGHIKLMNPQRSTVWY"])[0].tolist()[0]


def test_unknown_letters(esm_adapter, bert_adapter):
    # X is in ESM's vocabulary; AntiBERTy-style vocabularies lack it: it becomes [UNK] by design.
    assert esm_adapter.tokenizer.letter_id("X") == ESM_VOCAB.index("X")
    assert bert_adapter.tokenizer.letter_id("X") == bert_adapter.tokenizer.unk_id
    for adapter in (esm_adapter, bert_adapter):
        with pytest.raises(InputError, match="sequence 1"):
            adapter.validate_sequences(["ACD", "ACdE"])
        with pytest.raises(InputError):
            adapter.validate_sequences(["AC*"])


def test_tokenizer_without_residues_is_rejected():
    from transformers import BertTokenizer

    specials = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    with pytest.raises(PlmTransferError, match="one token per residue"):
        ResidueTokenizer(BertTokenizer(vocab=specials, do_lower_case=False), model_name="hf:broken")


def test_multi_residue_tokens_are_rejected():
    from transformers import BertTokenizer

    vocab = {t: i for i, t in enumerate(BERT_VOCAB + ["MK", "##K"])}
    tok = ResidueTokenizer(BertTokenizer(vocab=vocab, do_lower_case=False), model_name="hf:bpe-ish")
    # detection picks the spaced style, where the multi-residue token "MK" can never form
    assert tok.mode == "spaced"
    m, k = BERT_VOCAB.index("M"), BERT_VOCAB.index("K")
    assert tok.encode(["MKK"])[0] == [2, m, k, k, 3]
    # and every encoded sequence is verified: the plain string would not be one token per residue
    tok.mode = "concat"
    with pytest.raises(PlmTransferError, match="one token per residue"):
        tok.encode(["AMKK"])


@pytest.mark.slow
def test_runs_only_to_deepest_layer(esm_adapter):
    calls: list[int] = []
    hooks = [
        block.register_forward_hook(lambda m, a, o, i=i: calls.append(i)) for i, block in enumerate(esm_adapter.blocks)
    ]
    try:
        full = collect_embeddings(esm_adapter, SEQS, [0, 1, 2, 3], per_residue=False)
        assert sorted(set(calls)) == [0, 1, 2]
        calls.clear()
        part = collect_embeddings(esm_adapter, SEQS, [0, 1], per_residue=False)
        assert sorted(set(calls)) == [0]
        calls.clear()
        only0 = collect_embeddings(esm_adapter, SEQS, [0], per_residue=False)
        assert calls == []
    finally:
        for h in hooks:
            h.remove()
    for i in range(len(SEQS)):
        np.testing.assert_array_equal(part[0][i], full[0][i])
        np.testing.assert_array_equal(part[1][i], full[1][i])
        np.testing.assert_array_equal(only0[0][i], full[0][i])
    # layer 2 stops before block 2, i.e. *without* ESM's final LayerNorm; layer 3 has it
    layer2 = collect_embeddings(esm_adapter, SEQS, [2], per_residue=False)
    for i in range(len(SEQS)):
        np.testing.assert_allclose(layer2[2][i], full[2][i], atol=1e-6)


@pytest.mark.slow
def test_inits_differ_and_are_reproducible(esm_dir, esm_adapter):
    name = f"hf:{esm_dir}"
    rand0 = create_hf_adapter(name, "random", 0, OPTIONS)
    rand0b = create_hf_adapter(name, "random", 0, OPTIONS)
    rand1 = create_hf_adapter(name, "random", 1, OPTIONS)
    stat0 = create_hf_adapter(name, "stat", 0, OPTIONS)
    stat0b = create_hf_adapter(name, "stat", 0, OPTIONS)

    def params(a):
        return dict(a.model.named_parameters())

    pre = params(esm_adapter)
    for key, p in params(rand0).items():
        assert torch.equal(p, params(rand0b)[key]), key
        assert torch.equal(params(stat0)[key], params(stat0b)[key]), key
        # stat keeps each tensor's multiset of values
        np.testing.assert_array_equal(
            np.sort(params(stat0)[key].detach().numpy().ravel()), np.sort(pre[key].detach().numpy().ravel())
        )
    assert any(not torch.equal(p, params(rand1)[k]) for k, p in params(rand0).items())
    changed = sum(not torch.equal(params(stat0)[k], pre[k]) for k in pre)
    # every tensor with distinct values was permuted (a 1-element bias cannot be)
    assert changed == sum(p.numel() > 1 for p in pre.values())
    last = esm_adapter.num_layers
    emb = {
        tag: np.stack(collect_embeddings(a, SEQS, [last], per_residue=False)[last])
        for tag, a in {"pre": esm_adapter, "rand": rand0, "rand_b": rand0b, "stat": stat0}.items()
    }
    np.testing.assert_array_equal(emb["rand"], emb["rand_b"])
    assert not np.allclose(emb["pre"], emb["rand"], atol=1e-3)
    assert not np.allclose(emb["pre"], emb["stat"], atol=1e-3)
    assert not np.allclose(emb["rand"], emb["stat"], atol=1e-3)
    ids = {a.identity()["weights"] for a in (esm_adapter, stat0)}
    assert len(ids) == 1 and next(iter(ids)).startswith("sha256:")
    assert rand0.identity()["weights"] is None
    assert rand0.identity()["config"]["config_sha256"] == esm_adapter.identity()["config"]["config_sha256"]
    assert stat0.identity()["config"]["stat"]["method"] == "permute-within-tensor"


def test_weights_identity_follows_the_files(esm_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(esm_dir, copy)
    from pytest_plmtransfer.models.hf import directory_weights_identity

    assert directory_weights_identity(copy) == directory_weights_identity(esm_dir)
    from safetensors.torch import load_file, save_file

    state = load_file(str(copy / "model.safetensors"))
    key = next(iter(state))
    state[key] = state[key] + 1
    save_file(state, str(copy / "model.safetensors"), metadata={"format": "pt"})
    assert directory_weights_identity(copy) != directory_weights_identity(esm_dir)


def test_random_needs_no_weight_files(esm_dir, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(esm_dir, bare)
    (bare / "model.safetensors").unlink()
    adapter = create_hf_adapter(f"hf:{bare}", "random", 0, OPTIONS)
    assert adapter.num_layers == 3
    with pytest.raises(ResourceUnavailable, match="init=random only"):
        create_hf_adapter(f"hf:{bare}", "pretrained", None, OPTIONS)


def test_offline_repo_id_is_unavailable_quickly(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ResourceUnavailable) as info:
        create_hf_adapter("hf:someone/protein-model", "pretrained", None, ModelOptions(allow_download=True))
    message = str(info.value)
    assert "huggingface-cli download someone/protein-model --local-dir" in message
    assert "hf:<dir>" in message and "HF_HUB_OFFLINE" in message
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ResourceUnavailable, match="downloads are disabled"):
        resolve_source("someone/protein-model", ModelOptions(allow_download=False))
    with pytest.raises(ResourceUnavailable, match="does not exist"):
        resolve_source("./no/such/dir", OPTIONS)


def test_repo_id_from_weights_dir_and_hub_cache(esm_dir, monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    weights = tmp_path / "weights"
    shutil.copytree(esm_dir, weights / "org" / "tiny-esm")
    found = resolve_source("org/tiny-esm", ModelOptions(weights_dir=weights))
    assert found.path == weights / "org" / "tiny-esm" and found.commit is None
    # the hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--org--tiny-esm"
    shutil.copytree(esm_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    adapter = create_hf_adapter("hf:org/tiny-esm", "pretrained", None, OPTIONS)
    assert adapter.identity()["weights"] == f"hf:org/tiny-esm@{commit}"


def test_max_residues_from_config():
    from transformers import BertConfig, EsmConfig

    assert max_residues_from_config(BertConfig(max_position_embeddings=512), 2) == 510
    esm1b = EsmConfig(vocab_size=33, max_position_embeddings=1026, pad_token_id=1, position_embedding_type="absolute")
    assert max_residues_from_config(esm1b, 2) == 1022
    assert max_residues_from_config(EsmConfig(vocab_size=33, position_embedding_type="rotary"), 2) is None


def test_registered_as_prefix(esm_dir):
    from pytest_plmtransfer.models import hf
    from pytest_plmtransfer.models.registry import ModelRegistry, builtin_registry

    assert builtin_registry().entry(f"hf:{esm_dir}").name == "hf:"
    registry = ModelRegistry()
    hf.register(registry)
    entry = registry.entry(f"hf:{esm_dir}")
    assert entry.prefix and entry.name == "hf:"
    adapter = registry.create(f"hf:{esm_dir}", "pretrained", None, OPTIONS)
    assert adapter.name == f"hf:{esm_dir}"


# ------------------------------------------------------------------ issue 17: checkpoints that would run code
class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_an_unsafe_bin_is_refused_in_one_line_and_an_alias_is_described_not_built(esm_dir, tmp_path):
    from pytest_plmtransfer.models.aliases import apply_aliases
    from pytest_plmtransfer.models.registry import builtin_registry
    from pytest_plmtransfer.models.weights import UnsafeCheckpointError

    evil = tmp_path / "evil"
    shutil.copytree(esm_dir, evil)
    (evil / "model.safetensors").unlink()
    torch.save({"x": _RunsCode(tmp_path / "ran")}, evil / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError) as info:
        create_hf_adapter(f"hf:{evil}", "pretrained", None, OPTIONS)
    assert str(info.value).startswith(f"{evil / 'pytorch_model.bin'}: refused as unsafe: it references posix.system")
    assert "weights_only=False" not in str(info.value) and not (tmp_path / "ran").exists()
    registry = builtin_registry()
    assert apply_aliases([f"my=hf:{evil}"], registry) == ["my"]
    assert registry.describe("my", OPTIONS).num_layers == 3  # from config.json: nothing built, nothing loaded
    assert not (tmp_path / "ran").exists()


def test_a_directory_that_needs_its_own_code_is_refused_without_hub_advice(esm_dir, tmp_path):
    import json

    from pytest_plmtransfer.models.hf import describe

    remote = tmp_path / "remote"
    shutil.copytree(esm_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    config.update(model_type="my_custom_plm", auto_map={"AutoModel": "modeling_my.MyModel"})
    (remote / "config.json").write_text(json.dumps(config))
    needle = "model_type 'my_custom_plm' exists only in the checkpoint's own Python code"
    with pytest.raises(PlmTransferError, match=needle):
        describe(f"hf:{remote}", OPTIONS)  # at collection: one line, exit 4
    with pytest.raises(PlmTransferError, match=needle):
        create_hf_adapter(f"hf:{remote}", "random", 0, OPTIONS)
    (remote / "config.json").write_text(json.dumps({**config, "model_type": "esm"}))  # a known architecture
    assert describe(f"hf:{remote}", OPTIONS).num_layers == 3
    (remote / "tokenizer_config.json").write_text("{broken")  # the user's own directory: no download advice
    with pytest.raises(ResourceUnavailable) as info:
        create_hf_adapter(f"hf:{remote}", "random", 0, OPTIONS)
    assert "huggingface-cli" not in str(info.value) and str(remote) in str(info.value)


@pytest.mark.parametrize("init, seed", [("pretrained", None), ("random", 0)])
def test_keeps_the_adapter_contract(esm_dir, init, seed):
    from pytest_plmtransfer.models.hf import describe
    from pytest_plmtransfer.testing import check_adapter

    name = f"hf:{esm_dir}"
    check_adapter(
        create_hf_adapter, name=name, init=init, seed=seed, options=OPTIONS, description=describe(name, OPTIONS)
    )
