"""``finetune`` (alias ``train``), ``lora-finetune``, ``adapters list|show|remove`` and ``lora merge``.

Fine-tuning runs are engine jobs like pretraining: live progress, ``--detach``, Ctrl-C to cancel or detach,
``runs resume`` after a cancel or a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from engine.errors import LLModelError
from engine.specs import finetune_spec
from engine.workspace import workspace_root
from llmodel_app.cli import training_options as opts
from llmodel_app.cli.console import info, out, print_json, success
from llmodel_app.cli.jobs import DetachOption, WorkspaceOption, check_outcome, connect, run_job
from llmodel_app.cli.option_groups import grouped_command
from llmodel_app.cli.reading import read

DEFAULTS = opts.DEFAULTS

adapters_app = typer.Typer(help="List, inspect and remove the workspace's adapters.", no_args_is_help=True)
lora_app = typer.Typer(help="Work with LoRA adapters (merge one into its base).", no_args_is_help=True)

ModelPath = Annotated[
    Path, typer.Option(help="The base: a checkpoint directory, or a run directory (its latest).")
]
DataPath = Annotated[
    list[Path] | None,
    typer.Option(
        help="SFT files: JSONL with prompt/response, prompt/completion, Alpaca, OpenAI messages, LMSYS "
        "conversation or ShareGPT conversations, or plain text (continued pretraining). Default: the embedded "
        "instruction set built from the standard library."
    ),
]
ValDataPath = Annotated[
    list[Path] | None, typer.Option(help="Validation files (default: 5% of --data-path held out).")
]
Packing = Annotated[
    bool, typer.Option("--packing", help="Pack short examples into full windows (no cross-attention).")
]
TrainOnInputs = Annotated[
    bool,
    typer.Option(
        "--train-on-inputs", help="Also train on the prompt tokens (default: assistant turns only)."
    ),
]
InputFormat = Annotated[str, typer.Option(help="auto, text, jsonl, chat or hf.")]
AdapterName = Annotated[
    str | None, typer.Option(help="Name of the adapter a LoRA run writes (default: the run id).")
]
Rank = Annotated[int, typer.Option(help="LoRA rank r.")]
Alpha = Annotated[float, typer.Option(help="LoRA alpha: the update is scaled by alpha / r.")]
Dropout = Annotated[float, typer.Option(help="Dropout on the LoRA branch's input.")]
Targets = Annotated[
    str,
    typer.Option(
        help="Comma-separated projections (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) or all-linear."
    ),
]


@dataclass
class BaseArgs:
    """The model fine-tuned and its data."""

    model_path: ModelPath
    data_path: DataPath = None
    val_data_path: ValDataPath = None
    config: Annotated[
        Path | None, typer.Option(help="Model config JSON; must match the base checkpoint's.")
    ] = None
    tokenizer_path: Annotated[Path | None, typer.Option(help="Tokenizer (default: the base's).")] = None


@dataclass
class MethodArgs:
    method: Annotated[str, typer.Option(help="full, lora or qlora.")] = "full"


@dataclass
class LoraArgs:
    lora_rank: Rank = 16
    lora_alpha: Alpha = 16.0
    lora_dropout: Dropout = 0.05
    target_modules: Targets = "q_proj,v_proj"


@dataclass
class QuantizeArgs:
    qlora: Annotated[bool, typer.Option("--qlora", help="QLoRA: keep the frozen base in 4-bit NF4.")] = False
    quantize: Annotated[
        str | None, typer.Option(help="Quantize the frozen base: nf4 (the same as --qlora).")
    ] = None

    def method(self) -> str:
        if self.quantize not in (None, "nf4"):
            raise LLModelError(
                f"unknown --quantize {self.quantize!r}; the frozen base can be quantized to nf4"
            )
        return "qlora" if self.qlora or self.quantize == "nf4" else "lora"


@dataclass
class DataArgs:
    packing: Packing = False
    train_on_inputs: TrainOnInputs = False
    input_format: InputFormat = "auto"
    adapter_name: AdapterName = None


@dataclass
class TrainArgs:
    """Training flags (read through the command's context: a typed flag wins over the --train-config file)."""

    epochs: opts.Epochs = DEFAULTS.epochs
    max_steps: opts.MaxSteps = None
    batch_size: opts.BatchSize = 4
    seq_len: opts.SeqLen = None
    gradient_accumulation_steps: opts.Accumulation = DEFAULTS.gradient_accumulation_steps
    learning_rate: Annotated[
        float, typer.Option(help="Peak learning rate (default: 2e-5 full, 2e-4 LoRA).")
    ] = 2e-5
    warmup_steps: opts.Warmup = 10
    schedule: opts.Schedule = DEFAULTS.schedule
    optimizer: opts.Optimizer = DEFAULTS.optimizer
    precision: opts.Precision = DEFAULTS.precision
    device: opts.Device = DEFAULTS.device
    compile_: opts.Compile = False
    eval_interval: opts.EvalInterval = 50
    checkpoint_interval: opts.CheckpointInterval = 100
    eval_tasks: opts.EvalTasks = None
    seed: opts.Seed = DEFAULTS.seed
    train_config: opts.TrainConfigFile = None
    resume_from_checkpoint: opts.ResumeFrom = None


@dataclass
class LoraTrainArgs(TrainArgs):
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4


@dataclass
class JobArgs:
    workspace: Annotated[Path | None, WorkspaceOption] = None
    detach: Annotated[bool, DetachOption] = False


def _finetune(
    ctx: typer.Context,
    base: BaseArgs,
    method: MethodArgs,
    lora: LoraArgs,
    data: DataArgs,
    train: TrainArgs,
    job: JobArgs,
) -> None:
    _submit(ctx, base, method.method, lora, data, train, job)


def _lora_finetune(
    ctx: typer.Context,
    base: BaseArgs,
    lora: LoraArgs,
    quantize: QuantizeArgs,
    data: DataArgs,
    train: TrainArgs,
    job: JobArgs,
) -> None:
    _submit(ctx, base, quantize.method(), lora, data, train, job)


finetune = grouped_command(
    _finetune,
    (BaseArgs, MethodArgs, LoraArgs, DataArgs, TrainArgs, JobArgs),
    name="finetune",
    doc="Fine-tune a trained model on SFT data: all weights (default), LoRA or QLoRA (``--method``).",
)
lora_finetune = grouped_command(
    _lora_finetune,
    (BaseArgs, LoraArgs, QuantizeArgs, DataArgs, LoraTrainArgs, JobArgs),
    name="lora_finetune",
    doc="Train a LoRA adapter (or, with --qlora, a QLoRA one) over a frozen base model.",
)


def _submit(
    ctx: typer.Context,
    base: BaseArgs,
    method: str,
    lora: LoraArgs,
    data: DataArgs,
    train: TrainArgs,
    job: JobArgs,
) -> None:
    """The one fine-tuning command: the spec of the flags typed, submitted, or resumed into its own run."""
    from engine.finetune.config import FinetuneSettings, training_defaults
    from engine.model.config import ModelConfig
    from engine.runs.checkpoint import check_compatible, resolve_checkpoint

    root = workspace_root(job.workspace)
    settings = FinetuneSettings.from_dict(  # a bad rank, target or method fails here, before anything runs
        {
            "method": method,
            "lora_rank": lora.lora_rank,
            "lora_alpha": lora.lora_alpha,
            "lora_dropout": lora.lora_dropout,
            "target_modules": _targets(lora.target_modules),
            "packing": data.packing,
            "train_on_inputs": data.train_on_inputs,
            "input_format": data.input_format,
            "adapter_name": data.adapter_name,
        }
    )
    checkpoint = resolve_checkpoint(base.model_path)
    _ = checkpoint.weights_sha256  # a base that records no hash of its weights fails here, before submitting
    if base.config is not None:
        check_compatible(checkpoint, ModelConfig.load(base.config))
    resumed = opts.resume_checkpoint(train.resume_from_checkpoint, root)
    own_run = None
    if resumed is not None:
        own_run = opts.run_in_workspace(resumed.path, root)
        if own_run is None:
            raise LLModelError(
                f"{resumed.path} is not a run of workspace {root}; resume a fine-tuning run of this workspace"
            )
    resumed_settings = resumed.meta.get("train_config") if resumed else None
    training = opts.train_settings(ctx, train.train_config, resumed_settings, training_defaults(method))
    spec = finetune_spec(
        checkpoint.path,
        settings,
        training,
        workspace=root,
        data_paths=base.data_path or (),
        val_paths=base.val_data_path or (),
        tokenizer_path=base.tokenizer_path,
    )
    result = check_outcome(run_job(job.workspace, spec, detach=job.detach, resume_run=own_run))
    if not result:
        return
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.get("metrics", {}).items() if k != "lr")
    success(f"fine-tuned {result['step']} steps: {metrics}")
    info(result.get("data", ""))
    if result.get("adapter"):
        name = Path(result["adapter"]).name
        success(f"adapter {name} saved to {result['adapter']}")
        info(
            f'try it: llmodel generate --adapter {name} --prompt "..."  ·  serve it: llmodel serve {checkpoint.path} '
            f"--adapter {name}"
        )
    else:
        info(f"checkpoint {result.get('checkpoint')}")


