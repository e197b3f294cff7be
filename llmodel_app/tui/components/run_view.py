"""A run: live charts (history from /metrics, then its event stream), samples, checkpoints, log, cancel/resume.

A run trained with ``--eval-tasks`` records each task's scores as ``task/metric`` curves; they get a row of charts
of their own under the main ones."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Grid, Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.widgets import DataTable, Label, Log, Static, TabbedContent
from textual.worker import Worker

from llmodel_app.tui import keymap
from llmodel_app.tui.components.confirm_screen import ConfirmScreen
from llmodel_app.tui.components.metric_chart import MetricChart
from llmodel_app.tui.components.workspace_tree import STATUS_STYLE
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.feed import Feed, follow_run
from llmodel_app.tui.shared import require_client, workbench

if TYPE_CHECKING:
    from engine.client import EngineClient
from llmodel_app.tui.messages import CheckpointSelected
from llmodel_app.tui.series import SMOOTHING_STEPS, Curves


def short_log_line(line: str) -> str:
    """``[train.log] 2026-01-01 12:00:02 INFO  message`` → ``12:00:02 INFO  message`` (the pane is narrow)."""
    if line.startswith("[train.log] ") and len(line) > 23 and line[16] == "-" and line[22] == " ":
        return line[23:]
    return line


def short_path(path: str, run_dir: str | None) -> str:
    """A checkpoint's folder name when it lies in its run's folder (the pane is narrow), else the whole path."""
    if run_dir and path.startswith(run_dir.rstrip("/") + "/"):
        return path.rstrip("/").rsplit("/", 1)[-1]
    return path


CHARTS = (
    ("loss", "train loss"),
    ("val_loss", "val loss"),
    ("lr", "learning rate"),
    ("tokens_per_s", "tokens/s"),
    ("grad_norm", "grad norm"),
)
REDRAW_SECONDS = 0.25


def is_task_curve(name: str) -> bool:
    """``stdlib-names/acc``: an evaluation task's metric, measured at each validation."""
    return "/" in name


