"""A worker of a study: ask a trial, train it as an ordinary run, tell its objectives; until the study has its
trials. Any number of workers, in any number of processes or machines, may share one study's storage.

Exactly ``n_trials`` trials complete however many workers share the study: a worker asks for a new trial only
while fewer than ``n_trials`` are complete or running, and a trial that more than ``n_trials`` complete-or-running
trials precede (two workers asked at once) is told as surplus before it trains. A worker records a heartbeat (and
who it is) in its running trial; a trial whose heartbeat stops, or whose worker process on this machine is gone,
is marked failed and queued again with the same parameters — none is left running forever and none is lost.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from engine.errors import LLModelError
from engine.evolve.study import StudySettings
from engine.processes import ProcessRef

HEARTBEAT = 2.0  # seconds between a running trial's heartbeats
GRACE = 30.0  # a running trial silent for longer than this lost its worker (another machine's)
BUDGET = "budget"  # the constraint every trial carries
ATTEMPTS_PER_TRIAL = 10  # asks per wanted trial before a space that yields nothing valid is given up


class TrialPruned(Exception):
    """The pruner stopped the trial early: hopeless from its intermediate validation losses."""


@dataclass
class TrialUpdate:
    """A trial changed state: ``running``, ``complete``, ``failed``, ``pruned`` or ``rejected`` (never trained)."""

    number: int
    state: str
    params: dict[str, Any]
    objectives: dict[str, float] | None = None
    reason: str | None = None
    run_dir: Path | None = None


@dataclass
class WorkerSummary:
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    pruned: int = 0
    numbers: list[int] = field(default_factory=list)  # the trials this worker completed


def run_worker(
    study: optuna.Study,
    settings: StudySettings,
    workspace: Path,
    *,
    train: Callable[..., list[float]],
    should_stop: Callable[[], bool] | None = None,
    on_trial: Callable[[TrialUpdate], None] = lambda _: None,
) -> WorkerSummary:
    """Run trials until the study has ``n_trials`` complete (or ``should_stop``). ``train(trial, run_dir, stop)``
    trains one trial and returns its objective values."""
    stop = should_stop or (lambda: False)
    space = settings.search_space
    distributions = space.distributions()
    summary = WorkerSummary()
    asked = 0
    me = _identity()
    while not stop():
        fail_stale_trials(study)
        complete = _count(study, (TrialState.COMPLETE,))
        if complete >= settings.n_trials:
            break
        if complete + _count(study, (TrialState.RUNNING,)) >= settings.n_trials:
            time.sleep(HEARTBEAT / 4)  # the others are finishing the study; one may yet fail and need us
            continue
        asked += 1
        if asked > ATTEMPTS_PER_TRIAL * settings.n_trials:
            raise LLModelError(
                f"{asked - 1} trials were asked without {settings.n_trials} completing; the space may yield no "
                "valid architecture within the budget (see the rejected trials with `llmodel evolve show`)"
            )
        trial = study.ask(distributions)
        trial.set_user_attr("worker", me)
        if _ahead(study, trial.number) >= settings.n_trials:
            trial.set_user_attr("reason", "surplus: another worker asked at the same moment")
            study.tell(trial, state=TrialState.FAIL)
            continue
        params = dict(trial.params)
        reason = _invalid(space, settings, params, trial)
        if reason:
            trial.set_user_attr("reason", reason)
            study.tell(trial, state=TrialState.PRUNED)
            summary.rejected += 1
            on_trial(TrialUpdate(trial.number, "rejected", params, reason=reason))
            continue
        run_dir = workspace / "runs" / f"trial-{study.study_name}-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        on_trial(TrialUpdate(trial.number, "running", params, run_dir=run_dir))
        with _Heartbeat(study, trial):
            try:
                values = train(trial, run_dir, stop)
            except TrialPruned:
                reason = "pruned: its validation loss was hopeless at an intermediate step"
                _tell(study, trial, TrialState.PRUNED, reason)
                summary.pruned += 1
                on_trial(TrialUpdate(trial.number, "pruned", params, reason=reason, run_dir=run_dir))
                continue
            except Exception as error:  # out of memory, NaN, a bug: a failed trial, never a crashed search
                reason = f"{type(error).__name__}: {error}"[:300]
                _tell(study, trial, TrialState.FAIL, reason)
                summary.failed += 1
                on_trial(TrialUpdate(trial.number, "failed", params, reason=reason, run_dir=run_dir))
                continue
        if stop():  # cancelled mid-trial: its numbers are not a finished trial's, so it runs again on resume
            _tell(study, trial, TrialState.FAIL, "cancelled; queued again")
            study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            on_trial(TrialUpdate(trial.number, "failed", params, reason="cancelled", run_dir=run_dir))
            break
        if not _tell(study, trial, TrialState.COMPLETE, None, values):
            continue
        summary.completed += 1
        summary.numbers.append(trial.number)
        objectives = dict(zip(settings.objectives, values, strict=True))
        on_trial(TrialUpdate(trial.number, "complete", params, objectives=objectives, run_dir=run_dir))
    return summary


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    state: TrialState,
    reason: str | None,
    values: list[float] | None = None,
) -> bool:
    """Finish the trial; False when another worker already failed it (it thought this one gone) and queued it again."""
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        if reason is not None:
            trial.set_user_attr("reason", reason)
    except UpdateFinishedTrialError:
        return False
    told = study.tell(trial, values, state=state if values is None else None, skip_if_finished=True)
    return told.state == state


def _identity() -> dict[str, Any]:
    ref = ProcessRef.of(os.getpid())
    return {"host": socket.gethostname(), "pid": ref.pid, "started": ref.started}


def _count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _ahead(study: optuna.Study, number: int) -> int:
    """Trials numbered before ``number`` that are complete or still running."""
    alive = (TrialState.COMPLETE, TrialState.RUNNING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=alive) if t.number < number)


def _invalid(space: Any, settings: StudySettings, params: dict[str, Any], trial: optuna.Trial) -> str | None:
    """Why these parameters must not reach training (an invalid architecture, the parameter budget), or None.

    Every trial gets a ``budget`` constraint (Optuna's: ≤ 0 is feasible), so the samplers that handle constraints
    (NSGA-II, TPE) learn which regions yield nothing trainable."""
    from engine.errors import ConfigError
    from engine.model.config import ModelConfig

    model, _ = space.split(params)
    try:
        config = ModelConfig.from_dict({**settings.base_model, **model}, source="trial")
    except ConfigError as error:
        trial.set_constraint(BUDGET, 1.0)
        return f"invalid architecture: {error}".replace("trial: ", "")
    count = config.num_parameters()
    trial.set_user_attr("parameters", count)
    trial.set_constraint(
        BUDGET, float(count - settings.max_params) if settings.max_params is not None else -1.0
    )
    if settings.max_params is not None and count > settings.max_params:
        return f"{count:,} parameters exceed the budget of {settings.max_params:,}"
    return None


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark running trials whose worker is gone as failed and queue each again; returns how many.

    A worker is gone when it ran on this machine and its process no longer runs, or when its heartbeat is older
    than :data:`GRACE` (a worker elsewhere)."""
    now, host, revived = time.time(), socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        beat = trial.user_attrs.get(
            "heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else now
        )
        local_dead = worker.get("host") == host and not ProcessRef(worker["pid"], worker.get("started")).alive
        if not local_dead and now - beat < GRACE:
            continue
        try:
            study._storage.set_trial_user_attr(
                trial._trial_id, "reason", "its worker stopped (no heartbeat); retried"
            )
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except Exception:  # another worker got there first
            continue
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        revived += 1
    return revived


class _Heartbeat:
    """Records the time in the running trial every few seconds, from a thread, while its training runs."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self.storage, self.trial_id = study._storage, trial._trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="trial-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
            except Exception:  # the trial finished under us; nothing left to keep alive
                return
