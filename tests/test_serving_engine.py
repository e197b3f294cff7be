"""The engine's serving switch (what the workbench's REST toggle calls): start, query, count, stop."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from engine.client import EngineClient
from engine.errors import LLModelError
from engine.model import ModelConfig
from engine.net import free_port
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer

pytestmark = pytest.mark.slow  # the engine starts model server processes


@pytest.fixture
def trained_run(tmp_path, dataset_dir, tokenizer_dir):
    config = ModelConfig.from_dict(
        {"vocab_size": 512, "d_model": 32, "n_layers": 1, "n_heads": 4, "d_ff": 64, "max_len": 64}
    )
    settings = TrainConfig(
        batch_size=2, seq_len=16, max_steps=2, warmup_steps=0, checkpoint_interval=2, device="cpu"
    )
    run_dir = tmp_path / "workspace" / "runs" / "served"
    Trainer(config, settings, dataset_dir, run_dir, tokenizer_path=tokenizer_dir).run()
    return run_dir


def wait_healthy(client: EngineClient, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.serve_status()
        if status.get("health") == "ok":
            return status
        time.sleep(0.2)
    raise AssertionError(f"the model server did not become healthy: {status}")


def test_the_engine_starts_and_stops_serving_a_checkpoint(tmp_path, trained_run):
    port = free_port()
    with EngineClient.connect(tmp_path / "workspace") as client:
        assert client.serve_status() == {"running": False}
        started = client.serve_start(str(trained_run), port=port)
        assert started["url"] == f"http://127.0.0.1:{port}" and started["auth"] is False
        wait_healthy(client)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "def", "max_tokens": 3}, timeout=30
        )
        assert reply.status_code == 200 and reply.json()["choices"]
        assert client.serve_status()["requests"] >= 1, "live request counts for the toggle"
        with pytest.raises(LLModelError, match="already running"):
            client.serve_start(str(trained_run), port=free_port())
        assert client.serve_stop()["running"] is False
        assert client.serve_status() == {"running": False}
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_serving_beyond_loopback_needs_a_key(tmp_path, trained_run, monkeypatch):
    monkeypatch.delenv("LLMODEL_API_KEY", raising=False)
    with EngineClient.connect(tmp_path / "workspace") as client:
        with pytest.raises(LLModelError, match="API key"):
            client.serve_start(str(trained_run), host="0.0.0.0", port=free_port())
        assert client.serve_status() == {"running": False}


def test_a_server_that_misses_a_probe_reads_loading_until_it_was_once_ok_and_errors_carry_the_reason(
    tmp_path, monkeypatch, request
):
    from engine.daemon import model_servers

    # The record names a live stand-in process (never this one: the test's cleanup stops what records name).
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    request.addfinalizer(lambda: (stand_in.kill(), stand_in.wait()))
    record = {"pid": stand_in.pid, "local_url": "http://127.0.0.1:9", "started": time.time(), "model": "m"}
    (tmp_path / model_servers.SERVE_FILE).write_text(json.dumps(record))
    answers = iter(["timeout", (503, "loading"), "timeout", (200, "ok"), "timeout", (503, "error")])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(404)
        answer = next(answers)
        if answer == "timeout":
            raise httpx.ReadTimeout("no answer", request=request)
        code, status = answer
        return httpx.Response(
            code, json={"status": status, "error": "CUDA out of memory" if status == "error" else None}
        )

    real_client = httpx.Client
    monkeypatch.setattr(
        model_servers.httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(handler), **kw)
    )
    manager = model_servers.ModelServerManager(tmp_path)
    seen = [manager.status()["health"] for _ in range(5)]
    assert seen == ["starting", "loading", "loading", "ok", "unreachable"]
    failed = manager.status()
    assert failed["health"] == "error" and failed["error"] == "CUDA out of memory"
