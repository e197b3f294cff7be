"""``pretrain``: train a model from scratch, or resume one, as an engine job with a live display."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.errors import LLModelError
from engine.training.config import TrainConfig
from engine.workspace import latest_run_with_checkpoint, runs_dir, workspace_root
from llmodel_app.cli.console import success, warn
from llmodel_app.cli.jobs import (
    DetachOption,
    WorkspaceOption,
    check_outcome,
    connect,
    existing,
    follow,
    run_job,
)

if TYPE_CHECKING:  # torch-backed modules load only when a command runs, so `llmodel --help` stays fast
    from engine.model import ModelConfig
    from engine.runs.checkpoint import Checkpoint

DEFAULTS = TrainConfig()  # every flag's default is the training config's own

# Flags that map one-to-one onto TrainConfig fields (the parameter name minus a trailing underscore).
_FLAG_FIELDS = (
    "epochs", "max_steps", "batch_size", "seq_len", "gradient_accumulation_steps", "learning_rate", "warmup_steps",
    "schedule", "optimizer", "precision", "device", "compile_", "eval_interval", "checkpoint_interval", "seed",
)  # fmt: skip


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
    epochs: Annotated[float, typer.Option(help="Passes over the training tokens.")] = DEFAULTS.epochs,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps; overrides --epochs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per micro-batch.")] = DEFAULTS.batch_size,
    seq_len: Annotated[
        int | None, typer.Option(help="Tokens per sequence (default: the model's max_len).")
    ] = None,
    gradient_accumulation_steps: Annotated[
        int, typer.Option(help="Micro-batches per optimizer step.")
    ] = DEFAULTS.gradient_accumulation_steps,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = DEFAULTS.learning_rate,
    warmup_steps: Annotated[int, typer.Option(help="Linear warmup steps.")] = DEFAULTS.warmup_steps,
    schedule: Annotated[
        str, typer.Option(help="cosine, linear, polynomial or constant.")
    ] = DEFAULTS.schedule,
    optimizer: Annotated[str, typer.Option(help="adamw or lion.")] = DEFAULTS.optimizer,
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = DEFAULTS.precision,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = DEFAULTS.device,
    compile_: Annotated[
        bool, typer.Option("--compile", help="Compile the model with torch.compile.")
    ] = False,
    eval_interval: Annotated[
        int, typer.Option(help="Steps between validation runs.")
    ] = DEFAULTS.eval_interval,
    checkpoint_interval: Annotated[
        int, typer.Option(help="Steps between checkpoints.")
    ] = DEFAULTS.checkpoint_interval,
    seed: Annotated[int, typer.Option(help="Random seed.")] = DEFAULTS.seed,
    train_config: Annotated[
        Path | None, typer.Option(help="JSON file with any training settings; flags typed explicitly win.")
    ] = None,
    resume_from_checkpoint: Annotated[
        str | None,
        typer.Option(help="A checkpoint or run directory, or 'auto' (the newest run with a checkpoint)."),
    ] = None,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Pretrain a causal language model, checkpointing as it goes; Ctrl-C offers to cancel (with a checkpoint) or detach."""
    root = workspace_root(workspace)
    checkpoint = _resume_checkpoint(resume_from_checkpoint, root)
    model_config = _model_config(config, checkpoint)
    settings = _train_settings(ctx, train_config, checkpoint)
    spec = {
        "model_config": model_config.to_dict(),
        "train_config": settings.to_dict(),
        "data_paths": existing(data_path),
        "tokenizer_path": existing([tokenizer_path])[0] if tokenizer_path else None,
        "cache_root": str(root / "datasets"),
    }
    own_run = _run_in_workspace(checkpoint, root)
    if own_run is not None:
        # Resuming a run of this workspace continues that run: same folder, one unbroken loss curve.
        with connect(workspace) as client:
            offset = client.post(f"/api/runs/{own_run}/resume", {"spec": spec})["offset"]
            if detach:
                success(f"queued run {own_run} to resume")
                return
            final = follow(client, own_run, offset=offset)
    else:
        spec["resume_from"] = str(checkpoint.path) if checkpoint else None
        final = run_job(workspace, "pretrain", spec, detach=detach)
    result = check_outcome(final)
    if result:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.get("metrics", {}).items() if k != "lr")
        success(f"trained {result['step']} steps: {metrics}; checkpoint {result['checkpoint']}")


def _resume_checkpoint(resume: str | None, root: Path) -> Checkpoint | None:
    from engine.runs.checkpoint import resolve_checkpoint

    if resume is None:
        return None
    if resume == "auto":
        found = latest_run_with_checkpoint(root)
        if found is None:
            warn("--resume-from-checkpoint auto found no checkpoint in this workspace; starting a new run")
            return None
        return resolve_checkpoint(found, log=warn)
    return resolve_checkpoint(resume, log=warn)


def _run_in_workspace(checkpoint: Checkpoint | None, root: Path) -> str | None:
    """The run id when the checkpoint belongs to a run folder of this workspace."""
    if checkpoint is None:
        return None
    run_dir = checkpoint.path.resolve().parent.parent
    return run_dir.name if run_dir.parent == runs_dir(root).resolve() else None


def _train_settings(ctx: typer.Context, path: Path | None, checkpoint: Checkpoint | None) -> TrainConfig:
    """The checkpoint's settings, then the --train-config file, then the flags the user typed."""
    data: dict[str, Any] = dict(checkpoint.meta.get("train_config", {})) if checkpoint else {}
    if path is not None:
        if not path.is_file():
            raise LLModelError(f"training config {path} not found")
        try:
            data.update(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise LLModelError(f"{path}:{error.lineno}: malformed JSON ({error.msg})") from None
    for name in _FLAG_FIELDS:
        key = name.rstrip("_")
        source = ctx.get_parameter_source(name)
        typed = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
        if typed or key not in data:
            data[key] = ctx.params[name]
    return TrainConfig.from_dict(data, source=str(path) if path else "training settings")


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
