"""Evaluating a checkpoint (with an adapter, if given) on tasks: the library function behind ``llmodel evaluate``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.evaluation.requests import ModelScorer
from engine.evaluation.runner import EvalSettings, Progress, TaskReport, run_tasks
from engine.evaluation.tasks import Task, resolve_task
from engine.fileio import write_json_atomic

RESULTS_FILE = "results.json"


def resolve_tasks(names: list[str]) -> list[Task]:
    """The tasks named (built-in names or task files), each checked before anything is loaded."""
    from engine.errors import DataError

    if not names:
        raise DataError("name at least one task (see `llmodel evaluate --tasks list`)")
    return [resolve_task(name) for name in names]


def evaluate_model(
    model_path: str | Path,
    task_names: list[str],
    settings: EvalSettings,
    *,
    adapter: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 8,
    results_dir: Path | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    stage: Callable[[str], Progress] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[TaskReport]:
    """Run the tasks on the model; each task's result goes to ``on_result`` (and ``results_dir/results.json``)
    as soon as it is measured."""
    from engine.runs.loading import load_for_inference

    tasks = resolve_tasks(task_names)
    loaded = load_for_inference(model_path, adapter=adapter, device=device)
    scorer = ModelScorer(loaded.model, loaded.tokenizer, batch_size=batch_size)
    identity = {
        "model": str(model_path),
        "checkpoint": str(loaded.checkpoint.path),
        "step": loaded.checkpoint.step,
        "adapter": loaded.adapter,
    }
    recorded: list[dict[str, Any]] = []

    def handed_on(report: TaskReport) -> None:
        row = {**identity, **report.to_dict(), "time": time.time()}
        recorded.append(row)
        if results_dir is not None:
            write_json_atomic(results_dir / RESULTS_FILE, {"results": recorded})
        if on_result is not None:
            on_result(row)

    return run_tasks(tasks, scorer, settings, on_result=handed_on, stage=stage, should_stop=should_stop)


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    """The results an evaluation run wrote."""
    path = run_dir / RESULTS_FILE
    return json.loads(path.read_text(encoding="utf-8"))["results"] if path.is_file() else []
