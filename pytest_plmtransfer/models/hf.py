"""``hf:<repo id or local dir>``: any Hugging Face ``transformers`` model that returns hidden states.

Layers
    ``hidden_states`` of ``AutoModel(..., output_hidden_states=True)`` (of the encoder, for
    encoder-decoder models such as ProtT5): layer 0 is the embedding output, layer ``i`` the
    output of block ``i``; layer L includes whatever the model applies last (HF ESM's final
    ``emb_layer_norm_after``, like fair-esm's last layer).

    A model runs only up to the deepest requested layer ``k < L``: block ``k``'s input *is*
    ``hidden_states[k]`` in transformers 4 and 5 (:func:`~pytest_plmtransfer.models.torch_base.block_inputs`).
    The blocks are found generically (the ``ModuleList`` with L entries) and the early stop is
    checked against a full forward when the adapter is built; if it does not fit, every forward
    runs in full and a warning says so.

Token -> residue mapping (:class:`ResidueTokenizer`)
    The tokenizer is *probed* rather than guessed from its class: the first input mode that maps
    one token per residue wins, in the order ``spaced`` (``" ".join(residues)``: ProtBERT, ProtT5,
    AntiBERTy; HF ESM reads it too), ``words`` (``is_split_into_words=True``), ``concat`` (the
    plain string). Spaced comes first because whitespace is a token boundary for every tokenizer
    family, so residues can never be merged (a BPE merge in the plain string could), and it is 2x
    faster than ``is_split_into_words`` (0.3 vs 0.6 ms per 56-residue sequence measured here).

    A mode qualifies when every standard residue alone is one (non-[UNK]) token and a probe
    sequence encodes as ``prefix + [token(r) for r in seq] + suffix`` with fixed special tokens.
    Every sequence embedded is checked against that rule, so a residue that is merged, dropped or
    split raises instead of shifting per-residue vectors. Tokenizers with no single-letter
    vocabulary (BPE / k-mer, e.g. ProtGPT2) are rejected with a clear error.

Unknown letters
    ``X B Z U O`` may become the unknown token (what the model's own tokenizer does with them,
    e.g. AntiBERTy's vocabulary has no X). Any other letter that maps to it (lower case, digits,
    ``*`` ...) is an :class:`~pytest_plmtransfer.infra.errors.InputError`.

Where the files come from (offline first)
    1. ``hf:<dir>``: an existing local directory, loaded with ``local_files_only=True``;
    2. ``<--plm-weights-dir>/<repo id>`` or ``<--plm-weights-dir>/<org>--<name>``;
    3. the Hugging Face hub cache (``snapshot_download(local_files_only=True)``);
    4. only when downloads are allowed and ``HF_HUB_OFFLINE`` is not set: a download of the
       config, tokenizer and weight files (safetensors, else ``pytorch_model*.bin``).
    Otherwise :class:`~pytest_plmtransfer.infra.errors.ResourceUnavailable` says what to run where.

``random`` is ``AutoModel.from_config`` (no weight file needed). Weights identity:
``hf:<repo>@<commit hash>`` for a hub snapshot; for a local directory, ``sha256:`` of the sorted
``(file name, sha256)`` list of its weight files.

Importing this module does not import ``transformers`` (that happens when a model is built).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from pytest_plmtransfer.infra.errors import InputError, PlmTransferError, ResourceUnavailable
from pytest_plmtransfer.models.base import INITS
from pytest_plmtransfer.models.describe import ModelDescription, hf_config_description, max_residues_from_config
from pytest_plmtransfer.models.torch_base import TorchAdapter, block_inputs
from pytest_plmtransfer.models.weights import UnsafeCheckpointError, file_sha256

PREFIX = "hf:"
STANDARD_RESIDUES = "ACDEFGHIKLMNPQRSTVWY"
#: ambiguity / non-standard residue codes that may map to the unknown token (see module doc)
AMBIGUOUS_RESIDUES = "XBZUO"
#: probe sequences for the tokenizer mode detection: every standard residue, and a short one of a
#: different length so that the fixed prefix/suffix is confirmed on two lengths
_PROBES = ("MKTAYIAKQRQISFVKSHFSRQACDEFGHIKLMNPQRSTVWY", "WCMH")
_TOKENIZER_MODES = ("spaced", "words", "concat")
#: weight files hashed for a local directory's identity (sharded names included)
_WEIGHT_FILE_RE = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$")
#: files fetched from the hub (never optimizer states or TF/Flax weights)
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.vocab", "*.tiktoken", "*.safetensors"]
_HUB_BIN_PATTERNS = ["pytorch_model*.bin"]


# --------------------------------------------------------------------------- quiet loading
@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar while loading (restored on exit):
    transformers 5 prints a table of every unexpected key (AntiBERTy's checkpoint carries heads
    ``BertModel`` does not use); :func:`check_loading_info` raises on what matters instead."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def check_loading_info(info: dict[str, Any], what: str) -> None:
    """Raise if a pretrained load left parameters uninitialized (missing or mismatched keys): a
    "pretrained" model with random blocks would corrupt every number downstream. An unused pooler
    may be missing: it never touches the hidden states."""
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith("pooler."))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
    if missing or mismatched:
        shown = ", ".join((missing + mismatched)[:10])
        raise PlmTransferError(
            f"{what}: the checkpoint does not match the architecture; "
            f"{len(missing)} missing and {len(mismatched)} mismatched parameter(s) ({shown}). "
            "Refusing to use partly random weights as 'pretrained'."
        )


# --------------------------------------------------------------------------- tokenization
class ResidueTokenizer:
    """A Hugging Face tokenizer, held to "one token per residue" (see the module docstring).
    ``__call__`` pads with ``-1`` (not the pad id), so the attention mask is recoverable from the
    tokens even for tokenizers without a pad token (:meth:`model_inputs`)."""

    def __init__(self, tokenizer: Any, *, model_name: str, pad_id: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.unk_id: int | None = tokenizer.unk_token_id
        tok_pad = tokenizer.pad_token_id
        # The id fed at padded positions: the tokenizer's pad, else the config's, else 0. It never
        # influences real residues because padded positions are masked out of attention.
        self.pad_id: int = int(tok_pad if tok_pad is not None else (pad_id if pad_id is not None else 0))
        self._letter_ids: dict[str, int] = {}
        self.mode, self.prefix, self.suffix = self._detect()

    def _encode(self, seqs: Sequence[str], mode: str, *, special: bool) -> list[list[int]]:
        tok = self.tokenizer
        if mode == "words":
            enc = tok([list(s) for s in seqs], is_split_into_words=True, add_special_tokens=special)
        elif mode == "spaced":
            enc = tok([" ".join(s) for s in seqs], add_special_tokens=special)
        else:
            enc = tok(list(seqs), add_special_tokens=special)
        return [list(map(int, ids)) for ids in enc["input_ids"]]

    def _letter_id(self, letter: str, mode: str) -> int | None:
        """The single token id of ``letter`` in ``mode``; None if it is not exactly one token."""
        try:
            ids = self._encode([letter], mode, special=False)[0]
        except Exception:
            return None
        return ids[0] if len(ids) == 1 else None

    def _detect(self) -> tuple[str, list[int], list[int]]:
        reasons: list[str] = []
        for mode in _TOKENIZER_MODES:
            letters = {r: self._letter_id(r, mode) for r in STANDARD_RESIDUES}
            bad = [r for r, i in letters.items() if i is None or i == self.unk_id]
            if bad:
                reasons.append(f"{mode}: residue(s) {''.join(bad)!r} are not single known tokens")
                continue
            try:
                encoded = self._encode(list(_PROBES), mode, special=True)
            except Exception as error:
                reasons.append(f"{mode}: {type(error).__name__}: {error}")
                continue
            known = {r: i for r, i in letters.items() if i is not None}
            layouts = [_split_specials(ids, [known[r] for r in probe]) for probe, ids in zip(_PROBES, encoded)]
            layout = layouts[0]
            if layout is None or any(found != layout for found in layouts):
                reasons.append(f"{mode}: a sequence does not encode as prefix + one token per residue + suffix")
                continue
            self._letter_ids = known
            return mode, layout[0], layout[1]
        raise PlmTransferError(
            f"{self.model_name}: its tokenizer ({type(self.tokenizer).__name__}) does not map one "
            "token per residue in any input style (residue list, space-separated, concatenated): "
            + "; ".join(reasons)
            + ". hf: models need a character-level protein tokenizer (ESM, ProtBERT, ProtT5, "
            "AntiBERTy style); BPE / k-mer tokenizers cannot give per-residue layers."
        )

    def letter_id(self, letter: str) -> int:
        """Token id of one residue letter; raises InputError for letters the model cannot read."""
        found = self._letter_ids.get(letter)
        if found is not None:
            return found
        tid = self._letter_id(letter, self.mode)
        if tid is None:
            raise InputError(f"residue {letter!r} is not a single token for {self.model_name}'s tokenizer")
        if tid == self.unk_id and letter not in AMBIGUOUS_RESIDUES:
            raise InputError(
                f"residue {letter!r} is not in the vocabulary of {self.model_name}'s tokenizer "
                f"(it would become {self.tokenizer.unk_token!r}); only the ambiguity codes "
                f"{AMBIGUOUS_RESIDUES!r} may map to the unknown token"
            )
        self._letter_ids[letter] = tid
        return tid

    def validate(self, sequences: Sequence[str]) -> None:
        seen: set[str] = set()
        for i, seq in enumerate(sequences):
            new = set(seq) - seen
            for letter in sorted(new):
                try:
                    self.letter_id(letter)
                except InputError as error:
                    raise InputError(f"sequence {i}: {error.problem}") from None
            seen |= new

    @property
    def special_tokens(self) -> int:
        return len(self.prefix) + len(self.suffix)

    def describe(self) -> dict[str, Any]:
        """The tokenization facts that determine the numbers (for the adapter identity)."""
        vocab = sorted(self.tokenizer.get_vocab().items())
        return {
            "class": type(self.tokenizer).__name__,
            "mode": self.mode,
            "prefix": self.prefix,
            "suffix": self.suffix,
            "vocab_sha256": hashlib.sha256(json.dumps(vocab).encode()).hexdigest(),
            "unknown_token_for": AMBIGUOUS_RESIDUES,
        }

    def encode(self, seqs: Sequence[str]) -> list[list[int]]:
        """The tokenizer's own ids for each sequence, verified against the one-token-per-residue rule."""
        out = self._encode(seqs, self.mode, special=True)
        for seq, ids in zip(seqs, out):
            expected = self.prefix + [self.letter_id(r) for r in seq] + self.suffix
            if ids != expected:
                raise PlmTransferError(
                    f"{self.model_name}: the tokenizer did not map one token per residue for a "
                    f"sequence of {len(seq)} residues ({len(ids)} tokens, expected "
                    f"{len(expected)}: {len(self.prefix)} + residues + {len(self.suffix)}); "
                    f"sequence starts {seq[:30]!r}"
                )
        return out

    def __call__(self, seqs: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [torch.tensor(ids, dtype=torch.long) for ids in self.encode(seqs)]
        tokens = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=-1)
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        start = len(self.prefix)
        for row, seq in enumerate(seqs):
            mask[row, start : start + len(seq)] = True
        return tokens, mask

    def model_inputs(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """``input_ids`` (``-1`` replaced by the pad id) and ``attention_mask`` from our tokens."""
        real = tokens >= 0
        input_ids = torch.where(real, tokens, torch.full_like(tokens, self.pad_id))
        return {"input_ids": input_ids, "attention_mask": real.long()}


def _split_specials(ids: list[int], residues: list[int]) -> tuple[list[int], list[int]] | None:
    """``(prefix, suffix)`` if ``ids == prefix + residues + suffix`` for short special runs."""
    n = len(residues)
    for start in range(0, min(len(ids) - n, 4) + 1):  # at most a few leading special tokens
        if ids[start : start + n] == residues and len(ids) - start - n <= 4:
            return ids[:start], ids[start + n :]
    return None


# --------------------------------------------------------------------------- the adapter
def find_block_list(net: torch.nn.Module, num_layers: int) -> torch.nn.ModuleList | None:
    """The ``ModuleList`` holding the model's ``num_layers`` blocks, or None if not unique.
    Several lists of that length are told apart by the usual names, then by depth (T5's ``block``
    holds per-block ``layer`` lists that may have the same length)."""
    candidates = [
        (name, mod)
        for name, mod in net.named_modules()
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == num_layers and num_layers > 0
    ]
    if len(candidates) > 1:
        usual = [(n, m) for n, m in candidates if n.rsplit(".", 1)[-1] in {"layer", "layers", "block", "h"}]
        if usual:
            depth = min(n.count(".") for n, _ in usual)
            usual = [(n, m) for n, m in usual if n.count(".") == depth]
        candidates = usual
    return candidates[0][1] if len(candidates) == 1 else None


def select_hf_attention(model: Any, options: Any) -> str:
    """Apply ``--plm-attention`` to a transformers model and return the implementation in use:
    ``sdpa`` asks for transformers' own SDPA attention where the architecture supports it;
    ``library`` keeps its default (SDPA for BERT/ESM in transformers 5, eager in older ones)."""
    from pytest_plmtransfer.models.attention import attention_option

    if attention_option(options) == "sdpa" and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("sdpa")
        except (ValueError, ImportError, NotImplementedError):
            pass  # not supported by this architecture: the library's own attention it is
    return str(getattr(model.config, "_attn_implementation", None) or "library")


class HFAdapter(TorchAdapter):
    """Per-layer hidden states of a ``transformers`` model (see the module docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: ResidueTokenizer,
        options: Any,
        *,
        config: dict[str, Any],
        alphabet: str | None = None,
        library_versions: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        import transformers

        hf_config = model.config
        self.tokenizer = tokenizer
        self.special_tokens_per_seq = tokenizer.special_tokens
        if alphabet is not None:
            self.alphabet = alphabet
        super().__init__(
            model,
            options,
            num_layers=int(getattr(hf_config, "num_hidden_layers", 0) or 0),
            embed_dim=int(getattr(hf_config, "hidden_size", 0) or 0),
            config={**config, "tokenizer": tokenizer.describe()},
            library_versions={"transformers": transformers.__version__, **(library_versions or {})},
            **kwargs,
        )
        self.config["attention"] = select_hf_attention(self.model, options)
        # Encoder-decoder models (ProtT5): the residue representations are the encoder's.
        self.net = self.model.get_encoder() if getattr(hf_config, "is_encoder_decoder", False) else self.model
        self.blocks: torch.nn.ModuleList | None = None
        self._probe()

    def _probe(self) -> None:
        """One short forward pass: learn L and D from the model itself, and check that the
        early stop reproduces the full pass exactly before trusting it."""
        tokens, _ = self.tokenizer([_PROBES[1]])
        with torch.inference_mode():
            full = self._full(tokens.to(self.device))
        if full is None or len(full) < 1:
            raise PlmTransferError(f"{self.name}: the model returned no hidden_states")
        self.num_layers = len(full) - 1
        self.embed_dim = int(full[0].shape[-1])
        self.blocks = find_block_list(self.net, self.num_layers)
        if self.blocks is None or self.num_layers == 0:
            if self.num_layers > 0:
                warnings.warn(
                    f"{self.name}: could not locate its {self.num_layers} blocks; every "
                    "forward pass will run all layers",
                    stacklevel=3,
                )
            return
        with torch.inference_mode():
            try:
                early = self._early(tokens.to(self.device), self.num_layers - 1, range(self.num_layers))
            except Exception:
                early = None
        ok = early is not None and all(
            early[i].shape == full[i].shape and torch.allclose(early[i], full[i], atol=1e-5, rtol=1e-4)
            for i in range(self.num_layers)
        )
        if not ok:
            warnings.warn(
                f"{self.name}: stopping the forward pass early did not reproduce its "
                "hidden_states; every forward pass will run all layers",
                stacklevel=3,
            )
            self.blocks = None

    def validate_sequences(self, sequences: Sequence[str]) -> None:
        super().validate_sequences(sequences)
        self.tokenizer.validate(sequences)

    def _tokenize(self, seqs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokenizer(seqs)

    def _forward(self, tokens: torch.Tensor, max_layer: int, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        if max_layer >= self.num_layers or self.blocks is None:
            hidden = self._full(tokens)
            return {layer: hidden[layer] for layer in layers}
        return self._early(tokens, max_layer, layers)

    def _full(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(**self.tokenizer.model_inputs(tokens), output_hidden_states=True, return_dict=True)
        return tuple(out.hidden_states)

    def _early(self, tokens: torch.Tensor, max_layer: int, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        """Run blocks ``0..max_layer-1`` only; ``hidden_states[i]`` is block ``i``'s input."""
        assert self.blocks is not None
        inputs = self.tokenizer.model_inputs(tokens)
        return block_inputs(self.blocks, max_layer, layers, lambda: self.net(**inputs, return_dict=True), self.name)


# --------------------------------------------------------------------------- resolving files
@dataclass(frozen=True)
class HFSource:
    """Where an ``hf:`` model's files are; ``repo_id``/``commit`` for a hub snapshot (its weights identity)."""

    path: Path
    repo_id: str | None = None
    commit: str | None = None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _instructions(spec: str) -> str:
    return (
        f"on a machine with network run `huggingface-cli download {spec} --local-dir <dir>` "
        f"(or `hf download {spec} --local-dir <dir>`), copy <dir> here and use "
        f"`--plm-models hf:<dir>`, or put it at <--plm-weights-dir>/{spec}"
    )


def resolve_source(spec: str, options: Any) -> HFSource:
    """Find the files of ``hf:<spec>`` (see the module docstring for the order)."""
    if not spec:
        raise PlmTransferError(
            "hf: needs a Hugging Face repo id or a local directory, e.g. hf:facebook/esm2_t6_8M_UR50D"
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        return HFSource(path)
    if path.exists():
        raise PlmTransferError(f"hf:{spec}: is a file; hf: expects a model directory (config.json, weights, tokenizer)")
    looks_local = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep != "/" and os.sep in spec
    if looks_local:
        raise ResourceUnavailable(f"hf model directory {spec}", f"the directory {path} does not exist")
    weights_dir = getattr(options, "weights_dir", None)
    looked: list[str] = []
    if weights_dir is not None:
        root = Path(weights_dir).expanduser()
        for candidate in (root / spec, root / spec.replace("/", "--")):
            looked.append(str(candidate))
            if candidate.is_dir():
                return HFSource(candidate)
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(spec, local_files_only=True))
        if (snapshot / "config.json").is_file():
            return HFSource(snapshot, spec, snapshot.name)
    except ValueError as error:  # HFValidationError: not a valid repo id either
        raise PlmTransferError(f"hf:{spec}: neither an existing directory nor a valid repo id ({error})") from None
    except OSError:
        pass  # not in the hub cache
    looked.append("the Hugging Face hub cache")
    allow = bool(getattr(options, "allow_download", False)) and not _hub_offline()
    if not allow:
        why = "HF_HUB_OFFLINE is set" if _hub_offline() else "downloads are disabled"
        raise ResourceUnavailable(
            f"Hugging Face model {spec}",
            f"not found locally (looked at {', '.join(looked)}) and {why}; {_instructions(spec)}",
        )
    try:
        snapshot = Path(snapshot_download(spec, allow_patterns=_HUB_PATTERNS))
        if not any(snapshot.glob("*.safetensors")):
            snapshot = Path(snapshot_download(spec, allow_patterns=_HUB_PATTERNS + _HUB_BIN_PATTERNS))
    except Exception as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise ResourceUnavailable(
            f"Hugging Face model {spec}",
            f"not found locally (looked at {', '.join(looked)}) and the download failed "
            f"({type(error).__name__}: {first_line}); {_instructions(spec)}",
        ) from error
    return HFSource(snapshot, spec, snapshot.name)


def refuse_remote_code(config_file: Path) -> None:
    """Refuse in one line a checkpoint whose architecture exists only in its own Python files
    (``auto_map`` to a ``model_type`` transformers does not know): ``trust_remote_code`` stays off."""
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # reported by whoever reads the config for its sizes
    if not isinstance(data, dict) or not data.get("auto_map"):
        return
    from transformers import CONFIG_MAPPING

    model_type = data.get("model_type")
    if model_type in CONFIG_MAPPING:
        return  # transformers has the architecture: its own code is used, not the checkpoint's
    raise PlmTransferError(
        f"{config_file}: model_type {model_type!r} exists only in the checkpoint's own Python code "
        f"(auto_map {sorted(set(data['auto_map'].values()))}), which pytest-plmtransfer never runs "
        "(trust_remote_code); register an adapter for it (README, 'Your own model')"
    )


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a model directory: standard (possibly sharded) names first; if none,
    any ``*.safetensors``, then any ``*.bin`` except ``training_args.bin``."""
    return (
        sorted(p for p in directory.iterdir() if p.is_file() and _WEIGHT_FILE_RE.match(p.name))
        or sorted(directory.glob("*.safetensors"))
        or sorted(p for p in directory.glob("*.bin") if p.name != "training_args.bin")
    )


def directory_weights_identity(directory: Path) -> str:
    """``sha256:`` over the sorted (name, sha256) of the directory's weight files."""
    files = weight_files(directory)
    if not files:
        raise ResourceUnavailable(
            f"weights in {directory}",
            "no model.safetensors / pytorch_model.bin (or shards) in the directory; only config "
            "and tokenizer are there, which is enough for init=random only",
        )
    combined = hashlib.sha256()
    for f in files:
        combined.update(f"{f.name}:{file_sha256(f)}\n".encode())
    return f"sha256:{combined.hexdigest()}"


def config_summary(hf_config: Any) -> dict[str, Any]:
    """The architecture facts worth reading in the ledger, plus a hash of the full config."""
    # The recorded transformers version and local path are not architecture; keep them out of
    # the hash so a re-saved identical model gets the same cache key.
    data = json.loads(hf_config.to_json_string(use_diff=False))
    for volatile in ("transformers_version", "_name_or_path", "_commit_hash", "name_or_path"):
        data.pop(volatile, None)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    keys = (
        "model_type",
        "num_hidden_layers",
        "hidden_size",
        "num_attention_heads",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
        "position_embedding_type",
    )
    summary = {k: data[k] for k in keys if k in data}
    summary["config_sha256"] = digest
    return summary


def _model_kwargs(hf_config: Any) -> dict[str, Any]:
    """``add_pooling_layer=False`` where the architecture has that switch (BERT, ESM, RoBERTa):
    the pooler is unused and would otherwise be a missing, random head after loading an MLM checkpoint."""
    import inspect

    try:
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        cls: Any = MODEL_MAPPING[type(hf_config)]  # typed by transformers as a tuple of classes
        params = inspect.signature(cls.__init__).parameters
    except Exception:
        return {}
    return {"add_pooling_layer": False} if "add_pooling_layer" in params else {}


# --------------------------------------------------------------------------- factory
def create_hf_adapter(name: str, init: str, seed: int | None, options: Any) -> HFAdapter:
    """Factory for ``hf:<repo id or dir>`` (see the module docstring)."""
    spec = name.removeprefix(PREFIX)
    source = resolve_source(spec, options)
    extra = getattr(options, "extra", None) or {}
    trust = bool(extra.get("trust_remote_code", False))
    from pytest_plmtransfer.measure.protocol import protocol_of

    protocol = protocol_of(options)
    # plmtransfer's random is the freshly built architecture; the authors' starts from the weights
    fresh = init == "random" and protocol.ablation == "constructor"
    if init not in INITS:
        raise PlmTransferError(f"{name}: unknown init {init!r}")
    # The weights identity first: a missing weight file is a quick, clear ResourceUnavailable.
    # A fresh random init uses nothing from a checkpoint; the config hash identifies it.
    weights_id = None
    if not fresh:
        weights_id = (
            f"hf:{source.repo_id}@{source.commit}" if source.commit else directory_weights_identity(source.path)
        )

    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from pytest_plmtransfer.models.inits import ablate, build_seeded

    if not trust:
        refuse_remote_code(source.path / "config.json")
    # where to get the files again is advice for a hub model, not for the user's own directory
    advice = f"; {_instructions(spec)}" if source.repo_id or not Path(spec).expanduser().is_dir() else ""
    local: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust}
    try:
        with quiet_transformers():
            hf_config = AutoConfig.from_pretrained(str(source.path), **local)
            hf_tokenizer = AutoTokenizer.from_pretrained(str(source.path), **local)
    except (OSError, ValueError) as error:
        raise ResourceUnavailable(
            f"config/tokenizer of {name} in {source.path}", f"loading failed ({error}){advice}"
        ) from error
    tokenizer = ResidueTokenizer(hf_tokenizer, model_name=name, pad_id=getattr(hf_config, "pad_token_id", None))
    kwargs = _model_kwargs(hf_config)
    config = config_summary(hf_config)
    with quiet_transformers():
        if fresh:
            # Built on CPU under a seeded generator: the model's own _init_weights re-initializes
            # everything (embeddings, LayerNorms, positions ...), identically for one seed.
            model = build_seeded(lambda: AutoModel.from_config(hf_config, trust_remote_code=trust, **kwargs), seed)
            config["protocol"] = protocol.name
        else:
            try:
                model, info = AutoModel.from_pretrained(str(source.path), output_loading_info=True, **local, **kwargs)
            except pickle.UnpicklingError as error:  # transformers loads .bin with weights_only=True
                # one line, not torch's advice
                raise UnsafeCheckpointError(weight_files(source.path)[0], str(error)) from None
            except OSError as error:
                raise ResourceUnavailable(f"weights of {name} in {source.path}", f"{error}{advice}") from error
            check_loading_info(info, name)
            config.update(ablate(model, init, seed, protocol, "generic"))
    return HFAdapter(
        model,
        tokenizer,
        options,
        name=name,
        init=init,
        seed=seed,
        weights_identity=weights_id,
        config=config,
        max_residues=max_residues_from_config(hf_config, tokenizer.special_tokens),
    )


def describe(name: str, options: Any) -> ModelDescription:
    """``hf:<dir or repo>``: the local ``config.json`` (downloads are disabled for describing).
    The length limit assumes two special tokens; the adapter's own, from its tokenizer, applies when it runs."""
    spec = name.removeprefix(PREFIX)
    local_only = SimpleNamespace(weights_dir=getattr(options, "weights_dir", None), allow_download=False)
    source = resolve_source(spec, local_only)
    refuse_remote_code(source.path / "config.json")
    return hf_config_description(source.path / "config.json", special_tokens=2)


def register(registry: Any) -> None:
    registry.register(
        PREFIX,
        create_hf_adapter,
        prefix=True,
        description="any Hugging Face transformers model with hidden states: hf:<repo id or local dir>",
        describe=describe,
    )
