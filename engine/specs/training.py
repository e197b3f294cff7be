"""Pretraining and fine-tuning jobs: a model config (or a base checkpoint), training settings and data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.finetune.config import FinetuneSettings, training_defaults
from engine.model.config import ModelConfig
from engine.specs.base import JobSpec, SpecError, absolute, absolute_all, require_checkpoint, require_paths
from engine.training.config import TrainConfig

DATASETS_DIR = "datasets"  # where raw training files are prepared once and cached
ADAPTERS_DIR = "adapters"


@dataclass
class PretrainSpec(JobSpec):
    """``llmodel pretrain``: train ``model_config`` on ``data_paths`` (a prepared dataset, or raw files prepared
    with ``tokenizer_path`` and cached under ``cache_root``), from ``resume_from`` when given."""

    kind = "pretrain"
    model_config: ModelConfig
    train_config: TrainConfig
    data_paths: list[str]
    cache_root: str
    tokenizer_path: str | None = None
    resume_from: str | None = None

    def check(self) -> None:
        source = f"{self.kind} spec"
        if not self.data_paths:
            raise SpecError(f"{source}: data_paths: give at least one dataset or training file")
        require_paths(f"{source}: data_paths", self.data_paths)
        require_paths(f"{source}: tokenizer_path", self.tokenizer_path)
        require_checkpoint(f"{source}: resume_from", self.resume_from)


@dataclass
class FinetuneSpec(JobSpec):
    """``llmodel finetune`` / ``lora-finetune``: adapt the checkpoint ``base`` on SFT files (none: the embedded
    instruction set), all weights or a LoRA/QLoRA adapter saved under ``adapters_dir``."""

    kind = "finetune"
    base: str
    finetune: FinetuneSettings
    train_config: TrainConfig
    adapters_dir: str
    data_paths: list[str] = field(default_factory=list)
    val_paths: list[str] = field(default_factory=list)
    tokenizer_path: str | None = None
    resume_from: str | None = None

    def check(self) -> None:
        from engine.errors import LLModelError
        from engine.workspace import validate_name

        source = f"{self.kind} spec"
        require_checkpoint(f"{source}: base", self.base)
        require_paths(f"{source}: data_paths", self.data_paths)
        require_paths(f"{source}: val_paths", self.val_paths)
        require_paths(f"{source}: tokenizer_path", self.tokenizer_path)
        require_checkpoint(f"{source}: resume_from", self.resume_from)
        if self.finetune.adapter_name is not None:
            try:
                validate_name(self.finetune.adapter_name, "adapter name")
            except LLModelError as error:
                raise SpecError(f"{source}: finetune.adapter_name: {error}") from None


def train_config(
    settings: TrainConfig | Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> TrainConfig:
    """``settings`` as given, or a mapping of them over ``defaults`` (the library's own for the rest)."""
    if isinstance(settings, TrainConfig):
        return settings
    return TrainConfig.from_dict({**(defaults or {}), **settings}, source="training settings")


def pretrain_spec(
    model_config: ModelConfig | Mapping[str, Any],
    training: TrainConfig | Mapping[str, Any],
    data_paths: Sequence[str | Path],
    *,
    workspace: Path,
    tokenizer_path: str | Path | None = None,
    resume_from: str | Path | None = None,
) -> PretrainSpec:
    """The pretraining job of the CLI's flags or the workbench's form; a bad setting or a missing file fails here."""
    config = (
        model_config
        if isinstance(model_config, ModelConfig)
        else ModelConfig.from_dict(dict(model_config), source="model config")
    )
    spec = PretrainSpec(
        model_config=config,
        train_config=train_config(training),
        data_paths=absolute_all(data_paths),
        cache_root=str(workspace / DATASETS_DIR),
        tokenizer_path=absolute(tokenizer_path),
        resume_from=absolute(resume_from),
    )
    spec.check()
    return spec


def finetune_spec(
    base: str | Path,
    settings: FinetuneSettings | Mapping[str, Any],
    training: TrainConfig | Mapping[str, Any] | None = None,
    *,
    workspace: Path,
    data_paths: Sequence[str | Path] = (),
    val_paths: Sequence[str | Path] = (),
    tokenizer_path: str | Path | None = None,
) -> FinetuneSpec:
    """The fine-tuning job of the CLI's flags or the workbench's form. ``base`` (a checkpoint or run directory)
    becomes its checkpoint; training settings given as a mapping go over the method's fine-tuning defaults."""
    from engine.runs.checkpoint import resolve_checkpoint

    finetune = (
        settings if isinstance(settings, FinetuneSettings) else FinetuneSettings.from_dict(dict(settings))
    )
    require_checkpoint("finetune spec: base", absolute(base))
    spec = FinetuneSpec(
        base=str(resolve_checkpoint(Path(base).expanduser().resolve()).path),
        finetune=finetune,
        train_config=train_config(training or {}, training_defaults(finetune.method)),
        adapters_dir=str(workspace / ADAPTERS_DIR),
        data_paths=absolute_all(data_paths),
        val_paths=absolute_all(val_paths),
        tokenizer_path=absolute(tokenizer_path),
    )
    spec.check()
    return spec
