"""CARP (ByteNet dilated-CNN protein LMs) through sequence-models.

Layers: layer 0 is the embedder output (token embedding + up-projection), which
sequence-models' ``CARP.forward`` returns at the top-level key ``out[0]`` — *not* inside
``out["representations"]`` (its own extract script drops it). Layers 1..L are the ByteNet blocks'
outputs; no final LayerNorm is applied to any of them (``last_norm`` belongs to the LM head).
Tokens carry no BOS/EOS; padding is ``-``. Only blocks up to the deepest requested layer run, and
the decoder (logits) never runs.

Checkpoints (search order in :mod:`.weights`): the published ``carp_600k, carp_38M, carp_76M,
carp_640M`` (Zenodo record 6564798, cached by sequence-models under
``torch.hub.get_dir()/checkpoints/<name>.pt``), and the pretraining checkpoints the ICML paper
probed (:data:`CARP_CHECKPOINT_STEPS`): ``carp_640M@0.125`` (a fraction of pretraining) is
``carp_640M@step=78810``; ``@1`` is the published model. A step checkpoint is looked for as
``<dir>/carp_640M@step=78810.pt`` (sequence-models' format) or in the authors' layout
``<dir>/carp_640M/checkpoint78810.tar`` (``model_state_dict`` under DDP's ``module.`` prefix, no
architecture fields). No download URL is known for them: the authors publish them in Zenodo
record 10631963 (their README) without file names we could pin. ``carp_640M@/path/file.pt`` names
a file directly, and any ``.pt`` file in sequence-models' checkpoint format given as the model
name loads as a CARP model named by its file stem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.models import weights
from pytest_plmtransfer.models.describe import ModelDescription, table_or_file
from pytest_plmtransfer.models.torch_base import TorchAdapter, letter_table, library_version, swapped

LIBRARY = "sequence-models"
#: sequence-models' download URL of the published models (Zenodo record 6564798; no digests published)
URL = "https://zenodo.org/record/6564798/files/{name}.pt?download=1"
#: residue letters of sequence-models' PROTEIN_ALPHABET (its ALL_AAS); the special tokens
#: ``*-#@`` are not residues ('-' is padding). Anything else raises KeyError in its tokenizer.
CARP_LETTERS = "ACDEFGHIKLMNPQRSTVWYBZXJOU"
#: CARP was pretrained on crops of at most 1024 residues (no BOS/EOS); a CNN has no hard limit,
#: but the 511+511 cut applies beyond what it was trained on.
CARP_MAX_RESIDUES = 1024
CHECKPOINT_KEYS = ("model", "d_embed", "d_model", "n_layers", "kernel_size", "activation", "slim", "r")


@dataclass(frozen=True)
class CarpConfig:
    """The fields of a sequence-models CARP checkpoint that define the architecture."""

    d_model: int
    n_layers: int
    slim: bool
    d_embed: int = 8
    kernel_size: int = 5
    activation: str = "gelu"
    r: int = 128


#: What sequence-models' own loader builds for the published models.
CARP_CONFIGS: dict[str, CarpConfig] = {
    "carp_600k": CarpConfig(128, 16, True),
    "carp_38M": CarpConfig(1024, 16, True),
    "carp_76M": CarpConfig(1024, 32, True),
    "carp_640M": CarpConfig(1280, 56, False),
}

#: The pretraining checkpoints the ICML paper probed: step of each fraction of pretraining, per
#: model (microsoft/protein-transfer ``scr/params/emb.py:94-99``, ``CARP_CHECKPOINTS``). The 100%
#: point is the published model, whose step the authors do not list.
CARP_CHECKPOINT_STEPS: dict[str, dict[float, int]] = {
    "carp_600k": {0.125: 52039, 0.25: 114344, 0.5: 239263},
    "carp_38M": {0.125: 129575, 0.25: 256897, 0.5: 517622},
    "carp_76M": {0.125: 83180, 0.25: 162959, 0.5: 327960},
    "carp_640M": {0.125: 78810, 0.25: 154698, 0.5: 311757},
}
#: Their masked-language-model loss at each fraction, 1 being the published model
#: (``scr/params/emb.py:101-126``, ``CARP_CHECKPOINT_LOSSES``), the x axis of their loss plots (scr/vis/res_vis.py:1609).
CARP_CHECKPOINT_LOSSES: dict[str, dict[float, float]] = {
    "carp_600k": {0.125: 2.5268538140067247, 0.25: 2.517630364015801, 0.5: 2.5123053303486858, 1.0: 2.5051483969586483},
    "carp_38M": {0.125: 2.3630260306320774, 0.25: 2.338586726549564, 0.5: 2.3189422531432275, 1.0: 2.3030167711945997},
    "carp_76M": {0.125: 2.277597215778113, 0.25: 2.248077081483563, 0.5: 2.224771098829285, 1.0: 2.2056100474366542},
    "carp_640M": {0.125: 2.1455246604919718, 0.25: 2.094229900229448, 0.5: 2.0535276480066376, 1.0: 2.0194828284458466},
}


@dataclass(frozen=True)
class CarpCheckpoint:
    """Where in pretraining a CARP model name points: ``carp_640M`` is the published model
    (fraction 1), ``carp_640M@0.125`` and ``carp_640M@step=78810`` the same early checkpoint.
    ``fraction``/``mlm_loss`` are None for a step the authors' table does not list."""

    base: str
    step: int | None
    fraction: float | None
    mlm_loss: float | None

    def filenames(self) -> tuple[str, ...]:
        """File names looked for in the weights directories, in order."""
        if self.step is None:
            return (f"{self.base}.pt",)
        # sequence-models' format under our name, then the authors' own layout
        # (``<checkpoint_folder>/<model>/checkpoint<step>.tar``, encoding_classes.py:672-675)
        return (f"{self.base}@step={self.step}.pt", f"{self.base}/checkpoint{self.step}.tar")


