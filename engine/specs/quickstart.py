"""The quickstart job: the embedded corpus → tokenizer → dataset → pretraining → samples, and with ``chat`` a LoRA
adapter on the embedded instruction set. Its knobs and the tuned defaults live here, torch-free."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, first_line
from engine.specs.base import JobSpec, SpecError, field_value

# Chosen for the best validation loss within ~6 minutes of training on 2 CPU cores (benchmarks/RESULTS.md).
QUICKSTART_VOCAB = 4096
QUICKSTART_MODEL: dict[str, Any] = {
    "d_model": 128,
    "n_layers": 4,
    "n_heads": 4,
    "d_ff": 384,
    "max_len": 256,
    "ffn_type": "swiglu",
    "norm_type": "rmsnorm",
    "pos_type": "rope",
    "attention_type": "flash",
}
QUICKSTART_TRAINING: dict[str, Any] = {
    "batch_size": 16,
    "seq_len": 256,
    "learning_rate": 2e-3,
    "warmup_steps": 30,
    "schedule": "cosine",
    "min_lr_ratio": 0.1,
    "weight_decay": 0.1,
    "max_steps": 440,
    "eval_interval": 110,
    "eval_batches": 10,
    "sample_interval": 220,
    "checkpoint_interval": 110,
    "attention_interval": 110,
    "log_interval": 20,
}
# The chat stage: LoRA on the embedded instruction set, about a minute on 2 CPU cores.
CHAT_TRAINING: dict[str, Any] = {
    "batch_size": 8,
    "max_steps": 120,
    "learning_rate": 2e-3,
    "warmup_steps": 10,
    "eval_interval": 60,
    "eval_batches": 4,
    "sample_interval": 120,
    "checkpoint_interval": 120,
    "attention_interval": 10**6,
    "log_interval": 20,
    "weight_decay": 0.0,
}
CHAT_ADAPTER = "quickstart-chat"


@dataclass
class QuickstartOptions:
    """Knobs to shrink the quickstart (tests use a nano model on a slice of the corpus)."""

    corpus_bytes: int | None = None
    vocab_size: int = QUICKSTART_VOCAB
    model: dict[str, Any] = field(default_factory=lambda: dict(QUICKSTART_MODEL))
    training: dict[str, Any] = field(default_factory=lambda: dict(QUICKSTART_TRAINING))
    sample_tokens: int = 60
    val_fraction: float = 0.03
    seed: int = 1337
    chat: bool = False  # also fine-tune a chat adapter on the embedded instruction set
    chat_training: dict[str, Any] = field(default_factory=lambda: dict(CHAT_TRAINING))


@dataclass
class QuickstartSpec(JobSpec):
    """``llmodel quickstart``: the whole pipeline in the workspace ``workspace``."""

    kind = "quickstart"
    workspace: str
    options: QuickstartOptions = field(default_factory=QuickstartOptions)

    def check(self) -> None:
        from engine.model.config import ModelConfig
        from engine.training.config import TrainConfig

        source = f"{self.kind} spec"  # the workspace may be new: the engine that runs the job creates it
        model = {**self.options.model, "vocab_size": self.options.vocab_size}
        try:
            ModelConfig.from_dict(model, source=f"{source}: options.model")
            TrainConfig.from_dict(self.options.training, source=f"{source}: options.training")
            TrainConfig.from_dict(self.options.chat_training, source=f"{source}: options.chat_training")
        except ConfigError as error:  # its one line already names the field
            raise SpecError(first_line(error)) from None


def quickstart_spec(
    workspace: Path,
    options: QuickstartOptions | Mapping[str, Any] | None = None,
    *,
    max_steps: int | None = None,
    preset: str | None = None,
    corpus_mb: float | None = None,
    vocab_size: int | None = None,
    chat: bool | None = None,
    chat_steps: int | None = None,
) -> QuickstartSpec:
    """The quickstart job of the CLI's flags or the workbench: ``options`` (default: the tuned ones) with the
    knobs given changed, the intervals shortened to fit fewer steps."""
    from engine.model.config import ModelConfig

    if isinstance(options, QuickstartOptions):
        chosen = QuickstartOptions(**{k: _copy(v) for k, v in options.__dict__.items()})
    else:
        chosen = field_value("quickstart spec", "options", dict(options or {}), QuickstartOptions)
    if corpus_mb is not None:
        chosen.corpus_bytes = int(corpus_mb * 1_000_000)
    if vocab_size is not None:
        chosen.vocab_size = vocab_size
    if chat is not None:
        chosen.chat = chat
    if chat_steps is not None:
        chosen.chat_training["max_steps"] = chat_steps
        for key in ("eval_interval", "checkpoint_interval", "sample_interval"):
            chosen.chat_training[key] = min(chosen.chat_training[key], chat_steps)
    if preset is not None:
        shape = ModelConfig.from_preset(preset).to_dict()
        chosen.model = {k: shape[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "max_len")}
        chosen.training["seq_len"] = min(chosen.training["seq_len"], shape["max_len"])
    if max_steps is not None:
        chosen.training["max_steps"] = max_steps
        for key in ("eval_interval", "checkpoint_interval", "sample_interval", "attention_interval"):
            chosen.training[key] = min(chosen.training.get(key, max_steps), max_steps)
        chosen.training["warmup_steps"] = min(chosen.training["warmup_steps"], max_steps // 10)
    spec = QuickstartSpec(workspace=str(workspace.expanduser().resolve()), options=chosen)
    spec.check()
    return spec


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value
