"""Run the engine for a workspace: ``python -m engine.daemon --workspace PATH``."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn

from engine.catalog import Catalog, CatalogBusy
from engine.daemon.app import create_app
from engine.daemon.broker import Broker
from engine.daemon.model_servers import ModelServerManager
from engine.daemon.record import EngineLock, EngineRecord, remove_record, write_record
from engine.daemon.stopping import HTTP_GRACE, StopPlan
from engine.daemon.supervisor import CANCEL_GRACE, Supervisor
from engine.daemon.workspace_watch import WorkspaceWatch
from engine.errors import LLModelError
from engine.processes import KILL_WAIT, start_ticks

HOST = "127.0.0.1"  # the engine never listens beyond loopback
CATALOG_WAIT = 15.0  # seconds to wait for readers of the catalog to let go of it


def serve(workspace: Path, *, max_concurrent: int = 1) -> str | None:
    """Hold the workspace lock, open the catalog, supervise jobs and answer HTTP until stopped; then stop the
    model server it started, and the jobs when the stop asked for them (see :mod:`engine.daemon.stopping`).

    Returns why the workspace folder went away when that is what stopped the engine, else None.
    """
    lock = EngineLock(workspace)
    lock.acquire()
    catalog = _open_catalog(workspace)
    broker = Broker()
    plan = StopPlan()
    server: EngineServer | None = None

    def request_stop(stop_jobs: bool = False) -> None:
        plan.stop_jobs = plan.stop_jobs or stop_jobs
        broker.close()  # the event streams end, so the HTTP server's graceful shutdown has none to wait for
        if server is not None:
            server.should_exit = True

    def workspace_gone(reason: str) -> None:
        plan.workspace_gone = reason
        request_stop()

    watch = WorkspaceWatch(workspace, workspace_gone)
    supervisor = Supervisor(workspace, catalog, broker, max_concurrent=max_concurrent, watch=watch)
    servers = ModelServerManager(workspace)
    token = secrets.token_urlsafe(32)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    app = create_app(supervisor, broker, token, servers=servers, on_shutdown=request_stop)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=HTTP_GRACE)
    server = EngineServer(config, on_signal=request_stop)
    supervisor.start()
    write_record(
        workspace,
        EngineRecord(os.getpid(), HOST, port, token, str(workspace), time.time(), start_ticks(os.getpid())),
    )
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        broker.close()
        if plan.workspace_gone:
            # Write nothing more at that path: the folder there now, if any, is not ours (another engine may
            # serve it). The jobs have nowhere left to save anything, so they are killed at once.
            supervisor.stop()
            supervisor.kill_all()
            servers.stop(remembered=True)
        else:
            if plan.stop_jobs:
                supervisor.cancel_all()
            servers.stop()
            if plan.stop_jobs:
                supervisor.wait_idle(CANCEL_GRACE + KILL_WAIT)
            supervisor.stop()
            remove_record(workspace, os.getpid())
            catalog.close()
        lock.release()
    return plan.workspace_gone


class EngineServer(uvicorn.Server):
    """uvicorn's server, on which SIGTERM and SIGINT stop the engine as ``POST /api/shutdown`` does."""

    def __init__(self, config: uvicorn.Config, *, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_signal()


def _open_catalog(workspace: Path, timeout: float = CATALOG_WAIT) -> Catalog:
    """Open the catalog read-write, waiting out commands that read it while no engine ran.

    We hold the workspace lock, so whoever has the file now is such a reader (a read-only open that lasts a
    moment), never another engine.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Catalog.open(workspace)
        except CatalogBusy:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.daemon", description=__doc__)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--max-concurrent-jobs", type=int, default=1)
    args = parser.parse_args(argv)
    workspace = args.workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    try:
        gone = serve(workspace, max_concurrent=args.max_concurrent_jobs)
    except LLModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if gone:
        print(f"engine: {gone}; stopped with its model server and jobs", file=sys.stderr, flush=True)
        # The catalog is left unclosed: closing it would write its log's end at a path no longer ours.
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
