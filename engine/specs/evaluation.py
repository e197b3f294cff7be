"""Evaluation and benchmark jobs: a checkpoint (with an adapter, optionally) scored on tasks, or timed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import LLModelError
from engine.evaluation.settings import EvalSettings
from engine.specs.base import JobSpec, SpecError, absolute, require_checkpoint, require_paths

TASK_FILES = (".json", ".yaml", ".yml")  # what a custom task file is named


@dataclass
class EvaluateSpec(JobSpec):
    """``llmodel evaluate``: ``model_path`` (with ``adapter`` merged in) scored on ``tasks``, in that order."""

    kind = "evaluate"
    model_path: str
    tasks: list[str]
    adapter: str | None = None
    device: str = "auto"
    batch_size: int = 8
    settings: EvalSettings = field(default_factory=EvalSettings)

    def check(self) -> None:
        source = f"{self.kind} spec"
        check_tasks(self.tasks, self.settings.data_paths)
        require_checkpoint(f"{source}: model_path", self.model_path)
        require_paths(f"{source}: adapter", self.adapter)


def check_tasks(tasks: Sequence[str], data_paths: Mapping[str, str]) -> None:
    """Every task is known (or a readable task file) and has the local file it reads."""
    from engine.evaluation.tasks import resolve_task

    source = "evaluate spec"
    if not tasks:
        raise SpecError(f"{source}: tasks: name at least one task (see `llmodel evaluate --tasks list`)")
    for name in tasks:
        try:
            task = resolve_task(name)
        except LLModelError as error:
            raise SpecError(f"{source}: tasks: {error}") from None
        if task.needs_data and task.name not in data_paths:
            raise SpecError(
                f"{source}: settings.data_paths: task {task.name} reads a local file (nothing is downloaded): "
                f"pass --data-path {task.name}=FILE, {task.data_layout}"
            )
    require_paths(f"{source}: settings.data_paths", list(data_paths.values()))


@dataclass
class BenchmarkSpec(JobSpec):
    """``llmodel benchmark``: generation speed and latency, memory, energy and training speed of ``model_path``."""

    kind = "benchmark"
    model_path: str
    adapter: str | None = None
    device: str = "auto"
    new_tokens: int = 64

    def check(self) -> None:
        source = f"{self.kind} spec"
        require_checkpoint(f"{source}: model_path", self.model_path)
        require_paths(f"{source}: adapter", self.adapter)
        if self.new_tokens < 1:
            raise SpecError(f"{source}: new_tokens must be at least 1, got {self.new_tokens}")


def task_order(names: str | Sequence[str]) -> list[str]:
    """The tasks an evaluation runs, in the one order every front end gets: as named (comma-separated, or a
    list), repeats dropped, task files made absolute (the engine's working directory is not the user's)."""
    from engine.evaluation.tasks import builtin_tasks

    given = names.split(",") if isinstance(names, str) else list(names)
    known = builtin_tasks()
    chosen = dict.fromkeys(n.strip() for n in given if n.strip())
    return [str(absolute(n)) if n not in known and Path(n).suffix in TASK_FILES else n for n in chosen]


def task_files(values: Sequence[str], tasks: Sequence[str]) -> dict[str, str]:
    """``TASK=FILE`` entries (a bare ``FILE`` when only one of ``tasks`` reads a local file) as task → absolute
    path."""
    from engine.evaluation.tasks import resolve_task

    needing = []
    for name in tasks:
        try:
            if resolve_task(name).needs_data:
                needing.append(resolve_task(name).name)
        except LLModelError as error:
            raise SpecError(f"evaluate spec: tasks: {error}") from None
    paths: dict[str, str] = {}
    for value in values:
        task, has_path, path = value.partition("=")
        if not has_path:
            if len(needing) != 1:
                raise SpecError(f"--data-path {value}: say which task it is for, as TASK=FILE")
            task, path = needing[0], value
        paths[task.strip()] = str(absolute(path.strip()))
    return paths


def evaluate_spec(
    model_path: str | Path,
    tasks: str | Sequence[str],
    *,
    adapter: str | Path | None = None,
    data_paths: Sequence[str] | Mapping[str, str] = (),
    limit: int | None = None,
    stride: int | None = None,
    temperature: float = 0.0,
    seed: int = 1234,
    device: str = "auto",
) -> EvaluateSpec:
    """The evaluation job of the CLI's flags or the workbench's form; ``data_paths`` maps tasks to local files
    (or lists ``TASK=FILE`` entries). An unknown task, a missing file or checkpoint fails here."""
    names = task_order(tasks)
    files = (
        {task: str(absolute(path)) for task, path in data_paths.items()}
        if isinstance(data_paths, Mapping)
        else task_files(data_paths, names)
    )
    spec = EvaluateSpec(
        model_path=str(absolute(model_path)),
        tasks=names,
        adapter=absolute(adapter),
        device=device,
        settings=EvalSettings(
            limit=limit, stride=stride, temperature=temperature, seed=seed, data_paths=files
        ),
    )
    spec.check()
    return spec


def benchmark_spec(
    model_path: str | Path, *, adapter: str | Path | None = None, device: str = "auto", new_tokens: int = 64
) -> BenchmarkSpec:
    """The benchmark job of the CLI's flags or the workbench; a missing checkpoint or adapter fails here."""
    spec = BenchmarkSpec(
        model_path=str(absolute(model_path)), adapter=absolute(adapter), device=device, new_tokens=new_tokens
    )
    spec.check()
    return spec
