"""``quickstart``: the whole pipeline on the embedded default corpus, no download."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated

import typer

from engine.workspace import workspace_root
from llmodel_app.cli.console import err, out, success
from llmodel_app.cli.jobs import DetachOption, WorkspaceOption, check_outcome, run_job


def quickstart(
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Training steps (default: the tuned quickstart schedule).")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="Use a model preset's shape instead of the tuned quickstart shape (e.g. nano)."),
    ] = None,
    corpus_mb: Annotated[
        float | None, typer.Option(help="Use only this many MB of the corpus (default: all of it).")
    ] = None,
    vocab_size: Annotated[int | None, typer.Option(help="Tokenizer vocabulary size.")] = None,
    chat: Annotated[
        bool,
        typer.Option(
            "--chat", help="Then fine-tune a chat adapter (LoRA) on the embedded instruction set, ~1 minute."
        ),
    ] = False,
    chat_steps: Annotated[int | None, typer.Option(help="Fine-tuning steps of the chat stage.")] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Build a corpus from Python's standard library, train a tokenizer and a small model, and generate text."""
    from engine.model.config import ModelConfig
    from engine.pipelines.quickstart import QuickstartOptions

    options = QuickstartOptions()
    if corpus_mb is not None:
        options.corpus_bytes = int(corpus_mb * 1_000_000)
    if vocab_size is not None:
        options.vocab_size = vocab_size
    options.chat = chat
    if chat_steps is not None:
        options.chat_training["max_steps"] = chat_steps
        for key in ("eval_interval", "checkpoint_interval", "sample_interval"):
            options.chat_training[key] = min(options.chat_training[key], chat_steps)
    if preset is not None:
        shape = ModelConfig.from_preset(preset).to_dict()
        options.model = {k: shape[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "max_len")}
        options.training["seq_len"] = min(options.training["seq_len"], shape["max_len"])
    if max_steps is not None:
        options.training["max_steps"] = max_steps
        for key in ("eval_interval", "checkpoint_interval", "sample_interval", "attention_interval"):
            options.training[key] = min(options.training.get(key, max_steps), max_steps)
        options.training["warmup_steps"] = min(options.training["warmup_steps"], max_steps // 10)
    root = workspace_root(workspace)
    spec = {"workspace": str(root), "options": dataclasses.asdict(options)}
    result = check_outcome(run_job(workspace, "quickstart", spec, detach=detach))
    if not result:
        return
    success(
        f"validation loss {result['val_loss']:.3f} nats/token vs {result['unigram_entropy']:.3f} for a unigram "
        f"model (perplexity {math.exp(result['val_loss']):,.1f})"
    )
    for sample in result["samples"]:
        out.rule(style="dim")
        out.print(sample, highlight=False, markup=False)
    out.rule(style="dim")
    chat = result.get("chat")
    if chat:
        success(
            f"the chat adapter {chat['adapter']} answers a held-out instruction (expected: {chat['expected']}):"
        )
        out.print(
            f"<|user|>\n{chat['instruction']}\n<|assistant|>\n{chat['reply']}", highlight=False, markup=False
        )
        out.rule(style="dim")
        err.print(f"Chat with it: [bold]llmodel generate --adapter {chat['adapter']} --prompt '...'[/bold]")
    err.print(
        f"Generate more: [bold]llmodel generate --model-path {result['run_dir']} --prompt 'def '[/bold]\n"
        "Open the workbench: [bold]llmodel[/bold]"
    )
