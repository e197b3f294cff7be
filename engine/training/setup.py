"""What the trainer is given rather than decides: how its model starts, resumes and is saved, and what scores it.

Pretraining and full fine-tuning train every weight (:class:`FullModel`); fine-tuning an adapter brings its own
set-up (``engine.finetune.setup.LoraModel``). Evaluators beyond the validation loss (the run's
``eval_tasks``) come from ``engine.evaluation.in_training``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from engine.model import ModelConfig, Transformer
from engine.runs import checkpoint as ckpt

if TYPE_CHECKING:
    from engine.runs.events import EventLog
    from engine.tokenizer import Tokenizer


class ModelSetup(Protocol):
    """How a run's model is built, restored from its own checkpoint, and saved."""

    def check(self, model_config: ModelConfig) -> None:
        """Refuse a model config this start does not fit (before the run folder exists)."""

    def build(
        self, model_config: ModelConfig, device: torch.device, log: Callable[[str], None]
    ) -> Transformer:
        """The model to train, on ``device``, with only what should train requiring grad."""

    def restore(self, model: Transformer, checkpoint: ckpt.Checkpoint) -> None:
        """Load what :meth:`saved` wrote into ``model`` (resuming this run)."""

    def saved(self, model: Transformer) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
        """The tensors a checkpoint holds (None: the whole model) and what its meta adds."""

    def describe(self) -> dict[str, Any]:
        """How the run started (``init_from``, ``adapter``), for its status event and ``run.json``."""


class Evaluator(Protocol):
    """Scores the model at each validation: named values, drawn as curves; may record events of its own."""

    def __call__(
        self, model: Transformer, tokenizer: Tokenizer | None, step: int, events: EventLog
    ) -> dict[str, float]: ...


@dataclass
class FullModel:
    """Every weight trains: fresh weights (pretraining) or a checkpoint's (``init_from``: full fine-tuning)."""

    init_from: ckpt.Checkpoint | None = None

    def check(self, model_config: ModelConfig) -> None:
        if self.init_from is not None:
            ckpt.check_compatible(self.init_from, model_config)

    def build(
        self, model_config: ModelConfig, device: torch.device, log: Callable[[str], None]
    ) -> Transformer:
        model = Transformer(model_config)
        if self.init_from is not None:
            ckpt.load_weights(self.init_from, model)
        return model.to(device)

    def restore(self, model: Transformer, checkpoint: ckpt.Checkpoint) -> None:
        ckpt.load_weights(checkpoint, model)

    def saved(self, model: Transformer) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
        return None, {"init_from": str(self.init_from.path)} if self.init_from is not None else {}

    def describe(self) -> dict[str, Any]:
        return {"adapter": None, "init_from": str(self.init_from.path) if self.init_from else None}
