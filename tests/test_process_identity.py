"""A record whose pid now belongs to another process is stale: that process is never signalled.

A pid alone is not an identity (the system reuses them); each record also keeps its process's start time. The
stand-in for "another process that got the old pid" is a live ``sleep`` recorded with a start time it never had.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from engine.catalog import Catalog
from engine.daemon.broker import Broker
from engine.daemon.model_servers import SERVE_FILE, ModelServerManager
from engine.daemon.record import RECORD_FILE, EngineRecord, live_record, write_record
from engine.daemon.supervisor import Supervisor
from engine.processes import ProcessRef, start_ticks, terminate
from tests.cli_runner import run_cli

pytestmark = pytest.mark.slow  # every test starts an unrelated process


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen]:
    """An unrelated live process."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def wrong_start(process: subprocess.Popen) -> int:
    started = start_ticks(process.pid)
    assert started is not None, "this test needs /proc"
    return started - 1000


def test_a_process_is_known_by_pid_and_start_time(stranger):
    assert ProcessRef.of(stranger.pid).alive
    impostor = ProcessRef(stranger.pid, wrong_start(stranger))
    assert not impostor.alive
    assert terminate(impostor, timeout=0.5) is False
    assert stranger.poll() is None, "the stranger was not signalled"


def test_an_engine_record_whose_pid_is_another_process_is_stale_and_never_signalled(
    capsys, tmp_path, stranger
):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    record = EngineRecord(
        stranger.pid, "127.0.0.1", 9, "token", str(workspace), time.time(), wrong_start(stranger)
    )
    write_record(workspace, record)
    result = run_cli(capsys, "engine", "stop")
    assert result.code == 0 and "no engine is running" in result.err
    assert stranger.poll() is None
    assert live_record(workspace) is None and not (workspace / RECORD_FILE).exists()


def test_a_server_record_whose_pid_is_another_process_is_stale_and_never_signalled(tmp_path, stranger):
    serve_file = tmp_path / SERVE_FILE
    serve_file.write_text(json.dumps({"pid": stranger.pid, "pid_start": wrong_start(stranger), "model": "m",
                                      "host": "127.0.0.1", "port": 9, "local_url": "http://127.0.0.1:9"}))  # fmt: skip
    servers = ModelServerManager(tmp_path)
    assert servers.stop() == {"running": False}
    assert servers.status() == {"running": False}
    assert stranger.poll() is None and not serve_file.exists()


def test_a_job_whose_pid_is_another_process_is_finished_not_signalled(tmp_path, stranger):
    workspace = tmp_path / "workspace"
    run_dir = workspace / "runs" / "pretrain-1"
    run_dir.mkdir(parents=True)
    catalog = Catalog.open(workspace)
    try:
        catalog.create_run("pretrain-1", "pretrain", str(run_dir), {}, status="running")
        catalog.update_run("pretrain-1", pid=stranger.pid, pid_start=wrong_start(stranger))
        supervisor = Supervisor(workspace, catalog, Broker())
        supervisor.reattach()
        row = catalog.get_run("pretrain-1")
        assert row["status"] == "failed" and row["pid"] is None
        assert "pretrain-1" not in supervisor.jobs
    finally:
        catalog.close()
    assert stranger.poll() is None
