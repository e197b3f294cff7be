"""``pretrain``: train a model from scratch (or resume), with a live progress display."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.data.meta import is_prepared_dataset, load_dataset_meta
from engine.data.prepare import prepared_dataset_for
from engine.errors import LLModelError
from engine.model import ModelConfig
from engine.training import checkpoint as ckpt
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer, TrainResult
from engine.workspace import latest_run_with_checkpoint, new_run_id, runs_dir, workspace_root
from llmodel_app.cli.console import err, info, success, warn
from llmodel_app.cli.progress import TrainingProgress, task_progress


class StopFlag:
    """First Ctrl-C (or SIGTERM) asks the run to checkpoint and stop; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def install(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.requested = True
            err.print("[yellow]stopping after this step and saving a checkpoint (Ctrl-C again to abort)[/yellow]")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def resolve_resume(resume: str | None, output_dir: Path | None, workspace: Path) -> Path | None:
    """Turn ``--resume-from-checkpoint`` (a path or ``auto``) into a checkpoint path, or None to start fresh."""
    if resume is None:
        return None
    if resume != "auto":
        return Path(resume)
    if output_dir is not None and ckpt.latest_checkpoint(output_dir / "checkpoints") is not None:
        return output_dir
    found = latest_run_with_checkpoint(workspace)
    if found is None:
        warn("--resume-from-checkpoint auto found no checkpoint; starting a new run")
    return found


def run_training(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data_dir: Path,
    run_dir: Path,
    *,
    tokenizer_path: Path | None,
    resume_from: Path | None,
) -> TrainResult:
    """Run a Trainer in this process with a Rich progress display and Ctrl-C handling."""
    stop = StopFlag()
    display = TrainingProgress()
    trainer = Trainer(
        model_config, train_config, data_dir, run_dir, tokenizer_path=tokenizer_path,
        resume_from=resume_from, on_event=display.on_event, should_stop=stop,
    )  # fmt: skip
    info(f"run folder {run_dir}")
    stop.install()
    with display:
        return trainer.run()


def pretrain(
    ctx: typer.Context,
    data_path: Annotated[list[Path], typer.Option(help="A prepared dataset directory, or raw text/JSONL files (prepared and cached).")],
    config: Annotated[Path | None, typer.Option(help="Model config JSON (default when resuming: the checkpoint's).")] = None,
    tokenizer_path: Annotated[Path | None, typer.Option(help="Tokenizer directory (default: the dataset's).")] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the training tokens.")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps; overrides --epochs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per micro-batch.")] = 8,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence (default: the model's max_len).")] = None,
    gradient_accumulation_steps: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-4,
    warmup_steps: Annotated[int, typer.Option(help="Linear warmup steps.")] = 100,
    schedule: Annotated[str, typer.Option(help="cosine, linear, polynomial or constant.")] = "cosine",
    optimizer: Annotated[str, typer.Option(help="adamw or lion.")] = "adamw",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    compile_: Annotated[bool, typer.Option("--compile", help="Compile the model with torch.compile.")] = False,
    eval_interval: Annotated[int, typer.Option(help="Steps between validation runs.")] = 200,
    checkpoint_interval: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1337,
    train_config: Annotated[Path | None, typer.Option(help="JSON file with any training settings; flags given explicitly win.")] = None,
    resume_from_checkpoint: Annotated[str | None, typer.Option(help="A checkpoint or run directory, or 'auto'.")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Run directory (default: <workspace>/runs/<run-id>).")] = None,
    workspace: Annotated[Path | None, typer.Option(help="Workspace folder (default: $LLMODEL_WORKSPACE or ./workspaces/default).")] = None,
) -> None:
    """Pretrain a causal language model, checkpointing as it goes; Ctrl-C stops with a resumable checkpoint."""
    root = workspace_root(workspace)
    resume = resolve_resume(resume_from_checkpoint, output_dir, root)
    checkpoint = ckpt.resolve_checkpoint(resume, log=warn) if resume is not None else None
    model_config = _model_config(config, checkpoint)
    settings = _train_settings(ctx, train_config, checkpoint)
    data_dir = _dataset(data_path, tokenizer_path, root)
    tokenizer_path = tokenizer_path or _tokenizer_of(data_dir)
    if output_dir is not None:
        run_dir = output_dir
    elif checkpoint is not None:
        run_dir = checkpoint.path.parent.parent
    else:
        run_dir = runs_dir(root) / new_run_id("pretrain")
    result = run_training(
        model_config, settings, data_dir, run_dir, tokenizer_path=tokenizer_path,
        resume_from=checkpoint.path if checkpoint else None,
    )  # fmt: skip
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.final_metrics.items() if k != "lr")
    if result.status == "cancelled":
        warn(f"stopped at step {result.step}/{result.total_steps}; resume with --resume-from-checkpoint {run_dir}")
        raise typer.Exit(130)
    success(f"trained {result.step} steps: {metrics}; checkpoint {result.last_checkpoint}")


_FLAG_FIELDS = (
    "epochs", "max_steps", "batch_size", "seq_len", "gradient_accumulation_steps", "learning_rate", "warmup_steps",
    "schedule", "optimizer", "precision", "device", "eval_interval", "checkpoint_interval", "seed",
)  # fmt: skip


def _train_settings(ctx: typer.Context, path: Path | None, checkpoint: ckpt.Checkpoint | None) -> TrainConfig:
    """Checkpoint's settings < --train-config file < flags the user typed."""
    data: dict[str, Any] = dict(checkpoint.meta.get("train_config", {})) if checkpoint else {}
    if path is not None:
        if not path.is_file():
            raise LLModelError(f"training config {path} not found")
        try:
            data.update(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise LLModelError(f"{path}:{error.lineno}: malformed JSON ({error.msg})") from None
    params = ctx.params
    for name in (*_FLAG_FIELDS, "compile_"):
        key = name.rstrip("_")
        source = ctx.get_parameter_source(name)
        typed = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
        if typed or key not in data:
            data[key] = params[name]
    return TrainConfig.from_dict(data, source=str(path) if path else "training settings")


def _model_config(path: Path | None, checkpoint: ckpt.Checkpoint | None) -> ModelConfig:
    if path is not None:
        config = ModelConfig.load(path)
        if checkpoint is not None:
            ckpt.check_compatible(checkpoint, config)
        return config
    if checkpoint is not None:
        return checkpoint.model_config
    raise LLModelError("no model config: pass --config PATH (create one with `llmodel create-config --type tiny`)")


def _dataset(paths: list[Path], tokenizer_path: Path | None, root: Path) -> Path:
    """A prepared dataset directory as is; raw files are prepared once and cached in the workspace."""
    if len(paths) == 1 and is_prepared_dataset(paths[0]):
        return paths[0]
    if tokenizer_path is None:
        raise LLModelError("raw --data-path needs --tokenizer-path to tokenize it (or pass a prepared dataset directory)")
    with task_progress("preparing dataset") as progress:
        return prepared_dataset_for(paths, tokenizer_path, root / "datasets", progress=progress, log=warn)


def _tokenizer_of(data_dir: Path) -> Path | None:
    tokenizer = load_dataset_meta(data_dir).tokenizer
    return Path(tokenizer) if tokenizer and Path(tokenizer).exists() else None
