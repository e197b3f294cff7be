"""Several LoRA adapters over one base model, chosen per batch row: how the model server serves them all at once.

Each adapted projection is wrapped once; a forward pass run inside :func:`rows_use` adds, to each row's output,
the update of the adapter that row asked for (none for the base). The base weights are untouched, so the base
model's rows still take the compiled CPU decoding step whenever no row in a step needs an adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from engine.adapters.files import Adapter
from engine.adapters.lora import projections
from engine.adapters.settings import target_names
from engine.errors import ConfigError
from engine.model import Transformer

BASE = -1  # the row index of "no adapter"

_rows = threading.local()


@contextmanager
def rows_use(adapters: Sequence[int]) -> Iterator[None]:
    """Within the block, batch row ``i`` of every forward pass on this thread uses adapter ``adapters[i]``."""
    previous = getattr(_rows, "value", None)
    _rows.value = torch.tensor(list(adapters), dtype=torch.long)
    try:
        yield
    finally:
        _rows.value = previous


class AdaptedLinear(nn.Module):
    """A projection plus any of several LoRA updates, picked per row; looks like the projection it wraps."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.updates: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}

    @property
    def weight(self) -> torch.Tensor:  # the compiled decoding step and the decode layout read the base's
        return self.base.weight

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        rows = getattr(_rows, "value", None)
        if rows is None or not self.updates:
            return out
        for index in rows.unique().tolist():
            update = self.updates.get(index)
            if update is None:
                continue
            a, b, scaling = update
            picked = (rows == index).to(x.device)
            out[picked] = out[picked] + (x[picked] @ a.t() @ b.t()) * scaling
        return out


def install(model: Transformer, adapters: Sequence[Adapter]) -> None:
    """Wrap every projection any adapter targets and load the adapters' updates; adapter ``i`` is row index ``i``."""
    wanted = {name for adapter in adapters for name in target_names(adapter.settings.target_modules)}
    wrapped: dict[str, AdaptedLinear] = {}
    for name, parent, attribute, linear in list(projections(model)):
        if attribute in wanted:
            layer = AdaptedLinear(linear)
            setattr(parent, attribute, layer)
            wrapped[name] = layer
    for index, adapter in enumerate(adapters):
        tensors = adapter.tensors()
        scaling = adapter.settings.scaling
        for name, layer in wrapped.items():
            a, b = tensors.get(f"{name}.lora_A.weight"), tensors.get(f"{name}.lora_B.weight")
            if a is not None and b is not None:
                if a.shape[1] != layer.in_features or b.shape[0] != layer.out_features:
                    raise ConfigError(
                        f"adapter {adapter.name} does not fit this model: {name} is {layer.out_features}x"
                        f"{layer.in_features}, the adapter's update is {b.shape[0]}x{a.shape[1]}"
                    )
                device = layer.weight.device
                layer.updates[index] = (a.float().to(device), b.float().to(device), scaling)
