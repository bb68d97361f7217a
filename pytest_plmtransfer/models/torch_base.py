"""Shared machinery for every PyTorch model adapter.

A concrete adapter (ESM, CARP, AntiBERTy, Hugging Face ...) only says how to turn sequences into
token ids and how to run the network up to a layer (see :class:`TorchAdapter`). Everything else
lives here, once: letter validation, length-sorted batching under a token budget, device and
dtype placement, masked mean pooling or per-residue extraction (float32 numpy), a progress bar,
and halving the batch on out-of-memory errors.
"""

from __future__ import annotations

import abc
import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pytest_plmtransfer.infra.errors import InputError, PlmTransferError
from pytest_plmtransfer.models.base import DTYPES, EmbeddingBatch, ModelAdapter

#: Sequences per batch on CPU. Measured here (2 cores, ESM-2 t6 / CARP / AntiBERTy): 8-16
#: sequences per batch were fastest; 64 was 10-35% slower (cache pressure of the (B, H, T, T)
#: attention maps) and used more memory. The token budget usually binds first for long proteins.
DEFAULT_MAX_BATCH_CPU = 16
#: On a GPU larger batches keep the device busy; the token budget (and OOM back-off) bound memory.
DEFAULT_MAX_BATCH_CUDA = 256


@contextlib.contextmanager
def swapped(module: Any, **replacements: Any) -> Iterator[None]:
    """Replace attributes (submodules) of ``module`` for a call; restored even if it raises."""
    saved = {key: getattr(module, key) for key in replacements}
    for key, value in replacements.items():
        setattr(module, key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(module, key, value)


class _StopForward(Exception):
    """Raised by the pre-hook of the deepest requested block to end the forward pass there."""


def block_inputs(
    blocks: torch.nn.ModuleList, max_layer: int, layers: Sequence[int], forward: Callable[[], Any], name: str
) -> dict[int, torch.Tensor]:
    """Run ``forward()`` only up to block ``max_layer``; ``{layer: the input of block layer}``.
    The pre-hook of block ``max_layer`` stops the pass: no deeper block, final LayerNorm or head runs."""
    wanted = set(layers)
    captured: dict[int, Any] = {}

    def make_hook(index: int) -> Any:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = args[0] if args else kwargs.get("hidden_states")
            if index in wanted:
                captured[index] = hidden
            if index == max_layer:
                raise _StopForward

        return hook

    handles: list[Any] = []
    try:  # hooks registered inside: whatever stops the pass, none outlives it
        for i in range(max_layer + 1):
            handles.append(blocks[i].register_forward_pre_hook(make_hook(i), with_kwargs=True))
        forward()
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    missing = wanted - set(captured)
    if missing:
        raise PlmTransferError(f"{name}: the forward pass never reached layer(s) {sorted(missing)}")
    return {layer: captured[layer] for layer in layers}


def letter_table(letters: str, token_id: Callable[[str], int]) -> np.ndarray:
    """A byte -> token id lookup for ``letters`` (-1 elsewhere), for :attr:`TorchAdapter.letter_ids`."""
    table = np.full(256, -1, dtype=np.int64)
    for letter in letters:
        table[ord(letter)] = token_id(letter)
    return table


def library_version(distribution: str) -> str:
    """The installed version of a model library, for adapter identities."""
    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover - installed from source
        return "unknown"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as torch parses it."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PlmTransferError(f"device {str(device)!r} was asked for but CUDA is not available")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute dtype. Half precision only on CUDA (CPU bf16/fp16 kernels are slow and, for
    fp16, incomplete): on CPU it falls back to float32 with a warning, and the identity says so."""
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        key = str(dtype or "float32").lower().removeprefix("torch.")
        if key not in DTYPES:
            raise PlmTransferError(f"unknown dtype {dtype!r}; use one of float32, bf16 (bfloat16), fp16 (float16)")
        resolved = getattr(torch, DTYPES[key])
    if resolved != torch.float32 and device.type != "cuda":
        warnings.warn(f"dtype {resolved} is only used on CUDA; computing in float32 on {device}", stacklevel=3)
        return torch.float32
    return resolved


def is_oom(error: BaseException) -> bool:
    """True for a CUDA (or other accelerator / host allocator) out-of-memory error."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def plan_batches(
    lengths: Sequence[int], token_budget: int, max_batch_size: int, special_tokens: int = 0
) -> list[np.ndarray]:
    """Group sequence indices into batches, longest first (ties in input order), packed greedily
    while ``n_seqs * (longest + special_tokens) <= token_budget`` and ``n_seqs <= max_batch_size``
    (a longer sequence still forms its own batch). Sorting keeps padding small; longest-first means
    an out-of-memory error, if any, happens on the first batch rather than after an hour."""
    if token_budget < 1 or max_batch_size < 1:
        raise ValueError("token_budget and max_batch_size must be positive")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    current: list[int] = []
    padded = 0
    for i in order:
        tokens = int(lengths[i]) + special_tokens
        width = max(padded, tokens)
        if current and (len(current) >= max_batch_size or (len(current) + 1) * width > token_budget):
            batches.append(np.asarray(current, dtype=np.int64))
            current, width = [], tokens
        current.append(int(i))
        padded = width
    if current:
        batches.append(np.asarray(current, dtype=np.int64))
    return batches


