"""Evolutionary search: start a study (the job ``llmodel evolve`` submits), watch its trials fill a table live
beside the Pareto front or the best-so-far curve, open a trial's run, and train a trial's config in full."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import Button, Collapsible, DataTable, Input, Label, Select, Static
from textual.worker import Worker

from engine.errors import LLModelError, first_line
from engine.specs import EvolveSpec, pretrain_spec, study_spec
from llmodel_app.tui import keymap
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.components.job_progress import JobProgress
from llmodel_app.tui.components.study_chart import StudyChart
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.form_fields import number, refill_select
from llmodel_app.tui.messages import JobSubmitted
from llmodel_app.tui.shared import require_client, workbench

SPACES = (
    ("hpo: training settings", "hpo"),
    ("nas: architecture", "nas"),
    ("both", "both"),
    ("a space file", "file"),
)
SAMPLERS = (
    ("auto: nsga2, or evolution for one objective", "auto"),
    ("nsga2", "nsga2"),
    ("evolution (aging)", "evolution"),
    ("tpe", "tpe"),
    ("random", "random"),
)
FIELDS = (("trials", "20"), ("trial_budget", "100"), ("population", "10"), ("max_params", ""))
STATE_STYLE = {
    "complete": "blue",
    "running": "green",
    "failed": "red",
    "pruned": "magenta",
    "rejected": "dim",
}
RELOAD_SECONDS = 0.5  # trial events coalesce into at most two study reads a second


def new_study(fields: dict[str, str], workspace: Path) -> EvolveSpec:
    """The job of a new study from the form's ``fields``, through the engine's builder (as ``llmodel evolve``
    with those flags). Loads Optuna (for the samplers): call it off the screen's thread."""
    space = fields["space_file"].strip() if fields["space"] == "file" else fields["space"]
    if not space:
        raise LLModelError("enter the space file (YAML or JSON), or choose hpo, nas or both")
    if not fields["dataset"]:
        raise LLModelError("choose a dataset (prepare one in the Launch tab)")
    return study_spec(
        workspace,
        space=space,
        data_paths=[fields["dataset"]],
        objectives=fields["objectives"],
        trials=number(fields["trials"], int, "trials"),
        trial_budget=fields["trial_budget"],
        sampler=None if fields["sampler"] == "auto" else fields["sampler"],
        population=number(fields["population"], int, "population"),
        max_params=number(fields["max_params"], int, "max params", optional=True),
        name=fields["name"].strip() or None,
    )