def parse_checkpoint(name: str) -> CarpCheckpoint | None:
    """The checkpoint a ``carp_*`` name (``@<fraction>``, ``@step=N`` or none) points at; None
    for other names (paths, URLs). An unknown fraction is refused with the known ones."""
    base, tag = weights.split_name(name)
    if base not in CARP_CONFIGS:
        return None
    steps, losses = CARP_CHECKPOINT_STEPS.get(base, {}), CARP_CHECKPOINT_LOSSES.get(base, {})
    if tag is None:
        return CarpCheckpoint(base, None, 1.0, losses.get(1.0))
    if tag.startswith("step="):
        try:
            step = int(tag[len("step=") :])
        except ValueError:
            raise PlmTransferError(f"{name}: the step after '@step=' must be an integer") from None
        fraction = next((f for f, s in steps.items() if s == step), None)
        return CarpCheckpoint(base, step, fraction, losses.get(fraction) if fraction else None)
    try:
        fraction = float(tag)
    except ValueError:
        return None  # a path or URL after '@'
    if fraction != 1.0 and fraction not in steps:
        known = ", ".join(f"{f:g}" for f in (*sorted(steps), 1.0))
        raise PlmTransferError(
            f"{name}: no {base} checkpoint at {fraction:g} of pretraining; the authors' are at {known} "
            f"(or name a step: {base}@step=N)"
        )
    return CarpCheckpoint(base, steps.get(fraction), fraction, losses.get(fraction))


def checkpoint_model_names() -> list[str]:
    """``carp_600k@0.125`` ... ``carp_640M@0.5``: the ICML paper's pretraining checkpoints."""
    return [f"{base}@{fraction:g}" for base, steps in CARP_CHECKPOINT_STEPS.items() for fraction in steps]


def config_from_data(data: dict[str, Any]) -> CarpConfig:
    return CarpConfig(
        d_model=int(data["d_model"]),
        n_layers=int(data["n_layers"]),
        slim=bool(data["slim"]),
        d_embed=int(data["d_embed"]),
        kernel_size=int(data["kernel_size"]),
        activation=str(data["activation"]),
        r=int(data["r"]),
    )


