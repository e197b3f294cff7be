"""The workspace's background engine process, end to end: a real engine, real job child processes, real signals.

Each test states one promise of docs/ARCHITECTURE.md and /work/shared/DESIGN.md ("Processes", "A workspace on
disk"): one engine per workspace, found through its 0600 record; a token on every route but health; events on disk
first, replayable from any line; cancel, kill -9 and engine restarts that never lose or duplicate a training step;
checkpoints that only count when complete; queued jobs that wait their turn; CLI commands that never trip over
DuckDB's single-writer lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from engine.catalog import Catalog
from engine.client import EngineClient, start_engine
from engine.daemon.record import RECORD_FILE, EngineRecord, read_record, write_record
from engine.daemon.supervisor import Follower
from engine.errors import CheckpointError, LLModelError
from engine.model import ModelConfig, Transformer
from engine.processes import pid_alive, start_ticks
from engine.runs import checkpoint as ckpt
from engine.specs import JobSpec, PretrainSpec, dataset_spec, tokenizer_spec
from engine.specs import pretrain_spec as build_pretrain_spec
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer
from tests.cli_runner import run_cli
from tests.conftest import TINY_VOCAB, stop_engines

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]  # every test starts an engine

Event = dict[str, Any]


# -- fixtures and helpers -------------------------------------------------------------------------------------------

NANO = {
    "vocab_size": TINY_VOCAB,
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 4,
    "d_ff": 64,
    "max_len": 64,
    "dropout": 0.1,
}


def pretrain_spec(workspace: Path, dataset_dir: Path, tokenizer_dir: Path, **train: Any) -> PretrainSpec:
    """A pretrain job spec from the builder `llmodel pretrain` calls; keyword arguments override training settings."""
    settings: dict[str, Any] = {
        "batch_size": 2,
        "seq_len": 16,
        "max_steps": 20,
        "warmup_steps": 2,
        "learning_rate": 3e-3,
        "eval_interval": 10**6,
        "eval_batches": 1,
        "sample_interval": 10**6,
        "sample_tokens": 4,
        "checkpoint_interval": 10**6,
        "attention_interval": 10**6,
        "log_interval": 10**6,
        "device": "cpu",
        "num_threads": 1,
    }
    settings.update(train)
    return build_pretrain_spec(
        ModelConfig.from_dict(NANO),
        TrainConfig(**settings),
        [dataset_dir],
        workspace=workspace,
        tokenizer_path=tokenizer_dir,
    )


@dataclass
class SharedEngine:
    """One engine, shared by the tests that neither stop nor kill it (each engine start costs seconds)."""

    workspace: Path
    client: EngineClient
    dataset_dir: Path
    tokenizer_dir: Path

    def spec(self, **train: Any) -> PretrainSpec:
        return pretrain_spec(self.workspace, self.dataset_dir, self.tokenizer_dir, **train)


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path, tokenizer_dir: Path
) -> Iterator[SharedEngine]:
    root = tmp_path_factory.mktemp("shared-engine")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # inherited by the engine and its jobs, as in every other test
        client = EngineClient.connect(root / "workspace")
    try:
        yield SharedEngine(root / "workspace", client, dataset_dir, tokenizer_dir)
    finally:
        client.close()
        stop_engines(root)
        _stop_service_processes(root)


@pytest.fixture
def engine(shared: SharedEngine) -> Iterator[EngineClient]:
    """The shared engine's client; whatever job a test leaves behind is stopped before the next test."""
    yield shared.client
    for job in shared.client.workspace()["jobs"]:
        if job["pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job["pid"], signal.SIGKILL)
        else:
            with contextlib.suppress(LLModelError):
                shared.client.cancel(job["run_id"])
    wait_for(lambda: not shared.client.workspace()["jobs"], what="the shared engine to be idle")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The test's own workspace ($LLMODEL_WORKSPACE, set by conftest)."""
    return tmp_path / "workspace"


@pytest.fixture
def make_spec(dataset_dir: Path, tokenizer_dir: Path, workspace: Path) -> Callable[..., PretrainSpec]:
    return lambda **train: pretrain_spec(workspace, dataset_dir, tokenizer_dir, **train)


@pytest.fixture(autouse=True)
def _no_process_left_behind(tmp_path: Path) -> Iterator[None]:
    """Engines and job processes of the test's own workspace are gone when it ends, whatever it did."""
    yield
    _stop_service_processes(tmp_path)


def _stop_service_processes(root: Path) -> None:
    leftovers = _service_processes(root)
    for pid, command in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if "job_runner" in command else signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid, _ in leftovers) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid, _ in leftovers:
        with contextlib.suppress(ProcessLookupError):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def _service_processes(root: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every engine or job process whose arguments point under ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if any("engine.daemon" in a for a in args) and any(a.startswith(str(root)) for a in args):
            found.append((int(entry.name), " ".join(args)))
    return found


def wait_for(condition: Callable[[], Any], *, timeout: float = 10.0, what: str = "the condition") -> Any:
    """Poll ``condition`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def run_dir_of(client: EngineClient, run_id: str) -> Path:
    return Path(client.run(run_id)["run_dir"])


def status_of(client: EngineClient, run_id: str) -> str:
    return client.run(run_id)["status"]


def file_events(run_dir: Path) -> list[Event]:
    """The complete lines of the run's events.jsonl, in order."""
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [
        json.loads(line)
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
        if line.endswith("\n")
    ]


def steps_in(events: list[Event]) -> list[int]:
    return [e["step"] for e in events if e["type"] == "step"]


def catalog_loss_steps(client: EngineClient, run_id: str) -> list[int]:
    return [step for step, _ in client.metrics(run_id, ["loss"])["loss"]]


def job_pid(client: EngineClient, run_id: str) -> int:
    """The pid of the run's job process, as the engine reports it."""

    def pid() -> int | None:
        jobs = client.workspace()["jobs"]
        return next((j["pid"] for j in jobs if j["run_id"] == run_id and j["pid"]), None)

    return wait_for(pid, what=f"the job of {run_id} to start")


def follow_until(
    client: EngineClient, run_id: str, predicate: Callable[[Event], bool], offset: int = 0
) -> Event:
    """Follow the run's events until one satisfies ``predicate``; return it and hang up."""
    with contextlib.closing(client.follow(run_id, offset)) as events:
        for event in events:
            if predicate(event):
                return event
            assert event["type"] != "end", f"run {run_id} ended ({event['status']}) before the awaited event"
    raise AssertionError(f"the event stream of {run_id} closed early")


def follow_to_end(client: EngineClient, run_id: str, offset: int = 0) -> list[Event]:
    events = list(client.follow(run_id, offset))
    assert events and events[-1]["type"] == "end", "the stream of a finished run ends with an end event"
    return events


def is_step(at_least: int) -> Callable[[Event], bool]:
    return lambda e: e["type"] == "step" and e["step"] >= at_least


# -- 1. one engine per workspace, found through its record -----------------------------------------------------------


def test_engine_start_status_and_stop_from_the_command_line(capsys, workspace, make_spec):
    result = run_cli(capsys, "engine", "start")
    assert result.code == 0, result.err
    record = read_record(workspace)
    assert record is not None and pid_alive(record.pid)
    assert stat.S_IMODE((workspace / RECORD_FILE).stat().st_mode) == 0o600, (
        "the record holds the token: owner only"
    )

    status = json.loads(run_cli(capsys, "engine", "status", "--json").out)
    assert status["running"] is True and status["pid"] == record.pid
    assert status["url"] == f"http://127.0.0.1:{record.port}"
    assert status["jobs"] == []

    with EngineClient.connect(workspace, start=False) as client:
        run_id = client.submit_job(make_spec(max_steps=10**6))
        pid = job_pid(client, run_id)
        status = json.loads(run_cli(capsys, "engine", "status", "--json").out)
        assert status["jobs"] == [{"run_id": run_id, "kind": "pretrain", "pid": pid, "status": "running"}]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: status_of(client, run_id) == "failed", what="the killed job to be noticed")

    result = run_cli(capsys, "engine", "stop")
    assert result.code == 0, result.err
    assert not pid_alive(record.pid)
    assert not (workspace / RECORD_FILE).exists(), "a stopped engine removes its record"
    assert json.loads(run_cli(capsys, "engine", "status", "--json").out)["running"] is False


