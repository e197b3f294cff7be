"""Helpers of the workbench tests: waiting on the app, and a trained run in the test's workspace."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from engine.client import EngineClient
from engine.specs import pretrain_spec


async def wait_for(
    pilot: Pilot, condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition"
) -> Any:
    """Let the app run until ``condition()`` is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def submit_run(
    workspace: Path,
    dataset_dir: Path,
    tokenizer_dir: Path,
    model_config: dict[str, Any],
    steps: int = 8,
    interval: int = 4,
) -> str:
    """Submit a nano pretraining job to the workspace's engine; evals, samples, checkpoints and attention
    snapshots every ``interval`` steps. Returns its run id at once."""
    train = {
        "batch_size": 2,
        "seq_len": 16,
        "max_steps": steps,
        "warmup_steps": 1,
        "learning_rate": 3e-3,
        "eval_interval": interval,
        "eval_batches": 1,
        "sample_interval": interval,
        "sample_tokens": 8,
        "checkpoint_interval": interval,
        "attention_interval": interval,
        "log_interval": 2,
        "device": "cpu",
    }
    spec = pretrain_spec(
        model_config, train, [dataset_dir], workspace=workspace, tokenizer_path=tokenizer_dir
    )
    with EngineClient.connect(workspace) as client:
        return client.submit_job(spec)


def train_run(
    workspace: Path, dataset_dir: Path, tokenizer_dir: Path, model_config: dict[str, Any], steps: int = 8
) -> str:
    """Submit a nano pretraining job to the workspace's engine, wait for it to finish, return its run id."""
    run_id = submit_run(workspace, dataset_dir, tokenizer_dir, model_config, steps)
    with EngineClient.connect(workspace) as client:
        final = [event for event in client.follow(run_id) if event.get("type") in ("status", "end")][-1]
        assert final.get("status") == "completed", final
    return run_id


async def mounted(pilot: Pilot, selector: str, timeout: float = 30.0) -> Any:
    """The widget matching ``selector`` on the workbench's screen, once its (lazy) tab has mounted it."""
    screen = pilot.app.screen_stack[0]
    await wait_for(
        pilot,
        lambda: screen.query(selector) and screen.query_one(selector).is_mounted,
        timeout,
        what=f"{selector} to mount",
    )
    await pilot.pause()
    return screen.query_one(selector)
