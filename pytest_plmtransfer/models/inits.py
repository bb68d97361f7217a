"""The two weight ablations every torch model supports: ``random`` and ``stat``.

``random`` — the architecture freshly built by its library's own constructors, i.e. with the
library's own initializers, under a seeded RNG (:func:`seeded_construction`). Nothing is taken
from a checkpoint: token embeddings, positional embeddings, LayerNorms, biases — everything is
re-initialized. (The authors' code for Li et al., ICML 2024 — the paper the
README's "What it measures" names — re-initialized only some modules.)

``stat`` — "weight statistics transfer": every parameter tensor of the *pretrained* model has its
elements permuted within that tensor (:func:`apply_stat_init`). Each tensor keeps its exact
multiset of values (hence mean, variance, histogram), but all learned structure — which value
sits where — is destroyed.

Both are pure functions of (weights, init, seed): the same inputs give bit-identical weights, so
the same embeddings. Neither disturbs the caller's global RNG state.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import torch

STAT_METHOD = "permute-within-tensor"


@contextlib.contextmanager
def seeded_construction(seed: int | None) -> Iterator[None]:
    """Run the body (building a model) with the CPU default generator seeded by ``seed``.

    ``torch.random.fork_rng`` saves the global CPU RNG state and restores it on exit, so the
    caller's random stream is not disturbed. Only the CPU generator is seeded (not
    ``torch.manual_seed``, which would also reseed every CUDA device): models must be
    *constructed on CPU* so the initial values do not depend on the device, and moved after.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0 if seed is None else int(seed))
        yield


def build_seeded(factory: Any, seed: int | None) -> torch.nn.Module:
    """``factory()`` (a zero-argument callable building the architecture) under :func:`seeded_construction`."""
    with seeded_construction(seed):
        return factory()


def _tensor_seed(seed: int, name: str) -> int:
    """A per-tensor seed derived from (seed, parameter name).

    Deriving it from the name (not from the order tensors are visited) makes each tensor's
    permutation independent of which other tensors the model has, e.g. whether a checkpoint
    carries the unused contact-regression head.
    """
    digest = hashlib.sha256(f"plmtransfer-stat:{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def apply_stat_init(model: torch.nn.Module, seed: int | None) -> dict[str, Any]:
    """Permute the elements of every parameter tensor of ``model`` in place; return a summary.

    * Every parameter is permuted — **no tensor is excluded**. Structural zeros included: the
      padding rows of ESM's token/position embeddings end up holding permuted values. That is
      harmless because padding never reaches a real residue's representation (ESM zeroes padded
      embeddings or masks padded keys in attention; CARP masks padded positions before every
      convolution), which the test suite checks through batching invariance.
    * Tied parameters (ESM-2/ESM-1b's LM head shares the token embedding) are one tensor in
      ``named_parameters()`` and are permuted once, so they stay tied.
    * Tensors whose permutation cannot change anything (a single element, or all elements
      equal) are listed under ``"unchanged"`` with the reason.
    * **Buffers are not parameters and are left as they are**: in these models they are
      deterministic functions of the architecture, not learned values (ESM-2's rotary
      ``inv_freq``, ESM-1's sinusoidal position table); they are listed under ``"buffers_kept"``.

    Each tensor gets its own ``torch.Generator`` seeded from (seed, parameter name), on CPU, so
    the result is independent of the device and of the global RNG, which is not touched.
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


__all__ = ["STAT_METHOD", "apply_stat_init", "build_seeded", "seeded_construction", "stat_summary"]
