"""Compiled CPU kernels for one decoding step of a few sequences (numba).

A decoding step of a few sequences is a chain of small operations on a few rows; through PyTorch each costs
5-10 µs of dispatch on a small CPU, and MKL reads the projection weights of a small model at a fraction of the
memory bandwidth (benchmarks/RESULTS.md, "Generation"). Here a layer is 8 calls: every projection streams its
(in, out) weight once for all rows, split by input rows over the threads, and the norms, rotary positions,
attention over each sequence's KV cache and the feed-forward activation run in between in compiled code.

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
# Every kernel compiles with fastmath, which lets the compiler vectorise and reassociate the float32 sums, as
# BLAS does, and caches its code beside this file (or in the user's cache when that is read-only), so only the
# first use compiles (~6 s).


def check() -> None:
    """Run the parallel product once on tiny arrays: compiles or loads the kernels, raises if they cannot run."""
    x = np.ones((1, 4), dtype=np.float32)
    out = np.zeros((1, 3), dtype=np.float32)
    matmul(x, np.ones((4, 3), dtype=np.float32), np.zeros((2, 1, 3), dtype=np.float32), out)
    if not np.allclose(out, 4.0):
        raise RuntimeError(f"the compiled product gave {out}, expected 4s")


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def matmul(x: np.ndarray, weight_t: np.ndarray, parts: np.ndarray, out: np.ndarray) -> None:
    """``out = x @ weight_t`` for a few rows ``x`` (B, in) and a weight stored (in, out).

    Each of the ``parts.shape[0]`` threads streams a contiguous block of input rows into its own partial sums,
    four input rows per pass, each read once for all B rows. A row's result takes the same operations in the
    same order whatever else is in the batch, so a sequence decodes bit for bit alike alone or batched.
    """
    rows = x.shape[0]
    n_in, n_out = weight_t.shape
    blocks = parts.shape[0]
    per_block = (n_in + blocks - 1) // blocks
    for block in prange(blocks):
        acc = parts[block]
        for r in range(rows):
            for j in range(n_out):
                acc[r, j] = 0.0
        i, stop = block * per_block, min(n_in, (block + 1) * per_block)
        while i + 4 <= stop:
            w0, w1, w2, w3 = weight_t[i], weight_t[i + 1], weight_t[i + 2], weight_t[i + 3]
            for r in range(rows):
                x0, x1, x2, x3 = x[r, i], x[r, i + 1], x[r, i + 2], x[r, i + 3]
                row_acc = acc[r]
                for j in range(n_out):
                    row_acc[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
            i += 4
        while i < stop:
            w0 = weight_t[i]
            for r in range(rows):
                x0 = x[r, i]
                row_acc = acc[r]
                for j in range(n_out):
                    row_acc[j] += x0 * w0[j]
            i += 1
    for r in range(rows):
        for j in range(n_out):
            total = parts[0, r, j]
            for block in range(1, blocks):
                total += parts[block, r, j]
            out[r, j] = total


@njit(fastmath=True, cache=True, nogil=True)
def add_and_norm(
    x: np.ndarray,
    residual: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    eps: float,
    layernorm: bool,
    out: np.ndarray,
) -> None:
    """Per row of x (B, d): ``x += residual``, then RMSNorm (``layernorm`` False; ``bias`` unused) or LayerNorm
    of ``x`` into ``out``."""
    rows, n = x.shape
    for r in range(rows):
        row = x[r]
        for i in range(n):
            row[i] += residual[r, i]
        mean = 0.0
        if layernorm:
            for i in range(n):
                mean += row[i]
            mean /= n
        var = 0.0
        for i in range(n):
            centred = row[i] - mean
            var += centred * centred
        scale = 1.0 / math.sqrt(var / n + eps)
        if layernorm:
            for i in range(n):
                out[r, i] = (row[i] - mean) * scale * weight[i] + bias[i]
        else:
            for i in range(n):
                out[r, i] = row[i] * scale * weight[i]


@njit(fastmath=True, cache=True, nogil=True)
def attention(
    qkv: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    slots: np.ndarray,
    positions: np.ndarray,
    cos: np.ndarray,
    signed_sin: np.ndarray,
    scores: np.ndarray,
    out: np.ndarray,
) -> None:
    """For each row b: rotate its q and k to ``positions[b]``, store k and v there in cache row ``slots[b]`` of the
    layer's (S, H_kv, T, hd) caches, and attend over that row's positions 0..positions[b].

    ``qkv`` (B, ·) holds q (H·hd) | k (H_kv·hd) | v (H_kv·hd); ``out`` (B, H·hd) gets each head's softmax-weighted
    values (a query head reads KV head ``h // (H / H_kv)``, as grouped-query attention).
    """
    n_kv, _, head_dim = k_cache.shape[1:]
    n_heads = out.shape[1] // head_dim
    k_start, v_start = n_heads * head_dim, (n_heads + n_kv) * head_dim
    group = n_heads // n_kv
    scale = 1.0 / math.sqrt(head_dim)
    for b in range(qkv.shape[0]):
        row, pos, values = slots[b], positions[b], qkv[b]
        _rotate(values, n_heads + n_kv, head_dim, cos[pos], signed_sin[pos])  # q and k
        keys, vals, heads = k_cache[row], v_cache[row], out[b]
        for h in range(n_kv):
            for i in range(head_dim):
                keys[h, pos, i] = values[k_start + h * head_dim + i]
                vals[h, pos, i] = values[v_start + h * head_dim + i]
        for h in range(n_heads):
            kv, q = h // group, h * head_dim
            best = -1e30
            for t in range(pos + 1):
                s = 0.0
                for i in range(head_dim):
                    s += values[q + i] * keys[kv, t, i]
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
                heads[q + i] = 0.0
            for t in range(pos + 1):
                p = scores[t] / total
                for i in range(head_dim):
                    heads[q + i] += p * vals[kv, t, i]


@njit(fastmath=True, cache=True, nogil=True)
def _rotate(values: np.ndarray, count: int, head_dim: int, cos: np.ndarray, signed_sin: np.ndarray) -> None:
    """Rotary positions in place on the first ``count`` head rows of ``values``, half-split layout
    (as ``layers.apply_rotary``)."""
    half = head_dim // 2
    for r in range(count):
        base = r * head_dim
        for i in range(half):
            a, b = values[base + i], values[base + half + i]
            values[base + i] = a * cos[i] + b * signed_sin[i]
            values[base + half + i] = b * cos[half + i] + a * signed_sin[half + i]


@njit(fastmath=True, cache=True, nogil=True)
def activate(up: np.ndarray, out: np.ndarray, swiglu: bool) -> None:
    """Per row: SwiGLU (``up`` holds gate | up) or exact GELU of ``up``, into ``out`` (B, d_ff)."""
    d_ff = out.shape[1]
    for r in range(out.shape[0]):
        if swiglu:
            for i in range(d_ff):
                gate = up[r, i]
                out[r, i] = gate / (1.0 + math.exp(-gate)) * up[r, d_ff + i]
        else:
            for i in range(d_ff):
                out[r, i] = 0.5 * up[r, i] * (1.0 + math.erf(up[r, i] / math.sqrt(2.0)))
