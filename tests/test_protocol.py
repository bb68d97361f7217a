"""The ``authors`` protocol: their ablations per family, one-hot, ridge, data quirks, and the
protocol kept apart in options, records, keys and baselines."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_plmtransfer.measure.protocol import AUTHORS, PLMTRANSFER, get_protocol
from pytest_plmtransfer.models import carp as carp_mod
from pytest_plmtransfer.models import esm as esm_mod
from pytest_plmtransfer.models.carp import CarpConfig
from pytest_plmtransfer.models.esm import EsmConfig
from pytest_plmtransfer.models.inits import ablate, apply_stat_init, authors_ablation, build_seeded

pytest.importorskip("esm")
pytest.importorskip("sequence_models.pretrained")
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def trained_like(model: torch.nn.Module, seed: int = 123) -> torch.nn.Module:
    """Every parameter moved off its initializer's value: a stand-in for pretrained weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def esm(family: str) -> torch.nn.Module:
    return trained_like(build_seeded(lambda: esm_mod.build_architecture(EsmConfig(family, 2, 32, 4)), 0))


def carp() -> torch.nn.Module:
    cfg = CarpConfig(d_model=16, n_layers=2, slim=True, d_embed=8, kernel_size=5, r=4)
    return trained_like(build_seeded(lambda: carp_mod.build_architecture(cfg), 0))


def bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=25, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    return trained_like(build_seeded(lambda: BertModel(config, add_pooling_layer=False), 0))


BUILD = {"esm1": lambda: esm("ESM-1"), "esm1b": lambda: esm("ESM-1b"), "esm2": lambda: esm("ESM-2")}
BUILD.update(carp=carp, generic=bert)

LAYER_NORMS = r"layers\.\d\.(self_attn|final)_layer_norm\.(weight|bias)"
#: which parameters keep their pretrained values: (family, init) -> regex every kept name matches
#: in full, and that matches no changed name (names as named_parameters(remove_duplicate=False))
KEPT = {
    # LayerNorms (their Parameter(...) lines are no-ops), the token embedding, the output
    # projection, and bias_k / bias_v (the "esm1_" branch never runs)
    (
        "esm1",
        "random",
    ): rf"embed_tokens\.weight|embed_out|embed_out_bias|{LAYER_NORMS}|layers\.\d\.self_attn\.bias_[kv]",
    # LayerNorms and the LM-head bias; the token embedding is NOT kept: it is tied to
    # lm_head.weight, which is re-drawn
    (
        "esm1b",
        "random",
    ): rf"{LAYER_NORMS}|emb_layer_norm_(before|after)\.(weight|bias)|lm_head\.layer_norm\.(weight|bias)"
    r"|lm_head\.bias",
    # no ESM-1b branch: the token embedding (and its tied LM-head copy) and the LM head's dense stay
    ("esm2", "random"): rf"embed_tokens\.weight|lm_head\.weight|{LAYER_NORMS}|emb_layer_norm_after\.(weight|bias)"
    r"|lm_head\.layer_norm\.(weight|bias)|lm_head\.bias|lm_head\.dense\.(weight|bias)",
    # everything outside the blocks: embedder (so layer 0), up-projection, decoder, final norm
    (
        "carp",
        "random",
    ): r"model\.(embedder\.embedder|embedder\.up_embedder\.conv|decoder\.conv|last_norm)\.(weight|bias)",
    ("generic", "random"): r"embeddings\..*|.*LayerNorm\.(weight|bias)",
    ("esm1", "stat"): r"embed_tokens\.weight|embed_out|embed_out_bias",
    # permuted LM-head copy loaded last into the tied token embedding: nothing is kept
    ("esm1b", "stat"): r"(?!)",
    ("esm2", "stat"): r"(?!)",
    ("carp", "stat"): r"model\.(embedder\.embedder|embedder\.up_embedder\.conv|decoder\.conv|last_norm)\.(weight|bias)",
    ("generic", "stat"): r"embeddings\.word_embeddings\.weight",
}


