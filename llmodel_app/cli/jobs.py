"""Submitting a job to the engine and following it with a live display; Ctrl-C offers cancel or detach."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engine.errors import LLModelError
from engine.workspace import workspace_root
from llmodel_app.cli.console import info, success, warn
from llmodel_app.cli.progress import JobDisplay

if TYPE_CHECKING:  # httpx loads only for commands that talk to the engine
    from engine.client import EngineClient
    from engine.specs import JobSpec

WorkspaceOption = typer.Option(
    help="Workspace folder (default: $LLMODEL_WORKSPACE, the one chosen by `workspace use`, or ./workspaces/default)."
)
DetachOption = typer.Option(
    "--detach", help="Return as soon as the job is queued; follow it later with `llmodel runs logs`."
)


def connect(workspace: Path | None) -> EngineClient:
    """A client of the workspace's engine, started if needed."""
    from engine.client import EngineClient

    return EngineClient.connect(workspace_root(workspace))


def run_job(
    workspace: Path | None, spec: JobSpec, *, detach: bool, resume_run: str | None = None
) -> dict[str, Any]:
    """Submit a job — or, with ``resume_run``, queue that run of the workspace again with ``spec`` — and, unless
    ``detach``, follow it to its end; returns the final status event."""
    with connect(workspace) as client:
        if resume_run is not None:
            run_id, offset = resume_run, client.resume(resume_run, spec)["offset"]
            if detach:
                success(f"queued run {run_id} to resume")
                return {"status": "queued", "run_id": run_id}
        else:
            run_id, offset = client.submit_job(spec), 0
            if detach:
                info(f"queued {spec.kind} job {run_id}; follow it with `llmodel runs logs {run_id} --follow`")
                return {"status": "queued", "run_id": run_id}
            info(f"{spec.kind} job {run_id}")
        return follow(client, run_id, offset)


def follow(client: EngineClient, run_id: str, offset: int = 0) -> dict[str, Any]:
    """Show the run's events until it ends. Ctrl-C asks whether to cancel the job or detach from it."""
    final: dict[str, Any] = {"status": "unknown", "run_id": run_id}
    with JobDisplay() as display:
        while True:
            try:
                for event in client.follow(run_id, offset):
                    offset += 1
                    if event.get("type") == "end":
                        final["status"] = event["status"]
                        return _finish(client, run_id, final)
                    if event.get("type") == "status" and event.get("final"):
                        final = {**event, "run_id": run_id}
                    display.on_event(event)
                return _finish(client, run_id, final)
            except KeyboardInterrupt:
                if _ask_cancel(display):
                    client.cancel(run_id)
                    display.print("[yellow]cancelling: the job checkpoints and stops[/yellow]")
                    continue
                display.print(
                    f"detached; the job goes on. Follow it again with `llmodel runs logs {run_id} --follow`"
                )
                return {"status": "detached", "run_id": run_id}


def _ask_cancel(display: JobDisplay) -> bool:
    if not sys.stdin.isatty():
        return False
    display.pause()
    try:
        answer = typer.prompt("Cancel the job or detach from it? [c]ancel / [d]etach", default="d")
    except (KeyboardInterrupt, typer.Abort):
        answer = "d"
    display.resume()
    return answer.strip().lower().startswith("c")


def _finish(client: EngineClient, run_id: str, final: dict[str, Any]) -> dict[str, Any]:
    if final.get("status") == "failed" and not final.get("error"):
        final["error"] = client.run(run_id).get("error")
    return final


def check_outcome(final: dict[str, Any]) -> dict[str, Any]:
    """Turn a failed or cancelled job into the CLI's exit: one error line, or a cancel notice."""
    status = final.get("status")
    if status in ("failed", "failed_resumable"):
        raise LLModelError(
            final.get("error") or f"job {final['run_id']} failed; see `llmodel runs logs {final['run_id']}`"
        )
    if status == "cancelled":
        warn(
            f"job {final['run_id']} was cancelled; resume a training run with `llmodel runs resume {final['run_id']}`"
        )
        raise typer.Exit(130)
    return final.get("result") or {}
