"""ESM-1, ESM-1b and ESM-2 through fair-esm.

Layers are exactly what fair-esm's ``repr_layers`` gives: layer 0 is the embedding output
(token embedding, token-dropout scaling, positions, and for ESM-1b the pre-encoder LayerNorm),
layer k the output of transformer block k; for ESM-1b and ESM-2 the last layer already includes
the final LayerNorm (``emb_layer_norm_after``), for ESM-1 there is none. Only layers up to the
deepest requested one are computed, and the LM head (logits) never is.

Architectures come from a config table (:data:`ESM_CONFIGS`), so ``random`` needs no weights;
``pretrained`` and ``stat`` load the official checkpoint (:mod:`.weights`). A ``.pt`` file in
fair-esm's official format also works as a model name, named by its file stem (as in fair-esm).

fair-esm is imported only when a model is built (``import esm`` costs ~2 s).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.models.attention import attention_option, install_sdpa
from pytest_plmtransfer.models.describe import ModelDescription, table_or_file, transformer_parameters
from pytest_plmtransfer.models.torch_base import TorchAdapter, block_inputs, letter_table, library_version, swapped
from pytest_plmtransfer.models.weights import (
    checkpoint_request,
    load_checkpoint,
    peek_checkpoint,
    peek_keys,
    resolve_checkpoint,
    split_name,
    weights_identity,
)

LIBRARY = "fair-esm"
#: where fair-esm's hub loader downloads the published checkpoints (no digests are published)
FAIR_ESM_MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
#: residue letters fair-esm's alphabets encode (its tokenizer maps anything else to <unk>
#: silently, so we validate instead). '.' and '-' are gap tokens, not residues.
ESM_LETTERS = "ACDEFGHIKLMNPQRSTVWYXBUZO"


@dataclass(frozen=True)
class EsmConfig:
    family: str  # "ESM-1" | "ESM-1b" | "ESM-2"
    layers: int
    embed_dim: int
    attention_heads: int
    description: str = ""


#: The published models. Heads: 12 for the 768-d ESM-1 models, 20 for 1280-d ones and for
#: ESM-2 up to 650M, 40 for ESM-2 3B and 15B. FFN width is 4*D throughout.
ESM_CONFIGS: dict[str, EsmConfig] = {
    "esm1_t6_43M_UR50S": EsmConfig("ESM-1", 6, 768, 12, "ESM-1, 6 layers, 43M, UniRef50"),
    "esm1_t12_85M_UR50S": EsmConfig("ESM-1", 12, 768, 12, "ESM-1, 12 layers, 85M, UniRef50"),
    "esm1_t34_670M_UR50S": EsmConfig("ESM-1", 34, 1280, 20, "ESM-1, 34 layers, 670M, UniRef50"),
    "esm1b_t33_650M_UR50S": EsmConfig("ESM-1b", 33, 1280, 20, "ESM-1b, 33 layers, 650M, UniRef50"),
    "esm2_t6_8M_UR50D": EsmConfig("ESM-2", 6, 320, 20, "ESM-2, 6 layers, 8M, UniRef50"),
    "esm2_t12_35M_UR50D": EsmConfig("ESM-2", 12, 480, 20, "ESM-2, 12 layers, 35M, UniRef50"),
    "esm2_t30_150M_UR50D": EsmConfig("ESM-2", 30, 640, 20, "ESM-2, 30 layers, 150M, UniRef50"),
    "esm2_t33_650M_UR50D": EsmConfig("ESM-2", 33, 1280, 20, "ESM-2, 33 layers, 650M, UniRef50"),
    "esm2_t36_3B_UR50D": EsmConfig("ESM-2", 36, 2560, 40, "ESM-2, 36 layers, 3B, UniRef50"),
    "esm2_t48_15B_UR50D": EsmConfig("ESM-2", 48, 5120, 40, "ESM-2, 48 layers, 15B, UniRef50"),
}

#: Longest sequence (residues) each family was trained on / accepts. ESM-1b and ESM-2 were
#: trained on 1024-token crops including BOS and EOS -> 1022 (ESM-1b's learned positions end
#: there and fair-esm raises beyond it; ESM-2's rotary positions do not raise but were never
#: trained longer). ESM-1 prepends only BOS (no EOS) -> 1023.
MAX_RESIDUES = {"ESM-1": 1023, "ESM-1b": 1022, "ESM-2": 1022}


def esm1_args(cfg: EsmConfig) -> argparse.Namespace:
    """The (already prefix-stripped) arguments fair-esm's v1 loader hands ProteinBertModel."""
    args: dict[str, Any] = dict(
        arch="protein_bert_base",
        layers=cfg.layers,
        embed_dim=cfg.embed_dim,
        ffn_embed_dim=4 * cfg.embed_dim,
        attention_heads=cfg.attention_heads,
        max_positions=1024,
        final_bias=True,
    )
    if cfg.family == "ESM-1b":
        args.update(
            arch="roberta_large",
            emb_layer_norm_before=True,
            # ESM-1b was trained with token dropout (hence fair-esm zeroes its <mask> row
            # "for token drop" on loading); without <mask> inputs it scales embeddings by 0.88.
            token_dropout=True,
        )
    return argparse.Namespace(**args)


