"""The evolve job: a study of training settings and architectures (new, resumed, or joined by another worker)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import LLModelError
from engine.specs.base import JobSpec, SpecError, absolute, absolute_all, require_paths
from engine.specs.training import DATASETS_DIR


@dataclass
class EvolveSpec(JobSpec):
    """``llmodel evolve``: the study ``study`` at ``storage``, created from ``settings`` (continued with
    ``resume``), or with ``join`` worked on with the settings stored in it. ``data_paths`` (prepared once under
    ``cache_root``) replace the study's data, for a worker whose machine keeps it elsewhere."""

    kind = "evolve"
    study: str
    storage: str
    settings: dict[str, Any] | None = None  # engine.evolve.study.StudySettings, checked by check()
    resume: bool = False
    join: bool = False
    data_paths: list[str] = field(default_factory=list)
    tokenizer_path: str | None = None
    cache_root: str | None = None

    def check(self) -> None:
        from engine.workspace import validate_name

        source = f"{self.kind} spec"
        try:
            validate_name(self.study, "study")
        except LLModelError as error:
            raise SpecError(f"{source}: study: {error}") from None
        require_paths(f"{source}: data_paths", self.data_paths)
        require_paths(f"{source}: tokenizer_path", self.tokenizer_path)
        if self.data_paths and self.cache_root is None:
            raise SpecError(f"{source}: cache_root: give the folder raw data_paths are prepared in")
        if self.join:
            if self.settings is not None:
                raise SpecError(
                    f"{source}: settings: a worker that joins a study takes the study's own settings"
                )
            return
        if self.settings is None:
            raise SpecError(f"{source}: settings: a new study needs its settings (or join an existing one)")
        self.study_settings()

    def study_settings(self) -> Any:
        """The settings of a new study as :class:`engine.evolve.study.StudySettings` (loads Optuna)."""
        from engine.evolve.study import StudySettings

        try:
            return StudySettings(**(self.settings or {}))
        except TypeError as error:  # an unknown or a missing key
            raise SpecError(
                f"{self.kind} spec: settings: {error}".replace("StudySettings.__init__() ", "")
            ) from None
        except LLModelError as error:
            raise SpecError(f"{self.kind} spec: settings: {error}") from None


def trial_training(steps: int | None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Base training settings of a study's trials: a short trial evaluates four times (for pruning) and
    checkpoints once, at its end; ``overrides`` (a ``--train-config`` file's settings) go over them."""
    from engine.training.config import TrainConfig

    every = max(1, (steps or 100) // 4)
    data: dict[str, Any] = {
        "warmup_steps": min(10, every),
        "eval_interval": every,
        "eval_batches": 4,
        "log_interval": every,
        "sample_interval": steps or 10**6,
        "attention_interval": steps or 10**6,
        "checkpoint_interval": steps or 10**6,
        "keep_last": 1,
        **(overrides or {}),
    }
    try:
        TrainConfig.from_dict(data, source="base training settings")  # an unknown key fails here
    except LLModelError as error:
        raise SpecError(str(error)) from None
    return data


def study_spec(
    workspace: Path,
    *,
    space: str,
    data_paths: Sequence[str | Path],
    tokenizer_path: str | Path | None = None,
    objectives: str | Sequence[str] = "val_loss",
    trials: int = 20,
    trial_budget: str = "100",
    sampler: str | None = None,
    population: int = 10,
    seed: int | None = None,
    max_params: int | None = None,
    base_model: Mapping[str, Any] | None = None,
    base_train: Mapping[str, Any] | None = None,
    name: str | None = None,
    storage: str | None = None,
    resume: bool = False,
) -> EvolveSpec:
    """A new (or, with ``resume``, continued) study from the CLI's flags or the workbench's form. ``space`` is
    hpo, nas, both or a space file; ``base_model`` defaults to the nano preset; ``base_train`` (a training
    settings file's content) goes over :func:`trial_training`. Loads Optuna (for the samplers)."""
    from engine.evolve.space import load_space
    from engine.evolve.study import parse_budget, storage_url
    from engine.model.config import ModelConfig

    names = [o.strip() for o in objectives.split(",")] if isinstance(objectives, str) else list(objectives)
    names = [o for o in names if o]
    steps, minutes = parse_budget(trial_budget)
    data = absolute_all(data_paths)
    if not data:
        raise SpecError("evolve spec: data_paths: give a prepared dataset, or raw files with a tokenizer")
    require_paths("evolve spec: data_paths", data)
    model = dict(base_model) if base_model is not None else ModelConfig.from_preset("nano").to_dict()
    settings = {
        "space": load_space(space).to_dict(),
        "data_path": data,
        "tokenizer_path": absolute(tokenizer_path),
        "objectives": names,
        "n_trials": trials,
        "budget_steps": steps,
        "budget_minutes": minutes,
        "sampler": sampler or ("nsga2" if len(names) > 1 else "evolution"),
        "population": population,
        "seed": seed,
        "max_params": max_params,
        "base_model": model,
        "base_train": trial_training(steps, base_train),
    }
    study = name or f"{Path(space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = EvolveSpec(
        study=study,
        storage=storage_url(workspace, study, storage),
        settings=settings,
        resume=resume,
        data_paths=data,
        tokenizer_path=absolute(tokenizer_path),
        cache_root=str(workspace / DATASETS_DIR),
    )
    spec.check()
    return spec


def join_study_spec(
    workspace: Path,
    study: str,
    *,
    storage: str | None = None,
    data_paths: Sequence[str | Path] = (),
    tokenizer_path: str | Path | None = None,
) -> EvolveSpec:
    """A worker joining the existing study ``study``; ``data_paths`` where this machine keeps the data."""
    from engine.evolve.study import storage_url

    spec = EvolveSpec(
        study=study,
        storage=storage_url(workspace, study, storage),
        join=True,
        data_paths=absolute_all(data_paths),
        tokenizer_path=absolute(tokenizer_path) if data_paths else None,
        cache_root=str(workspace / DATASETS_DIR) if data_paths else None,
    )
    spec.check()
    return spec
