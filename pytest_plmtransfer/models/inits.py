"""The two weight ablations every torch model supports: ``random`` and ``stat``, per protocol.

Under the ``plmtransfer`` protocol (:mod:`pytest_plmtransfer.measure.protocol`):

``random`` — the architecture freshly built by its library's own constructors under a seeded
RNG (:func:`seeded_construction`): nothing is taken from a checkpoint (the authors' code for Li
et al., ICML 2024, re-initialized only some modules).

``stat`` — "weight statistics transfer": every parameter tensor of the *pretrained* model has its
elements permuted within that tensor (:func:`apply_stat_init`): each keeps its exact multiset of
values (mean, variance, histogram), but which value sits where is destroyed.

Under the ``authors`` protocol both start from the *pretrained* model and follow the authors'
``reset_resample_param`` (microsoft/protein-transfer 8aed4087,
scr/encoding/encoding_classes.py:85-265) rule by rule (:func:`authors_ablation`);
docs/protocols.md lists what each rule keeps per family.

All are pure functions of (weights, init, seed, protocol): the same inputs give bit-identical
weights, so the same embeddings. None disturbs the caller's global RNG state.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

STAT_METHOD = "permute-within-tensor"


@contextlib.contextmanager
def seeded_construction(seed: int | None) -> Iterator[None]:
    """Run the body (building a model) with the CPU default generator seeded by ``seed``; the
    caller's RNG state is restored on exit (``fork_rng``). Only the CPU generator is seeded (not
    ``torch.manual_seed``, which reseeds every CUDA device): models are *constructed on CPU* so
    the initial values do not depend on the device, and moved after."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0 if seed is None else int(seed))
        yield


def build_seeded(factory: Any, seed: int | None) -> torch.nn.Module:
    """``factory()`` (a zero-argument callable building the architecture) under :func:`seeded_construction`."""
    with seeded_construction(seed):
        return factory()