def build_architecture(cfg: EsmConfig) -> nn.Module:
    """The architecture with the library's own initial weights (call under a seeded RNG)."""
    import esm

    if cfg.family == "ESM-2":
        alphabet = esm.Alphabet.from_architecture("ESM-1b")
        return esm.ESM2(
            num_layers=cfg.layers,
            embed_dim=cfg.embed_dim,
            attention_heads=cfg.attention_heads,
            alphabet=alphabet,
            token_dropout=True,
        )
    args = esm1_args(cfg)
    alphabet = esm.Alphabet.from_architecture(args.arch)
    return esm.ProteinBertModel(args, alphabet)


def _is_esm2_data(data: dict[str, Any]) -> bool:
    return "cfg" in data and "args" not in data


def load_from_data(data: dict[str, Any]) -> nn.Module:
    """A model from a checkpoint dict in fair-esm's official format, via fair-esm's own loader.
    fair-esm picks ESM-2 vs ESM-1/1b by the model *name*; we pick by the file's content (ESM-2
    files carry ``cfg``, older ones ``args``) so renamed files work. Without the separate
    contact-regression file fair-esm only warns (contacts are not used)."""
    import esm.pretrained

    kind = "esm2" if _is_esm2_data(data) else "esm1"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Regression weights not found")
        model, _alphabet = esm.pretrained.load_model_and_alphabet_core(kind, data, None)
    return model


def architecture_from_data(data: dict[str, Any]) -> nn.Module:
    """Only the architecture described by a checkpoint (fresh, library-initialized weights)."""
    from esm.pretrained import _load_model_and_alphabet_core_v1, _load_model_and_alphabet_core_v2

    loader = _load_model_and_alphabet_core_v2 if _is_esm2_data(data) else _load_model_and_alphabet_core_v1
    return loader(data)[0]


def family_of(model: nn.Module) -> str:
    import esm

    if isinstance(model, esm.ESM2):
        return "ESM-2"
    return str(getattr(model, "model_version", "ESM-1"))


def model_config(model: Any) -> dict[str, Any]:
    family = family_of(model)
    if family == "ESM-2":
        return {
            "family": family,
            "layers": model.num_layers,
            "embed_dim": model.embed_dim,
            "attention_heads": model.attention_heads,
            "token_dropout": bool(model.token_dropout),
        }
    args = model.args
    return {
        "family": family,
        "arch": args.arch,
        "layers": args.layers,
        "embed_dim": args.embed_dim,
        "ffn_embed_dim": args.ffn_embed_dim,
        "attention_heads": args.attention_heads,
        "emb_layer_norm_before": bool(getattr(args, "emb_layer_norm_before", False)),
        "token_dropout": bool(getattr(args, "token_dropout", False)),
    }


