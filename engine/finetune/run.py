"""A fine-tuning run: base checkpoint + SFT files → the training loop → checkpoints, and an adapter for LoRA/QLoRA.

This is what ``llmodel finetune`` / ``lora-finetune`` submit as an engine job, what the workbench's fine-tune form
starts, and what the quickstart's chat stage calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.adapters import nf4
from engine.adapters.files import save_adapter
from engine.errors import CheckpointError, VocabMismatchError
from engine.evaluation.in_training import task_evaluators
from engine.finetune.batches import SFTBatches
from engine.finetune.config import FinetuneSettings
from engine.finetune.setup import finetune_setup
from engine.finetune.sft_data import load_sft_data
from engine.runs import checkpoint as ckpt
from engine.runs.events import EventLog
from engine.tokenizer import Tokenizer
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer
from engine.workspace import validate_name


@dataclass
class FinetuneResult:
    status: str  # "completed" | "cancelled"
    step: int
    total_steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    adapter: str | None = None  # the adapter directory a LoRA/QLoRA run wrote when it completed
    data: str = ""  # what was read, cut and dropped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FinetuneJob:
    """Everything a fine-tuning run needs; :meth:`run` does it."""

    base: str
    data_paths: list[str]
    run_dir: Path
    settings: FinetuneSettings
    train_config: TrainConfig
    tokenizer_path: str | None = None
    val_paths: list[str] = field(default_factory=list)
    resume_from: str | None = None
    adapters_dir: Path | None = None
    should_stop: Callable[[], bool] | None = None

    def run(self) -> dict[str, Any]:
        base = ckpt.resolve_checkpoint(self.base)
        if base.meta.get("adapter"):
            raise CheckpointError(
                f"{base.path} holds a LoRA adapter, not a whole model; fine-tune its base, or merge it first "
                "(`llmodel lora merge`)"
            )
        lora = self.settings.lora()
        if lora is not None and lora.quantize_base == "nf4":
            nf4.require_torchao()  # QLoRA without torchao fails here, before anything is read or written
        name = (
            validate_name(self.settings.adapter_name or self.run_dir.name, "adapter name") if lora else None
        )
        config = base.model_config
        tokenizer_path = self.tokenizer_path or base.meta.get("tokenizer")
        if not tokenizer_path:
            raise CheckpointError(f"checkpoint {base.path} records no tokenizer; pass --tokenizer-path")
        tokenizer = Tokenizer.load(tokenizer_path)
        if tokenizer.vocab_size != config.vocab_size:
            raise VocabMismatchError(
                f"tokenizer {tokenizer_path} has {tokenizer.vocab_size} tokens but {base.path} has vocab_size "
                f"{config.vocab_size}; use the tokenizer the base model was trained with"
            )
        cfg = self.train_config
        evaluators = task_evaluators(cfg, self.run_dir)
        seq_len = min(cfg.seq_len or config.max_len, config.max_len)
        events = EventLog(self.run_dir)
        try:
            data = load_sft_data(
                self.data_paths,
                tokenizer,
                config,
                seq_len=seq_len,
                input_format=self.settings.input_format,
                train_on_inputs=self.settings.train_on_inputs,
                val_fraction=self.settings.val_fraction,
                val_paths=self.val_paths,
                log=events.log,
            )
        finally:
            events.close()
        batches = SFTBatches(
            data.train,
            data.val,
            seq_len=seq_len,
            cfg=cfg,
            pad_id=config.pad_token_id,
            packing=self.settings.packing,
            source=", ".join(self.data_paths),
            sample_prompt=data.sample_prompt,
        )
        trainer = Trainer(
            config,
            cfg,
            batches,
            self.run_dir,
            tokenizer_path=Path(tokenizer_path),
            resume_from=Path(self.resume_from) if self.resume_from else None,
            setup=finetune_setup(self.settings, base),
            evaluators=evaluators,
            kind="finetune",
            should_stop=self.should_stop,
        )
        result = trainer.run()
        adapter = None
        if lora is not None and result.status == "completed":
            directory = (self.adapters_dir or self.run_dir) / (name or "adapter")
            save_adapter(
                trainer.model,
                directory,
                lora,
                base,
                name=name,
                run_id=self.run_dir.name,
                dataset=", ".join(self.data_paths),
                metrics=result.final_metrics,
            )
            adapter = str(directory)
        checkpoint = str(result.last_checkpoint) if result.last_checkpoint else None
        return FinetuneResult(
            result.status,
            result.step,
            result.total_steps,
            result.final_metrics,
            checkpoint,
            adapter,
            data.summary(seq_len),
        ).to_dict()