class RunView(Vertical, can_focus=True):
    """Follows one run; events are drained by a timer, so the charts redraw at most four times a second."""

    BINDINGS: ClassVar[list[BindingType]] = keymap.RUN_VIEW
    DEFAULT_CSS = """
    RunView #run-title { height: 1; padding: 0 1; background: $boost; }
    RunView #charts { grid-size: 3 2; height: 2fr; min-height: 16; }
    RunView #eval-charts { height: 1fr; min-height: 9; display: none; }
    RunView #eval-charts.-shown { display: block; }
    RunView #eval-charts MetricChart { width: 1fr; min-width: 36; }
    RunView #run-bottom { height: 1fr; min-height: 8; }
    RunView #run-bottom > * { width: 1fr; border: round $primary-darken-2; border-title-color: $text-muted; }
    RunView #samples { padding: 0 1; border: round $primary-darken-2; border-title-color: $text-muted; }
    RunView #run-empty { padding: 2 4; color: $text-muted; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id: str | None = None
        self.run: dict[str, Any] = {}
        self.curves = Curves()
        self.smoothing_index = 0
        self.log_scale = False
        self.axis = "step"
        self.samples: list[dict[str, Any]] = []
        self.checkpoints: dict[int, dict[str, Any]] = {}
        self.loaded = False
        self._feed: Feed | None = None
        self._drawn_version = -1
        self.task_charts: dict[str, MetricChart] = {}  # task/metric curve → its chart

    def compose(self) -> ComposeResult:
        yield Label("no run open", id="run-title")
        yield Static("Select a run in the sidebar (or with ctrl+p) to follow it here.", id="run-empty")
        with Grid(id="charts"):
            for metric, title in CHARTS:
                yield MetricChart(metric, title, id=f"chart-{metric}")
            yield VerticalScroll(Static("", id="samples-text"), id="samples")
        yield HorizontalScroll(id="eval-charts")
        with Horizontal(id="run-bottom"):
            yield DataTable(id="checkpoints", cursor_type="row", zebra_stripes=True)
            yield Log(id="run-log", max_lines=2000)

    def on_mount(self) -> None:
        self.query_one("#samples").border_title = "samples"
        self.query_one("#checkpoints").border_title = "checkpoints"
        self.query_one("#run-log").border_title = "log"
        table = self.query_one("#checkpoints", DataTable)
        # Fixed widths: auto-sized columns are re-measured as rows arrive, so a frame could show either width.
        table.add_column("step", width=6)
        table.add_column("best", width=4)
        table.add_column("path", width=24)
        self._show_panels(False)
        self.set_interval(REDRAW_SECONDS, self._drain)
        run_id, client = workbench(self).current_run, workbench(self).client
        if run_id and client is not None:  # mounted lazily after a run was chosen
            self.open_run(run_id, client)
        tabs = self.screen.query(TabbedContent)
        if tabs and tabs.first().active == "run":
            self.focus()  # its tab was shown before it had mounted (focus elsewhere would bring this tab forward)

    def on_unmount(self) -> None:
        if self._feed is not None:
            self._feed.stop()

    def _show_panels(self, shown: bool) -> None:
        self.query_one("#run-empty").display = not shown
        self.query_one("#charts").display = shown
        self.query_one("#run-bottom").display = shown

    # -- opening and following ------------------------------------------------------------------------

    def open_run(self, run_id: str, client: EngineClient) -> None:
        """Show ``run_id``: its recorded history first, then its live events from the catalog's offset."""
        if not self.query("#run-log"):
            return  # still mounting: on_mount opens the app's current run
        if self._feed is not None:
            self._feed.stop()
        self.run_id, self.run, self.loaded = run_id, {"id": run_id}, False
        self.curves = Curves()
        self.samples, self.checkpoints = [], {}
        self._drawn_version = -1
        self.query_one("#run-log", Log).clear()
        self.query_one("#checkpoints", DataTable).clear()
        self.query_one("#samples-text", Static).update("")
        self.task_charts = {}
        row = self.query_one("#eval-charts", HorizontalScroll)
        row.remove_children()
        row.remove_class("-shown")
        self._show_panels(True)
        self._title()
        # Every curve (names=None): the charted ones, step_time for the training-time axis, and the task/metric
        # curves of evaluation tasks, whose names only the run knows.
        self._feed = follow_run(client, run_id, None).start()

    def _drain(self) -> None:
        if self._feed is None:
            return
        items = self._feed.drain()
        if not items:
            return
        log_lines: list[str] = []
        for kind, payload in items:
            if kind == "loaded":
                self._loaded(payload)
            elif kind == "event":
                line = self._event(payload)
                if line:
                    log_lines.append(line)
            elif kind == "error" and workbench(self).connected:
                # A lost engine is announced once by the app, which reopens the run when it is back.
                self.app.notify(f"run {self.run_id}: {payload}", severity="error", title="Run view")
        if log_lines:
            self.query_one("#run-log", Log).write_lines(log_lines)
        self._redraw()

    def _loaded(self, payload: dict[str, Any]) -> None:
        self.run = payload["run"]
        self.curves.load(payload["history"])
        self.samples = list(payload["samples"])
        for checkpoint in self.run.get("checkpoints") or []:
            self.checkpoints[checkpoint["step"]] = checkpoint
        self.query_one("#run-log", Log).write_lines([short_log_line(line) for line in payload["logs"]])
        self.loaded = True
        self._samples()
        self._checkpoints()

    def _event(self, event: dict[str, Any]) -> str | None:
        """Fold one live event into the view; returns a line for the log pane, if it makes one."""
        kind, step = event.get("type"), event.get("step")
        if kind in ("step", "eval") and isinstance(step, int):
            values = {k: v for k, v in event.items() if k not in ("type", "time", "step")}
            self.curves.add(step, values)
            self.run["step"] = max(step, self.run.get("step") or 0)
            self.run.setdefault("metrics", {}).update(values)
        elif kind == "status":
            if event.get("resumed_from") is not None:
                self.curves.truncate(int(event["resumed_from"]))
            for key in ("status", "total_steps", "error"):
                if event.get(key) is not None:
                    self.run[key] = event[key]
        elif kind == "sample":
            self.samples = [*self.samples, event][-10:]
            self._samples()
        elif kind == "checkpoint" and isinstance(step, int):
            if event.get("best"):
                for checkpoint in self.checkpoints.values():
                    checkpoint["best"] = False
            self.checkpoints[step] = {
                "step": step,
                "path": event.get("path", ""),
                "best": bool(event.get("best")),
            }
            self._checkpoints()
        elif kind == "log":
            stamp = (
                time.strftime("%H:%M:%S ", time.localtime(event["time"]))
                if isinstance(event.get("time"), (int, float))
                else ""
            )
            return f"{stamp}{event.get('level', 'info').upper():5s} {event.get('message', '')}"
        elif kind == "end":
            self.run["status"] = event.get("status", self.run.get("status"))
        return None

    # -- drawing ----------------------------------------------------------------------------------------

    def _title(self) -> None:
        run = self.run
        glyph, colour = STATUS_STYLE.get(run.get("status", ""), ("…", "white"))
        title = Text.assemble(
            (f"{glyph} ", colour), (run.get("id") or "", "bold"), f"  {run.get('status', 'loading')}"
        )
        if run.get("step") is not None:
            title.append(
                f"  step {run['step']}" + (f"/{run['total_steps']}" if run.get("total_steps") else "")
            )
        metrics = run.get("metrics") or {}
        for name in ("loss", "val_loss"):
            if isinstance(metrics.get(name), (int, float)):
                title.append(f"  {name} {metrics[name]:.4f}")
        if run.get("error"):
            title.append(f"  {run['error']}", style="red")
        self.query_one("#run-title", Label).update(title)

    def _redraw(self) -> None:
        self._title()
        if self._drawn_version == self.curves.version:
            return
        self._drawn_version = self.curves.version
        self._charts()

    def _charts(self) -> None:
        smoothing = SMOOTHING_STEPS[self.smoothing_index]
        for metric, _ in CHARTS:
            xs, ys = self.curves.x_values(metric, self.axis)
            chart = self.query_one(f"#chart-{metric}", MetricChart)
            chart.show(
                xs,
                ys,
                smoothing=smoothing if metric != "lr" else 0.0,
                log_scale=self.log_scale,
                axis=self.axis,
            )
        self._task_charts()

    def _task_charts(self) -> None:
        """A chart per evaluation task's metric (a point per validation: drawn unsmoothed), in a row that shows
        once the run has one."""
        names = sorted(name for name in self.curves.points if is_task_curve(name))
        row = self.query_one("#eval-charts", HorizontalScroll)
        for name in names:
            if name not in self.task_charts:
                task, _, metric = name.partition("/")
                # No id: the previous run's charts may still be on their way out.
                chart = MetricChart(name, f"{task} {metric}")
                self.task_charts[name] = chart
                row.mount(chart)
            xs, ys = self.curves.x_values(name, self.axis)
            self.task_charts[name].show(xs, ys, smoothing=0.0, log_scale=self.log_scale, axis=self.axis)
        if names and not row.has_class("-shown"):
            # The row takes height from the log, which follows its end (as every write does).
            log = self.query_one("#run-log", Log)
            if log.auto_scroll:
                self.call_after_refresh(log.scroll_end, animate=False)
        row.set_class(bool(names), "-shown")

    def _samples(self) -> None:
        text = Text()
        for sample in reversed(self.samples):
            text.append(f"step {sample.get('step')}\n", style="bold")
            text.append(f"{sample.get('text', '')}\n\n")
        self.query_one("#samples-text", Static).update(
            text if self.samples else Text("no samples yet", style="dim")
        )

    def _checkpoints(self) -> None:
        table = self.query_one("#checkpoints", DataTable)
        table.clear()
        for step in sorted(self.checkpoints):
            checkpoint = self.checkpoints[step]
            path = short_path(checkpoint.get("path", ""), self.run.get("run_dir"))
            table.add_row(str(step), "★" if checkpoint.get("best") else "", path, key=str(step))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a checkpoint: chat with it (and serve it from the Serve tab)."""
        checkpoint = self.checkpoints.get(int(str(event.row_key.value)))
        if checkpoint and self.run_id:
            self.post_message(CheckpointSelected(self.run_id, checkpoint["path"]))

    # -- actions ------------------------------------------------------------------------------------------

    def action_smoothing(self, delta: int) -> None:
        self.smoothing_index = max(0, min(len(SMOOTHING_STEPS) - 1, self.smoothing_index + delta))
        self.notify(f"EMA smoothing {SMOOTHING_STEPS[self.smoothing_index]:g}", timeout=1.5)
        self._charts()

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self._charts()

    def action_toggle_axis(self) -> None:
        self.axis = "time" if self.axis == "step" else "step"
        self.notify(f"x axis: {'training seconds' if self.axis == 'time' else 'steps'}", timeout=1.5)
        self._charts()

    def action_cancel_run(self) -> None:
        if self.run_id is None:
            return
        if self.run.get("status") not in ("queued", "running"):
            self.notify(
                f"run {self.run_id} is {self.run.get('status')}; nothing to cancel", severity="warning"
            )
            return
        run_id = self.run_id

        def answered(yes: bool | None) -> None:
            if yes:
                self._post_action(run_id, "cancel")

        self.app.push_screen(
            ConfirmScreen(f"Cancel run {run_id}? It finishes its step and saves a checkpoint.", "Cancel run"),
            answered,
        )

    def action_resume_run(self) -> None:
        if self.run_id is None:
            return
        if self.run.get("status") not in ("cancelled", "failed_resumable", "failed"):
            self.notify(
                f"run {self.run_id} is {self.run.get('status')}; only a stopped run resumes",
                severity="warning",
            )
            return
        self._post_action(self.run_id, "resume")

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-action")
    def _post_action(self, run_id: str, action: str) -> None:
        client = require_client(self)
        result = client.cancel(run_id) if action == "cancel" else client.resume(run_id)
        self.app.call_from_thread(self.notify, f"run {run_id}: {action} → {result.get('status')}")
        if action == "resume":
            self.app.call_from_thread(self.open_run, run_id, client)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
