"""How the engine stops: what it does with the processes it owns, and how long that may take.

A stop, whether asked through the API (``llmodel engine stop``), by SIGTERM/SIGINT, or because the workspace folder
went away, ends the event streams first (so the HTTP server's graceful shutdown has nothing to wait for), then
stops the model server it started. Jobs run in their own session and keep running by design (the next engine
re-attaches to them) unless the stop asks for them too: then queued jobs are cancelled and running ones are asked
to checkpoint and stop, and are killed after a grace period. An engine whose workspace folder was deleted or
replaced kills its jobs at once (there is nowhere left to save them) and writes nothing more at that path.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.daemon.model_servers import SERVER_GRACE
from engine.daemon.supervisor import CANCEL_GRACE
from engine.processes import KILL_WAIT

HTTP_GRACE = 2  # seconds open requests have to finish once the engine stops listening
MARGIN = 3.0  # closing the catalog, the interpreter's exit


def stop_timeout(stop_jobs: bool) -> float:
    """The longest a stop may take, from the request to the engine's exit, with or without its jobs."""
    server = SERVER_GRACE + KILL_WAIT  # SIGTERM, then SIGKILL and the wait for it
    jobs = CANCEL_GRACE + KILL_WAIT if stop_jobs else 0.0
    return HTTP_GRACE + server + jobs + MARGIN


@dataclass
class StopPlan:
    """What the stop was asked to do (several requests add up), and why the workspace went away if it did."""

    stop_jobs: bool = False
    workspace_gone: str | None = None