@pytest.mark.parametrize("init", ["random", "stat"])
@pytest.mark.parametrize("family", list(BUILD))
def test_which_parameters_keep_their_pretrained_values(family, init):
    model = BUILD[family]()
    before = {n: p.detach().clone() for n, p in model.named_parameters(remove_duplicate=False)}
    report = authors_ablation(model, init, 7, family)
    after = dict(model.named_parameters(remove_duplicate=False))
    kept = sorted(n for n in before if torch.equal(before[n], after[n]))
    pattern = re.compile(KEPT[(family, init)])
    # permuting a single element (ESM's contact-head bias) cannot change it
    unchangeable = {n for n, p in before.items() if init == "stat" and p.numel() == 1}
    assert [n for n in kept if not pattern.fullmatch(n) and n not in unchangeable] == [], "kept but should have changed"
    assert [n for n in before if n not in kept and pattern.fullmatch(n)] == [], "changed but should be kept"
    assert report["kept"] == kept and report["changed_tensors"] == len(before) - len(kept)
    if init == "stat":  # a permutation: each tensor keeps its values
        for n in before:
            assert torch.equal(before[n].flatten().sort().values, after[n].flatten().sort().values), n


def test_esm1b_tie_side_effect_and_initializers():
    model = esm("ESM-1b")
    authors_ablation(model, "random", 3, "esm1b")
    assert model.embed_tokens.weight.data_ptr() == model.lm_head.weight.data_ptr()
    bound = math.sqrt(6 / sum(model.embed_tokens.weight.shape))  # xavier_uniform_ through the tie
    assert model.embed_tokens.weight.abs().max() <= bound
    assert torch.count_nonzero(model.layers[0].self_attn.out_proj.bias) == 0  # constant 0
    positions = model.embed_positions.weight
    assert 0.8 < float(positions.detach().std()) < 1.2  # normal_: standard normal, padding row included


def test_carp_block_layernorms_are_ones_and_zeros():
    model = carp()
    authors_ablation(model, "random", 3, "carp")
    block = model.model.embedder.layers[0]
    assert torch.equal(block.sequence1[0].weight, torch.ones(16)) and torch.equal(
        block.sequence1[0].bias, torch.zeros(16)
    )


def test_seeded_like_their_seed_all_in_state_dict_order():
    """Their seed_all seeds the global generator; the first tensor drawn (ESM's first k_proj
    weight, after the untouched token embedding) is the generator's first xavier draw."""
    model = esm("ESM-1b")
    authors_ablation(model, "random", 11, "esm1b")
    torch.manual_seed(11)
    expected = torch.nn.init.xavier_uniform_(torch.empty(32, 32), gain=1 / math.sqrt(2))
    assert torch.equal(model.layers[0].self_attn.k_proj.weight, expected)


def test_stat_buffers_kept_and_esm2_rotary_untouched():
    model = esm("ESM-2")
    inv = model.layers[0].self_attn.rot_emb.inv_freq.clone()
    authors_ablation(model, "stat", 5, "esm2")
    assert torch.equal(model.layers[0].self_attn.rot_emb.inv_freq, inv)


@pytest.mark.parametrize("init", ["random", "stat"])
def test_deterministic_in_weights_init_seed_and_protocol(init):
    def made(seed, protocol):
        model = esm("ESM-2")
        if protocol == AUTHORS or init == "stat":
            ablate(model, init, seed, get_protocol(protocol), "esm2")
        return torch.cat([p.flatten() for p in model.parameters()])

    state = torch.random.get_rng_state()
    a, b, c = made(1, AUTHORS), made(1, AUTHORS), made(2, AUTHORS)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's stream is untouched
    if init == "stat":  # plmtransfer's stat is unchanged: every tensor permuted, its own seeds
        ref = esm("ESM-2")
        apply_stat_init(ref, 1)
        assert torch.equal(made(1, PLMTRANSFER), torch.cat([p.flatten() for p in ref.parameters()]))
        assert not torch.equal(made(1, PLMTRANSFER), a)


