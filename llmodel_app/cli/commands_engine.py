"""``engine start|stop|status``: the workspace's background engine process."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.daemon.record import live_record
from engine.errors import LLModelError
from engine.kinds import CHILD_KINDS
from engine.processes import KILL_WAIT, signal_process, wait_exit
from engine.workspace import workspace_root
from llmodel_app.cli.console import info, out, print_json, success, warn
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
def engine_stop(
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    jobs: Annotated[
        bool,
        typer.Option(
            "--jobs", help="Cancel the jobs too: queued ones at once, running ones after a checkpoint."
        ),
    ] = False,
) -> None:
    """Stop the engine and the model server it started; running jobs go on (the next engine re-attaches to
    them) unless --jobs. Waits for the engine to exit, at most ~20 s (with --jobs, ~85 s)."""
    from engine.client import EngineClient, start_engine
    from engine.daemon.stopping import stop_timeout

    root = workspace_root(workspace)
    record = live_record(root)
    if record is None and jobs and _jobs_left(root):
        record = start_engine(root)  # it re-attaches to the jobs, and so can stop them
        EngineClient(record).wait_ready()
    if record is None:
        info(f"no engine is running for {root}")
        _stop_model_server(root)
        return
    try:
        with EngineClient(record, timeout=5) as client:
            answer = client.shutdown(jobs=jobs)
    except LLModelError:  # an engine that does not answer is asked by signal (its model server still stops)
        answer = {}
        signal_process(record.process, signal.SIGTERM)
    timeout = stop_timeout(jobs)
    if not wait_exit(record.process, timeout):
        signal_process(record.process, signal.SIGKILL)
        wait_exit(record.process, KILL_WAIT)
        warn(f"the engine did not stop within {timeout:.0f} s and was killed")
    server = answer.get("model_server")
    message = f"engine stopped (pid {record.pid})"
    if server:
        message += f" with its model server (pid {server})"
    success(message)
    _stop_model_server(root)
    _report_jobs([j for j in answer.get("jobs", []) if j["kind"] not in CHILD_KINDS], stopped=jobs)


def _jobs_left(root: Path) -> bool:
    """Whether the workspace has jobs that an engine left running or queued."""
    from engine.catalog import CATALOG_FILE
    from llmodel_app.cli.reading import list_runs

    if not (root / CATALOG_FILE).is_file():
        return False
    return bool(list_runs(root, status="running") or list_runs(root, status="queued"))


def _stop_model_server(root: Path) -> None:
    """Stop a model server an engine could not stop (it was killed, or did not stop in time)."""
    from engine.daemon.model_servers import ModelServerManager

    stopped = ModelServerManager(root).stop().get("stopped")
    if stopped:
        success(f"model server stopped (pid {stopped}), which its engine had left running")


def _report_jobs(jobs: list[dict[str, Any]], *, stopped: bool) -> None:
    running = [j for j in jobs if j.get("pid")]
    queued = [j for j in jobs if not j.get("pid")]
    if stopped:
        if jobs:
            info(f"{len(jobs)} job(s) cancelled: {', '.join(j['run_id'] for j in jobs)}")
        return
    if running:
        info("these jobs keep running, and the next engine re-attaches to them:")
        for job in running:
            info(f"  {job['run_id']}  {job['kind']}  pid {job['pid']}")
        info("stop one with `llmodel runs cancel RUN_ID`, or all with `llmodel engine stop --jobs`")
    if queued:
        info(
            f"{len(queued)} queued job(s) start when the engine next runs; "
            "`llmodel engine stop --jobs` cancels them"
        )


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
