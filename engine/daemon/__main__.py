"""Run the engine for a workspace: ``python -m engine.daemon --workspace PATH``."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

import uvicorn

from engine.catalog import Catalog, CatalogBusy
from engine.daemon.app import create_app
from engine.daemon.broker import Broker
from engine.daemon.record import EngineLock, EngineRecord, remove_record, write_record
from engine.daemon.supervisor import Supervisor
from engine.errors import LLModelError
from engine.processes import start_ticks

HOST = "127.0.0.1"  # the engine never listens beyond loopback
CATALOG_WAIT = 15.0  # seconds to wait for readers of the catalog to let go of it


def serve(workspace: Path, *, max_concurrent: int = 1) -> None:
    """Hold the workspace lock, open the catalog, supervise jobs and answer HTTP until stopped."""
    lock = EngineLock(workspace)
    lock.acquire()
    catalog = _open_catalog(workspace)
    broker = Broker()
    supervisor = Supervisor(workspace, catalog, broker, max_concurrent=max_concurrent)
    token = secrets.token_urlsafe(32)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    server: uvicorn.Server | None = None

    def request_stop() -> None:
        if server is not None:
            server.should_exit = True

    app = create_app(supervisor, broker, token, on_shutdown=request_stop)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    supervisor.start()
    write_record(
        workspace,
        EngineRecord(os.getpid(), HOST, port, token, str(workspace), time.time(), start_ticks(os.getpid())),
    )
    signal.signal(signal.SIGTERM, lambda *_: request_stop())
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        supervisor.stop()
        remove_record(workspace, os.getpid())
        catalog.close()
        lock.release()


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
        serve(workspace, max_concurrent=args.max_concurrent_jobs)
    except LLModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
