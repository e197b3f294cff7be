"""What a study found: its trials, the Pareto front (several objectives) or best-so-far (one), parameter
importances, and a chosen trial's configs written as files ``llmodel pretrain`` reads."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.errors import LLModelError, NotFoundError
from engine.evolve.space import TRAIN_PARAMS
from engine.evolve.study import StudySettings
from engine.evolve.trial import trial_configs
from engine.fileio import write_json_atomic

_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
    TrialState.FAIL: "failed",
    TrialState.PRUNED: "pruned",
}


@dataclass
class TrialRow:
    """One trial as the tables show it."""

    number: int
    state: str  # complete, running, waiting, failed, pruned, rejected
    params: dict[str, Any]
    objectives: dict[str, float]
    parameters: int | None
    reason: str | None
    run_dir: str | None
    seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def trial_rows(study: optuna.Study, settings: StudySettings) -> list[TrialRow]:
    """Every trial of the study, in order; a trial stopped before training shows as ``rejected``."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        state = _STATES[trial.state]
        reason = trial.user_attrs.get("reason")
        if state == "pruned" and "run_dir" not in trial.user_attrs:
            state = "rejected"
        objectives = dict(zip(settings.objectives, trial.values, strict=True)) if trial.values else {}
        seconds = trial.duration.total_seconds() if trial.duration else None
        row = TrialRow(
            trial.number,
            state,
            dict(trial.params),
            objectives,
            trial.user_attrs.get("parameters"),
            reason,
            trial.user_attrs.get("run_dir"),
            seconds,
        )
        rows.append(row)
    return rows


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The trials no other complete trial beats on every objective (the best trial, for one objective)."""
    if not complete_trials(study):
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.values[0])


def best_so_far(study: optuna.Study) -> list[tuple[int, float]]:
    """(trial number, the best first objective of the complete trials up to it) for each complete trial."""
    best, curve = math.inf, []
    for trial in sorted(complete_trials(study), key=lambda t: t.number):
        best = min(best, trial.values[0])
        curve.append((trial.number, best))
    return curve


def importances(study: optuna.Study) -> dict[str, float]:
    """How much each parameter matters for the first objective (Optuna's default evaluator); empty when there
    are too few complete trials, or nothing varied, to tell."""
    trials = complete_trials(study)
    if len(trials) < 3:
        return {}
    try:
        with warnings.catch_warnings():  # the evaluator reminds that it ranks for low values: we minimise
            warnings.simplefilter("ignore", UserWarning)
            return dict(optuna.importance.get_param_importances(study, target=lambda t: t.values[0]))
    except (RuntimeError, ValueError):  # fewer than two distinct values of every parameter
        return {}


def pick_trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    """Trial ``number``, or the best: lowest validation loss (of the Pareto front, for several objectives)."""
    if number is None:
        front = pareto_front(study)
        if not front:
            raise NotFoundError(f"study {study.study_name} has no complete trial yet")
        return min(front, key=lambda t: t.values[0])
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number:
            if trial.state != TrialState.COMPLETE:
                raise LLModelError(
                    f"trial {number} of {study.study_name} did not complete ({trial.state.name.lower()})"
                )
            return trial
    raise NotFoundError(f"study {study.study_name} has no trial {number}")


def export_configs(settings: StudySettings, trial: FrozenTrial, output: Path) -> tuple[Path, Path]:
    """Write the trial's model config and training settings (its hyperparameters, not the search's short budget)
    as ``model.json`` and ``train.json`` under ``output``; returns both paths."""
    model_config, train_config = trial_configs(settings, trial.params)
    model_config.name = f"{trial.number}-{model_config.name}"
    chosen = train_config.to_dict()
    train = {k: chosen[k] for k in sorted(TRAIN_PARAMS | {"seq_len"}) if k in chosen}
    output.mkdir(parents=True, exist_ok=True)
    model_path, train_path = output / "model.json", output / "train.json"
    model_config.save(model_path)
    write_json_atomic(train_path, train)
    return model_path, train_path
