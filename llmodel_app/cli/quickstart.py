"""``quickstart``: the whole pipeline on the embedded default corpus, no download."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from engine.workspace import workspace_root
from llmodel_app.cli.console import err, info, out, success
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
            "--chat",
            help="Then fine-tune a chat adapter (LoRA) on the embedded instruction set, ~1 minute; a completed "
            "quickstart model of the same settings is reused.",
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
    chat_result = result.get("chat")
    if chat_result and chat_result.get("reused"):
        err.print(
            f"[dim]·[/dim] reused the completed quickstart model {chat_result['reused']} (same settings): "
            "only fine-tuned",
            highlight=False,
            soft_wrap=True,
        )
    success(
        f"validation loss {result['val_loss']:.3f} nats/token vs {result['unigram_entropy']:.3f} for a unigram "
        f"model (perplexity {math.exp(result['val_loss']):,.1f})"
    )
    for sample in result["samples"]:
        out.rule(style="dim")
        out.print(sample, highlight=False, markup=False)
    out.rule(style="dim")
    if chat_result:
        _show_chat(chat_result)
    err.print(
        f"Generate more: [bold]llmodel generate --model-path {result['run_dir']} --prompt 'def '[/bold]\n"
        "Open the workbench: [bold]llmodel[/bold]"
    )


def _show_chat(chat: dict[str, Any]) -> None:
    """The adapter's answer to a held-out instruction, then one line: did it match, and how the adapter and the
    base model score on every held-out instruction."""
    info(f"the chat adapter {chat['adapter']} answers a held-out instruction:")
    out.print(
        f"<|user|>\n{chat['instruction']}\n<|assistant|>\n{chat['reply']}", highlight=False, markup=False
    )
    out.rule(style="dim")
    heldout = chat["heldout"]
    adapter, base = heldout["adapter"], heldout["base"]
    scores = (
        f"on the {adapter['documents']} held-out instructions ({heldout['task']}) the adapter scores "
        f"exact match {adapter['exact_match']:.1%} and BLEU {adapter['bleu']:.1f}, "
        f"the base model {base['exact_match']:.1%} and {base['bleu']:.1f}"
    )
    if chat["matched"]:
        verdict = f"[green]✓[/green] the answer matches the expected one — {escape(scores)}"
    else:
        verdict = f"[yellow]✗[/yellow] the answer does not match the expected {escape(chat['expected'])} — {escape(scores)}"
    err.print(verdict, highlight=False, soft_wrap=True)
    err.print(f"Chat with it: [bold]llmodel generate --adapter {chat['adapter']} --prompt '...'[/bold]")
