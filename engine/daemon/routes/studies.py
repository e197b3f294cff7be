"""Studies (evolutionary search): the workspace's studies, one study's report read from its storage (every
worker's trials, the Pareto front or best-so-far, importances), and a trial's configs exported for pretraining."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from engine.daemon.dependencies import PROTECTED, State
from engine.daemon.routes.responses import ERRORS
from engine.errors import NotFoundError

router = APIRouter(prefix="/api/studies", dependencies=PROTECTED, responses=ERRORS)


class ExportRequest(BaseModel):
    trial: int | None = None  # None: the lowest validation loss


@router.get("")
def studies(state: State) -> list[dict[str, Any]]:
    with state.supervisor.lock:
        return state.supervisor.catalog.list_studies()


@router.get("/{name}/trials")
def trials(name: str, state: State) -> list[dict[str, Any]]:
    with state.supervisor.lock:
        return state.supervisor.catalog.study_trials(name)


@router.get("/{name}")
def study(name: str, state: State) -> dict[str, Any]:
    from engine.evolve import report

    loaded, settings = _load(name, state)
    return {
        "name": name,
        "settings": settings.to_dict(),
        "trials": [row.to_dict() for row in report.trial_rows(loaded, settings)],
        "pareto_front": [t.number for t in report.pareto_front(loaded)],
        "best_so_far": report.best_so_far(loaded),
        "importances": report.importances(loaded),
    }


@router.post("/{name}/export")
def export(name: str, body: ExportRequest, state: State) -> dict[str, Any]:
    """Write the trial's model config and training settings into the workspace's configs and record them."""
    from engine.evolve.report import export_configs, pick_trial
    from engine.fileio import read_mapping

    loaded, settings = _load(name, state)
    chosen = pick_trial(loaded, body.trial)
    label = f"{name}-trial{chosen.number}"
    model_path, train_path = export_configs(settings, chosen, state.supervisor.workspace / "configs" / label)
    model, train = (read_mapping(path, "config", ValueError) for path in (model_path, train_path))
    with state.supervisor.lock:
        state.supervisor.catalog.register_config(label, model_path, "model", model)
        state.supervisor.catalog.register_config(f"{label}-train", train_path, "train", train)
    return {
        "trial": chosen.number,
        "name": label,
        "model_config": model,
        "train_config": train,
        "model_path": str(model_path),
        "train_path": str(train_path),
        "data_path": settings.data_path,
        "tokenizer_path": settings.tokenizer_path,
    }


def _load(name: str, state: State) -> tuple[Any, Any]:
    from engine.evolve.study import load_study

    with state.supervisor.lock:
        known = {row["name"]: row["storage"] for row in state.supervisor.catalog.list_studies()}
    if name not in known:
        raise NotFoundError(f"no study named {name} in this workspace; see `llmodel evolve list`")
    return load_study(name, known[name])
