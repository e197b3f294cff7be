"""``engine start|stop|status``: the workspace's background engine process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.daemon.record import live_record
from engine.processes import terminate
from engine.workspace import workspace_root
from llmodel_app.cli.console import info, out, print_json, success
from llmodel_app.cli.jobs import WorkspaceOption

engine_app = typer.Typer(help="Start, stop and inspect the workspace's engine process.", no_args_is_help=True)
JsonOption = typer.Option("--json", help="Print machine-readable JSON.")


@engine_app.command("start")
def engine_start(
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    max_concurrent_jobs: Annotated[
        int | None, typer.Option(help="Jobs run at once (default 1; more queue).")
    ] = None,
) -> None:
    """Start the engine for a workspace (commands that need it start it on their own)."""
    from engine.client import EngineClient, start_engine

    root = workspace_root(workspace)
    record = live_record(root)
    if record is not None:
        info(f"the engine is already running for {root} (pid {record.pid}, {record.url})")
        return
    record = start_engine(root, max_concurrent_jobs=max_concurrent_jobs)
    EngineClient(record).wait_ready()
    success(f"engine started for {root} (pid {record.pid}, {record.url})")


@engine_app.command("stop")
def engine_stop(workspace: Annotated[Path | None, WorkspaceOption] = None) -> None:
    """Stop the engine; running jobs go on and the next engine re-attaches to them."""
    from engine.client import EngineClient

    root = workspace_root(workspace)
    record = live_record(root)
    if record is None:
        info(f"no engine is running for {root}")
        return
    try:
        with EngineClient(record, timeout=5) as client:
            jobs = client.shutdown().get("jobs", [])
    except Exception:  # an engine that does not answer is stopped by signal below
        jobs = []
    terminate(record.process)
    running = [j for j in jobs if j.get("pid")]
    note = f"; {len(running)} running job(s) go on and a new engine will re-attach" if running else ""
    success(f"engine stopped (pid {record.pid}){note}")


@engine_app.command("status")
def engine_status(
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Show whether the engine runs, where it listens, and its active jobs."""
    from engine.client import EngineClient

    root = workspace_root(workspace)
    record = live_record(root)
    if record is None:
        if as_json:
            print_json({"running": False, "workspace": str(root)})
        else:
            out.print(f"no engine is running for {root}")
        return
    with EngineClient(record, timeout=5) as client:
        jobs = client.workspace()["jobs"]
    if as_json:
        print_json(
            {"running": True, "workspace": str(root), "pid": record.pid, "url": record.url, "jobs": jobs}
        )
        return
    out.print(f"engine pid {record.pid} at {record.url} for {root}")
    for job in jobs:
        out.print(f"  {job['run_id']}  {job['kind']}  {job['status']}  pid {job['pid'] or '-'}")