class EsmAdapter(TorchAdapter):
    alphabet = ESM_LETTERS

    def __init__(self, model: nn.Module, options: Any, **kwargs: Any) -> None:
        import esm

        family = family_of(model)
        self.family = family
        esm_alphabet = esm.Alphabet.from_architecture("ESM-1" if family == "ESM-1" else "ESM-1b")
        # the same ids fair-esm's BatchConverter produces
        self.letter_ids = letter_table(ESM_LETTERS, esm_alphabet.get_idx)
        self.pad_id = esm_alphabet.padding_idx
        self.bos_id = esm_alphabet.cls_idx if esm_alphabet.prepend_bos else None
        self.eos_id = esm_alphabet.eos_idx if esm_alphabet.append_eos else None
        self.special_tokens_per_seq = int(esm_alphabet.prepend_bos) + int(esm_alphabet.append_eos)
        config = model_config(model)
        # How attention is computed is part of what produced the numbers (SDPA and the library's
        # explicit softmax agree to ~1e-6, not bit for bit), so it is recorded in the identity.
        config["attention"] = attention_option(options)
        kwargs.setdefault("max_residues", MAX_RESIDUES[family])
        kwargs.setdefault("library_versions", {LIBRARY: library_version(LIBRARY)})
        kwargs["config"] = {**config, **kwargs.get("config", {})}
        super().__init__(model, options, num_layers=config["layers"], embed_dim=config["embed_dim"], **kwargs)
        if config["attention"] == "sdpa":
            install_sdpa(self.model)

    def _forward(self, tokens: torch.Tensor, max_layer: int, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        model = self.model
        if max_layer == self.num_layers:
            # fair-esm's own forward, whose last representation includes the final LayerNorm
            # exactly as repr_layers defines it; logits are never used, so no LM head.
            head = {"lm_head": nn.Identity()} if hasattr(model, "lm_head") else {}
            with swapped(model, **head):
                out = model(tokens, repr_layers=sorted(set(layers)))
            return dict(out["representations"])
        reps = block_inputs(model.layers, max_layer, layers, lambda: model(tokens, repr_layers=[]), self.name)
        # block i's input is layer i, but blocks work in (T, B, E); representations are (B, T, E)
        return {layer: rep.transpose(0, 1) for layer, rep in reps.items()}


def create(
    name: str,
    init: str,
    seed: int | None,
    options: Any,
    configs: dict[str, EsmConfig] = ESM_CONFIGS,
    url: str = FAIR_ESM_MODEL_URL,
) -> EsmAdapter:
    """Factory for every name of ``configs``: a table name, ``<table name>@<checkpoint>``, or a ``.pt`` path."""
    from pytest_plmtransfer.measure.protocol import protocol_of
    from pytest_plmtransfer.models.inits import ablate, build_seeded, esm_family

    protocol = protocol_of(options)
    base, tag = split_name(name)
    cfg = configs.get(base)
    display = Path(name).stem if cfg is None and name.endswith(".pt") else name
    # plmtransfer's random is the freshly built architecture; the authors' starts from the weights
    fresh = init == "random" and protocol.ablation == "constructor"
    config: dict[str, Any] = {"protocol": protocol.name}
    if fresh and cfg is not None:
        # Built from the table: no file needed. Checkpoints of the same model share the
        # architecture, so ``base@step`` random-init is the same as ``base`` random-init.
        model = build_seeded(partial(build_architecture, cfg), seed)
        return EsmAdapter(model, options, name=display, init=init, seed=seed, config=config)
    path = resolve_checkpoint(checkpoint_request(name, LIBRARY, url if tag is None else None), options)
    data = load_checkpoint(path)
    if not isinstance(data, dict) or "model" not in data or not ({"args", "cfg"} & set(data)):
        raise PlmTransferError(f"{path}: not a fair-esm checkpoint (expected a dict with 'model' and 'args' or 'cfg')")
    if fresh:  # a path: the architecture the file describes, fresh weights
        model = build_seeded(partial(architecture_from_data, data), seed)
        return EsmAdapter(model, options, name=display, init=init, seed=seed, config={"source": path.name, **config})
    identity = weights_identity(path)
    # Seeded even though weights are loaded: parameters a checkpoint lacks (the contact-
    # regression head, when its separate file is absent) keep their constructor values, and
    # those must not depend on the global RNG for (weights, init, seed) to fix the model.
    model = build_seeded(partial(load_from_data, data), 0)
    del data
    rules = esm_family(family_of(model))
    if rules == "esm1b" and "esm1b_" not in display:
        rules = "esm1"  # the authors' ESM-1b rules go by name ("esm1b_" in it): ESM-1v's architecture gets ESM-1's
    extra = ablate(model, init, seed, protocol, rules)
    return EsmAdapter(model, options, name=display, init=init, seed=seed, weights_identity=identity, config=extra)


def describe(name: str, options: Any, configs: dict[str, EsmConfig] = ESM_CONFIGS) -> ModelDescription:
    """A name of ``configs`` by its table entry, or an explicit checkpoint file by its saved
    ``args`` (ESM-1/1b) or ``cfg`` (ESM-2)."""
    cfg, path = table_or_file(name, configs, LIBRARY)
    if path is None:
        assert cfg is not None
        layers, dim, family, source = cfg.layers, cfg.embed_dim, cfg.family, "fair-esm config table"
    else:
        data = peek_checkpoint(path)
        if _is_esm2_data(data):  # ESM-2 files: cfg["model"] holds the encoder sizes
            model_cfg = data["cfg"].get("model") if isinstance(data["cfg"], dict) else None
            fields = vars(model_cfg) if isinstance(model_cfg, argparse.Namespace) else model_cfg
            if not isinstance(fields, dict) or "encoder_layers" not in fields:
                raise PlmTransferError(f"{path}: cannot read cfg['model'].encoder_layers from this ESM-2 file")
            layers, dim, family = int(fields["encoder_layers"]), int(fields["encoder_embed_dim"]), "ESM-2"
        elif isinstance(data.get("args"), argparse.Namespace):
            args = vars(data["args"])
            # fair-esm's v1 files prefix their arguments with "encoder_" in some versions
            layers = int(args.get("layers", args.get("encoder_layers", 0)))
            dim = int(args.get("embed_dim", args.get("encoder_embed_dim", 0)))
            family = "ESM-1b" if args.get("arch") == "roberta_large" else "ESM-1"
        else:
            raise PlmTransferError(f"{path}: not a fair-esm checkpoint (no 'args' or 'cfg')")
        source = f"{path.name} saved args"
    return ModelDescription(layers, dim, MAX_RESIDUES[family], transformer_parameters(layers, dim), source)


def register_table(registry: Any, configs: dict[str, EsmConfig], url: str) -> None:
    """Register every model of ``configs``, downloadable from ``url`` (``{name}`` in it)."""
    factory, describer = partial(create, configs=configs, url=url), partial(describe, configs=configs)
    for name, cfg in configs.items():
        registry.register(name, factory, description=cfg.description, describe=describer)


def register(registry: Any) -> None:
    register_table(registry, ESM_CONFIGS, FAIR_ESM_MODEL_URL)

    def recognizes(path: Path) -> bool:  # a .pt file in fair-esm's official format
        keys = peek_keys(path)
        return "model" in keys and bool({"args", "cfg"} & keys)

    registry.register_path_resolver(recognizes, create, description="fair-esm checkpoint", describe=describe)
