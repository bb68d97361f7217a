"""What a model looks like, without building it: layers, width, length limit, parameters.

Collection needs each selected model's layer count (one test per layer) and the scheduler and
shard planner need a cost estimate. Building a model for that loads (or downloads) its weights,
moves it to the device and keeps it in memory; for the papers' grid that is gigabytes per model
before a single test runs. So every registry entry can describe itself from what is already at
hand:

* the built-in config tables (:data:`~pytest_plmtransfer.models.esm.ESM_CONFIGS`,
  :data:`~pytest_plmtransfer.models.carp.CARP_CONFIGS`, AntiBERTy's shipped ``config.json``);
* a Hugging Face model directory's ``config.json`` (local files only: nothing is downloaded);
* a checkpoint file's saved arguments (ESM-1/1b ``args``, ESM-2 ``cfg``, CARP's ``d_model`` /
  ``n_layers``), read with :func:`peek_checkpoint`, which unpickles the object tree of the file
  and never reads a tensor storage: a 2.5 GB ESM-1b file costs a few hundred kilobytes of reading.

A describer raises :class:`~pytest_plmtransfer.infra.errors.ResourceUnavailable` when the description
itself needs files that are absent (an ``hf:`` repo not downloaded yet, a missing checkpoint
path); the plugin then collects one placeholder test that skips with that message at run time.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.errors import PlmTransferError, ResourceUnavailable


@dataclass(frozen=True)
class ModelDescription:
    """Enough about a model to parametrize, schedule and shard its tests."""

    num_layers: int
    embed_dim: int
    #: longest input in residues (None: no limit known without building)
    max_residues: int | None = None
    #: approximate parameter count, for cost estimates (None: unknown)
    parameters: int | None = None
    #: where the description came from, e.g. "config table", "<file> args"
    source: str = ""
    #: pretraining checkpoints (CARP's table): the step, the fraction of pretraining and the
    #: masked-LM loss there; None for models that are not one of a model's checkpoints
    checkpoint_step: int | None = None
    checkpoint_fraction: float | None = None
    mlm_loss: float | None = None


#: (model name, options) -> description; must not build, load weights or download
Describer = Callable[[str, Any], ModelDescription]


def transformer_parameters(layers: int, dim: int, vocab: int = 33, ffn: int | None = None) -> int:
    """Parameters of a standard transformer encoder: per block 4·D² (attention) + 2·D·F (FFN)."""
    ffn = ffn or 4 * dim
    return layers * (4 * dim * dim + 2 * dim * ffn) + vocab * dim


# --------------------------------------------------------------------------- checkpoint peeking
class _Opaque:
    """Stands in for any class other than the few whose content we read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _ArgsUnpickler(pickle.Unpickler):
    """Reads plain values, dicts and ``argparse.Namespace``; tensors come back as None (their
    storages are persistent ids that are never loaded) and any other class as an opaque stub,
    so nothing from the file is executed."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda *a, **k: None
        return _Opaque

    def persistent_load(self, pid: Any) -> Any:
        return None


_NOT_A_CHECKPOINT = object()


def unpickle_object_tree(path: Path, unpickler: Callable[[Any], pickle.Unpickler]) -> Any:
    """The pickled object tree of a torch checkpoint, through ``unpickler`` (one that stubs the
    tensors out): ``data.pkl`` of torch's zip format, or the object pickle of the legacy format (a
    sequence of pickles: magic, protocol, sys info, then the object). Never the tensor data.
    A zip without ``data.pkl`` gives ``_NOT_A_CHECKPOINT``; unreadable input raises."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            member = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
            return _NOT_A_CHECKPOINT if member is None else unpickler(io.BytesIO(zf.read(member))).load()
    with path.open("rb") as fh:
        legacy = unpickler(fh)
        for _ in range(3):  # magic number, protocol version, sys info
            legacy.load()
        return legacy.load()


