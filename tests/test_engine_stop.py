"""Stopping the engine leaves no orphans: `llmodel engine stop` stops the model server the engine started (and its
jobs with --jobs, else it names the jobs that keep running and how to stop them), ends the event streams so the
stop logs no traceback, and an engine whose workspace folder is deleted or replaced stops itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.catalog import Catalog
from engine.client import EngineClient
from engine.daemon.model_servers import SERVE_FILE
from engine.daemon.stopping import stop_timeout
from engine.model import ModelConfig
from engine.net import free_port
from engine.processes import ProcessRef, pid_alive, signal_process
from engine.specs import PretrainSpec
from engine.specs import pretrain_spec as build_pretrain_spec
from engine.training.config import TrainConfig
from tests.cli_runner import run_cli
from tests.conftest import TINY_VOCAB

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]  # engines, model servers and job processes


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return value


def endless_pretrain(workspace: Path, dataset_dir: Path, tokenizer_dir: Path) -> PretrainSpec:
    """A nano pretraining job that runs until it is stopped."""
    model = {"vocab_size": TINY_VOCAB, "d_model": 32, "n_layers": 1, "n_heads": 4, "d_ff": 64, "max_len": 64}
    settings = TrainConfig(
        batch_size=2,
        seq_len=16,
        max_steps=10**6,
        warmup_steps=2,
        eval_interval=10**6,
        sample_interval=10**6,
        checkpoint_interval=10**6,
        attention_interval=10**6,
        device="cpu",
        num_threads=1,
    )
    return build_pretrain_spec(
        ModelConfig.from_dict(model),
        settings,
        [dataset_dir],
        workspace=workspace,
        tokenizer_path=tokenizer_dir,
    )


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def running_job_pid(client: EngineClient, run_id: str) -> int:
    def pid() -> int | None:
        return next(
            (j["pid"] for j in client.workspace()["jobs"] if j["run_id"] == run_id and j["pid"]), None
        )

    return wait_for(pid, timeout=30, what=f"the job of {run_id} to start")


def serve(client: EngineClient, model: Path) -> tuple[int, int]:
    """Start the model server the workbench's toggle starts, wait until it is healthy: (pid, port)."""
    port = free_port()
    started = client.serve_start(str(model), port=port)
    wait_for(lambda: client.serve_status().get("health") == "ok", timeout=90, what="the model server")
    return started["pid"], port


