"""``pretrain``: train a model from scratch, or resume one, as an engine job with a live display."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.errors import LLModelError
from engine.specs import pretrain_spec
from engine.workspace import workspace_root
from llmodel_app.cli import training_options as opts
from llmodel_app.cli.console import success
from llmodel_app.cli.jobs import DetachOption, WorkspaceOption, check_outcome, run_job

if TYPE_CHECKING:  # torch-backed modules load only when a command runs, so `llmodel --help` stays fast
    from engine.model import ModelConfig
    from engine.runs.checkpoint import Checkpoint

DEFAULTS = opts.DEFAULTS


def pretrain(
    ctx: typer.Context,
    data_path: Annotated[
        list[Path],
        typer.Option(help="A prepared dataset directory, or raw text/JSONL files (prepared and cached)."),
    ],
    config: Annotated[
        Path | None, typer.Option(help="Model config JSON (default when resuming: the checkpoint's).")
    ] = None,
    tokenizer_path: Annotated[
        Path | None, typer.Option(help="Tokenizer directory (default: the dataset's).")
    ] = None,
    epochs: opts.Epochs = DEFAULTS.epochs,
    max_steps: opts.MaxSteps = None,
    batch_size: opts.BatchSize = DEFAULTS.batch_size,
    seq_len: opts.SeqLen = None,
    gradient_accumulation_steps: opts.Accumulation = DEFAULTS.gradient_accumulation_steps,
    learning_rate: opts.LearningRate = DEFAULTS.learning_rate,
    warmup_steps: opts.Warmup = DEFAULTS.warmup_steps,
    schedule: opts.Schedule = DEFAULTS.schedule,
    optimizer: opts.Optimizer = DEFAULTS.optimizer,
    precision: opts.Precision = DEFAULTS.precision,
    device: opts.Device = DEFAULTS.device,
    compile_: opts.Compile = False,
    eval_interval: opts.EvalInterval = DEFAULTS.eval_interval,
    checkpoint_interval: opts.CheckpointInterval = DEFAULTS.checkpoint_interval,
    eval_tasks: opts.EvalTasks = None,
    seed: opts.Seed = DEFAULTS.seed,
    train_config: opts.TrainConfigFile = None,
    resume_from_checkpoint: opts.ResumeFrom = None,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Pretrain a causal language model, checkpointing as it goes; Ctrl-C offers to cancel (with a checkpoint) or detach."""
    root = workspace_root(workspace)
    checkpoint = opts.resume_checkpoint(resume_from_checkpoint, root)
    model_config = _model_config(config, checkpoint)
    settings = opts.train_settings(
        ctx, train_config, checkpoint.meta.get("train_config") if checkpoint else None
    )
    # Resuming a run of this workspace continues that run: same folder, one unbroken loss curve.
    own_run = opts.run_in_workspace(checkpoint.path if checkpoint else None, root)
    spec = pretrain_spec(
        model_config,
        settings,
        data_path,
        workspace=root,
        tokenizer_path=tokenizer_path,
        resume_from=checkpoint.path if checkpoint and own_run is None else None,
    )
    result = check_outcome(run_job(workspace, spec, detach=detach, resume_run=own_run))
    if result:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.get("metrics", {}).items() if k != "lr")
        success(f"trained {result['step']} steps: {metrics}; checkpoint {result['checkpoint']}")


def _model_config(path: Path | None, checkpoint: Checkpoint | None) -> ModelConfig:
    from engine.model.config import ModelConfig
    from engine.runs.checkpoint import check_compatible

    if path is not None:
        config = ModelConfig.load(path)
        if checkpoint is not None:
            check_compatible(checkpoint, config)
        return config
    if checkpoint is not None:
        return checkpoint.model_config
    raise LLModelError(
        "no model config: pass --config PATH (create one with `llmodel create-config --type tiny`)"
    )
