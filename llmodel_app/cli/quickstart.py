"""``quickstart``: the whole pipeline on the embedded default corpus, no download."""

from __future__ import annotations

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
    from engine.specs import quickstart_spec

    spec = quickstart_spec(
        workspace_root(workspace),
        max_steps=max_steps,
        preset=preset,
        corpus_mb=corpus_mb,
        vocab_size=vocab_size,
        chat=chat,
        chat_steps=chat_steps,
    )
    result = check_outcome(run_job(workspace, spec, detach=detach))
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
    answer = result.get("chat")
    if answer:
        success(
            f"the chat adapter {answer['adapter']} answers a held-out instruction (expected: {answer['expected']}):"
        )
        out.print(
            f"<|user|>\n{answer['instruction']}\n<|assistant|>\n{answer['reply']}",
            highlight=False,
            markup=False,
        )
        out.rule(style="dim")
        err.print(f"Chat with it: [bold]llmodel generate --adapter {answer['adapter']} --prompt '...'[/bold]")
    err.print(
        f"Generate more: [bold]llmodel generate --model-path {result['run_dir']} --prompt 'def '[/bold]\n"
        "Open the workbench: [bold]llmodel[/bold]"
    )
