"""``runs list|show|compare|logs|cancel|resume|remove``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.workspace import workspace_root
from llmodel_app.cli.console import out, print_json, success
from llmodel_app.cli.jobs import WorkspaceOption, check_outcome, connect, follow
from llmodel_app.cli.reading import list_runs, read
from llmodel_app.cli.runs_table import num, runs_table, when

runs_app = typer.Typer(help="List, compare, follow, cancel, resume and remove runs.", no_args_is_help=True)
RunId = Annotated[str, typer.Argument(help="Run id (see `llmodel runs list`).")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Workspace = Annotated[Path | None, WorkspaceOption]


@runs_app.command("list")
def runs_list(
    kind: Annotated[
        str | None, typer.Option(help="Only runs of this kind (pretrain, tokenizer, ...).")
    ] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many (newest first).")] = None,
    as_json: Json = False,
    workspace: Workspace = None,
) -> None:
    """The workspace's runs, newest first, with their latest metrics."""
    rows = list_runs(workspace_root(workspace), kind=kind, status=status, limit=limit)
    if as_json:
        print_json(rows)
        return
    out.print(runs_table(rows))


@runs_app.command("show")
def runs_show(run_id: RunId, as_json: Json = False, workspace: Workspace = None) -> None:
    """Everything recorded about one run: status, config, metrics, checkpoints, samples."""
    run = read(workspace_root(workspace), lambda reader: reader.run(run_id))
    if as_json:
        print_json(run)
        return
    out.print(
        f"[bold]{run['id']}[/bold]  {run['kind']}  {run['status']}  step {run.get('step') or 0}/{run.get('total_steps') or '-'}"
    )
    out.print(f"folder   {run['run_dir']}")
    out.print(f"created  {when(run.get('created'))}   finished {when(run.get('finished'))}")
    if run.get("error"):
        out.print(f"[red]error[/red]    {run['error']}")
    metrics = run.get("metrics") or {}
    if metrics:
        out.print("metrics  " + "  ".join(f"{k} {num(v)}" for k, v in metrics.items()))
    for checkpoint in run.get("checkpoints", []):
        out.print(
            f"checkpoint step {checkpoint['step']}{' (best)' if checkpoint.get('best') else ''}  {checkpoint['path']}"
        )
    for sample in run.get("samples", [])[-3:]:
        out.print(f"sample @ {sample['step']}: {sample['text']!r}", markup=False)
    evaluations = read(workspace_root(workspace), lambda reader: reader.run_evaluations(run_id))
    if evaluations:
        from llmodel_app.cli.commands_evaluate import results_table

        out.print(results_table(_as_reports(evaluations)))


def _as_reports(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Catalog evaluation rows grouped as the results table shows them (one entry per task and checkpoint)."""
    grouped: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["task"], row.get("checkpoint"), row.get("step"))
        entry = grouped.setdefault(key, {"task": row["task"], "scores": [], "baseline": {}})
        entry["scores"].append(
            {"metric": row["metric"], "value": row["value"], "stderr": row["stderr"], "n": row["n"]}
        )
        if row.get("chance") is not None:
            entry["baseline"][row["metric"]] = row["chance"]
    return list(grouped.values())


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    as_json: Json = False,
    workspace: Workspace = None,
) -> None:
    """Config differences and final metrics of several runs side by side."""
    result = read(workspace_root(workspace), lambda reader: reader.compare(run_ids))
    if as_json:
        print_json(result)
        return
    runs = list(result["runs"].values())
    table = Table(box=None, header_style="bold")
    table.add_column("", no_wrap=True)  # dotted config keys stay whole; run ids fold on narrow terminals
    for run_id in result["runs"]:
        table.add_column(run_id, overflow="fold")
    for key in result["differing"]:
        table.add_row(key, *[str(r["config"].get(key, "-")) for r in runs])
    names = sorted({k for r in runs for k in (r.get("metrics") or {})})
    for name in names:
        table.add_row(f"[bold]{name}[/bold]", *[num((r.get("metrics") or {}).get(name)) for r in runs])
    evaluated = sorted({k for r in runs for k in (r.get("evaluations") or {})})
    for name in evaluated:  # task/metric: the newest evaluation of each run or its checkpoints
        table.add_row(
            f"[bold cyan]{name}[/bold cyan]", *[num((r.get("evaluations") or {}).get(name)) for r in runs]
        )
    out.print(table)


@runs_app.command("logs")
def runs_logs(
    run_id: RunId,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep following the run live until it ends.")
    ] = False,
    tail: Annotated[int, typer.Option(help="Lines of the log to show.")] = 50,
    workspace: Workspace = None,
) -> None:
    """Show a run's log; with --follow, its live progress until it ends."""
    with connect(workspace) as client:
        for line in client.logs(run_id, tail)["lines"]:
            out.print(line, highlight=False, markup=False)
        if follow_:
            offset = client.run(run_id)["event_offset"]
            check_outcome(follow(client, run_id, offset))


@runs_app.command("cancel")
def runs_cancel(run_id: RunId, workspace: Workspace = None) -> None:
    """Cancel a queued or running job; a training run stops at a checkpoint it can resume from."""
    with connect(workspace) as client:
        status = client.cancel(run_id)["status"]
    success(f"run {run_id}: {status}")


@runs_app.command("resume")
def runs_resume(
    run_id: RunId,
    detach: Annotated[bool, typer.Option("--detach", help="Return once queued.")] = False,
    workspace: Workspace = None,
) -> None:
    """Continue a cancelled or failed training run from its last complete checkpoint."""
    with connect(workspace) as client:
        offset = client.resume(run_id)["offset"]
        if detach:
            success(f"run {run_id} queued to resume")
            return
        result = check_outcome(follow(client, run_id, offset))
    if result:
        success(f"run {run_id} finished at step {result.get('step')}")


@runs_app.command("remove")
def runs_remove(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids to delete with their folders.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    workspace: Workspace = None,
) -> None:
    """Delete runs: their catalog records and their folders."""
    if not yes and not typer.confirm(f"Delete {len(run_ids)} run(s) and their checkpoints?"):
        raise typer.Exit(1)
    with connect(workspace) as client:
        for run_id in run_ids:
            client.remove_run(run_id)
            success(f"removed {run_id}")