@contextlib.contextmanager
def open_streams(client: EngineClient, run_id: str) -> Iterator[list[threading.Thread]]:
    """The workspace's event stream and the run's, read in threads (as the workbench reads them)."""
    threads = [
        threading.Thread(target=lambda events=events: sum(1 for _ in events), daemon=True)
        for events in (client.workspace_events(), client.follow(run_id))
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both connected
    yield threads


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "workspace"


@pytest.fixture
def reap() -> Iterator[list[ProcessRef]]:
    """Processes a failed test may leave behind; killed after it."""
    refs: list[ProcessRef] = []
    yield refs
    for ref in refs:
        signal_process(ref, signal.SIGKILL)


def test_engine_stop_stops_its_model_server_and_names_the_jobs_that_keep_running_then_stops_them_with_jobs(
    capsys, workspace, served_run_dir, dataset_dir, tokenizer_dir, reap
):
    client = EngineClient.connect(workspace)
    engine = client.record.process
    server_pid, port = serve(client, served_run_dir)
    run_id = client.submit_job(endless_pretrain(workspace, dataset_dir, tokenizer_dir))
    job = ProcessRef.of(running_job_pid(client, run_id))
    reap += [engine, ProcessRef.of(server_pid), job]

    with open_streams(client, run_id) as streams:
        began = time.monotonic()
        result = run_cli(capsys, "engine", "stop")
        took = time.monotonic() - began
        assert result.code == 0, result.err
        assert took < stop_timeout(False), f"the stop took {took:.1f} s"
        for stream in streams:
            stream.join(timeout=5)
            assert not stream.is_alive(), "the engine ends every event stream as it stops"
    client.close()

    assert not engine.alive and not pid_alive(server_pid)
    assert not listening(port) and not listening(client.record.port)
    output = " ".join(result.err.split())
    assert f"with its model server (pid {server_pid})" in output
    assert f"{run_id} pretrain pid {job.pid}" in output and "keep running" in output
    assert "llmodel runs cancel RUN_ID" in output and "llmodel engine stop --jobs" in output
    assert job.alive, "a job runs in its own session and outlives the engine by design"

    result = run_cli(capsys, "engine", "stop", "--jobs")
    assert result.code == 0, result.err
    assert f"1 job(s) cancelled: {run_id}" in " ".join(result.err.split())
    assert not job.alive
    with Catalog.open(workspace, read_only=True) as catalog:
        assert catalog.get_run(run_id)["status"] == "cancelled"

    log = (workspace / "engine.log").read_text(encoding="utf-8")
    assert "Traceback" not in log and "ERROR" not in log, log


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_an_engine_whose_workspace_folder_goes_away_stops_with_its_model_server_and_jobs(
    change, workspace, served_run_dir, dataset_dir, tokenizer_dir, reap
):
    client = EngineClient.connect(workspace)
    engine = client.record.process
    server_pid, port = serve(client, served_run_dir)
    run_id = client.submit_job(endless_pretrain(workspace, dataset_dir, tokenizer_dir))
    job = ProcessRef.of(running_job_pid(client, run_id))
    reap += [engine, ProcessRef.of(server_pid), job]
    client.close()

    if change == "replaced":
        # Hold the job so that no write of its events is under way at the swap: the engine looks at the folder
        # before each write it starts, but one already started as the folder is swapped may still land there.
        os.kill(job.pid, signal.SIGSTOP)
        time.sleep(1.0)
    began = time.monotonic()
    shutil.rmtree(workspace)
    if change == "replaced":
        workspace.mkdir()
    wait_for(lambda: not engine.alive, timeout=20, what="the engine to stop")
    took = time.monotonic() - began
    assert took < 15, f"the engine took {took:.1f} s to stop"
    assert not pid_alive(server_pid) and not job.alive
    assert not listening(port) and not listening(client.record.port)
    if change == "replaced":
        assert not list(workspace.rglob("*")), f"written into the new folder: {list(workspace.rglob('*'))}"


def test_sigterm_stops_the_engine_as_engine_stop_does_ending_its_streams_without_a_traceback(workspace, reap):
    client = EngineClient.connect(workspace)
    engine = client.record.process
    reap.append(engine)
    done = threading.Event()
    threading.Thread(
        target=lambda: (sum(1 for _ in client.workspace_events()), done.set()), daemon=True
    ).start()
    time.sleep(0.5)  # connected

    signal_process(engine, signal.SIGTERM)
    assert done.wait(timeout=5), "the workspace stream ends as the engine stops"
    wait_for(lambda: not engine.alive, timeout=stop_timeout(False), what="the engine to exit")
    client.close()
    assert not (workspace / ".engine.json").exists(), "a stopped engine removes its record"
    log = (workspace / "engine.log").read_text(encoding="utf-8")
    assert "Traceback" not in log and "ERROR" not in log, log


def test_engine_stop_stops_a_model_server_a_killed_engine_left_behind(capsys, workspace, reap):
    # A stand-in for the server: engine stop signals what the record names, pid and start time both matching.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    reap.append(ProcessRef.of(stand_in.pid))
    workspace.mkdir(parents=True)
    record = {"pid": stand_in.pid, "pid_start": ProcessRef.of(stand_in.pid).started, "model": "m"}
    (workspace / SERVE_FILE).write_text(
        json.dumps({**record, "host": "127.0.0.1", "port": 9}), encoding="utf-8"
    )

    result = run_cli(capsys, "engine", "stop")
    assert result.code == 0, result.err
    assert "no engine is running" in result.err
    assert f"model server stopped (pid {stand_in.pid}), which its engine had left running" in result.err
    assert stand_in.wait(timeout=5) is not None and not (workspace / SERVE_FILE).exists()
