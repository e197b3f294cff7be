"""``create-config`` and ``generate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.errors import LLModelError
from llmodel_app.cli.console import info, out, success, warn
from llmodel_app.cli.jobs import WorkspaceOption

PRESET_NAMES = "nano, tiny, small, base, large, xl"


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def create_config(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the config JSON.")],
    type_: Annotated[str, typer.Option("--type", "-t", help=f"Preset: {PRESET_NAMES}.")] = "tiny",
    vocab_size: Annotated[int | None, typer.Option(help="Override the preset's vocabulary size.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a model config from a preset, with its parameter count and memory estimate."""
    from engine.model.config import ModelConfig

    overrides = {"vocab_size": vocab_size} if vocab_size else {}
    config = ModelConfig.from_preset(type_, **overrides)
    if output.exists() and not force:
        raise LLModelError(f"{output} already exists; pass --force to overwrite it")
    config.save(output)
    memory = config.estimate_memory(batch_size=8)
    success(f"wrote {type_} config to {output}")
    info(
        f"{config.num_parameters():,} parameters; training at batch 8 x {config.max_len} needs about "
        f"{_human_bytes(memory['total'])} (weights {_human_bytes(memory['weights'])})"
    )


def default_model(workspace: Path | None) -> Path:
    """The workspace's newest completed run, announced; an error saying what to do when there is none."""
    from engine.workspace import newest_completed_run, workspace_root

    root = workspace_root(workspace)
    run = newest_completed_run(root)
    if run is None:
        raise LLModelError(
            f"no completed run in workspace {root}; train one (`llmodel quickstart`) or pass --model-path"
        )
    info(f"using the newest completed run, {run.name} (pass --model-path to choose another)")
    return run


def generate(
    prompt: Annotated[str, typer.Option(help="Text to continue.")],
    model_path: Annotated[
        Path | None,
        typer.Option(
            help="A checkpoint directory, or a run directory (its latest checkpoint); default: the workspace's newest completed run."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Model config JSON (default: the checkpoint's own).")
    ] = None,
    tokenizer_path: Annotated[
        Path | None, typer.Option(help="Tokenizer directory (default: the one the checkpoint records).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 100,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 is greedy.")] = 0.8,
    top_k: Annotated[int | None, typer.Option(help="Sample among the k most likely tokens.")] = 50,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling mass in (0, 1].")] = 0.95,
    repetition_penalty: Annotated[float, typer.Option(help="Penalty > 1 discourages repeats.")] = 1.0,
    do_sample: Annotated[
        bool, typer.Option("--do-sample/--greedy", help="Sample, or always take the most likely token.")
    ] = True,
    stop: Annotated[list[str] | None, typer.Option(help="Stop when this text appears (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for reproducible sampling.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    adapter: Annotated[
        str | None,
        typer.Option(help="A LoRA adapter (name or folder) applied to the model; default model: its base."),
    ] = None,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
) -> None:
    """Generate text from a trained model (with an adapter, if given), streaming tokens as they come."""
    from engine.generation import SamplingParams
    from engine.generation import generate as run_generation
    from engine.runs.loading import load_for_inference

    # Settings are checked before the model loads: a bad value costs nothing.
    params = SamplingParams(
        max_new_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        do_sample=do_sample,
        stop=list(stop or []),
        seed=seed,
    )
    adapter_dir = None
    if adapter is not None:
        from engine.adapters.files import resolve_adapter
        from engine.runs.merge import base_of
        from engine.workspace import workspace_root

        found = resolve_adapter(adapter, workspace_root(workspace))
        adapter_dir, model_path = found.path, model_path or base_of(found).path
    model_path = model_path or default_model(workspace)
    loaded = load_for_inference(
        model_path,
        config_path=config,
        tokenizer_path=tokenizer_path,
        adapter=adapter_dir,
        device=device,
        log=warn,
    )
    with_adapter = f" + adapter {loaded.adapter}" if loaded.adapter else ""
    info(f"model {loaded.checkpoint.path} (step {loaded.checkpoint.step}){with_adapter} on {loaded.device}")
    out.print(prompt, end="", style="bold", highlight=False)
    results = run_generation(
        loaded.model,
        loaded.tokenizer,
        prompt,
        params,
        on_text=lambda _row, _token, text: out.print(text, end="", highlight=False, markup=False),
    )
    out.print()
    if results[0].truncated_prompt:
        warn(f"the prompt was cut to its last {len(results[0].prompt_tokens)} tokens to fit the context")
    info(f"{len(results[0].tokens)} tokens, finished by {results[0].finish_reason}")
