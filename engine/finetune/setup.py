"""The trainer's model set-up for fine-tuning: every weight of the base (full), or LoRA and QLoRA: the base's
weights frozen (NF4 under QLoRA), LoRA layers over the target projections, checkpoints that hold the adapter only,
bound to the base's weight hash."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from engine.adapters.lora import (
    adapter_state,
    apply_lora,
    describe_trainable,
    load_adapter_state,
    trainable_summary,
)
from engine.adapters.settings import LoraSettings
from engine.finetune.config import FinetuneSettings
from engine.model import ModelConfig, Transformer
from engine.runs import checkpoint as ckpt
from engine.training.setup import FullModel, ModelSetup


def finetune_setup(settings: FinetuneSettings, base: ckpt.Checkpoint) -> ModelSetup:
    """The set-up of a fine-tuning run of ``base`` by ``settings.method``."""
    lora = settings.lora()
    return FullModel(init_from=base) if lora is None else LoraModel(base, lora)


@dataclass
class LoraModel:
    """LoRA layers with ``settings`` over the frozen weights of ``base``."""

    base: ckpt.Checkpoint
    settings: LoraSettings

    def check(self, model_config: ModelConfig) -> None:
        ckpt.check_compatible(self.base, model_config)

    def build(
        self, model_config: ModelConfig, device: torch.device, log: Callable[[str], None]
    ) -> Transformer:
        model = Transformer(model_config)
        ckpt.load_weights(self.base, model)
        model.to(device)
        apply_lora(model, self.settings)
        log(describe_trainable(*trainable_summary(model)))
        return model

    def restore(self, model: Transformer, checkpoint: ckpt.Checkpoint) -> None:
        load_adapter_state(model, ckpt.load_tensors(checkpoint), str(checkpoint.path))

    def saved(self, model: Transformer) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
        meta = {
            "init_from": str(self.base.path),
            "adapter": self.settings.to_dict(),
            "base_sha256": self.base.weights_sha256,
        }
        return adapter_state(model), meta

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.settings.to_dict(), "init_from": str(self.base.path)}
