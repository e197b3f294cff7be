"""One decoding step of a few sequences on the CPU, through the compiled kernels of :mod:`.decode_kernels`.

Generation spends its time in the steps after the prompt: one new token of each sequence through every layer.
The general :meth:`Transformer.forward` serves training, prefill, batches, masks and attention maps in ~50
PyTorch calls a layer, 5-10 µs each on a small CPU; :class:`DecodeStep` runs the step as 8 compiled calls a
layer, on a model :func:`engine.model.decode_layout.prepare_for_decoding` laid out. It reads and writes the
caches the general forward pass fills (a :class:`KVCache`, the model server's slot cache), so the model
prefills a prompt and the step continues it: ``generate_ids`` with one prompt (``llmodel generate``) and the
model server's decode steps run this way on CPU (benchmarks/RESULTS.md, "Generation" and "Serving").
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch

from engine.errors import LLModelError
from engine.model.decode_layout import DecodeAttention, DecodeFeedForward, is_laid_out
from engine.model.layers import RMSNorm
from engine.model.transformer import Transformer

# One layer's cache: keys and values, (sequences, H_kv, max_len, head_dim) each.
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
        and is_laid_out(model)
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


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A NumPy view (no copy) of a CPU tensor's data."""
    return tensor.detach().numpy()


def cache_arrays(keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> list[LayerArrays]:
    """NumPy views (no copy) of per-layer (sequences, H_kv, max_len, head_dim) key and value caches."""
    return [(_array(k), _array(v)) for k, v in zip(keys, values, strict=True)]


def _norm_arrays(norm: RMSNorm | torch.nn.LayerNorm) -> tuple[np.ndarray, np.ndarray]:
    weight = _array(norm.weight)
    bias = getattr(norm, "bias", None)
    return weight, (_array(bias) if bias is not None else np.zeros_like(weight))


class DecodeStep:
    """Runs one token for each of up to ``max_rows`` sequences through a decode-layout model.

    Each sequence has its own cache row (slot) and position; a sequence's logits are the same bit for bit whatever
    else shares the step (:func:`engine.model.decode_kernels.matmul`).
    """

    def __init__(self, model: Transformer, max_rows: int = 1) -> None:
        if not supports_decode_step(model) or model.rope is None:
            raise LLModelError(
                "the decoding step needs an eval-mode float32 CPU model with pre-norm rotary blocks in the "
                "decode layout; use the model's forward pass"
            )
        import numba  # loads in ~0.5 s: only generation on the CPU needs it

        from engine.model import decode_kernels

        self._kernels, self._numba = decode_kernels, numba
        config = model.config
        self.eps, self.max_len, self.max_rows = config.rms_norm_eps, config.max_len, max_rows
        self.layernorm = config.norm_type == "layernorm"
        self.swiglu = config.ffn_type == "swiglu"
        self.embed = _array(model.model.embed_tokens.weight)
        self.cos, self.sin = _array(model.rope.cos), _array(model.rope.signed_sin)
        self.layers = []
        for layer in model.model.blocks:
            # supports_decode_step checked that every block is in the decode layout.
            attn, mlp = cast(DecodeAttention, layer.self_attn), cast(DecodeFeedForward, layer.mlp)
            up_t = mlp.gate_up_t if mlp.gate_up_t is not None else mlp.up_proj.weight.t()
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

        def rows(width: int) -> np.ndarray:
            return np.zeros((max_rows, width), dtype=np.float32)

        self.scratch = (
            rows(config.d_model),  # normed residual rows
            rows(first[2].shape[1]),  # q | k | v
            rows(config.n_heads * config.head_dim),  # attention output
            rows(first[6].shape[1]),  # gate | up, or up
            rows(config.d_ff),  # activation
            rows(config.d_model),  # a projection back onto the residual
        )
        self.scores = np.zeros(self.max_len, dtype=np.float32)
        self.parts = np.zeros(
            (self.threads, max_rows, widest), dtype=np.float32
        )  # per-thread partial products

    def __call__(
        self,
        tokens: Sequence[int],
        positions: Sequence[int],
        caches: Sequence[LayerArrays],
        slots: Sequence[int],
    ) -> torch.Tensor:
        """Logits (B, vocab) for ``tokens[b]`` at ``positions[b]`` of cache row ``slots[b]``.

        ``caches``: per layer, the (sequences, H_kv, max_len, head_dim) keys and values (:func:`cache_arrays`),
        filled before each row's position; the step writes each row's new keys and values there. The caller
        advances its lengths.
        """
        count = len(tokens)
        if not 0 < count <= self.max_rows or len(positions) != count or len(slots) != count:
            raise LLModelError(
                f"a decoding step takes 1 to {self.max_rows} sequences with one position and slot each, "
                f"got {count} tokens, {len(positions)} positions, {len(slots)} slots"
            )
        room = min(caches[0][0].shape[2], self.max_len)
        if max(positions) >= room or min(positions) < 0:
            raise LLModelError(
                f"KV cache overflow: no room at position {max(positions)}; allocate a larger cache"
            )
        kernels = self._kernels
        # numba's thread count belongs to the calling thread: the server builds the step in its loading thread
        # and runs it in its batcher thread.
        self._numba.set_num_threads(self.threads)
        normed, qkv, attended, up, hidden, residual = (buffer[:count] for buffer in self.scratch)
        x = np.ascontiguousarray(self.embed[np.asarray(tokens)], dtype=np.float32)
        residual[:] = 0.0
        rows, at = np.asarray(slots, dtype=np.int64), np.asarray(positions, dtype=np.int64)
        eps, layernorm, parts = self.eps, self.layernorm, self.parts
        for weights, (k_cache, v_cache) in zip(self.layers, caches, strict=True):
            norm1_w, norm1_b, qkv_t, o_t, norm2_w, norm2_b, up_t, down_t = weights
            kernels.add_and_norm(x, residual, norm1_w, norm1_b, eps, layernorm, normed)
            kernels.matmul(normed, qkv_t, parts, qkv)
            kernels.attention(qkv, k_cache, v_cache, rows, at, self.cos, self.sin, self.scores, attended)
            kernels.matmul(attended, o_t, parts, residual)
            kernels.add_and_norm(x, residual, norm2_w, norm2_b, eps, layernorm, normed)
            kernels.matmul(normed, up_t, parts, up)
            kernels.activate(up, hidden, self.swiglu)
            kernels.matmul(hidden, down_t, parts, residual)
        kernels.add_and_norm(x, residual, *self.final_norm, eps, layernorm, normed)
        logits = np.empty((count, self.head.shape[1]), dtype=np.float32)
        kernels.matmul(normed, self.head, parts, logits)
        return torch.from_numpy(logits)
