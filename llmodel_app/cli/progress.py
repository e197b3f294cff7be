"""Rich progress displays fed by engine callbacks and training events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from llmodel_app.cli.console import err

ProgressCallback = Callable[[int, int], None]


@contextmanager
def task_progress(description: str) -> Iterator[ProgressCallback]:
    """A progress bar driven by an engine ``progress(done, total)`` callback."""
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        try:
            yield update
        except BaseException:
            progress.remove_task(task)  # an error message should stand alone, not under a half-done bar
            raise


class TrainingProgress:
    """A live bar for a training run: step, loss, validation loss, tokens/s."""

    def __init__(self, total_steps: int | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]train[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss [cyan]{task.fields[loss]}[/cyan] val [magenta]{task.fields[val]}[/magenta]"),
            TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        self._task = self._progress.add_task("train", total=total_steps, loss="-", val="-", speed="-")

    def __enter__(self) -> TrainingProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def on_event(self, event: dict[str, Any]) -> None:
        """Update the display from one training event."""
        kind = event["type"]
        if kind == "status" and event.get("total_steps"):
            self._progress.update(self._task, total=event["total_steps"], completed=event.get("step", 0))
        elif kind == "step":
            self._progress.update(
                self._task, completed=event["step"], loss=f"{event['loss']:.3f}", speed=f"{event['tokens_per_s']:,.0f}"
            )
        elif kind == "eval":
            self._progress.update(self._task, val=f"{event['val_loss']:.3f}")
        elif kind == "sample":
            self._progress.console.print(f"[dim]sample @ {event['step']}:[/dim] {event['text']!r}", highlight=False)
        elif kind == "log" and event.get("level") in ("warning", "error"):
            self._progress.console.print(f"[yellow]{event['message']}[/yellow]", highlight=False)
