"""Compiled CPU kernels for one decoding step of one sequence (numba).

A batch-1 decoding step is a chain of small operations on one row; through PyTorch each costs 5-10 µs of
dispatch on a small CPU, and MKL reads the projection weights of a small model at a fraction of the memory
bandwidth (benchmarks/RESULTS.md, "Generation"). These kernels run a whole layer per call: every projection
streams its (in, out) weight once, split by input rows over the threads, and the norms, rotary positions,
attention over the KV cache and the feed-forward activation run in between without leaving compiled code.

They compute what :mod:`engine.model.layers` computes for a pre-norm rotary block (RMSNorm or LayerNorm, SwiGLU
or GELU, grouped KV heads), in float32; tests hold them to the general forward pass's logits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config, njit, prange

# Parallel kernels may run from several Python threads at once (the model server beside a chat): only the
# OpenMP and TBB layers allow that; numba's fallback layer would abort the process instead.
config.THREADING_LAYER = "threadsafe"
# fastmath lets the compiler vectorise and reassociate the float32 sums, as BLAS does; compiled code is cached
# beside this file (or in the user's cache when that is read-only), so only the first use compiles (~6 s).
_KERNEL = {"fastmath": True, "cache": True, "nogil": True}


def check() -> None:
    """Run the parallel product once on tiny arrays: compiles or loads the kernels, raises if they cannot run."""
    x = np.ones(4, dtype=np.float32)
    out = np.zeros(3, dtype=np.float32)
    matvec(x, np.ones((4, 3), dtype=np.float32), np.zeros((2, 3), dtype=np.float32), out)
    if not np.allclose(out, 4.0):
        raise RuntimeError(f"the compiled product gave {out}, expected 4s")


@njit(parallel=True, **_KERNEL)
def matvec(x: np.ndarray, weight_t: np.ndarray, parts: np.ndarray, out: np.ndarray) -> None:
    """``out = x @ weight_t`` for one row ``x`` (in,) and a weight stored (in, out).

    Each of the ``parts.shape[0]`` threads streams a contiguous block of input rows into its own partial sum,
    four rows per pass so each partial-sum element is loaded once per four weight elements.
    """
    n_in, n_out = weight_t.shape
    blocks = parts.shape[0]
    per_block = (n_in + blocks - 1) // blocks
    for b in prange(blocks):
        acc = parts[b]
        for j in range(n_out):
            acc[j] = 0.0
        i, stop = b * per_block, min(n_in, (b + 1) * per_block)
        while i + 4 <= stop:
            x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
            r0, r1, r2, r3 = weight_t[i], weight_t[i + 1], weight_t[i + 2], weight_t[i + 3]
            for j in range(n_out):
                acc[j] += x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j]
            i += 4
        while i < stop:
            xi, row = x[i], weight_t[i]
            for j in range(n_out):
                acc[j] += xi * row[j]
            i += 1
    for j in range(n_out):
        total = parts[0, j]
        for b in range(1, blocks):
            total += parts[b, j]
        out[j] = total


@njit(**_KERNEL)
def add_and_norm(
    x: np.ndarray, residual: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, layernorm: bool,
    out: np.ndarray,
) -> None:
    """``x += residual``, then RMSNorm (``layernorm`` False; ``bias`` unused) or LayerNorm of ``x`` into ``out``."""
    n = x.shape[0]
    for i in range(n):
        x[i] += residual[i]
    mean = 0.0
    if layernorm:
        for i in range(n):
            mean += x[i]
        mean /= n
    var = 0.0
    for i in range(n):
        centred = x[i] - mean
        var += centred * centred
    scale = 1.0 / math.sqrt(var / n + eps)
    if layernorm:
        for i in range(n):
            out[i] = (x[i] - mean) * scale * weight[i] + bias[i]
    else:
        for i in range(n):
            out[i] = x[i] * scale * weight[i]


@njit(**_KERNEL)
def attention(
    qkv: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    pos: int,
    cos: np.ndarray,
    signed_sin: np.ndarray,
    scores: np.ndarray,
    out: np.ndarray,
) -> None:
    """Rotate q and k of the new position, store k and v at ``pos`` of the layer's cache (H_kv, T, hd), attend.

    ``qkv`` holds q (H·hd) | k (H_kv·hd) | v (H_kv·hd); ``out`` (H·hd) gets each head's softmax-weighted values
    over positions 0..pos (a query head reads KV head ``h // (H / H_kv)``, as grouped-query attention).
    """
    n_kv, _, head_dim = k_cache.shape
    n_heads = out.shape[0] // head_dim
    k_start, v_start = n_heads * head_dim, (n_heads + n_kv) * head_dim
    _rotate(qkv, 0, n_heads + n_kv, head_dim, cos, signed_sin)  # q and k rows
    for h in range(n_kv):
        for i in range(head_dim):
            k_cache[h, pos, i] = qkv[k_start + h * head_dim + i]
            v_cache[h, pos, i] = qkv[v_start + h * head_dim + i]
    group = n_heads // n_kv
    scale = 1.0 / math.sqrt(head_dim)
    for h in range(n_heads):
        kv, q = h // group, h * head_dim
        best = -1e30
        for t in range(pos + 1):
            s = 0.0
            for i in range(head_dim):
                s += qkv[q + i] * k_cache[kv, t, i]
            s *= scale
            scores[t] = s
            if s > best:
                best = s
        total = 0.0
        for t in range(pos + 1):
            e = math.exp(scores[t] - best)
            scores[t] = e
            total += e
        for i in range(head_dim):
            out[q + i] = 0.0
        for t in range(pos + 1):
            p = scores[t] / total
            for i in range(head_dim):
                out[q + i] += p * v_cache[kv, t, i]


@njit(**_KERNEL)
def _rotate(
    values: np.ndarray, first: int, count: int, head_dim: int, cos: np.ndarray, signed_sin: np.ndarray
) -> None:
    """Rotary positions in place on ``count`` head rows of ``values`` from row ``first``, half-split layout
    (as ``layers.apply_rotary``)."""
    half = head_dim // 2
    for r in range(first, first + count):
        base = r * head_dim
        for i in range(half):
            a, b = values[base + i], values[base + half + i]
            values[base + i] = a * cos[i] + b * signed_sin[i]
            values[base + half + i] = b * cos[half + i] + a * signed_sin[half + i]


@njit(**_KERNEL)
def activate(up: np.ndarray, out: np.ndarray, swiglu: bool) -> None:
    """SwiGLU (``up`` holds gate | up) or exact GELU of ``up``, into ``out`` (d_ff)."""
    d_ff = out.shape[0]
    if swiglu:
        for i in range(d_ff):
            gate = up[i]
            out[i] = gate / (1.0 + math.exp(-gate)) * up[d_ff + i]
    else:
        for i in range(d_ff):
            out[i] = 0.5 * up[i] * (1.0 + math.erf(up[i] / math.sqrt(2.0)))
