"""Fine-tuning settings: the method, the adapter's rank, alpha and targets (checked as
:class:`engine.adapters.settings.LoraSettings`), the data options, and training defaults that suit fine-tuning.
Torch-free, so the workbench can read them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from engine.adapters.settings import LoraSettings, target_names
from engine.errors import ConfigError
from engine.typed_config import check_fields

METHODS = ("full", "lora", "qlora")


@dataclass
class FinetuneSettings:
    """How a fine-tuning run adapts its base: all weights (``full``), LoRA, or QLoRA (LoRA over an NF4 base)."""

    method: Literal["full", "lora", "qlora"] = "full"
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    packing: bool = False
    train_on_inputs: bool = False
    input_format: str = "auto"
    val_fraction: float = 0.05
    adapter_name: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"unknown fine-tuning method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        self.lora()  # checks rank, alpha, dropout and the target names early

    def lora(self) -> LoraSettings | None:
        """The adapter's settings, or None for full fine-tuning."""
        if self.method == "full":
            return None
        settings = LoraSettings(
            rank=self.lora_rank,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            target_modules=list(self.target_modules),
            quantize_base="nf4" if self.method == "qlora" else None,
        )
        target_names(settings.target_modules)
        return settings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "fine-tuning settings") -> FinetuneSettings:
        return cls(**check_fields(cls, data, source))


def training_defaults(method: str) -> dict[str, Any]:
    """Training settings that suit fine-tuning better than pretraining's: a smaller learning rate (larger for
    adapters, which start from zero), a short warmup, more frequent evaluations and samples."""
    return {
        "learning_rate": 2e-5 if method == "full" else 2e-4,
        "warmup_steps": 10,
        "weight_decay": 0.0 if method != "full" else 0.01,
        "batch_size": 4,
        "eval_interval": 50,
        "sample_interval": 100,
        "checkpoint_interval": 100,
        "attention_interval": 100,
    }
