"""The home tab: on an empty workspace, the quickstart as one action and its progress; else a summary."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static
from textual.worker import Worker

from engine.errors import LLModelError
from llmodel_app.tui.components.job_progress import JobProgress
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.shared import require_client, workbench

WELCOME = """\
[b]Welcome to LLModel.[/b] This workspace is empty.

The quickstart builds everything from Python's own standard library, with nothing to download: a corpus → a SentencePiece tokenizer → a binary dataset → a small transformer trained from scratch → evaluation → a first reply. It takes a few minutes on a CPU, and it keeps running if you quit.
"""


class WelcomePanel(VerticalScroll):
    """Offers the quickstart on an empty workspace and follows its progress; otherwise shows the summary.
    Once the quickstart has trained its model, its curves (``r``) and a chat with it (``c``) are one key away."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "open_curves", "Its curves"),
        Binding("c", "chat", "Chat with it"),
    ]
    DEFAULT_CSS = """
    WelcomePanel { padding: 1 2; }
    WelcomePanel #welcome-intro { margin-bottom: 1; }
    WelcomePanel #quickstart-done { height: auto; margin-top: 1; }
    WelcomePanel #quickstart-done Button { margin-right: 2; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quickstart_run: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(WELCOME, id="welcome-intro")
        yield Button("Run the quickstart", id="quickstart", variant="primary")
        yield JobProgress(stage_id="quickstart-stage", bar_id="quickstart-bar", id="quickstart-progress")
        with Horizontal(id="quickstart-done"):
            yield Button("Its curves  [r]", id="quickstart-curves", variant="primary")
            yield Button("Chat with it  [c]", id="quickstart-chat")
        yield Static("", id="workspace-summary")

    def on_mount(self) -> None:
        self.query_one("#quickstart-progress").display = False
        self.query_one("#quickstart-done").display = False
        self.show_summary(None)

    def show_summary(self, data: dict[str, Any] | None) -> None:
        """Welcome (and the quickstart button) when the workspace holds nothing; a summary otherwise; until the
        engine has listed the workspace, only that it is connecting (an unlisted workspace is not empty)."""
        summary = (data or {}).get("summary") or {}
        empty = data is not None and not summary.get("runs_total") and not summary.get("configs")
        self.query_one("#welcome-intro").display = empty
        self.query_one("#quickstart", Button).display = empty and self.quickstart_run is None
        if data is None:
            self.show_waiting("connecting to the engine…")
            return
        runs = summary.get("runs") or {}
        by_status = ", ".join(f"{n} {status}" for status, n in runs.items() if n) or "none yet"
        text = (
            f"[b]Workspace[/b] {data.get('path', '')}\n\n"
            f"configs {summary.get('configs', 0)} · tokenizers {summary.get('tokenizers', 0)} · "
            f"datasets {summary.get('datasets', 0)}\nruns {summary.get('runs_total', 0)}: {by_status}\n\n"
            "Select a run in the sidebar to watch it; ctrl+p lists every action; F1 for help."
        )
        self.query_one("#workspace-summary", Static).update("" if empty else text)

    def show_waiting(self, state: str) -> None:
        """What the workbench waits for before it can tell what the workspace holds."""
        self.query_one("#workspace-summary", Static).update(Text(state, style="dim"))

    def follow_quickstart(self, run_id: str) -> None:
        self.quickstart_run = run_id
        self.query_one("#quickstart", Button).display = False
        self.query_one(JobProgress).follow(run_id, "quickstart")

    def quickstart_event(self, event: dict[str, Any]) -> None:
        """Progress of the quickstart job; once it has trained its model, the buttons to use it."""
        if self.query_one(JobProgress).event(event) == "completed":
            self.query_one("#quickstart-stage", Static).update(
                f"quickstart completed: a model trained from scratch, in {self.quickstart_run}."
            )
            self.query_one("#quickstart-done").display = True
            self.query_one("#quickstart-curves", Button).focus()

    # -- after the quickstart ---------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "quickstart-curves":
            event.stop()
            self.action_open_curves()
        elif event.button.id == "quickstart-chat":
            event.stop()
            self.action_chat()

    def action_open_curves(self) -> None:
        if self.quickstart_run is not None:
            workbench(self).open_run(self.quickstart_run)

    def action_chat(self) -> None:
        if self.quickstart_run is not None:
            self._chat_with(self.quickstart_run)

    @work(thread=True, exclusive=True, exit_on_error=False, group="quickstart-chat")
    def _chat_with(self, run_id: str) -> None:
        checkpoints = require_client(self).checkpoints(run_id)
        if not checkpoints:
            raise LLModelError(f"{run_id} saved no checkpoint to chat with")
        latest = max(checkpoints, key=lambda c: c["step"])
        self.app.call_from_thread(workbench(self).choose_checkpoint, run_id, latest["path"])

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
