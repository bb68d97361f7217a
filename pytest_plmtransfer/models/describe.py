"""What a model looks like, without building it: layers, width, length limit, parameters.

Collection needs each model's layer count (one test per layer) and the scheduler a cost
estimate; building the model for that would load gigabytes of weights per model before a single
test runs. So every registry entry describes itself from what is at hand: its config table, a
Hugging Face ``config.json`` (local files only), or a checkpoint's saved arguments
(:func:`~pytest_plmtransfer.models.weights.peek_checkpoint`, never a tensor).

A describer raises :class:`~pytest_plmtransfer.infra.errors.ResourceUnavailable` when even that
needs absent files; the plugin then collects one placeholder test that skips with that message.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.models.weights import checkpoint_request, resolve_checkpoint, split_name


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


Config = TypeVar("Config")


def table_or_file(name: str, table: Mapping[str, Config], library: str) -> tuple[Config | None, Path | None]:
    """A checkpoint family's model name as ``(table config, None)`` (``base@step`` shares its
    base's architecture) or ``(None, existing checkpoint file)`` (a ``.pt`` path or ``base@/file.pt``)."""
    cfg = table.get(split_name(name)[0])
    request = checkpoint_request(name, library, None)
    if request.path is None or (cfg is not None and not name.endswith(".pt")):
        if cfg is None:
            raise PlmTransferError(f"{name}: not a {library} config table name nor a checkpoint file")
        return cfg, None
    return None, resolve_checkpoint(request, None)  # the existing file, or ResourceUnavailable


def max_residues_from_config(hf_config: Any, special_tokens: int) -> int | None:
    """Longest sequence an absolute-position Hugging Face model accepts; None for rotary/relative
    positions. ESM and RoBERTa-style models number positions from ``pad_token_id + 1``, so they
    lose that many slots (HF ESM-1b: 1026 - 2 - 2 specials = 1022 residues, as fair-esm's limit).
    """
    if getattr(hf_config, "position_embedding_type", "absolute") != "absolute":
        return None
    max_pos = getattr(hf_config, "max_position_embeddings", None)
    if not max_pos:
        return None
    offset = 0
    if getattr(hf_config, "model_type", "") in {"esm", "roberta", "xlm-roberta", "camembert"}:
        offset = int(getattr(hf_config, "pad_token_id", 0) or 0) + 1
    limit = int(max_pos) - offset - special_tokens
    return limit if limit > 0 else None


def hf_config_description(config_file: Path, *, special_tokens: int) -> ModelDescription:
    """A Hugging Face ``config.json``'s sizes (nothing is imported, built or downloaded)."""
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
        layers, dim = int(data["num_hidden_layers"]), int(data["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PlmTransferError(f"{config_file}: cannot read num_hidden_layers/hidden_size ({error})") from None
    max_residues = max_residues_from_config(argparse.Namespace(**data), special_tokens)
    params = transformer_parameters(layers, dim, int(data.get("vocab_size", 33)), data.get("intermediate_size"))
    return ModelDescription(layers, dim, max_residues, params, str(config_file))
