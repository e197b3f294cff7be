"""The Transformer, its config and presets.

The torch-backed names load on first use, so ``engine.model.config`` stays importable without torch (the
workbench validates configs as you type and must never import torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_attributes
from engine.model.config import PRESETS, ModelConfig

if TYPE_CHECKING:
    from engine.model.kv_cache import KVCache
    from engine.model.transformer import IGNORE_INDEX, ModelOutput, Transformer

__all__ = ["IGNORE_INDEX", "PRESETS", "KVCache", "ModelConfig", "ModelOutput", "Transformer"]

__getattr__ = lazy_attributes(
    __name__,
    {
        "KVCache": "engine.model.kv_cache",
        "IGNORE_INDEX": "engine.model.transformer",
        "ModelOutput": "engine.model.transformer",
        "Transformer": "engine.model.transformer",
    },
)