def test_a_second_engine_for_the_same_workspace_refuses_to_start_and_names_the_first(workspace):
    with EngineClient.connect(workspace) as first:
        second = subprocess.run(
            [sys.executable, "-m", "engine.daemon", "--workspace", str(workspace)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"pid {first.record.pid}" in second.stderr
        assert read_record(workspace) == first.record, (
            "the refused engine leaves the first one's record alone"
        )
        assert first.workspace()["path"] == str(workspace)


def test_a_stale_record_of_a_dead_engine_is_cleaned_up_and_a_new_engine_starts(capsys, workspace):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    workspace.mkdir(parents=True)
    write_record(
        workspace, EngineRecord(dead.pid, "127.0.0.1", 9, "stale-token", str(workspace), time.time())
    )

    result = run_cli(capsys, "engine", "start")
    assert result.code == 0, result.err
    record = read_record(workspace)
    assert record is not None and record.pid != dead.pid and record.token != "stale-token"
    assert record.pid_start == start_ticks(record.pid), "the new record knows its process by start time too"
    with EngineClient.connect(workspace, start=False) as client:
        assert client.runs() == []


# -- 2. a token on every route but health; loopback only ------------------------------------------------------------


def engine_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the engine's API, path parameters filled with ``x`` (or ``1``)."""
    from fastapi.routing import APIRoute

    from engine.daemon.routes import adapters, jobs, runs, serve, studies, workspace

    routers = (workspace.router, runs.router, jobs.router, serve.router, adapters.router, studies.router)
    found = []
    for router in routers:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            path = route.path.replace("{step}", "1")
            while "{" in path:
                path = path[: path.index("{")] + "x" + path[path.index("}") + 1 :]
            found += [(method, path) for method in sorted(route.methods)]
    return found


def test_every_route_but_health_needs_the_engines_token(engine):
    requests = engine_routes()
    assert len(requests) > 30, "every router's routes are listed"
    wrong = [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Basic {engine.record.token}"}]
    with httpx.Client(base_url=engine.record.url, timeout=10) as http:
        for headers in wrong:
            for method, path in [*requests, ("GET", "/openapi.json"), ("GET", "/docs")]:
                response = http.request(method, path, headers=headers, json={"kind": "pretrain", "spec": {}})
                expected = 401 if (method, path) in requests else 404
                assert response.status_code == expected, (
                    f"{method} {path} with {headers} → {response.status_code}"
                )
    assert engine.health()["status"] == "ok", "health alone answers without the token"
    assert pid_alive(engine.record.pid), "an unauthorised shutdown request is refused"
    assert engine.runs() == []


def test_the_engine_listens_on_loopback_only(engine):
    assert engine.record.host == "127.0.0.1" and engine.record.url.startswith("http://127.0.0.1:")
    other = _non_loopback_address()
    if other is None:
        pytest.skip("this machine has no network interface besides loopback")
    with pytest.raises(OSError), socket.create_connection((other, engine.record.port), timeout=3):
        pass


def _non_loopback_address() -> str | None:
    """An address of this machine on an interface other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 1))  # no packet is sent; this only picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


# -- 3. events on disk first: replay from any line, then live ---------------------------------------------------------


@dataclass
class WatchedRun:
    run_id: str
    run_dir: Path
    from_line_0: list[Event]  # followed from line 0 by a client that joined mid-run
    from_line_7: list[Event]  # followed from line 7 by a client that joined before the job had written a line


@pytest.fixture(scope="module")
def watched_run(shared: SharedEngine) -> WatchedRun:
    """A 20-step run (a checkpoint and an attention snapshot every 10 steps), followed by two clients as it ran."""
    run_id = shared.client.submit_job(
        shared.spec(max_steps=20, checkpoint_interval=10, attention_interval=10)
    )
    early: dict[str, list[Event]] = {}

    def follow_from_line_7() -> None:
        with EngineClient(shared.client.record) as other:
            early["events"] = follow_to_end(other, run_id, offset=7)

    joiner = threading.Thread(target=follow_from_line_7, daemon=True)
    joiner.start()
    run_dir = shared.workspace / "runs" / run_id
    wait_for(lambda: len(file_events(run_dir)) >= 5, timeout=60, what="the job's first events")
    from_line_0 = follow_to_end(shared.client, run_id)
    joiner.join(timeout=30)
    return WatchedRun(run_id, run_dir, from_line_0, early["events"])


def test_following_a_run_from_line_0_replays_its_history_then_follows_it_live_to_the_end(watched_run):
    lines = file_events(watched_run.run_dir)
    assert watched_run.from_line_0[-1] == {"type": "end", "status": "completed"}
    assert watched_run.from_line_0[:-1] == lines, "every line on disk, in order, the early ones replayed"
    assert steps_in(lines) == list(range(1, 21))
    assert lines[-1]["type"] == "status" and lines[-1]["status"] == "completed" and lines[-1]["final"]


def test_following_from_line_n_yields_exactly_the_events_from_line_n_on(engine, watched_run):
    lines = file_events(watched_run.run_dir)
    assert watched_run.from_line_7[:-1] == lines[7:], "joined live, before line 7 existed"
    assert follow_to_end(engine, watched_run.run_id, offset=12)[:-1] == lines[12:], "joined after the end"
    assert follow_to_end(engine, watched_run.run_id, offset=len(lines)) == [
        {"type": "end", "status": "completed"}
    ]


def test_the_workspace_stream_carries_job_status_changes_and_the_runs_events(engine, watched_run):
    job_statuses, step_events = [], 0
    with contextlib.closing(engine.workspace_events(since=0)) as stream:
        for event in stream:
            if event.get("run_id") != watched_run.run_id:
                continue
            step_events += event["type"] == "step"
            if event["type"] == "job":
                job_statuses.append(event["status"])
                if event["status"] == "completed":
                    break
    assert job_statuses == ["queued", "running", "completed"]
    assert step_events == 20


def test_metrics_are_served_whole_or_downsampled_to_max_points(engine, watched_run):
    run_id = watched_run.run_id
    full = engine.metrics(run_id, ["loss"])["loss"]
    assert [step for step, _ in full] == list(range(1, 21))
    short = engine.metrics(run_id, ["loss"], max_points=5)["loss"]
    assert 2 <= len(short) <= 5
    assert short[0] == full[0] and short[-1] == full[-1], "the first and last points are kept exactly"
    assert [step for step, _ in short] == sorted({step for step, _ in short})
    assert set(engine.metrics(run_id, max_points=5)) >= {"loss", "lr", "val_loss"}


def test_attention_snapshots_are_listed_and_served_with_their_tokens(engine, watched_run):
    snapshots = engine.attention(watched_run.run_id)
    assert [s["step"] for s in snapshots] == [10, 20]
    assert all(s["layers"] == 2 and s["heads"] == 4 and s["tokens"] for s in snapshots)
    snapshot = engine.attention_map(watched_run.run_id, 10)
    side = len(snapshot["tokens"])
    weights = snapshot["weights"]
    assert snapshot["step"] == 10 and side > 1
    assert len(weights) == 2 and all(len(layer) == 4 for layer in weights)
    assert all(
        len(head) == side and all(len(row) == side for row in head) for layer in weights for head in layer
    )
    assert all(abs(sum(row) - 1) < 0.02 for layer in weights for head in layer for row in head), (
        "rows are distributions"
    )
    with pytest.raises(LLModelError, match="no attention snapshot at step 15"):
        engine.attention_map(watched_run.run_id, 15)


def test_a_follower_only_counts_complete_lines_even_before_its_offset_exists(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"n":0}\n{"n":1}\n{"n":')
    follower = Follower(path, offset=3)
    assert follower.read_new() == [], "line 3 has not been written yet"
    with open(path, "ab") as fh:
        fh.write(b'2}\n{"n":3}\n{"n":4')
    assert follower.read_new() == [{"n": 3}] and follower.offset == 4
    with open(path, "ab") as fh:
        fh.write(b"}\n")
    assert follower.read_new() == [{"n": 4}] and follower.offset == 5


# -- 4. cancel: checkpoint at the stop step, resume without a gap -------------------------------------------------------


def test_cancelling_a_training_job_checkpoints_it_and_resume_continues_without_a_gap(capsys, engine, shared):
    run_id = engine.submit_job(shared.spec(max_steps=100))
    follow_until(engine, run_id, is_step(5))
    asked = time.monotonic()
    assert engine.cancel(run_id)["status"] == "cancelling"
    wait_for(lambda: status_of(engine, run_id) == "cancelled", timeout=5, what="the job to stop")
    assert time.monotonic() - asked < 5

    run = engine.run(run_id)
    stopped_at = run["step"]
    assert 5 <= stopped_at < 100
    run_dir = Path(run["run_dir"])
    checkpoint = ckpt.verify_checkpoint(run_dir / "checkpoints" / ckpt.step_dir_name(stopped_at))
    assert checkpoint.step == stopped_at
    assert ckpt.latest_checkpoint(run_dir / "checkpoints").step == stopped_at
    assert [c["step"] for c in engine.checkpoints(run_id)] == [stopped_at]

    result = run_cli(capsys, "runs", "resume", run_id, "--workspace", str(shared.workspace))
    assert result.code == 0, result.err
    run = engine.run(run_id)
    assert run["status"] == "completed" and run["step"] == 100
    assert steps_in(file_events(run_dir)) == list(range(1, 101)), "the resumed job picks up at the next step"
    assert catalog_loss_steps(engine, run_id) == list(range(1, 101))


# -- 5. kill -9 of a job ------------------------------------------------------------------------------------------------


def test_a_killed_training_job_is_resumable_and_its_history_has_every_step_once(engine, shared, tmp_path):
    run_id = engine.submit_job(shared.spec(max_steps=70, checkpoint_interval=25, attention_interval=5))
    follow_until(engine, run_id, lambda e: e["type"] == "attention" and e["step"] >= 35)
    pid = job_pid(engine, run_id)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: status_of(engine, run_id) == "failed_resumable", timeout=3, what="failed_resumable")
    assert time.monotonic() - killed < 3

    run = engine.run(run_id)
    assert "ended without finishing" in run["error"]
    run_dir = Path(run["run_dir"])
    resume_at = ckpt.latest_checkpoint(run_dir / "checkpoints").step
    logged_by_the_dead_job = steps_in(file_events(run_dir))
    assert max(logged_by_the_dead_job) > resume_at, "the dead job had logged steps past its last checkpoint"

    offset = engine.resume(run_id)["offset"]
    resumed = follow_to_end(engine, run_id, offset)
    assert resumed[-1]["status"] == "completed"
    assert steps_in(resumed) == list(range(resume_at + 1, 71)), "the resumed job continues at the checkpoint"
    assert catalog_loss_steps(engine, run_id) == list(range(1, 71)), (
        "each step once: the dead job's tail replaced"
    )
    snapshot_steps = [s["step"] for s in engine.attention(run_id)]
    assert snapshot_steps == list(range(5, 71, 5)), "attention snapshots too"
    assert engine.run(run_id)["step"] == 70

    # The same job, never killed, in this process: the resumed run repeats its losses bit for bit.
    spec = shared.spec(max_steps=70, checkpoint_interval=25, attention_interval=5)
    straight = tmp_path / "straight"
    Trainer(
        spec.model_config,
        spec.train_config,
        shared.dataset_dir,
        straight,
        tokenizer_path=shared.tokenizer_dir,
    ).run()
    expected = [e["loss"] for e in file_events(straight) if e["type"] == "step"]
    recorded = [loss for _, loss in engine.metrics(run_id, ["loss"])["loss"]]
    assert recorded == expected


# -- 6. kill -9 of the engine ---------------------------------------------------------------------------------------------


def test_a_new_engine_reattaches_to_a_job_that_outlived_a_killed_engine(workspace, make_spec):
    first = EngineClient.connect(workspace)
    run_id = first.submit_job(make_spec(max_steps=120))
    pid = job_pid(first, run_id)
    follow_until(first, run_id, is_step(5))
    first.close()
    os.kill(first.record.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(first.record.pid), what="the engine to die")

    run_dir = workspace / "runs" / run_id
    seen = max(steps_in(file_events(run_dir)))
    wait_for(
        lambda: max(steps_in(file_events(run_dir))) >= seen + 10, what="the orphaned job to go on training"
    )
    os.kill(pid, signal.SIGSTOP)  # hold it mid-run while the next engine comes up
    try:
        assert pid_alive(pid)
        with EngineClient.connect(workspace) as second:
            assert second.record.pid != first.record.pid
            jobs = second.workspace()["jobs"]
            assert {"run_id": run_id, "kind": "pretrain", "pid": pid, "status": "running"} in jobs
            written = len(file_events(run_dir))
            wait_for(lambda: second.run(run_id)["event_offset"] == written, what="the catch-up")
            assert status_of(second, run_id) == "running"
            os.kill(pid, signal.SIGCONT)
            offset = second.run(run_id)["event_offset"]
            assert follow_to_end(second, run_id, offset)[-1]["status"] == "completed"
            assert catalog_loss_steps(second, run_id) == list(range(1, 121))
            assert second.run(run_id)["step"] == 120
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


# -- 7. a checkpoint interrupted mid-write never looks complete -----------------------------------------------------------


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise runs (save_checkpoint has no cleanup to run anyway)."""


def test_a_checkpoint_interrupted_while_being_written_is_never_taken_for_a_complete_one(
    tmp_path, nano_config, monkeypatch
):
    torch.manual_seed(0)
    model = Transformer(nano_config)
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    good = ckpt.save_checkpoint(
        checkpoints, step=10, model=model, model_config=nano_config, training_state={"x": 1}
    )

    def killed_after_the_weights(*args: Any, **kwargs: Any) -> None:
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", killed_after_the_weights)
        with pytest.raises(_Killed):
            ckpt.save_checkpoint(
                checkpoints, step=20, model=model, model_config=nano_config, training_state={"x": 2}
            )
    assert [p.name for p in checkpoints.glob(".tmp-step-*")] == [f".tmp-step-00000020-{os.getpid()}"]
    assert not (checkpoints / "step-00000020").exists()

    # A step directory without its marker (a copy cut short), and one whose weights no longer match their hash.
    unmarked = checkpoints / "step-00000030"
    unmarked.mkdir()
    (unmarked / ckpt.WEIGHTS).write_bytes((good.path / ckpt.WEIGHTS).read_bytes())
    (unmarked / ckpt.META).write_text(json.dumps({**good.meta, "step": 30}))
    corrupt = ckpt.save_checkpoint(
        checkpoints, step=40, model=model, model_config=nano_config, training_state={"x": 4}
    )
    with open(corrupt.path / ckpt.WEIGHTS, "r+b") as fh:
        fh.truncate(100)

    assert ckpt.latest_checkpoint(checkpoints).step == 10
    assert ckpt.resolve_checkpoint(run_dir).step == 10
    assert ckpt.resolve_checkpoint(checkpoints).step == 10
    for bad in (unmarked, corrupt.path):
        with pytest.raises(CheckpointError):
            ckpt.verify_checkpoint(bad)
    assert ckpt.resolve_checkpoint(corrupt.path).step == 10, "a bad checkpoint named directly falls back"

    ckpt.prune_checkpoints(checkpoints, keep_last=3)  # as the next save in another process would
    assert ckpt.latest_checkpoint(checkpoints).step == 10


# -- 8. DuckDB's single writer never shows through the CLI -------------------------------------------------------------


def test_the_engine_starts_while_another_command_is_reading_the_catalog(workspace):
    Catalog.open(workspace).close()
    reader = Catalog.open(workspace, read_only=True)
    started: dict[str, Any] = {}

    def start() -> None:
        try:
            started["record"] = start_engine(workspace)
        except Exception as error:  # reported below
            started["error"] = error

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    wait_for(
        lambda: _engine_holds_the_lock(workspace), timeout=30, what="the engine to take the workspace lock"
    )
    time.sleep(0.3)  # it is trying to open the catalog now
    assert "error" not in started, started.get("error")
    assert read_record(workspace) is None, "no engine answers before it has the catalog"
    reader.close()
    starter.join(timeout=30)
    assert "error" not in started, started.get("error")
    with EngineClient(started["record"]) as client:
        client.wait_ready()
        assert client.runs() == []


def _engine_holds_the_lock(workspace: Path) -> bool:
    """The engine writes its pid into .engine.lock once it holds it, before it opens the catalog."""
    try:
        pid = int((workspace / ".engine.lock").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return False
    return pid != os.getpid() and pid_alive(pid)


_READER_LOOP = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path
    from llmodel_app.cli.main import main

    stop_file, ready_file = Path(sys.argv[1]), Path(sys.argv[2])
    codes = []
    while not stop_file.exists():
        sys.argv = ["llmodel", "runs", "list", "--json"]
        try:
            main()
        except SystemExit as exit_:
            codes.append(exit_.code or 0)
        ready_file.touch()
        time.sleep(0.1)  # a user's next command
    print("CODES", codes, file=sys.stderr)
    sys.exit(1 if any(codes) else 0)
    """
)


def test_cli_commands_at_the_same_time_never_trip_over_the_catalog_lock(capsys, workspace, tmp_path):
    Catalog.open(workspace).close()
    stop_file, ready_file = tmp_path / "stop", tmp_path / "ready"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER_LOOP, str(stop_file), str(ready_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready_file.exists, timeout=60, what="`llmodel runs list` to run in a loop")
        for _ in range(3):
            start = run_cli(capsys, "engine", "start")
            assert start.code == 0, start.err
            time.sleep(0.3)
            stop = run_cli(capsys, "engine", "stop")
            assert stop.code == 0, stop.err
    finally:
        stop_file.touch()
        _, errors = reader.communicate(timeout=60)
    assert "lock" not in errors.lower() and "held by another process" not in errors, errors
    assert reader.returncode == 0, errors


# -- 9. one job at a time, the others queued in order -------------------------------------------------------------------


def test_queued_jobs_wait_for_the_running_one_and_start_in_submission_order(engine, shared, tmp_path):
    first = engine.submit_job(shared.spec(max_steps=40))
    job_pid(engine, first)
    second = engine.submit_job(shared.spec(max_steps=3))
    empty = tmp_path / "empty-corpus.txt"  # accepted (it exists), and the job fails at once: no text in it
    empty.write_text("", encoding="utf-8")
    quick = [
        engine.submit_job(tokenizer_spec([empty], tmp_path / f"tok{i}", vocab_size=512)) for i in range(3)
    ]
    order = [first, second, *quick]

    while True:
        status = {run["id"]: run["status"] for run in engine.runs()}  # one consistent snapshot
        if status[first] != "running":
            break
        assert [status[run_id] for run_id in order[1:]] == ["queued"] * 4, "one job at a time"
        time.sleep(0.2)
    assert follow_to_end(engine, quick[-1])[-1]["status"] == "failed"

    started, finished = [], {}
    with contextlib.closing(engine.workspace_events(since=0)) as stream:
        for event in stream:
            if event["type"] != "job" or event["run_id"] not in order:
                continue
            if event["status"] == "running":
                started.append((event["run_id"], event["seq"]))
            elif event["status"] not in ("queued", "running"):
                finished[event["run_id"]] = (event["status"], event["seq"])
            if len(finished) == len(order):
                break
    assert [run_id for run_id, _ in started] == order, "jobs start in the order they were submitted"
    for before, (after, seq) in zip(order, started[1:], strict=False):
        assert finished[before][1] < seq, f"{after} started only after {before} ended"
    assert finished[first][0] == finished[second][0] == "completed"
    assert engine.run(second)["step"] == 3


# -- 8. tokenizer and dataset jobs stop at once on cancel ------------------------------------------------------------


@pytest.fixture(scope="module")
def large_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus big enough that training a tokenizer on it, or tokenizing it, takes some seconds."""
    from engine.data.stdlib_corpus import build_stdlib_corpus

    path = tmp_path_factory.mktemp("large") / "corpus.jsonl"
    build_stdlib_corpus(path, max_bytes=6_000_000)
    return path


@pytest.mark.parametrize("kind", ["tokenizer", "dataset"])
def test_cancelling_a_tokenizer_or_dataset_job_stops_it_at_once_leaving_no_output(
    engine, shared, large_corpus, kind
):
    output = shared.workspace / f"{kind}s" / f"cancelled-{kind}"
    if kind == "tokenizer":
        spec: JobSpec = tokenizer_spec([large_corpus], output, vocab_size=8000)
    else:
        spec = dataset_spec([large_corpus], shared.tokenizer_dir, output, num_workers=1)
    run_id = engine.submit_job(spec)
    follow_until(engine, run_id, lambda e: e["type"] == "progress" and e.get("done", 0) > 0)
    asked = time.monotonic()
    engine.cancel(run_id)
    wait_for(lambda: status_of(engine, run_id) == "cancelled", timeout=5, what="the job to stop")
    assert time.monotonic() - asked < 5
    assert not output.exists(), "nothing half-written"