def _tensor_seed(seed: int, name: str) -> int:
    """A per-tensor seed from (seed, parameter name), not from the order tensors are visited: each
    permutation is independent of which other tensors the model has (e.g. a contact-regression head)."""
    digest = hashlib.sha256(f"plmtransfer-stat:{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def apply_stat_init(model: torch.nn.Module, seed: int | None) -> dict[str, Any]:
    """Permute the elements of every parameter tensor of ``model`` in place; return a summary.

    * **No tensor is excluded**, structural zeros included: the padding rows of ESM's
      embeddings end up holding permuted values, harmless because padding never reaches a real
      residue's representation (masked in attention / before every CARP convolution), which the
      test suite checks through batching invariance.
    * Tied parameters (ESM-2/ESM-1b's LM head shares the token embedding) are one tensor in
      ``named_parameters()``, permuted once, so they stay tied.
    * Tensors a permutation cannot change (one element, or all equal) are listed under
      ``"unchanged"`` with the reason.
    * **Buffers are left as they are** (``"buffers_kept"``): in these models they are functions
      of the architecture, not learned (ESM-2's rotary ``inv_freq``, ESM-1's sinusoidal table).

    Each tensor gets its own CPU ``torch.Generator`` seeded by :func:`_tensor_seed`: the result is
    independent of the device, and the global RNG is not touched.
    """
    seed = 0 if seed is None else int(seed)
    permuted: list[str] = []
    unchanged: dict[str, str] = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            n = param.numel()
            if n <= 1:
                unchanged[name] = "a single element: every permutation is the identity"
                continue
            flat = param.detach().reshape(-1)
            if bool((flat == flat[0]).all()):
                unchanged[name] = "all elements equal: every permutation gives the same tensor"
                continue
            gen = torch.Generator(device="cpu").manual_seed(_tensor_seed(seed, name))
            perm = torch.randperm(n, generator=gen).to(param.device)
            param.copy_(flat[perm].view_as(param))
            permuted.append(name)
    buffers = [name for name, _ in model.named_buffers()]
    return {
        "method": STAT_METHOD,
        "seed": seed,
        "permuted": permuted,
        "excluded": {},
        "unchanged": unchanged,
        "buffers_kept": buffers,
    }


def stat_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The compact part of :func:`apply_stat_init`'s report that belongs in an adapter identity."""
    return {
        "method": report["method"],
        "permuted_tensors": len(report["permuted"]),
        "excluded": report["excluded"],
        "unchanged": sorted(report["unchanged"]),
        "buffers_kept": sorted(report["buffers_kept"]),
    }


# The authors' protocol. Families: "esm1" and "esm1b" are the models the authors ran through their ESM branch, "carp"
# through their CARP branch. "esm2" is fair-esm's ESM-2 through their ESM branch as it would run
# for a name outside ESM-1b (its rules are name-based). "generic" (AntiBERTy, any Hugging Face or
# user torch model) is this package's generalization; see docs/protocols.md.
AUTHORS_FAMILIES = ("esm1", "esm1b", "esm2", "carp", "generic")
_KAIMING_A = math.sqrt(5)  # torch's own default for nn.Linear / nn.Conv*, which the authors copied


def esm_family(family: str) -> str:
    """``ESM-1`` / ``ESM-1b`` / ``ESM-2`` (models/esm.py's EsmConfig.family) -> the rule family."""
    return family.lower().replace("-", "")


def _bias_bound(weight: torch.Tensor) -> float:
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    return 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _fingerprints(model: nn.Module) -> dict[str, bytes]:
    """A digest of every parameter's bytes: which tensors an ablation really changed (tied
    tensors included), without holding a second copy of the weights."""
    return {
        name: hashlib.blake2b(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).digest()
        for name, p in model.named_parameters(remove_duplicate=False)
    }


def _reset_esm(model: nn.Module, family: str) -> None:
    """encoding_classes.py:150-199, in state_dict order (the order fixes the random stream)."""
    state = model.state_dict()
    for name, p in state.items():
        if "_proj" in name:  # 151-163: attention projections
            if "weight" in name:
                nn.init.xavier_uniform_(p, gain=1.0 if "out" in name else 1 / math.sqrt(2))
            elif "bias" in name:
                if "out" in name:
                    nn.init.constant_(p, 0.0)
                else:
                    bound = _bias_bound(state[name.replace("bias", "weight")])
                    nn.init.uniform_(p, -bound, bound)
        # 165-169 build new LayerNorm Parameters and drop them: LayerNorms keep their values
        # 171: ``("layers" and "fc" in name)`` is ``"fc" in name``; ESM-1b's "dense" tensors get the
        # same rule (in 180-196); no fair-esm name matches both, so each tensor is still drawn once
        if "fc" in name or "contact_head" in name or (family == "esm1b" and "dense" in name):
            if "weight" in name:
                nn.init.kaiming_uniform_(p, a=_KAIMING_A)
            elif "bias" in name:
                bound = _bias_bound(state[name.replace("bias", "weight")])
                nn.init.uniform_(p, -bound, bound)
        if family == "esm1b":  # 180-196
            if "embed_positions" in name:
                nn.init.normal_(p)
            if name == "lm_head.weight":
                # the LM head's weight IS embed_tokens.weight (tied): the token embedding changes too
                nn.init.xavier_uniform_(p)
            # 188: the condition is always true, and its body builds and drops a Parameter
        # 198: ``"esm1_" and "bias_" in <model name>`` is never true: ESM-1's bias_k / bias_v stay


def _reset_carp(model: nn.Module) -> None:
    """encoding_classes.py:201-222: inside the blocks, convolutions re-drawn, LayerNorms set to
    1 and 0; the embedder, up-projection, decoder and final LayerNorm keep their values."""
    state = model.state_dict()
    for name, p in state.items():
        if "layers" not in name:
            continue
        if "conv" in name:
            if "weight" in name:
                nn.init.kaiming_uniform_(p, a=_KAIMING_A)
            elif "bias" in name:
                bound = _bias_bound(state[name.replace("bias", "weight")])
                if bound:
                    nn.init.uniform_(p, -bound, bound)
        elif "weight" in name:
            nn.init.ones_(p)
        elif "bias" in name:
            nn.init.zeros_(p)


def _token_embeddings(model: nn.Module) -> set[int]:
    """ids of the token-embedding weight(s) a generic model keeps (and any tensor tied to them)."""
    getter = getattr(model, "get_input_embeddings", None)
    found = getter() if callable(getter) else None
    if not isinstance(found, nn.Embedding):
        found = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    return set() if found is None else {id(found.weight)}


def _reset_generic(model: nn.Module) -> None:
    """Every Linear / Conv module re-drawn by torch's own ``reset_parameters`` (Kaiming-uniform
    weights, uniform biases: the initializers the authors used for ESM's fc and CARP's convs);
    Embedding and LayerNorm modules, and a Linear tied to the token embedding, keep their values."""
    tokens = _token_embeddings(model)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) and id(module.weight) not in tokens:
            module.reset_parameters()


