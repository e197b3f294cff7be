"""Turn a run's events (``events.jsonl`` lines) into catalog rows; pure Python, so the SQL side stays small.

A malformed event is skipped rather than raised: the engine must always be able to move past a line, or it would
retry the same batch forever.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled", "failed_resumable", "pruned")
FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled", "failed_resumable", "pruned"})

# Fields of a step/eval event that locate it rather than measure something.
_NOT_METRICS = frozenset({"type", "time", "step"})
# Fields of a status event that update the run's own columns; the rest (device, parameters…) go to ``info``.
_STATUS_COLUMNS = frozenset(
    {"type", "time", "status", "step", "total_steps", "metrics", "error", "model_config", "train_config"}
)


@dataclass
class EventBatch:
    """The rows and run updates that one batch of events amounts to."""

    metrics: list[tuple[int, float | None, str, float]] = field(default_factory=list)
    evaluations: list[tuple[int, float | None, str, float]] = field(default_factory=list)
    samples: list[tuple[int, float | None, str | None, str]] = field(default_factory=list)
    checkpoints: dict[int, tuple[str, bool, float | None]] = field(default_factory=dict)
    attention: list[tuple[int, str, int | None, int | None, str | None, float | None]] = field(
        default_factory=list
    )
    # A restart at step S (a "running" status event) makes earlier-recorded history after S stale.
    restart_step: int | None = None
    new_best: bool = False
    run: dict[str, Any] = field(default_factory=dict)
    metrics_update: dict[str, float] = field(default_factory=dict)
    info_update: dict[str, Any] = field(default_factory=dict)
    # (model, checkpoint, step, adapter, task, metric, value, stderr, n, chance, settings JSON, time)
    results: list[tuple[Any, ...]] = field(default_factory=list)
    # (name, storage, settings JSON, time) of a study job; (study, number, run_id, state, params, objectives,
    # reason, time) of its trials — the latest event of a trial wins.
    studies: list[tuple[Any, ...]] = field(default_factory=list)
    trials: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _measurements(event: dict[str, Any]) -> dict[str, float]:
    """Every numeric field of a step or eval event except where/when it happened."""
    found = {}
    for key, value in event.items():
        number = _number(value)
        if key not in _NOT_METRICS and number is not None:
            found[key] = number
    return found


def _drop_after(batch: EventBatch, step: int) -> None:
    batch.metrics = [row for row in batch.metrics if row[0] <= step]
    batch.evaluations = [row for row in batch.evaluations if row[0] <= step]
    batch.samples = [row for row in batch.samples if row[0] <= step]
    batch.attention = [row for row in batch.attention if row[0] <= step]


def events_to_batch(events: list[dict[str, Any]], *, now: float) -> EventBatch:
    """Fold ``events`` (in file order) into rows to insert and updates to the run's row."""
    batch = EventBatch()
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        when = _number(event.get("time"))
        step = _int(event.get("step"))
        if kind in ("step", "eval") and step is not None:
            values = _measurements(event)
            batch.metrics.extend((step, when, name, value) for name, value in values.items())
            if kind == "eval":
                batch.evaluations.extend((step, when, name, value) for name, value in values.items())
            batch.metrics_update.update(values)
            batch.run["step"] = step
        elif kind == "sample" and step is not None and isinstance(event.get("text"), str):
            prompt = event.get("prompt")
            batch.samples.append((step, when, prompt if isinstance(prompt, str) else None, event["text"]))
        elif kind == "checkpoint" and step is not None and isinstance(event.get("path"), str):
            best = event.get("best") is True
            if best:
                batch.new_best = True
                batch.checkpoints = {s: (p, False, t) for s, (p, _, t) in batch.checkpoints.items()}
            batch.checkpoints[step] = (event["path"], best, when)
        elif kind == "attention" and step is not None and isinstance(event.get("path"), str):
            tokens = event.get("tokens")
            batch.attention.append(
                (
                    step,
                    event["path"],
                    _int(event.get("layers")),
                    _int(event.get("heads")),
                    json.dumps(tokens) if tokens is not None else None,
                    when,
                )
            )
        elif kind == "status":
            _apply_status(batch, event, step, when if when is not None else now)
        elif (
            kind == "result" and isinstance(event.get("task"), str) and isinstance(event.get("scores"), list)
        ):
            _apply_result(batch, event, when if when is not None else now)
        elif kind == "study" and isinstance(event.get("name"), str) and isinstance(event.get("storage"), str):
            settings = json.dumps(event.get("settings") or {}, separators=(",", ":"))
            batch.studies.append(
                (event["name"], event["storage"], settings, when if when is not None else now)
            )
        elif (
            kind == "trial" and isinstance(event.get("study"), str) and _int(event.get("number")) is not None
        ):
            _apply_trial(batch, event, when if when is not None else now)
    return batch


def _apply_trial(batch: EventBatch, event: dict[str, Any], when: float) -> None:
    """A study's trial changing state (running, complete, failed, pruned) as its trials row."""
    number = _int(event.get("number"))
    assert number is not None
    objectives = event.get("objectives")
    batch.trials[(event["study"], number)] = (
        event["study"],
        number,
        event.get("run_id") if isinstance(event.get("run_id"), str) else None,
        str(event.get("state") or "running"),
        json.dumps(event.get("params") or {}, separators=(",", ":")),
        json.dumps(objectives, separators=(",", ":")) if isinstance(objectives, dict) else None,
        event.get("reason") if isinstance(event.get("reason"), str) else None,
        when,
    )


def _apply_result(batch: EventBatch, event: dict[str, Any], when: float) -> None:
    """A task's scores (``result`` event of an evaluation) as eval_results rows."""
    baseline = event.get("baseline")
    if not isinstance(baseline, dict):
        baseline = {}
    settings = json.dumps(event.get("settings") or {}, separators=(",", ":"))
    for score in event["scores"]:
        if not isinstance(score, dict) or not isinstance(score.get("metric"), str):
            continue
        batch.results.append(
            (
                event.get("model"),
                event.get("checkpoint"),
                _int(event.get("step")),
                event.get("adapter"),
                event["task"],
                score["metric"],
                _number(score.get("value")),
                _number(score.get("stderr")),
                _int(score.get("n")),
                _number(baseline.get(score["metric"])),
                settings,
                when,
            )
        )


def _apply_status(batch: EventBatch, event: dict[str, Any], step: int | None, when: float) -> None:
    status = event.get("status")
    if step is not None:
        batch.run["step"] = step
    total = _int(event.get("total_steps"))
    if total is not None:
        batch.run["total_steps"] = total
    if isinstance(event.get("metrics"), dict):
        batch.metrics_update.update(
            {k: v for k, v in ((k, _number(v)) for k, v in event["metrics"].items()) if v is not None}
        )
    if isinstance(event.get("error"), str):
        batch.run["error"] = event["error"]
    if isinstance(event.get("model_config"), dict) and isinstance(event.get("train_config"), dict):
        # Every training run, whatever its kind, records its settings in one shape (runs compare reads it).
        resolved = {"model_config": event["model_config"], "train_config": event["train_config"]}
        batch.run["config"] = json.dumps(resolved, separators=(",", ":"))
    batch.info_update.update({k: v for k, v in event.items() if k not in _STATUS_COLUMNS})
    if status not in RUN_STATUSES:
        return
    batch.run["status"] = status
    if status == "running":
        batch.run.setdefault("started", when)
        batch.run["finished"] = None
        if step is not None:
            _drop_after(batch, step)
            batch.restart_step = step if batch.restart_step is None else min(batch.restart_step, step)
    elif status in FINISHED_STATUSES:
        batch.run["finished"] = when
