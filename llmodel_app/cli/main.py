"""The ``llmodel`` command: Typer subcommands over the engine library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.errors import LLModelError
from llmodel_app.cli import (
    commands_data,
    commands_engine,
    commands_evaluate,
    commands_evolve,
    commands_finetune,
    commands_model,
    commands_runs,
    commands_serve,
    commands_train,
    commands_workspace,
    quickstart,
)
from llmodel_app.cli.console import err

app = typer.Typer(
    name="llmodel",
    help="LLModel: build, train, generate with and serve transformer language models from scratch.",
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("create-config")(commands_model.create_config)
app.command("generate")(commands_model.generate)
app.command("pretrain")(commands_train.pretrain)
app.command("finetune")(commands_finetune.finetune)
app.command("train", help="Alias of `finetune`.")(commands_finetune.finetune)
app.command("lora-finetune")(commands_finetune.lora_finetune)
app.command("evaluate")(commands_evaluate.evaluate)
app.command("benchmark")(commands_evaluate.benchmark)
app.command("quickstart")(quickstart.quickstart)
app.command("serve")(commands_serve.serve)
app.command("api")(commands_serve.api)
app.add_typer(commands_data.tokenizer_app, name="tokenizer")
app.add_typer(commands_data.data_app, name="data")
app.add_typer(commands_workspace.workspace_app, name="workspace")
app.add_typer(commands_runs.runs_app, name="runs")
app.add_typer(commands_engine.engine_app, name="engine")
app.add_typer(commands_finetune.adapters_app, name="adapters")
app.add_typer(commands_finetune.lora_app, name="lora")
app.add_typer(commands_evolve.evolve_app, name="evolve")


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option(
            help="Workspace the workbench opens (default: $LLMODEL_WORKSPACE, the one chosen by `workspace use`, or ./workspaces/default)."
        ),
    ] = None,
) -> None:
    """Without a subcommand, open the workbench (the Textual TUI)."""
    if ctx.invoked_subcommand is None:
        from engine.workspace import workspace_root
        from llmodel_app.tui.app import run_workbench  # Textual loads only when the workbench opens

        run_workbench(workspace_root(workspace))


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 1, never a traceback."""
    try:
        app()  # standalone: Typer reports usage errors itself and exits with their status
    except LLModelError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
