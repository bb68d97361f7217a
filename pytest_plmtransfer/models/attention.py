"""Attention through ``torch.nn.functional.scaled_dot_product_attention`` for fair-esm models.

fair-esm's ``MultiheadAttention`` (every ESM block) materializes the ``(B*H, T, T)`` score and
probability tensors: ESM-2 always (its rotary embeddings rule out torch's fused path), and
ESM-1/ESM-1b too, since ``TransformerLayer`` always asks for the attention weights, only to
discard them. SDPA runs a fused kernel that never writes the full attention matrix.

:func:`install_sdpa` sets a bound ``forward`` on each ``MultiheadAttention`` module *of one
model* (other models and fair-esm itself are untouched; :func:`uninstall_sdpa` removes it). It
handles exactly what embedding needs (self-attention with an optional key padding mask,
``bias_k``/``bias_v`` for ESM-1, rotary embeddings for ESM-2) and falls back to the library's own
forward for anything else (attention weights, ``attn_mask``, incremental decoding, training-mode
dropout). Per-layer equality with the library is tested in ``tests/test_attention.py``.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

#: accepted values of ``--plm-attention``
ATTENTION_CHOICES = ("sdpa", "library")
DEFAULT_ATTENTION = "sdpa"
_MARK = "_plmtransfer_sdpa"


def check_attention(value: str | None) -> str:
    """Normalize an ``--plm-attention`` value (``None`` -> the default)."""
    choice = (value or DEFAULT_ATTENTION).strip().lower()
    if choice not in ATTENTION_CHOICES:
        raise ValueError(f"--plm-attention: unknown value {value!r} (use one of {', '.join(ATTENTION_CHOICES)})")
    return choice


def attention_option(options: Any) -> str:
    """The attention choice carried by a model-options object (``ModelOptions.extra["attention"]``
    or an ``attention`` attribute), validated; the default when absent."""
    extra = getattr(options, "extra", None) or {}
    return check_attention(extra.get("attention") or getattr(options, "attention", None))


def _sdpa_forward(
    self: Any,
    query: torch.Tensor,
    key: torch.Tensor | None,
    value: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None = None,
    incremental_state: Any = None,
    need_weights: bool = True,
    static_kv: bool = False,
    attn_mask: torch.Tensor | None = None,
    before_softmax: bool = False,
    need_head_weights: bool = False,
) -> tuple[torch.Tensor, None]:
    """fair-esm ``MultiheadAttention.forward`` (same signature) for self-attention, through SDPA.
    The attention weights are ``None``: the only caller on this path discards them."""
    import torch
    import torch.nn.functional as F

    if (
        need_head_weights
        or before_softmax
        or incremental_state is not None
        or static_kv
        or attn_mask is not None
        or (self.training and self.dropout > 0)
        or self.add_zero_attn
        # self-attention only: TransformerLayer passes the same tensor as query, key and value
        # (fair-esm leaves the module's ``self_attention`` flag False, so it is not checked)
        or key is not query
        or value is not query
    ):
        return type(self).forward(
            self, query, key, value, key_padding_mask, incremental_state, need_weights,
            static_kv, attn_mask, before_softmax, need_head_weights,
        )  # fmt: skip
    tgt_len, bsz, embed_dim = query.shape
    heads, head_dim = self.num_heads, self.head_dim
    if query.device.type == "cpu":
        # One GEMM for q, k and v on CPU (the library runs three; small GEMMs lose the most to
        # per-call overhead there): the concatenated weight is built once per module and rebuilt
        # if any projection's parameters changed. Not on GPUs, where the GEMMs are large enough
        # and the copy would cost a quarter of each block's weights in device memory.
        q, k, v = _qkv(self, query).chunk(3, dim=-1)
    else:
        q, k, v = self.q_proj(query), self.k_proj(query), self.v_proj(query)
    if self.bias_k is not None:  # ESM-1: one learned key/value appended to every sequence
        k = torch.cat([k, self.bias_k.expand(1, bsz, embed_dim)])
        v = torch.cat([v, self.bias_v.expand(1, bsz, embed_dim)])
        if key_padding_mask is not None:
            key_padding_mask = torch.cat([key_padding_mask, key_padding_mask.new_zeros(bsz, 1)], dim=1)
    src_len = k.shape[0]

    # (T, B, H*hd) -> (B, H, T, hd)
    def heads_first(x: torch.Tensor, length: int) -> torch.Tensor:
        return x.reshape(length, bsz, heads, head_dim).permute(1, 2, 0, 3)

    q, k, v = heads_first(q, tgt_len), heads_first(k, src_len), heads_first(v, src_len)
    if self.rot_emb is not None:
        # fair-esm's RotaryEmbedding reads the sequence length from dim -2 and broadcasts its
        # (1, T, hd) tables over the leading dims, so (B, H, T, hd) works as its (B*H, T, hd).
        # The library scales q before the rotation; rotation is linear, so scaling inside SDPA
        # is the same up to rounding.
        q, k = self.rot_emb(q, k)
    mask = None
    if key_padding_mask is not None and key_padding_mask.dim() != 0:
        # library: True = padding (masked out); SDPA boolean masks: True = may attend
        mask = ~key_padding_mask.to(torch.bool)[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)
    out = out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim)
    return self.out_proj(out), None


def _qkv(module: Any, x: torch.Tensor) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    params = (
        module.q_proj.weight, module.k_proj.weight, module.v_proj.weight,
        module.q_proj.bias, module.k_proj.bias, module.v_proj.bias,
    )  # fmt: skip
    key = tuple((id(p), p._version, p.device, p.dtype) for p in params)
    cached = getattr(module, "_plmtransfer_qkv", None)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            weight = torch.cat(params[:3])
            bias = torch.cat(params[3:])
        cached = (key, weight, bias)
        module._plmtransfer_qkv = cached
    return F.linear(x, cached[1], cached[2])


def install_sdpa(model: nn.Module) -> int:
    """Route every fair-esm ``MultiheadAttention`` of ``model`` through SDPA; returns how many
    modules were changed. Idempotent; affects only this model's modules."""
    from esm.multihead_attention import MultiheadAttention

    count = 0
    for module in model.modules():
        if isinstance(module, MultiheadAttention):
            if not getattr(module, _MARK, False):
                module.forward = types.MethodType(_sdpa_forward, module)
                setattr(module, _MARK, True)
            count += 1
    return count


def uninstall_sdpa(model: nn.Module) -> None:
    """Restore the library's own attention on every module :func:`install_sdpa` changed."""
    for module in model.modules():
        if getattr(module, _MARK, False):
            del module.forward
            setattr(module, _MARK, False)
            if hasattr(module, "_plmtransfer_qkv"):
                del module._plmtransfer_qkv