def test_factories_build_the_authors_random_from_pretrained_weights(tmp_path, monkeypatch):
    """Through the registry factory: the authors' random needs the checkpoint, keeps what the
    rules keep, and its identity (the embedding-cache key) names the protocol."""
    from test_inits import _four_adapters, _hub

    from pytest_plmtransfer.models.registry import ModelOptions

    _hub(tmp_path, monkeypatch)
    plm = ModelOptions(weights_dir=tmp_path, allow_download=False)
    pre, plm_random, *_ = _four_adapters("CARP", tmp_path, monkeypatch, plm)
    authors = ModelOptions(weights_dir=tmp_path, allow_download=False, protocol=AUTHORS)
    rand = carp_mod.create("carp_tiny", "random", 1, authors)
    embedder = "model.embedder.embedder.weight"
    assert torch.equal(dict(rand.model.named_parameters())[embedder], dict(pre.model.named_parameters())[embedder])
    assert not torch.equal(
        dict(plm_random.model.named_parameters())[embedder], dict(pre.model.named_parameters())[embedder]
    )
    ident = rand.identity()
    assert ident["weights"] == pre.identity()["weights"] and ident["config"]["protocol"] == AUTHORS
    assert ident["config"]["ablation"]["rule"] == "authors-reset-carp"
    assert plm_random.identity()["config"]["protocol"] == PLMTRANSFER and ident != plm_random.identity()


# ------------------------------------------------------------------------------ one-hot
def test_onehot_alphabets():
    from pytest_plmtransfer.infra.errors import InputError
    from pytest_plmtransfer.models.onehot import OneHotAdapter

    theirs, ours = OneHotAdapter(protocol=AUTHORS), OneHotAdapter()
    assert theirs.alphabet == "RHKDESTNQBCXUGPAVILMFYW" and theirs.embed_dim == 23 and ours.embed_dim == 21
    x = next(theirs.embed(["RW", "B"], [0], per_residue=False)).per_layer[0]
    assert x.shape == (2, 46) and x[0].nonzero()[0].tolist() == [0, 23 + 22] and x[1].nonzero()[0].tolist() == [9]
    assert next(ours.embed(["Z"], [0], per_residue=False)).per_layer[0][0, 20] == 1  # folded to X
    with pytest.raises(InputError, match="'Z'"):
        next(theirs.embed(["Z"], [0], per_residue=False))
    assert theirs.identity()["protocol"] == AUTHORS and ours.identity()["protocol"] == PLMTRANSFER