class TorchAdapter(ModelAdapter):
    """Base class of every torch-backed adapter: subclasses pass an already built (and ablated)
    ``torch.nn.Module`` to ``__init__``, implement :meth:`_forward`, and :meth:`_tokenize` or set
    :attr:`letter_ids` (one token per letter, as ESM and CARP), and set :attr:`alphabet` and
    :attr:`special_tokens_per_seq` (BOS + EOS = 2 for ESM-1b/ESM-2; 0 for CARP)."""

    #: non-residue tokens per sequence (BOS/CLS + EOS ...), counted against the token budget
    special_tokens_per_seq: int = 0
    #: letters the tokenizer accepts; validated before tokenizing (None: only non-empty is checked)
    alphabet: str | None = None
    #: one token per letter: byte -> token id (-1: not a letter), padding, BOS and EOS ids
    letter_ids: np.ndarray
    pad_id: int = 0
    bos_id: int | None = None
    eos_id: int | None = None

    def __init__(
        self,
        model: torch.nn.Module,
        options: Any,
        *,
        name: str,
        num_layers: int,
        embed_dim: int,
        max_residues: int | None = None,
        init: str = "pretrained",
        seed: int | None = None,
        weights_identity: str | None = None,
        config: dict[str, Any] | None = None,
        library_versions: dict[str, str] | None = None,
        max_batch_size: int | None = None,
    ) -> None:
        self.name = name
        self.num_layers = int(num_layers)
        self.embed_dim = int(embed_dim)
        self.max_residues = max_residues
        self.init = init
        self.seed = seed
        self.weights_identity = weights_identity
        self.config = dict(config or {})
        self.library_versions = dict(library_versions or {})
        self.options = options
        self.device = resolve_device(getattr(options, "device", "cpu"))
        self.dtype = resolve_dtype(getattr(options, "dtype", "float32"), self.device)
        self.token_budget = int(getattr(options, "token_budget", 4096) or 4096)
        extra = getattr(options, "extra", None) or {}
        if max_batch_size is None:
            max_batch_size = extra.get("max_batch_size")
        if max_batch_size is None:
            max_batch_size = DEFAULT_MAX_BATCH_CUDA if self.device.type == "cuda" else DEFAULT_MAX_BATCH_CPU
        self.max_batch_size = int(max_batch_size)
        self.progress = bool(getattr(options, "progress", False))
        # eval(): no dropout; requires_grad off: inference_mode does not need it, but it keeps
        # accidental autograd use (outside embed) from holding activations.
        model.eval().requires_grad_(False)
        self.num_parameters = sum(p.numel() for p in model.parameters())
        # Any: the library's own module, whose attributes torch types as ``Tensor | Module``
        self.model: Any = model.to(device=self.device, dtype=self.dtype)

    def _tokenize(self, seqs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens (B, T) long, residue_mask (B, T) bool)`` on CPU, padded to the batch's longest.

        ``residue_mask`` is True exactly on real residues, in order (never BOS/EOS/padding). By
        :attr:`letter_ids`: ``[BOS] residues [EOS]`` per row, right-padded with :attr:`pad_id`."""
        start = int(self.bos_id is not None)
        width = max(len(s) for s in seqs) + start + int(self.eos_id is not None)
        tokens = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=bool)
        for row, seq in enumerate(seqs):
            n = len(seq)
            tokens[row, start : start + n] = self.letter_ids[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
            if self.bos_id is not None:
                tokens[row, 0] = self.bos_id
            if self.eos_id is not None:
                tokens[row, start + n] = self.eos_id
            mask[row, start : start + n] = True
        return torch.from_numpy(tokens), torch.from_numpy(mask)

    @abc.abstractmethod
    def _forward(self, tokens: torch.Tensor, max_layer: int, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        """``{layer: (B, T, D)}`` for every layer in ``layers``, running no deeper than ``max_layer``.
        ``tokens`` are already on :attr:`device`."""

    def identity(self) -> dict[str, Any]:
        versions = {"torch": torch.__version__, **self.library_versions}
        return {
            "model": self.name,
            "weights": self.weights_identity,
            "init": self.init,
            "seed": self.seed,
            "config": self.config,
            "num_layers": self.num_layers,
            "embed_dim": self.embed_dim,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device_type": self.device.type,
            "libraries": versions,
        }

    def validate_sequences(self, sequences: Sequence[str]) -> None:
        allowed = set(self.alphabet) if self.alphabet is not None else None
        for i, seq in enumerate(sequences):
            if not isinstance(seq, str) or not seq:
                raise InputError(f"sequence {i} is empty (model {self.name})")
            if allowed is not None:
                bad = set(seq) - allowed
                if bad:
                    raise InputError(
                        f"sequence {i} has letter(s) {''.join(sorted(bad))!r} that model "
                        f"{self.name} cannot read (it accepts {''.join(sorted(allowed))!r})"
                    )
            if self.max_residues is not None and len(seq) > self.max_residues:
                raise InputError(
                    f"sequence {i} has {len(seq)} residues; model {self.name} accepts at most "
                    f"{self.max_residues} (cut longer sequences to the first and last "
                    f"{self.max_residues // 2} residues before embedding)"
                )

    def _check_layers(self, layers: Sequence[int]) -> list[int]:
        wanted = sorted({int(layer) for layer in layers})
        if not wanted:
            raise ValueError("no layers requested")
        bad = [layer for layer in wanted if not 0 <= layer <= self.num_layers]
        if bad:
            raise ValueError(f"{self.name} has layers 0..{self.num_layers}; asked for {bad}")
        return wanted

    def embed(self, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool) -> Iterator[EmbeddingBatch]:
        sequences = list(sequences)
        self.validate_sequences(sequences)
        wanted = self._check_layers(layers)
        if not sequences:
            return
        lengths = [len(s) for s in sequences]
        cap = self.max_batch_size
        pending = plan_batches(lengths, self.token_budget, cap, self.special_tokens_per_seq)
        bar = tqdm(total=len(sequences), desc=f"embed {self.name}", unit="seq", leave=False, disable=not self.progress)
        try:
            while pending:
                idx = pending.pop(0)
                try:
                    batch = self._embed_batch(sequences, idx, wanted, per_residue)
                except Exception as error:
                    if not is_oom(error) or len(idx) <= 1:
                        raise
                    # Out of memory: free what the attempt held, halve the batch and re-plan the
                    # rest with that cap, kept low for the rest of the call (batches are longest-first).
                    del error
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    cap = max(1, len(idx) // 2)
                    rest = np.concatenate([idx, *pending])
                    sub = plan_batches([lengths[i] for i in rest], self.token_budget, cap, self.special_tokens_per_seq)
                    pending = [rest[b] for b in sub]
                    warnings.warn(
                        f"{self.name}: out of memory on a batch of {len(idx)} sequences; retrying with at most {cap}",
                        stacklevel=2,
                    )
                    continue
                bar.update(len(idx))
                yield batch
        finally:
            bar.close()

    def _embed_batch(
        self, sequences: list[str], idx: np.ndarray, layers: list[int], per_residue: bool
    ) -> EmbeddingBatch:
        tokens, mask = self._tokenize([sequences[i] for i in idx])
        expected = np.asarray([len(sequences[i]) for i in idx])
        counts = mask.sum(dim=1).cpu().numpy()
        if not np.array_equal(counts, expected):
            # A tokenizer that merges, drops or adds residues would silently misalign per-residue
            # labels; fail loudly instead.
            raise PlmTransferError(
                f"{self.name}: tokenizer produced {counts.tolist()} residue positions for "
                f"sequences of lengths {expected.tolist()}"
            )
        with torch.inference_mode():
            tokens = tokens.to(self.device, non_blocking=True)
            mask_d = mask.to(self.device, non_blocking=True)
            reps = self._forward(tokens, max(layers), layers)
            out: dict[int, np.ndarray] = {}
            if per_residue:
                for layer in layers:
                    # Boolean indexing walks rows in order, then positions: the residues of the
                    # batch's sequences concatenated in the order of ``idx``.
                    out[layer] = reps[layer][mask_d].float().cpu().numpy()
            else:
                weights = mask_d.unsqueeze(-1).float()
                denom = weights.sum(dim=1).clamp_min(1.0)
                for layer in layers:
                    # Pool in float32 even when the model ran in bf16/fp16: summing hundreds of
                    # half-precision values loses digits.
                    pooled = (reps[layer].float() * weights).sum(dim=1) / denom
                    out[layer] = pooled.cpu().numpy()
        return EmbeddingBatch(indices=idx.copy(), per_layer=out)
