"""The Transformer, its config and presets."""

from engine.model.config import PRESETS, ModelConfig
from engine.model.kv_cache import KVCache
from engine.model.transformer import IGNORE_INDEX, ModelOutput, Transformer

__all__ = ["IGNORE_INDEX", "PRESETS", "KVCache", "ModelConfig", "ModelOutput", "Transformer"]
