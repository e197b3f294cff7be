"""The training flags ``pretrain``, ``finetune`` and ``lora-finetune`` share, and how they become a TrainConfig.

Every flag's default is the training config's own; a run's settings are, in order of precedence: the flags the
user typed, the ``--train-config`` file, the settings of the run being resumed, then the command's own defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.errors import LLModelError
from engine.training.config import TrainConfig
from engine.workspace import latest_run_with_checkpoint, runs_dir
from llmodel_app.cli.console import warn

if TYPE_CHECKING:
    from engine.runs.checkpoint import Checkpoint

DEFAULTS = TrainConfig()

Epochs = Annotated[float, typer.Option(help="Passes over the training data.")]
MaxSteps = Annotated[int | None, typer.Option(help="Optimizer steps; overrides --epochs.")]
BatchSize = Annotated[int, typer.Option(help="Sequences per micro-batch.")]
SeqLen = Annotated[int | None, typer.Option(help="Tokens per sequence (default: the model's max_len).")]
Accumulation = Annotated[int, typer.Option(help="Micro-batches per optimizer step.")]
LearningRate = Annotated[float, typer.Option(help="Peak learning rate.")]
Warmup = Annotated[int, typer.Option(help="Linear warmup steps.")]
Schedule = Annotated[str, typer.Option(help="cosine, linear, polynomial or constant.")]
Optimizer = Annotated[str, typer.Option(help="adamw or lion.")]
Precision = Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
Compile = Annotated[bool, typer.Option("--compile", help="Compile the model with torch.compile.")]
EvalInterval = Annotated[int, typer.Option(help="Steps between validation runs.")]
CheckpointInterval = Annotated[int, typer.Option(help="Steps between checkpoints.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
TrainConfigFile = Annotated[
    Path | None, typer.Option(help="JSON file with any training settings; flags typed explicitly win.")
]
EvalTasks = Annotated[
    str | None,
    typer.Option(help="Evaluation tasks (comma-separated) run at every validation and drawn as curves."),
]
ResumeFrom = Annotated[
    str | None,
    typer.Option(help="A checkpoint or run directory, or 'auto' (the newest run with a checkpoint)."),
]

# Flags that map one-to-one onto TrainConfig fields (the parameter name minus a trailing underscore).
FLAG_FIELDS = (
    "epochs",
    "max_steps",
    "batch_size",
    "seq_len",
    "gradient_accumulation_steps",
    "learning_rate",
    "warmup_steps",
    "schedule",
    "optimizer",
    "precision",
    "device",
    "compile_",
    "eval_interval",
    "checkpoint_interval",
    "seed",
    "eval_tasks",
)


def train_settings(
    ctx: typer.Context,
    path: Path | None,
    resumed: dict[str, Any] | None,
    defaults: dict[str, Any] | None = None,
) -> TrainConfig:
    """The command's ``defaults``, then the resumed run's settings, then the file, then the flags typed."""
    data: dict[str, Any] = {**(defaults or {}), **(resumed or {})}
    if path is not None:
        if not path.is_file():
            raise LLModelError(f"training config {path} not found")
        try:
            data.update(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise LLModelError(f"{path}:{error.lineno}: malformed JSON ({error.msg})") from None
    for name in FLAG_FIELDS:
        key = name.rstrip("_")
        source = ctx.get_parameter_source(name)
        typed = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
        if typed or key not in data:
            value = ctx.params.get(name)
            if key == "eval_tasks":  # typed as one comma-separated option
                value = [t.strip() for t in value.split(",") if t.strip()] if value else data.get(key, [])
            data[key] = value
    return TrainConfig.from_dict(data, source=str(path) if path else "training settings")


def resume_checkpoint(resume: str | None, root: Path) -> Checkpoint | None:
    """The checkpoint ``--resume-from-checkpoint`` names (``auto``: the workspace's newest), or None."""
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


def run_in_workspace(checkpoint_path: Path | None, root: Path) -> str | None:
    """The run id when the checkpoint belongs to a run folder of this workspace."""
    if checkpoint_path is None:
        return None
    run_dir = checkpoint_path.resolve().parent.parent
    return run_dir.name if run_dir.parent == runs_dir(root).resolve() else None