def build_architecture(cfg: CarpConfig) -> nn.Module:
    """``CARP(ByteNetLM(...))`` exactly as ``sequence_models.pretrained.load_carp`` builds it,
    with the library's own initial weights (call under a seeded RNG for ``random``)."""
    from sequence_models.constants import MASK, PAD, PROTEIN_ALPHABET
    from sequence_models.convolutional import ByteNetLM
    from sequence_models.pretrained import CARP

    net = ByteNetLM(
        len(PROTEIN_ALPHABET),
        cfg.d_embed,
        cfg.d_model,
        cfg.n_layers,
        cfg.kernel_size,
        cfg.r,
        dropout=0.0,
        activation=cfg.activation,
        causal=False,
        padding_idx=PROTEIN_ALPHABET.index(MASK),
        final_ln=True,
        slim=cfg.slim,
    )
    return CARP(net.eval(), pad_idx=PROTEIN_ALPHABET.index(PAD))


def load_from_data(data: dict[str, Any], source: Path, table_cfg: CarpConfig | None = None) -> nn.Module:
    """A model from a checkpoint dict: sequence-models' published format through its own
    ``load_carp``; or, given the named model's ``table_cfg``, the authors' training checkpoints
    (``model_state_dict`` only, under DDP's ``module.`` prefix, dropped as their CARPEncoder does:
    encoding_classes.py:656, 682-690). A file whose sizes differ from the named model's is refused."""
    if "model_state_dict" not in data:
        raise PlmTransferError(f"{source}: not a CARP checkpoint (no model_state_dict)")
    missing = [k for k in CHECKPOINT_KEYS if k not in data]
    try:
        if not missing:
            if "carp" not in str(data["model"]) or "bigcarp" in str(data["model"]):
                raise PlmTransferError(f"{source}: model {data['model']!r} is not a protein CARP model")
            cfg = config_from_data(data)
            if table_cfg is not None and (cfg.d_model, cfg.n_layers) != (table_cfg.d_model, table_cfg.n_layers):
                raise PlmTransferError(
                    f"{source}: holds a CARP with {cfg.n_layers} layers of width {cfg.d_model}, not the named "
                    f"model's {table_cfg.n_layers} of width {table_cfg.d_model}"
                )
            from sequence_models.pretrained import load_carp

            return load_carp(data)
        if table_cfg is None:
            raise PlmTransferError(f"{source}: not a sequence-models CARP checkpoint (missing {missing})")
        model = build_architecture(table_cfg)
        state = {k.removeprefix("module."): v for k, v in data["model_state_dict"].items()}
        model.get_submodule("model").load_state_dict(state)
        return model
    except RuntimeError as error:  # load_state_dict: missing/unexpected keys, shape mismatches
        first = str(error).strip().splitlines()[0:2]
        raise PlmTransferError(f"{source}: its weights do not fit the CARP architecture ({' '.join(first)})") from None


