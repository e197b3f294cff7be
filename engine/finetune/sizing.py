"""How many parameters a fine-tuning run trains, from the model config alone.

Torch-free, so the workbench can say it before the job starts (it never imports torch). The projection names
and shapes are those ``engine/model/layers.py`` builds and ``engine/adapters/lora.py`` wraps; a test builds the
model, applies LoRA and counts the parameters that require grad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.adapters.settings import target_names
from engine.errors import ConfigError
from engine.model.config import ModelConfig


@dataclass(frozen=True)
class FinetuneSize:
    """What a fine-tuning run trains (``trainable``) out of the model's parameters (``total``)."""

    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def describe(self) -> str:
        return f"trainable {self.trainable:,} of {self.total:,} parameters ({self.share:.2%})"


def projection_shapes(config: ModelConfig) -> dict[str, tuple[int, int]]:
    """``(in_features, out_features)`` of each projection in one block; no projection has a bias, and only a
    SwiGLU feed-forward has ``gate_proj``."""
    d, kv, ff = config.d_model, int(config.n_kv_heads or config.n_heads) * config.head_dim, config.d_ff
    shapes = {"q_proj": (d, d), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (d, d)}
    if config.ffn_type == "swiglu":
        shapes["gate_proj"] = (d, ff)
    shapes.update(up_proj=(d, ff), down_proj=(ff, d))
    return shapes


def finetune_size(
    config: ModelConfig | dict[str, Any], method: str, *, rank: int = 16, targets: list[str] | None = None
) -> FinetuneSize:
    """Full fine-tuning trains every parameter; LoRA and QLoRA train ``rank × (in + out)`` per targeted projection
    in every layer (``lora_A`` is rank × in, ``lora_B`` out × rank). Raises ConfigError for a target this model
    lacks, as applying LoRA would."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config, source="the base's model config")
    total = config.num_parameters()
    if method == "full":
        return FinetuneSize(total, total)
    if method not in ("lora", "qlora"):
        raise ConfigError(f"unknown fine-tuning method {method!r}; choose one of full, lora, qlora")
    if rank <= 0:
        raise ConfigError(f"LoRA rank must be a positive integer, got {rank}")
    shapes = projection_shapes(config)
    names = target_names(targets if targets is not None else ["q_proj", "v_proj"], shapes)
    per_layer = sum(rank * (shapes[name][0] + shapes[name][1]) for name in names)
    return FinetuneSize(config.n_layers * per_layer, total)
