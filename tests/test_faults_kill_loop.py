"""SIGKILL at random moments, checkpoint writes included: every resume continues the one loss curve.

The job runs as the engine runs it (``engine.daemon.job_runner`` reading ``job.json`` from the run folder). The
killed attempts are forked from this process, already importing torch, so a dozen of them fit in seconds; the
last attempt is the real ``python -m engine.daemon.job_runner RUN_DIR``. Half of the kills land at a random
moment; the other half pause the child at a random call inside the checkpoint code (hashing the files, writing
the meta or a pointer, syncing a directory, half-way through deleting a directory) and kill it there.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.daemon import job_runner
from engine.daemon.jobs import read_job, write_job
from engine.model import ModelConfig
from engine.runs import checkpoint as ckpt
from engine.runs.events import read_events
from engine.specs import PretrainSpec
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

KILLS = 12
STEPS = 50
PAUSED = "paused-in"  # the file a paused child writes, naming the call it stopped in
# The calls inside saving, pointing at and pruning checkpoints where a child may be paused and killed.
PAUSE_POINTS = {"_sha256": ckpt, "write_json_atomic": ckpt, "fsync_dir": ckpt, "rmtree": shutil}
# The paused kills in turn: where, and whether only calls made while a checkpoint's temporary directory exists
# count (hashing its files, writing its meta, syncing it before the rename); rmtree is cut short half-way.
PAUSED_KILLS = [
    ("_sha256", True),
    ("write_json_atomic", False),
    ("fsync_dir", True),
    ("rmtree", False),
    ("write_json_atomic", True),
    ("rmtree", False),
]


def settings() -> TrainConfig:
    return TrainConfig(
        batch_size=2,
        seq_len=16,
        max_steps=STEPS,
        warmup_steps=2,
        learning_rate=3e-3,
        eval_interval=3,
        eval_batches=1,
        sample_interval=10**6,
        sample_tokens=4,
        checkpoint_interval=1,
        keep_last=2,
        attention_interval=10**6,
        log_interval=10**6,
        device="cpu",
        num_threads=1,
    )


def losses_by_step(run_dir: Path) -> dict[int, list[float]]:
    """Every loss logged for each step, by every attempt (a step redone after a kill shows twice)."""
    logged: dict[int, list[float]] = {}
    for event in read_events(run_dir / "events.jsonl"):
        if event["type"] == "step":
            logged.setdefault(event["step"], []).append(event["loss"])
    return logged


def _pausing(original: Callable[..., Any], name: str, state: dict[str, Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        writing = any(Path(state["checkpoints"]).glob(f".tmp-step-*-{os.getpid()}"))
        if state["while_writing"] and not writing:
            return original(*args, **kwargs)
        state["calls"] += 1
        if state["calls"] == state["pause_at"]:
            if name == "rmtree" and Path(args[0]).is_dir():  # cut a deletion short after its first file
                first = next((p for p in sorted(Path(args[0]).rglob("*")) if p.is_file()), None)
                if first is not None:
                    first.unlink()
            announce = Path(f"{state['signal_file']}.part")
            announce.write_text(name)
            announce.rename(state["signal_file"])  # whole, or not there yet
            time.sleep(3600)
        return original(*args, **kwargs)

    return call


def _attempt(run_dir: str, pause: tuple[str, bool] | None, pause_at: int, signal_file: str) -> None:
    """A forked job child; ``pause`` (a call, and whether only calls made while this process has a checkpoint's
    temporary directory on disk count) stops it at the ``pause_at``-th such call, to be killed there."""
    if pause is not None:
        name, while_writing = pause
        state = {"calls": 0, "pause_at": pause_at, "while_writing": while_writing, "signal_file": signal_file}
        state["checkpoints"] = str(Path(run_dir) / "checkpoints")
        module = PAUSE_POINTS[name]  # this forked child is thrown away: patching shutil touches no other test
        setattr(module, name, _pausing(getattr(module, name), name, state))
    os._exit(job_runner.main([run_dir]))


def wait_for_step(run_dir: Path, step: int, child: multiprocessing.process.BaseProcess) -> None:
    """Until the child has logged ``step`` (or ended)."""
    while child.is_alive() and max(losses_by_step(run_dir), default=0) < step:
        time.sleep(0.002)


def check_pointers_and_directories(checkpoints: Path) -> int:
    """Every ``step-*`` directory and both pointers name a complete checkpoint; returns the newest step."""
    for path in ckpt.list_checkpoints(checkpoints):
        ckpt.verify_checkpoint(path)  # raises on a partial or corrupt one
    for name in ("latest", "best"):
        pointer = ckpt.read_pointer(checkpoints, name)
        if pointer is not None:
            ckpt.verify_checkpoint(checkpoints / pointer["checkpoint"])
    newest = ckpt.latest_checkpoint(checkpoints)
    return newest.step if newest else 0


def resume_spec(run_dir: Path) -> None:
    """What ``llmodel runs resume`` does to the run folder: the same job, from its last complete checkpoint."""
    spec = read_job(run_dir)
    assert isinstance(spec, PretrainSpec)
    has_checkpoint = ckpt.latest_checkpoint(run_dir / "checkpoints") is not None
    write_job(run_dir, dataclasses.replace(spec, resume_from=str(run_dir) if has_checkpoint else None))


def test_sigkill_at_random_moments_and_inside_checkpoint_writes_loses_no_step(
    nano_config: ModelConfig, dataset_dir: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    straight = tmp_path / "straight"
    Trainer(nano_config, settings(), dataset_dir, straight).run()
    per_step = (time.monotonic() - started) / STEPS
    expected = {step: losses[0] for step, losses in losses_by_step(straight).items()}
    assert sorted(expected) == list(range(1, STEPS + 1))

    run_dir = tmp_path / "workspace" / "runs" / "killed"
    run_dir.mkdir(parents=True)
    spec = PretrainSpec(
        model_config=nano_config,
        train_config=settings(),
        data_paths=[str(dataset_dir)],
        cache_root=str(tmp_path / "workspace" / "datasets"),
    )
    write_job(run_dir, spec)
    checkpoints = run_dir / "checkpoints"
    rng = random.Random(4242)
    fork = multiprocessing.get_context("fork")
    kills, in_writes, paused_in, progress = 0, 0, [], 0
    while kills < KILLS:
        signal_file = tmp_path / f"{PAUSED}-{kills}"
        pause = PAUSED_KILLS[kills // 2] if kills % 2 else None
        pause_at = rng.randint(1, 6)
        child = fork.Process(target=_attempt, args=(str(run_dir), pause, pause_at, str(signal_file)))
        child.start()
        if pause is not None:
            deadline = time.monotonic() + 30
            while not signal_file.exists() and child.is_alive() and time.monotonic() < deadline:
                time.sleep(0.005)
        else:  # a random moment in the step after a random one
            wait_for_step(run_dir, rng.randint(progress + 1, progress + 3), child)
            time.sleep(rng.uniform(0, per_step))
        if not child.is_alive():  # it ended first: failed, or too few steps left to kill it in
            assert child.exitcode == 0, (run_dir / "train.log").read_text()
            break
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        kills += 1
        if signal_file.exists():
            paused_in.append(signal_file.read_text())
        if any(checkpoints.glob(f".tmp-step-*-{child.pid}")):  # killed between its mkdir and its rename
            in_writes += 1
        newest = check_pointers_and_directories(checkpoints)
        assert newest >= progress, "a kill never takes the run back behind a complete checkpoint"
        progress = newest
        resume_spec(run_dir)

    assert kills == KILLS, f"the run completed after {kills} kills; give it more steps"
    final = subprocess.run(
        [sys.executable, "-m", "engine.daemon.job_runner", str(run_dir)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr

    logged = losses_by_step(run_dir)
    assert sorted(logged) == list(range(1, STEPS + 1)), "every step was trained"
    for step, losses in logged.items():
        assert losses == [expected[step]] * len(losses), f"step {step}: every attempt logs the same loss"
    assert check_pointers_and_directories(checkpoints) == STEPS
    assert ckpt.read_pointer(checkpoints, "latest") == {
        "checkpoint": ckpt.step_dir_name(STEPS),
        "step": STEPS,
    }
    assert not [p.name for p in checkpoints.iterdir() if p.name.startswith(".")], "no temporary left behind"
    assert paused_in == [name for name, _ in PAUSED_KILLS], "every paused kill stopped where it was sent"
    assert in_writes >= 3, "kills inside a checkpoint's write, with its temporary directory on disk"
    print(
        f"kill loop: {kills} kills, {in_writes} while a checkpoint was being written, {len(paused_in)} paused "
        f"in checkpoint code ({', '.join(paused_in)}), "
        f"{time.monotonic() - started:.1f} s"
    )
