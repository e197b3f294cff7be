"""Studies: where they are stored (a journal file in the workspace by default, or any Optuna storage URL), what
they search (kept in the study, so any worker can join it), and the trials' objectives."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.errors import ConfigError, LLModelError, NotFoundError, first_line
from engine.evolve.samplers import SAMPLERS, make_sampler
from engine.evolve.space import SearchSpace

Direction = Literal["minimize", "maximize"]
OBJECTIVES: dict[str, Direction] = {
    "val_loss": "minimize",
    "params": "minimize",
    "latency": "minimize",
    "tokens_per_s": "maximize",
}
STUDIES_DIR = "studies"
SETTINGS_ATTR = "llmodel"


@dataclass
class StudySettings:
    """Everything a worker needs to run a study's trials; stored in the study itself."""

    space: dict[str, Any]
    data_path: str
    tokenizer_path: str | None
    objectives: list[str] = field(default_factory=lambda: ["val_loss"])
    n_trials: int = 20
    budget_steps: int | None = 100
    budget_minutes: float | None = None
    sampler: str = "nsga2"
    population: int = 10
    seed: int | None = None
    max_params: int | None = None
    base_model: dict[str, Any] = field(default_factory=dict)
    base_train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives:
            raise ConfigError(
                f"unknown objective {unknown[0] if unknown else ''!r}; choose from {', '.join(OBJECTIVES)}"
            )
        if self.objectives[0] != "val_loss":
            raise ConfigError("the first objective is val_loss; add params, latency or tokens_per_s after it")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.n_trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.n_trials}")
        if (self.budget_steps is None) == (self.budget_minutes is None):
            raise ConfigError("give the trial budget in steps (e.g. 200) or minutes (e.g. 2m)")
        SearchSpace(**self.space)  # a bad space fails here, before any study is written

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace(**self.space)

    @property
    def directions(self) -> list[Direction]:
        return [OBJECTIVES[o] for o in self.objectives]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_budget(value: str) -> tuple[int | None, float | None]:
    """``"200"`` → 200 steps; ``"2m"`` / ``"90s"`` → minutes."""
    text = value.strip().lower()
    try:
        if text.endswith("m"):
            return None, float(text[:-1])
        if text.endswith("s"):
            return None, float(text[:-1]) / 60
        steps = int(text)
    except ValueError:
        raise ConfigError(
            f"trial budget {value!r}: give steps (200) or minutes (2m) or seconds (90s)"
        ) from None
    if steps < 1:
        raise ConfigError(f"trial budget must be positive, got {value}")
    return steps, None


def storage_url(workspace: Path, study: str, storage: str | None) -> str:
    """``storage`` as given, else the study's journal file in the workspace."""
    if storage:
        return storage
    return str(workspace / STUDIES_DIR / f"{study}.journal")


def open_storage(url: str) -> Any:
    """An Optuna storage: a journal file (a path, or ``journal:///path``) that several processes share, or any
    database URL Optuna takes (``postgresql://...``, ``sqlite:///...``) for several machines."""
    import warnings

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own events and tables say what happens
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if "://" not in url or url.startswith("journal://"):
        path = Path(url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as error:  # unreachable server, bad URL, missing driver: all one line
        raise LLModelError(f"cannot open the study storage {url}: {first_line(error)[:200]}") from None


def create_study(name: str, settings: StudySettings, url: str, *, resume: bool) -> Any:
    """Create the study (or, with ``resume``, continue it: its search space and objectives must be the ones given;
    nothing stored is changed when they are not)."""
    import optuna

    storage = open_storage(url)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if name in existing and not resume:
        raise ConfigError(
            f"study {name} already exists in {url}; continue it with --resume or pick another --study"
        )
    if name not in existing and resume:
        raise NotFoundError(f"no study {name} in {url} to resume; start it without --resume")
    if resume:
        stored = StudySettings(
            **optuna.load_study(study_name=name, storage=storage).user_attrs[SETTINGS_ATTR]
        )
        if stored.space != settings.space:
            raise ConfigError(
                f"study {name} searches a different space; resume it with the same --space, or start a new study"
            )
        if stored.objectives != settings.objectives:
            raise ConfigError(
                f"study {name} optimises {','.join(stored.objectives)}; resume it with those objectives"
            )
    sampler = make_sampler(
        settings.sampler,
        population=settings.population,
        seed=settings.seed,
        objectives=len(settings.objectives),
    )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=settings.directions,
        sampler=sampler,
        load_if_exists=resume,
    )
    study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    return study


def load_study(name: str, url: str) -> tuple[Any, StudySettings]:
    """An existing study and the settings stored in it (what a joining worker runs)."""
    import optuna

    storage = open_storage(url)
    if name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        raise NotFoundError(
            f"no study {name} in {url}; see `llmodel evolve show` or start it with `llmodel evolve`"
        )
    study = optuna.load_study(study_name=name, storage=storage)
    settings = StudySettings(**study.user_attrs[SETTINGS_ATTR])
    study.sampler = make_sampler(
        settings.sampler, population=settings.population, seed=None, objectives=len(settings.objectives)
    )
    return study, settings