def _resample(model: nn.Module, family: str) -> None:
    """encoding_classes.py:224-251: each selected state_dict tensor's elements permuted by
    ``torch.randperm`` in state_dict order, then the whole state loaded back.

    ESM (232-240): every tensor but those named embed_tokens / embed_out (ESM-1's output
    projection and its bias) and the _float_tensor buffer. Loading writes tied tensors in module
    order, so ESM-1b's (and ESM-2's) LM-head copy, permuted, lands in the token embedding. Buffers
    that are not weights (ESM-2's rotary ``inv_freq``) are kept: the one buffer the authors' models
    had is excluded by name. CARP (242-249): only tensors inside the blocks (``layers``).
    Generic: every parameter except the token embedding.
    """
    state = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    tokens = _token_embeddings(model)
    params = dict(model.named_parameters(remove_duplicate=False))
    new = dict(state)
    for name, p in state.items():
        if family == "carp":
            chosen = "layers" in name
        elif family == "generic":
            chosen = name in params and id(params[name]) not in tokens
        else:
            chosen = name not in buffers and "embed_tokens" not in name and "embed_out" not in name
        if chosen:
            flat = p.reshape(-1)
            new[name] = flat[torch.randperm(flat.shape[0])].view(p.shape)
    model.load_state_dict(new)


def authors_ablation(model: nn.Module, init: str, seed: int | None, family: str) -> dict[str, Any]:
    """``random`` (reset_param) or ``stat`` (resample_param) applied in place to a pretrained
    ``model`` on CPU, the authors' way for ``family`` (:data:`AUTHORS_FAMILIES`); returns what
    changed and what kept its pretrained values (for the adapter identity and the docs).

    Seeded as their ``seed_all(seed)`` seeds (encoding_classes.py:35-43, 97): the global CPU
    generator, here inside :func:`seeded_construction` so the caller's stream is untouched.
    """
    if family not in AUTHORS_FAMILIES:
        raise ValueError(f"unknown model family {family!r} for the authors' ablations (known: {AUTHORS_FAMILIES})")
    before = _fingerprints(model)
    with torch.no_grad(), seeded_construction(seed):
        if init == "random":
            if family in ("esm1", "esm1b", "esm2"):
                _reset_esm(model, family)
            elif family == "carp":
                _reset_carp(model)
            else:
                _reset_generic(model)
        elif init == "stat":
            _resample(model, family)
        else:
            raise ValueError(f"the authors' ablations are random and stat, not {init!r}")
    after = _fingerprints(model)
    kept = sorted(name for name, digest in after.items() if before[name] == digest)
    return {
        "rule": f"authors-{'reset' if init == 'random' else 'resample'}-{family}",
        "seed": 0 if seed is None else int(seed),
        "changed_tensors": len(after) - len(kept),
        "kept": kept,
    }


def ablate(model: nn.Module, init: str, seed: int | None, protocol: Any, family: str) -> dict[str, Any]:
    """Make ``init`` from a loaded pretrained ``model`` in place under ``protocol``; returns the
    facts for the adapter identity (``{}`` for pretrained). Under ``plmtransfer`` only ``stat``
    starts from a pretrained model (its ``random`` is built by the constructor)."""
    if init == "pretrained":
        return {}
    if protocol.ablation == "authors":
        return {"protocol": protocol.name, "ablation": authors_ablation(model, init, seed, family)}
    if init != "stat":
        raise ValueError(f"under the {protocol.name} protocol {init!r} is not made from pretrained weights")
    return {"protocol": protocol.name, "stat": stat_summary(apply_stat_init(model, seed))}
