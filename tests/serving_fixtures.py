"""A trained nano model and a live model server on a free loopback port, for the serving tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from engine.net import free_port
from engine.server.app import create_server
from engine.server.served_model import ServedModel, ServeOptions


@dataclass
class LiveServer:
    url: str
    served: ServedModel

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def live_server(
    model_dir: Path, *, load: bool = True, adapters: dict[str, Path] | None = None, **server_options: object
) -> Iterator[LiveServer]:
    """Serve ``model_dir`` (and ``adapters`` over it) in a background thread; the model is loaded first unless
    ``load`` is False."""
    options = ServeOptions(
        model_path=model_dir, device="cpu", max_batch=8, max_queue=64, adapters=adapters or {}
    )
    served = ServedModel(options)
    if load:
        served.load()
        assert served.ready, served.error
    app = create_server(served, **server_options)  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", served)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        served.stop()
