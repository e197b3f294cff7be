"""A trained nano model and a live model server on a free loopback port, for the serving tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from engine.serving.server import create_server
from engine.serving.service import ModelService, ServeOptions


@dataclass
class LiveServer:
    url: str
    service: ModelService

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(model_dir: Path, *, load: bool = True, **server_options: object) -> Iterator[LiveServer]:
    """Serve ``model_dir`` in a background thread; the model is loaded first unless ``load`` is False."""
    service = ModelService(ServeOptions(model_path=model_dir, device="cpu", max_batch=8, max_queue=64))
    if load:
        service.load()
        assert service.ready, service.error
    app = create_server(service, **server_options)  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", service)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.stop()