def peek_checkpoint(path: str | Path) -> dict[str, Any]:
    """The top-level dict of a torch checkpoint with every tensor replaced by None.

    Reads only the pickled object tree: ``data.pkl`` of torch's zip format, or the object
    pickle of the legacy format (the official ESM files), never the tensor data after it.
    """
    path = Path(path)
    try:
        obj = unpickle_object_tree(path, _ArgsUnpickler)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as error:
        raise PlmTransferError(f"{path}: cannot read the checkpoint's saved arguments ({error})") from error
    if obj is _NOT_A_CHECKPOINT:
        raise PlmTransferError(f"{path}: a zip file without data.pkl is not a torch checkpoint")
    if not isinstance(obj, dict):
        raise PlmTransferError(f"{path}: not a checkpoint dict")
    return obj


# --------------------------------------------------------------------------- built-in families
def onehot(name: str, options: Any) -> ModelDescription:
    from pytest_plmtransfer.measure.protocol import protocol_of

    return ModelDescription(0, len(protocol_of(options).onehot_alphabet), None, 0, "fixed one-hot alphabet")


def _checkpoint_file(name: str, library: str) -> Path | None:
    """The explicit file a model name points at (a ``.pt`` path or ``base@/path.pt``), if any."""
    from pytest_plmtransfer.models.weights import checkpoint_request

    request = checkpoint_request(name, library, None)
    if request.path is None:
        return None
    if not request.path.is_file():
        raise ResourceUnavailable(
            f"{library} checkpoint {request.path}",
            f"the file {request.path} does not exist; give the path of an existing checkpoint",
        )
    return request.path


def esm(name: str, options: Any) -> ModelDescription:
    """ESM-1/1b/2: the config table by name (``base@step`` shares its base's architecture), or
    the saved ``args``/``cfg`` of an explicit checkpoint file."""
    from pytest_plmtransfer.models.esm import ESM_CONFIGS, LIBRARY, MAX_RESIDUES
    from pytest_plmtransfer.models.weights import split_name

    base, _tag = split_name(name)
    cfg = ESM_CONFIGS.get(base)
    path = None if cfg is not None and not name.endswith(".pt") else _checkpoint_file(name, LIBRARY)
    if path is None and cfg is not None:
        return ModelDescription(
            cfg.layers,
            cfg.embed_dim,
            MAX_RESIDUES[cfg.family],
            transformer_parameters(cfg.layers, cfg.embed_dim),
            "fair-esm config table",
        )
    if path is None:
        raise PlmTransferError(f"{name}: not an ESM config table name nor a checkpoint file")
    data = peek_checkpoint(path)
    if "cfg" in data and "args" not in data:  # ESM-2 files: cfg["model"] holds the encoder sizes
        model_cfg = data["cfg"].get("model") if isinstance(data["cfg"], dict) else None
        fields = vars(model_cfg) if isinstance(model_cfg, argparse.Namespace) else model_cfg
        if not isinstance(fields, dict) or "encoder_layers" not in fields:
            raise PlmTransferError(f"{path}: cannot read cfg['model'].encoder_layers from this ESM-2 file")
        layers, dim = int(fields["encoder_layers"]), int(fields["encoder_embed_dim"])
        family = "ESM-2"
    elif isinstance(data.get("args"), argparse.Namespace):
        args = vars(data["args"])
        # fair-esm's v1 files prefix their arguments with "encoder_" in some versions
        layers = int(args.get("layers", args.get("encoder_layers", 0)))
        dim = int(args.get("embed_dim", args.get("encoder_embed_dim", 0)))
        family = "ESM-1b" if args.get("arch") == "roberta_large" else "ESM-1"
    else:
        raise PlmTransferError(f"{path}: not a fair-esm checkpoint (no 'args' or 'cfg')")
    return ModelDescription(
        layers, dim, MAX_RESIDUES[family], transformer_parameters(layers, dim), f"{path.name} saved args"
    )


