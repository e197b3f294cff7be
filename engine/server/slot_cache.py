"""A KV cache of fixed slots, one sequence per slot, each with its own length (for continuous batching)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from engine.adapters.multi_adapter import BASE, rows_use
from engine.errors import LLModelError
from engine.model import Transformer
from engine.model.decode_layout import plain_products
from engine.model.decode_step import DecodeStep, cache_arrays, supports_decode_step
from engine.model.kv_cache import LayerCache, LayerKVCache


class SlotKVCache:
    """Keys/values (slots, H_kv, max_len, hd) per layer; a slot holds one sequence from prefill until release.

    ``prefill`` runs a prompt alone straight into its slot; ``decode`` runs one token for each of several slots
    at once, every row writing at its own position and attending only to its own keys. On a CPU model in the
    decode layout the steps run through the compiled :class:`DecodeStep`, whose rows never depend on each other:
    a request's greedy output is the same alone or batched.
    """

    def __init__(self, model: Transformer, num_slots: int, max_len: int | None = None) -> None:
        if num_slots < 1:
            raise LLModelError(f"a slot cache needs at least one slot, got {num_slots}")
        c = model.config
        self.model = model
        self.num_slots = num_slots
        self.max_len = min(max_len or c.max_len, c.max_len)
        weight = model.lm_head.weight
        self.device = weight.device
        shape = (num_slots, c.kv_heads, self.max_len, c.head_dim)
        self.keys = [torch.zeros(shape, dtype=weight.dtype, device=self.device) for _ in range(c.n_layers)]
        self.values = [torch.zeros(shape, dtype=weight.dtype, device=self.device) for _ in range(c.n_layers)]
        self.lengths = [0] * num_slots
        self._free = list(range(num_slots))
        self._decode_step = DecodeStep(model, max_rows=num_slots) if supports_decode_step(model) else None
        self._arrays = cache_arrays(self.keys, self.values) if self._decode_step is not None else []

    # -- slots ---------------------------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        return len(self._free)

    def allocate(self) -> int:
        """Take the lowest free slot (keeping busy slots together lets decode read the cache without a copy)."""
        if not self._free:
            raise LLModelError(f"all {self.num_slots} cache slots are busy; release one first")
        self._free.sort()
        slot = self._free.pop(0)
        self.lengths[slot] = 0
        return slot

    def release(self, slot: int) -> None:
        if slot in self._free:
            raise LLModelError(f"cache slot {slot} is already free")
        self.lengths[slot] = 0
        self._free.append(slot)

    # -- running the model -----------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, slot: int, ids: Sequence[int], adapter: int = BASE) -> torch.Tensor:
        """Run ``ids`` alone into ``slot`` (replacing what it held), through ``adapter`` (row index of a served
        adapter, or BASE); return the last position's logits (V,)."""
        if not ids:
            raise LLModelError("a prompt needs at least one token")
        if len(ids) > self.max_len:
            raise LLModelError(f"prompt of {len(ids)} tokens exceeds the cache length {self.max_len}")
        if self._decode_step is not None and adapter == BASE:
            # Through the compiled step, a few prompt tokens a call: each row attends to the rows before it.
            chunk = self._decode_step.max_rows
            for start in range(0, len(ids), chunk):
                part = list(ids[start : start + chunk])
                positions = list(range(start, start + len(part)))
                logits = self._decode_step(part, positions, self._arrays, [slot] * len(part))[-1]
            self.lengths[slot] = len(ids)
            return logits
        # The slot's rows are views into the shared tensors, so the ordinary cache path fills the slot in place.
        view = _SlotView(
            [
                LayerKVCache(k[slot : slot + 1], v[slot : slot + 1])
                for k, v in zip(self.keys, self.values, strict=True)
            ],
            length=0,
        )
        input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        with _adapted([adapter]):
            logits = self.model(input_ids, kv_cache=view, logits_for="last").logits[0, -1]
        self.lengths[slot] = len(ids)
        return logits

    @torch.inference_mode()
    def decode(
        self, slots: Sequence[int], tokens: Sequence[int], adapters: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Feed ``tokens[i]`` to ``slots[i]`` (one step each, batched), row ``i`` through ``adapters[i]`` (BASE by
        default); return the next-token logits (B, V). A step with no adapter row takes the compiled step."""
        adapters = list(adapters) if adapters is not None else [BASE] * len(slots)
        if len(slots) != len(tokens) or not slots:
            raise LLModelError(
                f"decode needs one token per slot, got {len(tokens)} tokens for {len(slots)} slots"
            )
        positions = [self.lengths[s] for s in slots]
        if max(positions) >= self.max_len:
            raise LLModelError(f"a sequence reached the cache length {self.max_len}; it cannot grow further")
        if min(positions) == 0:
            raise LLModelError("decode needs slots that were prefilled first")
        if self._decode_step is not None and all(a == BASE for a in adapters):
            logits = self._decode_step(tokens, positions, self._arrays, slots)
            for s in slots:
                self.lengths[s] += 1
            return logits
        window = max(positions) + 1
        pos = torch.tensor(positions, dtype=torch.long, device=self.device)
        rows = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        contiguous = list(slots) == list(range(slots[0], slots[0] + len(slots)))
        read: slice | torch.Tensor = slice(slots[0], slots[0] + len(slots)) if contiguous else rows
        view = _SlotView(
            [
                _DecodeLayer(k, v, rows, read, pos, window)
                for k, v in zip(self.keys, self.values, strict=True)
            ],
            length=window - 1,
        )
        # Each row sees its own keys 0..pos; everything after belongs to nobody (stale or empty).
        mask = (torch.arange(window, device=self.device).unsqueeze(0) <= pos.unsqueeze(1)).long()
        input_ids = torch.tensor(list(tokens), dtype=torch.long, device=self.device).unsqueeze(1)
        with _adapted(adapters):
            out = self.model(
                input_ids, attention_mask=mask, positions=pos.unsqueeze(1), kv_cache=view, logits_for="last"
            )
        for s in slots:
            self.lengths[s] += 1
        return out.logits[:, -1]


@contextmanager
def _adapted(adapters: Sequence[int]) -> Iterator[None]:
    """Rows through their adapters (and the projections' own forward, so the adapters are not skipped)."""
    if all(a == BASE for a in adapters):
        yield
        return
    with plain_products(), rows_use(adapters):
        yield


class _SlotView:
    """Some slots of the cache as the :class:`~engine.model.kv_cache.Cache` the forward pass reads and writes."""

    def __init__(self, layers: Sequence[LayerCache], length: int) -> None:
        self.layers = layers
        self.length = length  # positions filled before this forward pass


class _DecodeLayer:
    """One layer's :class:`~engine.model.kv_cache.LayerCache` for a decode step: row b writes its new key at
    ``pos[b]`` of its own slot."""

    def __init__(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        rows: torch.Tensor,
        read: slice | torch.Tensor,
        pos: torch.Tensor,
        window: int,
    ) -> None:
        self.k, self.v, self.rows, self.read, self.pos, self.window = k, v, rows, read, pos, window

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k[self.rows, :, self.pos] = k[:, :, 0]
        self.v[self.rows, :, self.pos] = v[:, :, 0]
        # A slice of slots is a view; a scattered set of slots is gathered (a copy).
        return self.k[self.read, :, : self.window], self.v[self.read, :, : self.window]
