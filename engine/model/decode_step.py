"""One decoding step of one sequence on the CPU, through the compiled kernels of :mod:`.decode_kernels`.

Generation at batch 1 spends its time in the steps after the prompt: one new token through every layer. The
general :meth:`Transformer.forward` serves training, prefill, batches, masks and attention maps in ~50 PyTorch
calls a layer, 5-10 µs each on a small CPU; :class:`DecodeStep` runs the step as 8 compiled calls a layer, on
a model :func:`engine.model.decode_layout.prepare_for_decoding` laid out. It reads and writes the caches the
general forward pass fills (a :class:`KVCache`), so the model prefills
a prompt and the step continues it. ``generate_ids`` with one prompt (``llmodel generate``) decodes this way
(benchmarks/RESULTS.md, "Generation"); the model server keeps the forward pass for every step, so a request's
greedy output does not depend on whether it shared its steps.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from engine.errors import LLModelError
from engine.model.transformer import Transformer

# One layer's cache for one sequence: keys and values, (H_kv, max_len, head_dim) each.
LayerArrays = tuple[np.ndarray, np.ndarray]


def supports_decode_step(model: Transformer) -> bool:
    """True for an eval-mode float32 CPU model in the decode layout whose blocks the step implements.

    The step covers pre-norm blocks with rotary positions (every preset); other position types, post-norm
    blocks, other dtypes, models not re-laid for decoding, and machines where the kernels cannot run in
    parallel safely take the general forward pass.
    """
    config = model.config
    head = model.lm_head.weight
    return (
        not model.training
        and head.device.type == "cpu"
        and head.dtype == torch.float32
        and config.norm_first
        and config.pos_type == "rope"
        and head.stride(1) != 1
        and all(_laid_out(layer) for layer in model.model.layers)
        and kernels_available()
    )


@functools.cache
def kernels_available() -> bool:
    """Whether the compiled kernels run here: numba imports and has a thread-safe parallel layer (OpenMP or TBB)."""
    try:
        from engine.model import decode_kernels

        decode_kernels.check()
    except Exception as err:  # no OpenMP runtime, a broken numba install: generation still works, slower
        warnings.warn(
            f"CPU decoding kernels unavailable ({err}); generation uses the model's forward pass",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


def _laid_out(layer: torch.nn.Module) -> bool:
    attn, mlp = layer.self_attn, layer.mlp
    fused = [(attn.qkv_t, attn.q_proj)] + ([(mlp.gate_up_t, mlp.gate_proj)] if mlp.swiglu else [])
    return all(t is not None and first.weight.data_ptr() == t.data_ptr() for t, first in fused) and all(
        linear.weight.stride(1) != 1 for linear in (attn.o_proj, mlp.up_proj, mlp.down_proj)
    )


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A NumPy view (no copy) of a CPU tensor's data."""
    return tensor.detach().numpy()


def sequence_arrays(keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], row: int) -> list[LayerArrays]:
    """NumPy views of sequence ``row`` of per-layer (rows, H_kv, max_len, head_dim) key and value caches."""
    return [(_array(k)[row], _array(v)[row]) for k, v in zip(keys, values, strict=True)]


def _norm_arrays(module: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    weight = _array(module.weight)
    bias = getattr(module, "bias", None)
    return weight, (_array(bias) if bias is not None else np.zeros_like(weight))


class DecodeStep:
    """Runs one token of one sequence through a decode-layout model, writing its keys/values at ``position``."""

    def __init__(self, model: Transformer) -> None:
        if not supports_decode_step(model):
            raise LLModelError(
                "the decoding step needs an eval-mode float32 CPU model with pre-norm rotary blocks in the "
                "decode layout; use the model's forward pass"
            )
        import numba  # loads in ~0.5 s: only generation on the CPU needs it

        from engine.model import decode_kernels

        self._kernels, self._numba = decode_kernels, numba
        config = model.config
        self.eps, self.max_len = config.rms_norm_eps, config.max_len
        self.layernorm = config.norm_type == "layernorm"
        self.swiglu = config.ffn_type == "swiglu"
        self.embed = _array(model.model.embed_tokens.weight)
        self.cos, self.sin = _array(model.rope.cos), _array(model.rope.signed_sin)
        self.layers = []
        for layer in model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            up_t = mlp.gate_up_t if self.swiglu else mlp.up_proj.weight.t()
            self.layers.append(
                (
                    *_norm_arrays(layer.input_layernorm),
                    _array(attn.qkv_t),
                    _array(attn.o_proj.weight.t()),
                    *_norm_arrays(layer.post_attention_layernorm),
                    _array(up_t),
                    _array(mlp.down_proj.weight.t()),
                )
            )
        self.final_norm = _norm_arrays(model.model.norm)
        self.head = _array(model.lm_head.weight.t())
        self.threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
        first = self.layers[0]
        widest = max(self.head.shape[1], *(w.shape[1] for layer in self.layers for w in layer if w.ndim == 2))

        def buffer(*shape: int) -> np.ndarray:
            return np.zeros(shape, dtype=np.float32)

        self.scratch = (
            buffer(config.d_model),  # normed residual row
            buffer(first[2].shape[1]),  # q | k | v
            buffer(config.n_heads * config.head_dim),  # attention output
            buffer(self.max_len),  # attention scores
            buffer(first[6].shape[1]),  # gate | up, or up
            buffer(config.d_ff),  # activation
            buffer(config.d_model),  # a projection back onto the residual
            buffer(self.threads, widest),  # per-thread partial products
        )

    def __call__(self, token: int, position: int, caches: Sequence[LayerArrays]) -> torch.Tensor:
        """Logits (vocab,) for ``token`` at ``position``; its keys/values go to ``position`` of ``caches``.

        ``caches``: per layer, the sequence's (H_kv, max_len, head_dim) keys and values (see
        :func:`sequence_arrays`), filled for positions before ``position``. The caller advances its lengths.
        """
        if not 0 <= position < min(caches[0][0].shape[1], self.max_len):
            raise LLModelError(f"KV cache overflow: no room at position {position}; allocate a larger cache")
        kernels = self._kernels
        self._numba.set_num_threads(self.threads)
        normed, qkv, attended, scores, up, hidden, residual, parts = self.scratch
        x = np.array(self.embed[token], dtype=np.float32)
        residual[:] = 0.0
        cos, sin, eps, layernorm = self.cos[position], self.sin[position], self.eps, self.layernorm
        for weights, (k_cache, v_cache) in zip(self.layers, caches, strict=True):
            norm1_w, norm1_b, qkv_t, o_t, norm2_w, norm2_b, up_t, down_t = weights
            kernels.add_and_norm(x, residual, norm1_w, norm1_b, eps, layernorm, normed)
            kernels.matvec(normed, qkv_t, parts, qkv)
            kernels.attention(qkv, k_cache, v_cache, position, cos, sin, scores, attended)
            kernels.matvec(attended, o_t, parts, residual)
            kernels.add_and_norm(x, residual, norm2_w, norm2_b, eps, layernorm, normed)
            kernels.matvec(normed, up_t, parts, up)
            kernels.activate(up, hidden, self.swiglu)
            kernels.matvec(hidden, down_t, parts, residual)
        kernels.add_and_norm(x, residual, *self.final_norm, eps, layernorm, normed)
        logits = np.empty(self.head.shape[1], dtype=np.float32)
        kernels.matvec(normed, self.head, parts, logits)
        return torch.from_numpy(logits)
