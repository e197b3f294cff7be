"""``workspace create|list|use|show|remove``."""

from __future__ import annotations

import shutil
from typing import Annotated

import typer

from engine.catalog import Catalog
from engine.daemon.record import live_record
from engine.errors import LLModelError
from engine.fileio import write_text_atomic
from engine.workspace import CURRENT_FILE, create_layout, named_workspace, workspace_root, workspaces_dir
from llmodel_app.cli.console import out, print_json, success
from llmodel_app.cli.reading import read

workspace_app = typer.Typer(help="Create, choose and inspect workspaces.", no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="Workspace name (letters, digits, '.', '_', '-').")]


@workspace_app.command("create")
def workspace_create(name: Name) -> None:
    """Create a workspace under ./workspaces with its folders and catalog."""
    root = named_workspace(name)
    if (root / "workspace.duckdb").exists():
        raise LLModelError(f"workspace {name} already exists at {root}")
    create_layout(root)
    Catalog.open(root).close()
    success(f"created workspace {name} at {root}; make it the default with `llmodel workspace use {name}`")


@workspace_app.command("list")
def workspace_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the workspaces under ./workspaces; the current one is marked."""
    current = workspace_root()
    base = workspaces_dir()
    names = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    rows = [{"name": n, "path": str(base / n), "current": (base / n).resolve() == current} for n in names]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        out.print(f"{'*' if row['current'] else ' '} {row['name']}")
    if not rows:
        out.print("no workspaces yet; `llmodel workspace create NAME` or `llmodel quickstart` makes one")


@workspace_app.command("use")
def workspace_use(name: Name) -> None:
    """Make a workspace the default for later commands (unless --workspace or LLMODEL_WORKSPACE say otherwise)."""
    root = named_workspace(name)
    if not root.is_dir():
        raise LLModelError(f"no workspace named {name}; create it with `llmodel workspace create {name}`")
    write_text_atomic(workspaces_dir() / CURRENT_FILE, name + "\n")
    success(f"now using workspace {name}")


@workspace_app.command("show")
def workspace_show(
    name: Annotated[str | None, typer.Argument(help="Workspace name (default: the current one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Summarise a workspace: its configs, tokenizers, datasets and runs by status."""
    root = named_workspace(name) if name else workspace_root()
    if not root.is_dir():
        raise LLModelError(f"no workspace at {root}")
    summary = read(root, lambda reader: reader.summary())
    record = live_record(root)
    info = {"path": str(root), "engine": record.url if record else None, **summary}
    if as_json:
        print_json(info)
        return
    out.print(f"[bold]{root}[/bold]  engine: {info['engine'] or 'not running'}")
    for key in ("configs", "tokenizers", "datasets"):
        out.print(f"  {key:11s} {summary.get(key, 0)}")
    runs = summary.get("runs", {})
    out.print(
        f"  runs        {summary.get('runs_total', 0)}  "
        + "  ".join(f"{k} {v}" for k, v in runs.items() if v)
    )


@workspace_app.command("remove")
def workspace_remove(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a workspace and everything in it."""
    root = named_workspace(name)
    if not root.is_dir():
        raise LLModelError(f"no workspace named {name}")
    if live_record(root) is not None:
        raise LLModelError(
            f"workspace {name} has a running engine; stop it first with `llmodel engine stop --workspace {root}`"
        )
    if not yes and not typer.confirm(f"Delete workspace {name} at {root} and all its runs?"):
        raise typer.Exit(1)
    shutil.rmtree(root)
    current = workspaces_dir() / CURRENT_FILE
    if current.is_file() and current.read_text(encoding="utf-8").strip() == name:
        current.unlink()
    success(f"removed workspace {name}")