class CarpAdapter(TorchAdapter):
    alphabet = CARP_LETTERS
    special_tokens_per_seq = 0

    def __init__(self, model: nn.Module, cfg: CarpConfig, options: Any, **kwargs: Any) -> None:
        from sequence_models.constants import PAD, PROTEIN_ALPHABET

        # the ids of sequence-models' SimpleCollater(PROTEIN_ALPHABET, pad=True): residues only,
        # right-padded with '-'
        self.letter_ids = letter_table(CARP_LETTERS, PROTEIN_ALPHABET.index)
        self.pad_id = PROTEIN_ALPHABET.index(PAD)
        kwargs.setdefault("max_residues", CARP_MAX_RESIDUES)
        kwargs.setdefault("library_versions", {LIBRARY: library_version(LIBRARY)})
        kwargs["config"] = {"family": "CARP", **asdict(cfg), **kwargs.get("config", {})}
        super().__init__(model, options, num_layers=cfg.n_layers, embed_dim=cfg.d_model, **kwargs)

    def _forward(self, tokens: torch.Tensor, max_layer: int, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        bytenet = self.model.model.embedder
        # CARP.forward loops over every block in ``embedder.layers``; hand it only the first
        # ``max_layer`` for this call.
        with swapped(bytenet, layers=nn.ModuleList(list(bytenet.layers)[:max_layer])):
            out = self.model(tokens, repr_layers=sorted(set(layers)), logits=False)
        return {layer: out[0] if layer == 0 else out["representations"][layer] for layer in layers}


def create(name: str, init: str, seed: int | None, options: Any) -> CarpAdapter:
    """Factory for ``carp_*`` names, ``carp_*@<checkpoint>`` and CARP-format ``.pt`` paths."""
    from pytest_plmtransfer.measure.protocol import protocol_of
    from pytest_plmtransfer.models.inits import ablate, build_seeded

    protocol = protocol_of(options)
    base, tag = weights.split_name(name)
    table_cfg = CARP_CONFIGS.get(base)
    is_path = table_cfg is None and name.endswith(".pt")
    display = Path(name).stem if is_path else name
    # plmtransfer's random is the freshly built architecture; the authors' starts from the weights
    fresh = init == "random" and protocol.ablation == "constructor"
    if fresh and table_cfg is not None:
        model = build_seeded(partial(build_architecture, table_cfg), seed)
        return CarpAdapter(
            model, table_cfg, options, name=display, init=init, seed=seed, config={"protocol": protocol.name}
        )
    checkpoint = None if is_path else parse_checkpoint(name)
    if checkpoint is not None:
        names = checkpoint.filenames()
        url = URL.format(name=base) if checkpoint.step is None else None
        request = weights.CheckpointRequest(name, names[0], LIBRARY, url, alternatives=names[1:])
    else:
        request = weights.checkpoint_request(name, LIBRARY, URL if tag is None else None)
    path = weights.resolve_checkpoint(request, options)
    data = weights.load_checkpoint(path)
    if not isinstance(data, dict):
        raise PlmTransferError(f"{path}: not a sequence-models CARP checkpoint")
    # the file's own sizes; the authors' training checkpoints have none: the named model's
    cfg = config_from_data(data) if all(k in data for k in CHECKPOINT_KEYS) else table_cfg
    if cfg is None:
        missing = [k for k in CHECKPOINT_KEYS if k not in data]
        raise PlmTransferError(f"{path}: not a sequence-models CARP checkpoint (missing {missing})")
    if fresh:
        model = build_seeded(partial(build_architecture, cfg), seed)
        config = {"source": path.name, "protocol": protocol.name}
        return CarpAdapter(model, cfg, options, name=display, init=init, seed=seed, config=config)
    identity = weights.weights_identity(path)
    # load_state_dict is strict; seeding just keeps it obviously pure
    model = build_seeded(partial(load_from_data, data, path, table_cfg), 0)
    del data
    extra = ablate(model, init, seed, protocol, "carp")
    return CarpAdapter(model, cfg, options, name=display, init=init, seed=seed, weights_identity=identity, config=extra)


def describe(name: str, options: Any) -> ModelDescription:
    """A ``carp_*`` name by its config table entry (and the checkpoint table for ``@<fraction>``/
    ``@step=N``), or an explicit checkpoint file by the sizes saved in it."""
    cfg, path = table_or_file(name, CARP_CONFIGS, LIBRARY)
    checkpoint = parse_checkpoint(name) if path is None else None
    source = "sequence-models config table"
    if path is not None:
        data = weights.peek_checkpoint(path)
        try:
            cfg = CarpConfig(int(data["d_model"]), int(data["n_layers"]), bool(data.get("slim", True)))
        except (KeyError, TypeError, ValueError) as error:
            raise PlmTransferError(f"{path}: not a sequence-models CARP checkpoint ({error})") from None
        source = f"{path.name} saved args"
    assert cfg is not None
    # ByteNet block: 1x1 convolutions D -> h -> D and a k=5 dilated conv h -> h (h = D/2 if slim)
    hidden = cfg.d_model // 2 if cfg.slim else cfg.d_model
    per_block = 2 * cfg.d_model * hidden + 5 * hidden * hidden
    pretraining = (checkpoint.step, checkpoint.fraction, checkpoint.mlm_loss) if checkpoint else (None, None, None)
    return ModelDescription(
        cfg.n_layers, cfg.d_model, CARP_MAX_RESIDUES, cfg.n_layers * per_block, source, *pretraining
    )


def register(registry: Any) -> None:
    for name, cfg in CARP_CONFIGS.items():
        description = f"CARP ByteNet, {cfg.n_layers} layers, d_model {cfg.d_model} (sequence-models)"
        registry.register(name, create, description=description, describe=describe)

    def recognizes(path: Path) -> bool:  # a .pt file in sequence-models' CARP checkpoint format
        return {"model_state_dict", "d_model", "n_layers"} <= weights.peek_keys(path)

    registry.register_path_resolver(recognizes, create, description="CARP checkpoint", describe=describe)