def short(value: Any) -> str:
    """``0.00123``, ``3.12``, ``104,000`` (a count, such as the params objective), ``swiglu``."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class EvolveView(VerticalScroll):
    """A study picker and the form of a new study (folded away once a study is open) on top; the followed job's
    progress; the open study's trials; its chart beside the selected trial's actions."""

    BINDINGS: ClassVar[list[BindingType]] = keymap.EVOLVE
    DEFAULT_CSS = """
    EvolveView #evolve-head { height: 1; padding: 0 1; }
    EvolveView #evolve-head Label { width: 7; }
    EvolveView #evolve-study { width: 1fr; }
    EvolveView Collapsible { padding: 0; border: none; }
    EvolveView #evolve-fields { height: auto; grid-size: 4; grid-columns: 12 1fr 12 1fr; grid-rows: 1;
                                grid-gutter: 0 1; }
    EvolveView #evolve-actions { height: auto; }
    EvolveView #evolve-actions Button { margin-right: 2; }
    EvolveView .hint { color: $text-muted; height: auto; width: 1fr; }
    EvolveView #evolve-error { color: $error; height: auto; }
    EvolveView JobProgress { padding: 0 1; margin: 0; }
    EvolveView #evolve-title { height: auto; padding: 0 1; background: $boost; width: 1fr; }
    EvolveView #evolve-table { height: 1fr; min-height: 9; border: round $primary-darken-2;
                               border-title-color: $text-muted; }
    EvolveView #evolve-bottom { height: 1fr; min-height: 10; }
    EvolveView #evolve-side { width: 30; padding: 0 1; }
    EvolveView #evolve-side Grid { grid-size: 2; grid-columns: 11 1fr; height: auto; grid-rows: 1; }
    EvolveView #evolve-side Button { width: 100%; margin-top: 1; }
    EvolveView #evolve-importances { height: auto; color: $text-muted; margin-top: 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.study: str | None = None  # the study open below
        self.data: dict[str, Any] = {}  # its report (EngineClient.study)
        self._stale = False
        self._submitted_study: str | None = None  # the study started here last (not in the catalog at first)
        self._studies: set[str] = set()  # the workspace's studies, as last listed

    def compose(self) -> ComposeResult:
        with Horizontal(id="evolve-head"):
            yield Label("study")
            yield Select([], prompt="open a study of this workspace", id="evolve-study", compact=True)
        with Collapsible(title="start a study", id="evolve-new", collapsed=False):
            with Grid(id="evolve-fields"):
                yield Label("study name")
                yield FieldInput(placeholder="blank: space + time", id="evolve-name", compact=True)
                yield Label("space")
                yield Select(SPACES, value="hpo", allow_blank=False, id="evolve-space", compact=True)
                yield Label("space file")
                yield FieldInput(
                    placeholder="my_space.yaml", id="evolve-space_file", compact=True, disabled=True
                )
                yield Label("dataset")
                yield Select([], prompt="a prepared dataset", id="evolve-dataset", compact=True)
                yield Label("objectives")
                yield FieldInput("val_loss", id="evolve-objectives", compact=True)
                yield Label("sampler")
                yield Select(SAMPLERS, value="auto", allow_blank=False, id="evolve-sampler", compact=True)
                for name, default in FIELDS:
                    yield Label(name.replace("_", " "))
                    yield FieldInput(default, id=f"evolve-{name}", compact=True)
            with Horizontal(id="evolve-actions"):
                yield Button("Start the study", id="evolve-submit", variant="primary", compact=True)
                yield Static(
                    "objectives: val_loss, then params, latency or tokens_per_s · budget: steps, 2m or 90s",
                    classes="hint",
                )
            yield Static("", id="evolve-error")
        yield JobProgress(stage_id="evolve-stage", bar_id="evolve-bar", id="evolve-progress")
        yield Label("no study open: start one, or open one of the workspace's", id="evolve-title")
        yield DataTable(id="evolve-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="evolve-bottom"):
            yield StudyChart(id="evolve-chart")
            with Vertical(id="evolve-side"):
                yield Label("the selected trial")
                with Grid():
                    yield Label("full steps")
                    yield FieldInput("1000", id="evolve-train-steps", compact=True)
                yield Button("Train this config (t)", id="evolve-train", compact=True)
                yield Button("Open its run (o)", id="evolve-open", compact=True)
                yield Static("", id="evolve-importances")

    def on_mount(self) -> None:
        self.query_one(JobProgress).display = False
        self.query_one("#evolve-table").border_title = "trials (★ Pareto front / best)"
        self.set_interval(RELOAD_SECONDS, self._reload_if_stale)
        self.call_after_refresh(self._catch_up)

    def _catch_up(self) -> None:
        """Mounted lazily (once the widgets inside have mounted too): take what the app already knows."""
        self.show_workspace(workbench(self).workspace_data)
        wanted = workbench(self).study_to_open
        if wanted:
            self.open_study(wanted)

    def show_workspace(self, data: dict[str, Any]) -> None:
        refill_select(
            self.query_one("#evolve-dataset", Select),
            [(d["name"], d["path"]) for d in data.get("datasets", [])],
        )
        studies = self.query_one("#evolve-study", Select)
        options = [(s["name"], s["name"]) for s in data.get("studies", [])]
        self._studies = {name for _, name in options}
        with studies.prevent(Select.Changed):
            studies.set_options(options)
            if self.study in {name for _, name in options}:
                studies.value = self.study
        if self.study is None and options and not workbench(self).study_to_open:
            self.open_study(options[0][1])  # the newest study, until the user opens another

    # -- a study ----------------------------------------------------------------------------------------------

    def open_study(self, name: str) -> None:
        """Show study ``name``: its trials, chart and importances, read now and after each of its trial events."""
        self.study, self.data = name, {}
        self.query_one("#evolve-new", Collapsible).collapsed = True  # the trials get the room
        if name in self._studies:
            studies = self.query_one("#evolve-study", Select)
            with studies.prevent(Select.Changed):
                studies.value = name
        self.query_one("#evolve-title", Label).update(f"study {name}: reading…")
        self.query_one("#evolve-table", DataTable).clear(columns=True)
        self.query_one(StudyChart).show({})
        self._load(name)

    def study_event(self, event: dict[str, Any]) -> None:
        """A ``trial`` or ``study`` event of the workspace (routed here by the app): reload the open study soon."""
        if event.get("study", event.get("name")) == self.study:
            self._stale = True

    def _reload_if_stale(self) -> None:
        if self._stale and self.study:
            self._stale = False
            self._load(self.study)

    @work(thread=True, exclusive=True, exit_on_error=False, group="evolve-load")
    def _load(self, name: str) -> None:
        client = workbench(self).client
        if client is None:
            return
        try:
            data = client.study(name)
        except LLModelError as error:  # a study just submitted is not in the catalog until its job starts
            self.app.call_from_thread(self._not_yet, name, str(error))
            return
        self.app.call_from_thread(self.show_study, name, data)

    def _not_yet(self, name: str, reason: str) -> None:
        if name == self.study and not self.data:
            waiting = name == self._submitted_study
            self.query_one("#evolve-title", Label).update(
                f"study {name}: waiting for its job to start" if waiting else f"study {name}: {reason}"
            )

    def show_study(self, name: str, data: dict[str, Any]) -> None:
        if name != self.study:
            return
        self.data = data
        settings = data.get("settings") or {}
        objectives = settings.get("objectives") or ["val_loss"]
        trials = data.get("trials", [])
        front = set(data.get("pareto_front") or [])
        counts = {state: sum(1 for t in trials if t.get("state") == state) for state in STATE_STYLE}
        budget = (
            f"{settings['budget_steps']} steps"
            if settings.get("budget_steps")
            else f"{settings.get('budget_minutes', 0):g} min"
        )
        title = Text.assemble(
            (f"study {name}", "bold"), f"  {counts['complete']}/{settings.get('n_trials', '?')} complete"
        )
        for state in ("running", "failed", "pruned", "rejected"):
            if counts[state]:
                title.append(f" · {counts[state]} {state}", style=STATE_STYLE[state])
        title.append(
            f"  {settings.get('sampler', '')} · {budget} a trial · {', '.join(objectives)}", style="dim"
        )
        self.query_one("#evolve-title", Label).update(title)
        table = self.query_one("#evolve-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        table.add_column("#", width=5)
        table.add_column("state", width=9)
        for objective in objectives:
            table.add_column(objective, width=max(9, len(objective)))
        table.add_column("parameters", width=11)
        table.add_column("settings")
        for trial in trials:
            style = "bold green" if trial["number"] in front else ""
            values = [
                Text(short(trial["objectives"][o]), style=style)
                if o in (trial.get("objectives") or {})
                else ""
                for o in objectives
            ]
            detail = ", ".join(f"{k}={short(v)}" for k, v in sorted((trial.get("params") or {}).items()))
            if trial.get("reason") and trial.get("state") != "complete":
                detail += f"  ({trial['reason']})"
            table.add_row(
                Text(f"{trial['number']}{' ★' if trial['number'] in front else ''}", style=style),
                Text(str(trial.get("state")), style=STATE_STYLE.get(str(trial.get("state")), "")),
                *values,
                f"{trial['parameters']:,}" if trial.get("parameters") else "",
                detail,
                key=str(trial["number"]),
            )
        if trials:
            table.move_cursor(row=min(cursor, len(trials) - 1))
        self.query_one(StudyChart).show(data)
        weights = data.get("importances") or {}
        self.query_one("#evolve-importances", Static).update(
            "importance for val_loss:\n" + "\n".join(f"  {k} {v:.2f}" for k, v in weights.items())
            if weights
            else ""
        )

    def selected_trial(self) -> dict[str, Any] | None:
        table = self.query_one("#evolve-table", DataTable)
        trials = self.data.get("trials") or []
        if not trials or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((t for t in trials if str(t["number"]) == key), None)

    # -- actions ------------------------------------------------------------------------------------------------

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "evolve-study" and isinstance(event.value, str) and event.value != self.study:
            self.open_study(event.value)
        elif event.select.id == "evolve-space":
            self.query_one("#evolve-space_file", Input).disabled = event.value != "file"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "evolve-submit":
            fields = {
                name: self.query_one(f"#evolve-{name}", Input).value
                for name in ("name", "space_file", "objectives", *(n for n, _ in FIELDS))
            }
            for name in ("space", "dataset", "sampler"):
                value = self.query_one(f"#evolve-{name}", Select).value
                fields[name] = value if isinstance(value, str) else ""
            self.query_one("#evolve-error", Static).update("")
            self._submit(fields)
        elif event.button.id == "evolve-train":
            self.action_train_trial()
        elif event.button.id == "evolve-open":
            self.action_open_trial()

    @work(thread=True, exclusive=True, exit_on_error=False, group="evolve-submit")
    def _submit(self, fields: dict[str, str]) -> None:
        try:
            spec = new_study(fields, workbench(self).workspace)
        except LLModelError as problem:  # a bad field: said under the form, as the other forms do
            self.app.call_from_thread(self.query_one("#evolve-error", Static).update, first_line(problem))
            return
        run_id = require_client(self).submit_job(spec)
        self.app.call_from_thread(self._started, run_id, spec.study)
        self.post_message(JobSubmitted(run_id, "evolve"))

    def _started(self, run_id: str, study: str) -> None:
        self.query_one(JobProgress).follow(run_id, f"study {study}")
        self._submitted_study = study
        self.open_study(study)

    @property
    def following(self) -> str | None:
        """The run id of the study job started last from here."""
        return self.query_one(JobProgress).run_id

    def job_event(self, event: dict[str, Any]) -> None:
        """An event of the followed study job (routed here by the app)."""
        if event.get("type") == "progress":
            event = {**event, "stage": f"{event.get('done', 0)}/{event.get('total', 0)} trials complete"}
        self.query_one(JobProgress).event(event)

    def action_open_trial(self) -> None:
        """Open the selected trial's training run in the Run tab."""
        trial = self.selected_trial()
        if trial is None or not trial.get("run_dir"):
            self.notify("this trial has no run (it was rejected before training)", severity="warning")
            return
        workbench(self).open_run(Path(trial["run_dir"]).name)

    def action_train_trial(self) -> None:
        """Train the selected trial's config in full: export it, then start a pretraining run with it."""
        trial = self.selected_trial()
        if trial is None or self.study is None:
            self.notify("select a trial first", severity="warning")
            return
        if trial.get("state") != "complete":
            self.notify(
                f"trial {trial['number']} is {trial.get('state')}; only a complete trial exports",
                severity="warning",
            )
            return
        try:
            steps = number(self.query_one("#evolve-train-steps", Input).value, int, "full steps")
        except LLModelError as problem:
            self.notify(str(problem), severity="error")
            return
        self._train(self.study, int(trial["number"]), steps)

    @work(thread=True, exclusive=True, exit_on_error=False, group="evolve-train")
    def _train(self, study: str, number: int, steps: int) -> None:
        client = require_client(self)
        export = client.export_trial(study, number)
        spec = pretrain_spec(
            export["model_config"],
            {**export["train_config"], "max_steps": steps},
            [export["data_path"]],
            workspace=workbench(self).workspace,
            tokenizer_path=export.get("tokenizer_path"),
        )
        run_id = client.submit_job(spec)
        self.app.call_from_thread(
            self.notify, f"trial {number}'s config ({export['name']}) trains for {steps} steps as {run_id}"
        )
        self.post_message(JobSubmitted(run_id, "pretrain"))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
