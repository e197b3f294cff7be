"""A study as an engine job: create (or resume, or join) the study, then work on it until it has its trials.

Each trial is recorded as a run of its own (kind ``trial``, its parent this job): the job announces it with a
``child_run`` event, the trial's training writes its own events and checkpoints, and a final status event says
how it ended — so the engine follows, records and draws every trial like any run. ``trial`` events (state,
parameters, objectives) fill the catalog's trials table; a ``study`` event its studies table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.evolve.study import StudySettings, create_study, load_study
from engine.evolve.trial import train_trial
from engine.evolve.worker import TrialUpdate, run_worker
from engine.runs.events import EventLog

# How a trial's own run ends, by the trial's state.
_RUN_STATUS = {"complete": "completed", "failed": "failed", "pruned": "pruned"}


def run_evolve(
    run_dir: Path,
    name: str,
    url: str,
    settings: StudySettings | None,
    should_stop: Callable[[], bool],
    events: EventLog,
    *,
    resume: bool = False,
    data_path: str | None = None,
    tokenizer_path: str | None = None,
) -> dict[str, Any]:
    """Run the study ``name`` at ``url``: a new one from ``settings`` (with ``resume`` the same one continued),
    or without them an existing study joined, worked on with the settings stored in it (and ``data_path``,
    ``tokenizer_path`` where this machine keeps the data elsewhere)."""
    if settings is None:
        study, settings = load_study(name, url)
        if data_path:
            settings.data_path = data_path
        if tokenizer_path:
            settings.tokenizer_path = tokenizer_path
    else:
        study = create_study(name, settings, url, resume=resume)
    events.emit("study", name=name, storage=url, settings=settings.to_dict())
    events.log(f"study {name} at {url}: {len(study.trials)} trials so far")
    events.emit("progress", stage="trials", done=_complete(study), total=settings.n_trials)
    workspace = run_dir.parent.parent

    def on_trial(update: TrialUpdate) -> None:
        run_id = update.run_dir.name if update.run_dir else None
        if update.state == "running":
            config = {"study": name, "trial": update.number, "params": update.params}
            events.emit("child_run", run_id=run_id, run_dir=str(update.run_dir), kind="trial", config=config)
        elif update.run_dir is not None:
            _end_run(update)
        events.emit(
            "trial",
            study=name,
            number=update.number,
            run_id=run_id,
            state=update.state,
            params=update.params,
            objectives=update.objectives,
            reason=update.reason,
        )
        if update.state == "complete":
            values = ", ".join(f"{k} {v:.4g}" for k, v in (update.objectives or {}).items())
            events.log(f"trial {update.number}: {values}")
            events.emit("progress", stage="trials", done=_complete(study), total=settings.n_trials)
        elif update.state != "running":
            events.log(f"trial {update.number} {update.state}: {update.reason}", level="warning")

    def train(trial: Any, trial_dir: Path, stop: Callable[[], bool]) -> list[float]:
        return train_trial(settings, trial, trial_dir, stop)

    summary = run_worker(study, settings, workspace, train=train, should_stop=should_stop, on_trial=on_trial)
    return {
        "study": name,
        "storage": url,
        "completed": summary.completed,
        "failed": summary.failed,
        "rejected": summary.rejected,
        "pruned": summary.pruned,
    }


def _complete(study: Any) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE")


def _end_run(update: TrialUpdate) -> None:
    """The trial run's final status event: how the engine learns the trial's run ended."""
    assert update.run_dir is not None
    cancelled = update.reason == "cancelled"
    status = "cancelled" if cancelled else _RUN_STATUS[update.state]
    with EventLog(update.run_dir) as log:
        if update.reason and not cancelled:
            log.log(update.reason, level="error" if update.state == "failed" else "warning")
        result = {"trial": update.number, "objectives": update.objectives}
        error = update.reason if status == "failed" else None
        log.emit("status", status=status, final=True, result=result, error=error)
