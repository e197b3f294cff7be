"""Weights laid out for decoding on CPU: each projection stored transposed, q|k|v and gate|up side by side.

A decoding step multiplies a few rows by every weight, and BLAS streams an (in, out) weight far faster than
the (out, in) one ``nn.Linear`` keeps (benchmarks/RESULTS.md, "Generation"). :func:`prepare_for_decoding`
takes a plain :class:`Transformer` and re-lays it in place for inference: each projection's weight moves into
transposed storage, and the attention, feed-forward and linear modules become their decode-layout subclasses
below, which take the few-row path (:func:`few_row_product`) for products of a few rows without autograd and the
plain path otherwise. Parameters keep their names, shapes and values (they become views of the new storage), so
checkpoints, ``load_state_dict``, the state dict and training are unchanged.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.layers import Attention, FeedForward
from engine.model.transformer import Transformer

# Products with at most this many rows (decoding steps) take the few-row path.
FEW_ROWS = 16


def few_row_product(x: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
    """``x (..., in) @ weight_t (in, out)`` for a few rows, with the input dimension split over the CPU threads.

    BLAS runs a one-row product on one core, and reads an (out, in) weight far slower than an (in, out) one.
    One ``bmm`` over per-thread blocks of input rows of the (in, out) layout, each a contiguous stretch of
    memory, then a sum of the partial products, streams the weight at close to the memory bandwidth.
    """
    rows, (n_in, n_out) = x.numel() // x.shape[-1], weight_t.shape
    blocks = math.gcd(n_in, torch.get_num_threads())
    if blocks == 1:
        out = x.reshape(rows, n_in) @ weight_t
    else:
        parts = x.reshape(rows, blocks, n_in // blocks).transpose(0, 1)
        out = torch.bmm(parts, weight_t.view(blocks, n_in // blocks, n_out)).sum(0)
    return out.view(*x.shape[:-1], n_out)


_plain = threading.local()


@contextmanager
def plain_products() -> Iterator[None]:
    """Within the block, every projection on this thread runs its module's own forward (no fused q|k|v or
    gate|up product that would go around it): what per-row adapters wrapped around a projection need."""
    previous = getattr(_plain, "on", False)
    _plain.on = True
    try:
        yield
    finally:
        _plain.on = previous


def _few_rows(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True for a CPU product of a few rows, without autograd, on a weight stored transposed."""
    return (
        not getattr(_plain, "on", False)
        and weight.stride(1) != 1
        and x.device.type == "cpu"
        and x.numel() <= FEW_ROWS * x.shape[-1]
        and not torch.is_grad_enabled()
    )


def _fused(x: torch.Tensor, storage: torch.Tensor, first: nn.Linear) -> torch.Tensor | None:
    """``x`` times several projections at once through their shared transposed ``storage``, while it is current.

    It is current while ``first``'s weight still views it (moving or reloading the model makes new tensors).
    """
    if first.weight.data_ptr() != storage.data_ptr() or not _few_rows(x, first.weight):
        return None
    return few_row_product(x, storage)


class DecodeLinear(nn.Linear):
    """``nn.Linear`` whose weight is stored transposed: few-row products take :func:`few_row_product`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None and _few_rows(x, self.weight):
            return few_row_product(x, self.weight.t())
        return F.linear(x, self.weight, self.bias)


class DecodeAttention(Attention):
    """Attention whose q|k|v weights share one transposed tensor: one product for all three when decoding."""

    qkv_t: torch.Tensor

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        qkv = _fused(x, self.qkv_t, self.q_proj)
        if qkv is None:
            return super().project(x)
        B, T, _ = x.shape
        heads = qkv.view(B, T, self.n_heads + 2 * self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k, v = heads.split([self.n_heads, self.n_kv_heads, self.n_kv_heads], dim=1)
        return q, k, v


class DecodeFeedForward(FeedForward):
    """A feed-forward block whose gate|up weights share one transposed tensor (SwiGLU)."""

    gate_up_t: torch.Tensor | None

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up_t is not None:
            gate_up = _fused(x, self.gate_up_t, self.gate_proj)
            if gate_up is not None:
                gate, up = gate_up.chunk(2, dim=-1)
                return F.silu(gate) * up
        return super().hidden(x)


@torch.no_grad()
def prepare_for_decoding(model: Transformer) -> Transformer:
    """Re-lay ``model``'s projection weights for fast few-row products (for inference; returns the model)."""
    for layer in model.model.blocks:
        layer.self_attn.__class__ = (
            DecodeAttention  # same module, same parameters: only the forward path changes
        )
        layer.mlp.__class__ = DecodeFeedForward
        attn, mlp = cast(DecodeAttention, layer.self_attn), cast(DecodeFeedForward, layer.mlp)
        attn.qkv_t = _store_transposed([attn.q_proj, attn.k_proj, attn.v_proj])
        _store_transposed([attn.o_proj])
        mlp.gate_up_t = _store_transposed([mlp.gate_proj, mlp.up_proj]) if mlp.swiglu else None
        if not mlp.swiglu:
            _store_transposed([mlp.up_proj])
        _store_transposed([mlp.down_proj])
    _store_transposed([model.lm_head])  # with tied embeddings, the embedding shares this storage
    return model


def is_laid_out(model: Transformer) -> bool:
    """True while ``model`` is in the decode layout and its fused storage is current (not moved or reloaded)."""
    if model.lm_head.weight.stride(1) == 1:
        return False
    for layer in model.model.blocks:
        attn, mlp = layer.self_attn, layer.mlp
        if not isinstance(attn, DecodeAttention) or not isinstance(mlp, DecodeFeedForward):
            return False
        fused = [(attn.qkv_t, attn.q_proj)] + ([(mlp.gate_up_t, mlp.gate_proj)] if mlp.swiglu else [])
        if any(t is None or first.weight.data_ptr() != t.data_ptr() for t, first in fused):
            return False
        if any(linear.weight.stride(1) == 1 for linear in (attn.o_proj, mlp.up_proj, mlp.down_proj)):
            return False
    return True


def _store_transposed(linears: list[nn.Linear]) -> torch.Tensor:
    """Move the weights of ``linears`` (same input size) into one (in, sum of outs) tensor; return it."""
    storage = torch.cat([linear.weight.t() for linear in linears], dim=1).contiguous()
    start = 0
    for linear in linears:
        linear.__class__ = DecodeLinear
        linear.weight.data = storage[:, start : start + linear.out_features].t()
        start += linear.out_features
    return storage