def carp(name: str, options: Any) -> ModelDescription:
    """CARP: the config table by name (and the checkpoint table for ``@<fraction>``/``@step=N``),
    or the sizes saved in a sequence-models checkpoint file."""
    from pytest_plmtransfer.models.carp import CARP_CONFIGS, CARP_MAX_RESIDUES, LIBRARY, parse_checkpoint
    from pytest_plmtransfer.models.weights import split_name

    base, _tag = split_name(name)
    cfg = CARP_CONFIGS.get(base)
    path = None if cfg is not None and not name.endswith(".pt") else _checkpoint_file(name, LIBRARY)
    checkpoint = parse_checkpoint(name) if path is None else None
    source = "sequence-models config table"
    if path is not None:
        data = peek_checkpoint(path)
        try:
            d_model, n_layers = int(data["d_model"]), int(data["n_layers"])
            slim = bool(data.get("slim", True))
        except (KeyError, TypeError, ValueError) as error:
            raise PlmTransferError(f"{path}: not a sequence-models CARP checkpoint ({error})") from None
        source = f"{path.name} saved args"
    elif cfg is not None:
        d_model, n_layers, slim = cfg.d_model, cfg.n_layers, cfg.slim
    else:
        raise PlmTransferError(f"{name}: not a CARP config table name nor a checkpoint file")
    # ByteNet block: 1x1 convolutions D -> h -> D and a k=5 dilated conv h -> h (h = D/2 if slim)
    hidden = d_model // 2 if slim else d_model
    per_block = 2 * d_model * hidden + 5 * hidden * hidden
    return ModelDescription(
        n_layers,
        d_model,
        CARP_MAX_RESIDUES,
        n_layers * per_block,
        source,
        checkpoint.step if checkpoint else None,
        checkpoint.fraction if checkpoint else None,
        checkpoint.mlm_loss if checkpoint else None,
    )


def _hf_config_description(config_file: Path, *, special_tokens: int) -> ModelDescription:
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
        layers, dim = int(data["num_hidden_layers"]), int(data["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PlmTransferError(f"{config_file}: cannot read num_hidden_layers/hidden_size ({error})") from None
    from pytest_plmtransfer.models.hf import max_residues_from_config

    max_residues = max_residues_from_config(argparse.Namespace(**data), special_tokens)
    params = transformer_parameters(layers, dim, int(data.get("vocab_size", 33)), data.get("intermediate_size"))
    return ModelDescription(layers, dim, max_residues, params, str(config_file))


def antiberty(name: str, options: Any) -> ModelDescription:
    """AntiBERTy: the ``config.json`` shipped in the antiberty wheel (the package is not imported)."""
    from pytest_plmtransfer.models.antiberty import MAX_RESIDUES, antiberty_files

    files = antiberty_files()
    desc = _hf_config_description(files.model_dir / "config.json", special_tokens=2)
    return ModelDescription(desc.num_layers, desc.embed_dim, MAX_RESIDUES, desc.parameters, desc.source)


def hf(name: str, options: Any) -> ModelDescription:
    """``hf:<dir or repo>``: the local ``config.json`` (downloads are disabled for describing).

    The length limit assumes the usual two special tokens (BOS/CLS and EOS/SEP); the adapter's
    own limit, from its tokenizer, applies when it runs.
    """
    import dataclasses

    from pytest_plmtransfer.models.hf import PREFIX, refuse_remote_code, resolve_source

    spec = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    local_only = dataclasses.replace(options, allow_download=False) if dataclasses.is_dataclass(options) else options
    source = resolve_source(spec, local_only)
    refuse_remote_code(source.path / "config.json")
    return _hf_config_description(source.path / "config.json", special_tokens=2)


__all__ = [
    "Describer",
    "ModelDescription",
    "antiberty",
    "carp",
    "esm",
    "hf",
    "onehot",
    "peek_checkpoint",
    "transformer_parameters",
]
