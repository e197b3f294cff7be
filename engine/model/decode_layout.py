"""Weights laid out for decoding on CPU: each projection stored transposed, q|k|v and gate|up side by side.

A decoding step multiplies a few rows by every weight, and BLAS streams an (in, out) weight far faster than
the (out, in) one ``nn.Linear`` keeps (benchmarks/RESULTS.md, "Generation"). :func:`prepare_for_decoding`
re-lays a loaded model in place: the parameters keep their names, shapes and values (they become views of the
new storage), so checkpoints, ``load_state_dict`` and the state dict are unchanged; only products of a few rows
without autograd take the new path (:func:`engine.model.layers.few_row_product`).
"""

from __future__ import annotations

import torch

from engine.model.layers import Linear
from engine.model.transformer import Transformer


@torch.no_grad()
def prepare_for_decoding(model: Transformer) -> Transformer:
    """Re-lay ``model``'s projection weights for fast few-row products (for inference; returns the model)."""
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        attn.qkv_t = _store_transposed([attn.q_proj, attn.k_proj, attn.v_proj])
        _store_transposed([attn.o_proj])
        if mlp.swiglu:
            mlp.gate_up_t = _store_transposed([mlp.gate_proj, mlp.up_proj])
        else:
            _store_transposed([mlp.up_proj])
        _store_transposed([mlp.down_proj])
    _store_transposed([model.lm_head])  # with tied embeddings, the embedding shares this storage
    return model


def _store_transposed(linears: list[Linear]) -> torch.Tensor:
    """Move the weights of ``linears`` (same input size) into one (in, sum of outs) tensor; return it."""
    storage = torch.cat([linear.weight.t() for linear in linears], dim=1).contiguous()
    start = 0
    for linear in linears:
        linear.weight.data = storage[:, start : start + linear.out_features].t()
        start += linear.out_features
    return storage
