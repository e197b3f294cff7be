"""Evaluation and benchmark jobs: a checkpoint (with an adapter, optionally) scored on tasks, or timed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import LLModelError
from engine.evaluation.settings import EvalSettings
from engine.specs.base import JobSpec, SpecError, absolute, require_checkpoint, require_paths


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
        from engine.evaluation.tasks import resolve_task

        source = f"{self.kind} spec"
        require_checkpoint(f"{source}: model_path", self.model_path)
        require_paths(f"{source}: adapter", self.adapter)
        if not self.tasks:
            raise SpecError(f"{source}: tasks: name at least one task (see `llmodel evaluate --tasks list`)")
        for name in self.tasks:
            try:
                task = resolve_task(name)
            except LLModelError as error:
                raise SpecError(f"{source}: tasks: {error}") from None
            if task.needs_data and task.name not in self.settings.data_paths:
                raise SpecError(
                    f"{source}: settings.data_paths: task {task.name} reads a local file (nothing is downloaded): "
                    f"pass --data-path {task.name}=FILE, {task.data_layout}"
                )
        require_paths(f"{source}: settings.data_paths", list(self.settings.data_paths.values()))


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
    """The tasks an evaluation runs, in the one order every front end gets: built-in tasks in the order
    ``llmodel evaluate --tasks list`` shows them, then task files as given (made absolute); repeats dropped."""
    from engine.evaluation.tasks import builtin_tasks

    given = [n.strip() for n in names.split(",")] if isinstance(names, str) else [n.strip() for n in names]
    given = [n for n in dict.fromkeys(given) if n]
    known = list(builtin_tasks())
    files = [n for n in given if n not in known]
    return [n for n in known if n in given] + [str(absolute(n)) for n in files]


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