def _targets(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


# -- adapters ---------------------------------------------------------------------------------------------------


@adapters_app.command("list")
def adapters_list(
    base: Annotated[str | None, typer.Option(help="Only adapters of this base checkpoint directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
) -> None:
    """The workspace's adapters with their base, method, rank and targets."""
    from rich.table import Table

    rows = read(workspace_root(workspace), lambda reader: reader.adapters(base))
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no adapters yet; train one with `llmodel lora-finetune`")
        return
    table = Table("name", "method", "rank", "alpha", "targets", "base", "val loss")
    for row in rows:
        loss = (row.get("metrics") or {}).get("val_loss")
        table.add_row(
            row["name"],
            row["method"],
            str(row["rank"]),
            f"{row['alpha']:g}",
            ",".join(row["targets"]),
            row["base_checkpoint"],
            f"{loss:.4f}" if loss is not None else "-",
        )
    out.print(table)


@adapters_app.command("show")
def adapters_show(
    name: Annotated[str, typer.Argument(help="Adapter name (see `llmodel adapters list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
) -> None:
    """Everything recorded about one adapter."""
    row = read(workspace_root(workspace), lambda reader: reader.adapter(name))
    if as_json:
        print_json(row)
        return
    out.print(f"[bold]{row['name']}[/bold]  {row['method']}  rank {row['rank']}  alpha {row['alpha']:g}")
    out.print(f"folder   {row['path']}")
    out.print(f"base     {row['base_checkpoint']}  (sha256 {row['base_sha256'][:12]}…)")
    out.print(f"targets  {', '.join(row['targets'])}")
    out.print(f"data     {row.get('dataset') or '-'}   run {row.get('run_id') or '-'}")
    metrics = row.get("metrics") or {}
    if metrics:
        out.print("metrics  " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))


@adapters_app.command("remove")
def adapters_remove(
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    workspace: Annotated[Path | None, WorkspaceOption] = None,
) -> None:
    """Remove an adapter from the catalog and delete its folder in the workspace."""
    with connect(workspace) as client:
        client.remove_adapter(name)
    success(f"removed adapter {name}")


@lora_app.command("merge")
def lora_merge(
    adapter: Annotated[str, typer.Option(help="Adapter name or directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the merged checkpoint.")],
    model_path: Annotated[
        Path | None, typer.Option(help="The base (default: the one the adapter records).")
    ] = None,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
) -> None:
    """Fold an adapter into its base: one full checkpoint whose logits equal base + adapter."""
    from engine.adapters.files import resolve_adapter
    from engine.runs.checkpoint import resolve_checkpoint
    from engine.runs.merge import merge_to_checkpoint

    if output.exists() and any(output.iterdir()):
        raise LLModelError(f"{output} exists and is not empty; choose a new folder")
    found = resolve_adapter(adapter, workspace_root(workspace))
    base = resolve_checkpoint(model_path) if model_path else None
    merged = merge_to_checkpoint(found, output, base)
    success(f"merged {found.name} into {merged.path}; use it with `llmodel generate --model-path {output}`")
