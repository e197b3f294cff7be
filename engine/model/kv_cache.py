"""Key/value caches for incremental decoding: the protocol the model reads, and the plain preallocated cache.

:meth:`Transformer.forward` asks a cache for two things: ``length`` (positions already filled, where the new tokens
start) and, per layer, ``append(k, v)`` (store the new keys/values, return everything the queries attend to).
:class:`KVCache` is one sequence batch filled in step; the model server's slot cache
(``engine/server/slot_cache.py``) implements the same protocol with a position per sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from engine.errors import LLModelError


class LayerCache(Protocol):
    """One layer's keys and values."""

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new (B, H_kv, T, hd) keys/values; return the keys/values the new queries attend to."""
        ...


class Cache(Protocol):
    """What the model's forward pass needs of a cache: one :class:`LayerCache` per layer and the filled length."""

    @property
    def layers(self) -> Sequence[LayerCache]: ...

    @property
    def length(self) -> int: ...


class LayerKVCache:
    """Keys and values of one layer, (B, H_kv, max_len, hd), filled up to ``length``."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k, self.v = k, v
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys/values and return everything cached so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.k.shape[2]:
            raise LLModelError(
                f"KV cache overflow: {end} positions but the cache holds {self.k.shape[2]}; allocate a larger cache"
            )
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """One LayerKVCache per layer, with the shared fill length."""

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.layers = [
            LayerKVCache(
                torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)
            )
            for _ in range(n_layers)
        ]
        self.max_len = max_len

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def advance(self) -> None:
        """Count one more position as filled (after a step that wrote it directly, as ``DecodeStep`` does)."""
        for layer in self.layers:
            layer.length += 1

    def reset(self) -> None:
        for layer in self.layers:
            layer.length = 0
