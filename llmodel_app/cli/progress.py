"""Rich progress displays fed by engine events."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from llmodel_app.cli.console import err


class JobDisplay:
    """Live bars for one job: a bar per preparation stage, then a training bar (loss, val loss, tokens/s)."""

    def __init__(self) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        self._stages: dict[str, TaskID] = {}
        self._train: TaskID | None = None
        self._loss = self._val = self._speed = "-"

    def __enter__(self) -> JobDisplay:
        self._progress.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.__exit__(kind, error, trace)

    def pause(self) -> None:
        """Stop redrawing (while asking the user something)."""
        self._progress.stop()

    def resume(self) -> None:
        self._progress.start()

    def print(self, message: str) -> None:
        self._progress.console.print(message, highlight=False)

    def on_event(self, event: dict[str, Any]) -> None:
        """Update the display from one job event."""
        kind = event.get("type")
        if kind == "progress":
            stage = event["stage"]
            if stage not in self._stages:
                self._stages[stage] = self._progress.add_task(stage, total=None, info="")
            total = event.get("total") or None
            self._progress.update(self._stages[stage], completed=event.get("done", 0), total=total)
        elif kind == "status" and event.get("total_steps"):
            self._train_task(event["total_steps"], event.get("step", 0))
        elif kind == "step":
            self._loss, self._speed = f"{event['loss']:.3f}", f"{event['tokens_per_s']:,.0f}"
            self._update_train(event["step"])
        elif kind == "eval":
            self._val = f"{event['val_loss']:.3f}"
            self._update_train(None)
        elif kind == "sample":
            self.print(f"[dim]sample @ {event['step']}:[/dim] {event['text']!r}")
        elif kind == "checkpoint":
            self.print(f"[dim]checkpoint @ {event['step']}{' (best)' if event.get('best') else ''}[/dim]")
        elif kind == "trial" and event.get("state") == "complete":
            values = ", ".join(f"{k} {v:.4g}" for k, v in (event.get("objectives") or {}).items())
            self.print(f"[dim]trial {event['number']}:[/dim] {values}")
        elif kind == "log" and event.get("level") == "warning":  # errors end the job and are reported once
            self.print(f"[yellow]{event['message']}[/yellow]")
        elif kind == "log" and event.get("message", "").startswith(("resumed", "stopped")):
            self.print(f"[dim]{event['message']}[/dim]")

    def _train_task(self, total: int, step: int) -> None:
        for task in self._stages.values():
            self._progress.update(task, visible=False)
        if self._train is None:
            self._train = self._progress.add_task("[bold]train[/bold]", total=total, completed=step, info="")
        self._progress.update(self._train, total=total, completed=step)

    def _update_train(self, step: int | None) -> None:
        if self._train is None:
            return
        info = f"loss [cyan]{self._loss}[/cyan] val [magenta]{self._val}[/magenta] {self._speed} tok/s"
        if step is None:
            self._progress.update(self._train, info=info)
        else:
            self._progress.update(self._train, completed=step, info=info)