# ------------------------------------------------------------------------------ ridge
def _authors_by_sklearn(X, y, split, alphas):
    """scikit-learn 1.0's Ridge(normalize=True) rebuilt with explicit scaling (1.2+ has no
    ``normalize``), fitted on StandardScaler'd targets, chosen by their pick_model loop."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error, ndcg_score
    from sklearn.preprocessing import StandardScaler

    def ndcg_scale(t, p):
        t = t - t.min() if t.min() < 0 else t
        return ndcg_score(t[None, :], p[None, :])

    tr, va, te = (split == s for s in ("train", "val", "test"))
    mu = X[tr].mean(0)
    norm = np.sqrt(((X[tr] - mu) ** 2).sum(0))
    norm[norm == 0] = 1

    def scaled(Z):
        return (Z - mu) / norm

    y_fit = StandardScaler().fit_transform(y[tr][:, None]).ravel()
    best, best_mse, best_ndcg, best_alpha = None, np.inf, -1, None
    for alpha in alphas:
        model = Ridge(alpha=alpha, solver="cholesky").fit(scaled(X[tr]), y_fit)
        mse = mean_squared_error(y[tr], model.predict(scaled(X[tr])))
        ndcg = ndcg_scale(y[va], model.predict(scaled(X[va])))
        if mse < best_mse and ndcg > best_ndcg:
            best, best_mse, best_ndcg, best_alpha = model, mse, ndcg, alpha
    return best_alpha, best.predict(scaled(X[te]))


@pytest.mark.parametrize("n_train", [30, 300])  # dual (n < d) and primal
def test_authors_ridge_equals_scikit_learn_normalize_with_their_grid_and_rule(n_train):
    from pytest_plmtransfer.measure.probe import ProbeInput, probe

    rng = np.random.default_rng(n_train)
    n, d = n_train + 80, 60
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 5, size=d)  # columns on different scales
    X[:, 3] = 1.0  # a constant column: scale 1 in scikit-learn, 0 here; its coefficient is 0 either way
    y = X[:, :5] @ rng.normal(size=5) + rng.normal(scale=2.0, size=n) - 3.0
    split = np.array(["train"] * n_train + ["val"] * 40 + ["test"] * 40)
    settings = get_protocol(AUTHORS).probe_settings({}, "cpu")
    out = probe(ProbeInput("regression", X, None, list(y), split), settings=settings)
    alpha, pred = _authors_by_sklearn(X, y, split, np.logspace(-3, 1, 5))
    assert out.head["alpha"] == pytest.approx(alpha) and out.head["alphas"] == pytest.approx(np.logspace(-3, 1, 5))
    assert out.head["features"] == "l2norm" and out.head["rule"] == "pick_model"
    np.testing.assert_allclose(out.predictions.pred, pred, rtol=1e-7, atol=1e-9)
    from scipy.stats import spearmanr

    assert out.metrics["test_spearman"] == pytest.approx(spearmanr(y[split == "test"], pred)[0], abs=1e-12)
    # their test "mse" compares raw targets with predictions in standardized units
    assert out.metrics["test_mse"] == pytest.approx(np.mean((y[split == "test"] - pred) ** 2))


def test_pick_model_needs_a_strict_win_on_both_and_keeps_the_first_on_ties():
    from pytest_plmtransfer.measure.heads.ridge import pick_model

    t, v = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0])
    good, bad = np.array([0.0, 1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0, 0.0])
    # alpha 1: lower train MSE but worse ranking -> not taken; alpha 2 ties alpha 0 -> not taken
    train = np.stack([good + 1, good, good + 1])
    val = np.stack([good, bad, good])
    assert pick_model(t, train, v, val) == 0
    # a later alpha better on both replaces the first
    assert pick_model(t, np.stack([good + 1, good]), v, np.stack([bad, good])) == 1
    # every NDCG undefined (constant targets): no alpha, as their code would end with None
    assert pick_model(t, train, np.ones(4), val) is None


# ------------------------------------------------------------------------------ data quirks
def _task(window, per_residue=False):
    from pytest_plmtransfer.tasks.spec import TaskData, TaskSpec

    kind = "per_residue" if per_residue else "regression"
    spec = TaskSpec("t", "d", "s", kind, "a.zip", "m.csv", "csv", window=window)
    targets = ["HHEC", "CCE"] if per_residue else [0.5, 1.5]
    masks = [np.array([1, 1, 0, 1], bool), np.array([1, 0, 1], bool)] if per_residue else None
    return TaskData(spec, ["a", "b"], ["MKTA", "GWV"], targets, np.array(["train", "val"]), "src", "sha", masks)


def test_authors_drop_the_last_residue_only_without_a_window():
    theirs, ours = get_protocol(AUTHORS), get_protocol(PLMTRANSFER)
    data = _task(None, per_residue=True)
    cut = theirs.prepare(data)
    assert cut.sequences == ["MKT", "GW"] and cut.targets == ["HHE", "CC"]
    assert [m.tolist() for m in cut.residue_masks] == [[True, True, False], [True, False]]
    assert cut.notes["quirks"] == {"last_residue_dropped": 2} and data.sequences == ["MKTA", "GWV"]
    assert ours.prepare(data) is data
    gb1_like = _task((0, 3))
    assert theirs.prepare(gb1_like) is gb1_like
    assert theirs.model_max_residues(None) == 1022 and theirs.model_max_residues(510) == 510
    assert ours.model_max_residues(None) is None


# ------------------------------------------------------------------------------ options
def test_paper_suites_default_to_the_authors_protocol_and_the_option_wins(tmp_path):
    from test_options import fake_config

    from pytest_plmtransfer.options import OptionError, options_from_config

    def opts(cli, ini=None):
        return options_from_config(fake_config(cli, ini or {}, tmp_path, tmp_path)).protocol

    assert opts({}) == PLMTRANSFER and opts({"plm_suite": "smoke"}) == PLMTRANSFER
    assert opts({"plm_suite": "paper"}) == AUTHORS and opts({"plm_suite": "icml"}) == AUTHORS
    assert opts({"plm_suite": "paper", "plm_protocol": "plmtransfer"}) == PLMTRANSFER
    assert opts({}, {"plm_protocol": "authors"}) == AUTHORS
    with pytest.raises(OptionError, match="--plm-protocol: unknown value 'paper'"):
        opts({"plm_protocol": "paper"})


# ------------------------------------------------------------------------------ baselines
def test_baselines_are_kept_per_protocol(tmp_path):
    from pytest_plmtransfer.judge.baselines import BaselineError, BaselineMissing, BaselineStore
    from pytest_plmtransfer.results.ledger import records_to_frame
    from pytest_plmtransfer.testing import curve_records

    def frame(protocol, value):
        recs = curve_records("onehot", "gb1_sampled", "none", {None: [(0.5, value)]})
        return records_to_frame([{**r, "protocol": protocol} for r in recs])

    from pytest_plmtransfer.judge.baselines import ledger_values

    both = records_to_frame([*frame(PLMTRANSFER, 0.7).to_dict("records"), *frame(AUTHORS, 0.79).to_dict("records")])
    values = ledger_values(both, "test_spearman")  # plmtransfer compare: one row per protocol
    assert sorted(zip(values["protocol"], values["value"])) == [(AUTHORS, 0.79), (PLMTRANSFER, 0.7)]
    store = BaselineStore(tmp_path)
    plm_path, authors_path = store.update_from(frame(PLMTRANSFER, 0.7)) + store.update_from(frame(AUTHORS, 0.79))
    assert plm_path.name == "onehot--none.json" and authors_path.name == "onehot--none--authors.json"
    assert store.compare(frame(AUTHORS, 0.79)).ok and not store.compare(frame(PLMTRANSFER, 0.79)).ok
    (tmp_path / "gb1_sampled" / "onehot--none.json").unlink()
    with pytest.raises(BaselineMissing, match="--plm-protocol authors") as missing:
        BaselineStore(tmp_path / "empty").compare(frame(AUTHORS, 0.79))
    assert "under the authors protocol" in str(missing.value)
    authors_path.rename(tmp_path / "gb1_sampled" / "onehot--none.json")  # a file under the wrong name
    with pytest.raises(BaselineError, match="protocols are never compared"):
        store.compare(frame(PLMTRANSFER, 0.79))
    with pytest.raises(BaselineError, match=r"one \(task, model, init, protocol\)"):
        store.compare(
            records_to_frame([*frame(PLMTRANSFER, 0.7).to_dict("records"), *frame(AUTHORS, 0.7).to_dict("records")])
        )


# ------------------------------------------------------------------------------ plugin
LAYER_TEST = (Path(__file__).parents[1] / "benchmarks" / "test_layers.py").read_text()


@pytest.mark.slow
def test_records_carry_the_protocol_and_protocols_share_no_cache_entry(pytester, flip_root, tmp_path):
    from pytest_plmtransfer.results.ledger import load_ledger, read_records

    pytester.makepyfile(test_layers=LAYER_TEST)
    common = [
        f"--plm-data-dir={flip_root}",
        f"--plm-cache-dir={tmp_path / 'cache'}",
        f"--plm-ledger={tmp_path / 'ledger'}",
        "--plm-models=onehot",
        "--plm-tasks=gb1_sampled",
        "-p",
        "no:cacheprovider",
    ]
    for protocol in (PLMTRANSFER, AUTHORS, PLMTRANSFER):
        result = pytester.runpytest_subprocess(*common, f"--plm-protocol={protocol}")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"plmtransfer protocol: {protocol} (docs/protocols.md)"])
    records = read_records(tmp_path / "ledger")
    by = {p: [r for r in records if r["protocol"] == p] for p in (PLMTRANSFER, AUTHORS)}
    assert len(by[PLMTRANSFER]) == 2 and len(by[AUTHORS]) == 1
    plm, theirs = by[PLMTRANSFER][-1], by[AUTHORS][0]
    assert plm["cache_hit"]  # the second plmtransfer run reuses its own entry ...
    assert plm["embedding_key"] != theirs["embedding_key"]  # ... never the other protocol's
    assert plm["predictions"]["key"] != theirs["predictions"]["key"]
    assert theirs["head"]["rule"] == "pick_model" and plm["head"]["rule"] == "best_val"
    assert theirs["data"]["quirks"] is None  # GB1 has a residue window: nothing dropped
    assert "protocol" in load_ledger(tmp_path / "ledger").columns
