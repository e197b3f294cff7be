"""One job's progress, read from its events: the stage it is at, a bar, then its outcome."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar

FINISHED = ("completed", "failed", "cancelled", "failed_resumable")


class JobProgress(Vertical):
    """Follows one run id; ``event()`` takes that run's events and returns the outcome once it has ended."""

    DEFAULT_CSS = """
    JobProgress { height: auto; margin-top: 1; }
    JobProgress ProgressBar { margin-top: 1; }
    """

    def __init__(self, *, stage_id: str, bar_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage_id, self.bar_id = stage_id, bar_id
        self.run_id: str | None = None
        self.title = "job"

    def compose(self) -> ComposeResult:
        yield Label("", id=self.stage_id)
        yield ProgressBar(id=self.bar_id, show_eta=False)

    def follow(self, run_id: str, title: str) -> None:
        """Show ``run_id`` (a ``title`` job) as queued, with an empty bar."""
        self.run_id, self.title = run_id, title
        self.display = True
        self._stage(f"{title} {run_id}: queued")
        self.query_one(ProgressBar).update(total=None, progress=0)

    def event(self, event: dict[str, Any]) -> str | None:
        """Apply one of the run's events; the final status when this one ends the job, else None."""
        kind = event.get("type")
        bar = self.query_one(ProgressBar)
        if kind == "progress":
            done, total = event.get("done", 0), event.get("total", 0)
            self._stage(f"{self.title}: {event.get('stage', '')}")
            bar.update(total=total or None, progress=done)
        elif kind == "step":
            total = event.get("total_steps") or bar.total
            self._stage(f"{self.title}: training, step {event.get('step')}  loss {event.get('loss', 0):.3f}")
            bar.update(total=total, progress=event.get("step", 0))
        elif (kind == "job" or event.get("final")) and event.get("status") in FINISHED:
            outcome = str(event["status"])
            note = f" — {event['error']}" if event.get("error") else ""
            if outcome == "completed":
                bar.update(total=1, progress=1)
                self._stage(f"{self.title} {self.run_id}: completed")
            else:
                self._stage(f"{self.title} {self.run_id}: {outcome}{note}. Its log is in the run view.")
            return outcome
        elif kind == "status" and event.get("total_steps"):
            bar.update(total=event["total_steps"])
        return None

    def _stage(self, text: str) -> None:
        self.query_one(f"#{self.stage_id}", Label).update(text)
