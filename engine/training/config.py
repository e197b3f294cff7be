"""Training settings: one typed dataclass, saved in each run folder beside the model config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import ConfigError
from engine.typed_config import check_fields


@dataclass
class TrainConfig:
    """How a model is trained; every field is a CLI flag and a JSON key."""

    batch_size: int = 8
    seq_len: int | None = None  # None = the model's max_len
    gradient_accumulation_steps: int = 1
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    optimizer: Literal["adamw", "lion"] = "adamw"
    learning_rate: float = 3e-4
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    schedule: Literal["cosine", "linear", "polynomial", "constant"] = "cosine"
    warmup_steps: int = 100
    poly_power: float = 1.0
    grad_clip: float = 1.0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    device: str = "auto"
    seed: int = 1337
    log_interval: int = 10
    eval_interval: int = 200
    eval_batches: int = 20
    sample_interval: int = 500
    sample_prompt: str = "def "
    sample_tokens: int = 48
    checkpoint_interval: int = 500
    attention_interval: int = 500
    keep_last: int = 3
    num_threads: int | None = None
    eval_tasks: list[str] = field(default_factory=list)  # evaluation tasks run at every validation, as curves
    eval_task_limit: int = 20  # documents per task at each of those evaluations

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "gradient_accumulation_steps",
            "log_interval",
            "eval_interval",
            "eval_batches",
            "sample_interval",
            "checkpoint_interval",
            "attention_interval",
            "keep_last",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError("warmup_steps must be ≥ 0 and min_lr_ratio in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "training config") -> TrainConfig:
        try:
            return cls(**check_fields(cls, data, source))
        except ConfigError as err:
            if str(err).startswith(source):
                raise
            raise ConfigError(f"{source}: {err}") from None
