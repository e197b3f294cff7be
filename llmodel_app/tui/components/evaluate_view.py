"""Evaluate a checkpoint (and one of its adapters) on tasks: the job ``llmodel evaluate`` submits, its progress,
its results as bars against chance, and every evaluation of the workspace side by side."""

from __future__ import annotations

import math
from pathlib import Path, PurePath
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, Select, SelectionList, Static
from textual.worker import Worker

from engine.errors import LLModelError, first_line
from engine.specs import EvaluateSpec, evaluate_spec
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.components.job_progress import JobProgress
from llmodel_app.tui.components.model_picker import AdapterPicker, ModelPicker, adapters_of, model_label
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.form_fields import number
from llmodel_app.tui.messages import JobSubmitted
from llmodel_app.tui.shared import require_client, workbench

# Metrics where less is better (the language-modelling ones); every other metric is better higher.
LOWER_IS_BETTER = {"cross_entropy", "perplexity", "bits_per_byte", "byte_perplexity"}
DEFAULT_TASKS = ("stdlib-names",)
BAR_WIDTH = 12
COMPARED_MODELS = 6  # the newest models in the comparison table


def better(metric: str, value: float, other: float) -> bool:
    return value < other if metric in LOWER_IS_BETTER else value > other


def score_bar(value: float | None, chance: float | None, metric: str, width: int = BAR_WIDTH) -> Text:
    """``█████████▌·····┃····``: the value as a bar and chance as a ``┃`` on one scale (0–1 for shares, else up to
    the larger of the two); green when the value beats chance, red when it does not."""
    if value is None or not math.isfinite(value):
        return Text("")
    top = 1.0 if value <= 1 and (chance is None or chance <= 1) else max(value, chance or 0.0) * 1.05
    cells = [" "] * width
    filled = max(0.0, min(1.0, value / top)) * width
    for i in range(int(filled)):
        cells[i] = "█"
    if int(filled) < width and filled - int(filled) >= 0.5:
        cells[int(filled)] = "▌"
    text = Text()
    marker = min(width - 1, int(chance / top * width)) if chance is not None and top > 0 else None
    colour = "" if chance is None else "green" if better(metric, value, chance) else "red"
    for i, cell in enumerate(cells):
        if i == marker:
            text.append("┃", style="bold yellow")
        else:
            text.append(cell if cell != " " else "·", style=colour if cell != " " else "dim")
    return text


def result_rows(event: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``result`` event of an evaluation (one task's scores) as rows shaped like ``EngineClient.evaluations()``' rows."""
    baseline = event.get("baseline") or {}
    return [
        {
            "run_id": event.get("run_id"),
            "model": event.get("model"),
            "checkpoint": event.get("checkpoint"),
            "step": event.get("step"),
            "adapter": event.get("adapter"),
            "task": event.get("task"),
            "metric": score["metric"],
            "value": score.get("value"),
            "stderr": score.get("stderr"),
            "n": score.get("n"),
            "chance": baseline.get(score["metric"]),
        }
        for score in event.get("scores") or []
        if isinstance(score, dict) and score.get("metric")
    ]


def evaluated_label(row: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """What was evaluated: ``run · step 40 ★`` (+ its adapter), or a run's own step for training-time tasks."""
    path = row.get("checkpoint") or row.get("model") or ""
    label = model_label(path, runs) if path else "?"
    if not row.get("checkpoint") and row.get("step") is not None:
        label = f"{Path(path).name} · step {row['step']} (training)"
    adapter = row.get("adapter")
    return label + (f" + {Path(str(adapter)).name}" if adapter else "")


def column_label(row: dict[str, Any]) -> str:
    """A comparison column's two short header lines: ``…0101-120000-a1b2 @40`` over ``+ chat-sums`` (or
    ``base``, or ``training`` for scores a run measured while it trained)."""
    path = PurePath(str(row.get("checkpoint") or row.get("model") or "?"))
    run = path.parts[-3] if row.get("checkpoint") and len(path.parts) >= 3 else path.name
    run = run if len(run) <= 18 else "…" + run[-17:]
    step = f" @{row['step']}" if row.get("step") is not None else ""
    adapter = row.get("adapter")
    below = f"+ {PurePath(str(adapter)).name}" if adapter else "base" if row.get("checkpoint") else "training"
    return f"{run}{step}\n{below}"


def comparison(
    rows: list[dict[str, Any]], runs: list[dict[str, Any]]
) -> tuple[list[str], dict[str, list[float | None]]]:
    """The newest value of each task/metric for each evaluated model (the newest ``COMPARED_MODELS`` of them):
    the models' column headers, and per ``task/metric`` a value (or None) per model. ``rows`` come newest first."""
    models: dict[str, str] = {}  # what was evaluated → its column header
    values: dict[tuple[str, str], float | None] = {}
    for row in rows:
        # A run's training-time scores are one column (its newest validation), not one per step.
        model = f"{row.get('model')} (training)" if not row.get("checkpoint") else evaluated_label(row, runs)
        if model not in models:
            if len(models) == COMPARED_MODELS:
                continue
            models[model] = column_label(row)
        values.setdefault((f"{row['task']}/{row['metric']}", model), row.get("value"))
    names = sorted({name for name, _ in values})
    return list(models.values()), {name: [values.get((name, model)) for model in models] for name in names}


class EvaluateView(VerticalScroll):
    """The form on top (checkpoint, adapter, limit, data files; the tasks beside them), the followed job's
    progress, then the results of one evaluation and the comparison of every one. In a short terminal the
    tables keep room for their rows and the view scrolls (the focused table scrolls into view)."""

    DEFAULT_CSS = """
    EvaluateView #eval-top { height: auto; padding: 0 1; }
    EvaluateView #eval-fields { width: 1fr; height: auto; grid-size: 2; grid-columns: 11 1fr; grid-rows: 1;
                                grid-gutter: 0 1; }
    EvaluateView #eval-task-box { width: 1fr; height: auto; padding-left: 1; }
    EvaluateView #eval-tasks { height: auto; max-height: 5; }
    EvaluateView #eval-task-help { height: auto; max-height: 3; color: $text-muted; }
    EvaluateView #eval-actions { height: auto; padding: 0 1; }
    EvaluateView #eval-actions Button { margin-right: 2; }
    EvaluateView #eval-error { color: $error; height: auto; width: 1fr; }
    EvaluateView JobProgress { padding: 0 1; margin: 0; }
    EvaluateView #eval-title { height: auto; padding: 0 1; background: $boost; width: 1fr; }
    EvaluateView DataTable { height: 1fr; min-height: 8; border: round $primary-darken-2;
                             border-title-color: $text-muted; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs: list[dict[str, Any]] = []
        self.adapters: list[dict[str, Any]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.evaluations: list[dict[str, Any]] = []  # every result row of the workspace, newest first
        self.shown_run: str | None = None  # the evaluation whose results the upper table shows
        self.live: list[dict[str, Any]] = []  # result rows of the followed job, as its events come

    def compose(self) -> ComposeResult:
        with Horizontal(id="eval-top"):
            with Grid(id="eval-fields"):
                yield Label("checkpoint")
                yield ModelPicker(id="eval-model")
                yield Label("adapter")
                yield AdapterPicker(id="eval-adapter")
                yield Label("limit")
                yield FieldInput(
                    "50",
                    placeholder="documents per task (blank: the task's own)",
                    id="eval-limit",
                    compact=True,
                )
                yield Label("data files")
                yield FieldInput(
                    placeholder="task=file, for tasks that need one", id="eval-data", compact=True
                )
            with Vertical(id="eval-task-box"):
                yield SelectionList[str](id="eval-tasks", compact=True)
                yield Static("", id="eval-task-help")
        with Horizontal(id="eval-actions"):
            yield Button("Evaluate", id="eval-submit", variant="primary", compact=True)
            yield Static("", id="eval-error")
        yield JobProgress(stage_id="eval-stage", bar_id="eval-bar", id="eval-progress")
        yield Label("no evaluation yet: pick a checkpoint and tasks, then Evaluate", id="eval-title")
        yield DataTable(id="eval-results", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="eval-compare", cursor_type="row", zebra_stripes=True, header_height=2)

    def on_mount(self) -> None:
        self.query_one(JobProgress).display = False
        results = self.query_one("#eval-results", DataTable)
        results.border_title = "results (┃ chance)"
        for name, width in (
            ("task", 13),
            ("metric", 15),
            ("", BAR_WIDTH),
            ("value ± stderr", 14),
            ("chance", 7),
            ("n", 4),
        ):
            results.add_column(name, width=width)
        self.query_one(
            "#eval-compare", DataTable
        ).border_title = "every evaluation, newest value (bold: best)"
        self.call_after_refresh(self._catch_up)

    def _catch_up(self) -> None:
        """Mounted lazily (once the widgets inside have mounted too): take what the app already knows."""
        app = workbench(self)
        self.show_workspace(app.workspace_data)
        if app.chosen_model:
            self.query_one("#eval-model", ModelPicker).choose(app.chosen_model)

    # -- the workspace ---------------------------------------------------------------------------------------

    def show_workspace(self, data: dict[str, Any]) -> None:
        """New listings: the checkpoints and adapters to pick, and the evaluations again (a run trained with
        evaluation tasks, or `llmodel evaluate`, may have added some)."""
        self.runs = data.get("runs", [])
        self.adapters = data.get("adapters", [])
        self.query_one("#eval-model", ModelPicker).set_runs(self.runs)
        self.call_after_refresh(self._offer_adapters)
        self.reload()

    def _offer_adapters(self) -> None:
        picked = self.query_one("#eval-model", ModelPicker).path
        self.query_one("#eval-adapter", AdapterPicker).set_adapters(
            adapters_of(picked, self.runs, self.adapters)
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "eval-model":
            event.stop()
            self._offer_adapters()
        elif event.select.id == "eval-adapter":
            event.stop()

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate-load")
    def reload(self) -> None:
        """The task list (once) and every evaluation result of the workspace, from the engine."""
        client = workbench(self).client
        if client is None:
            return
        tasks: list[Any] = client.tasks() if not self.tasks else list(self.tasks.values())
        evaluations: list[Any] = client.evaluations()
        self.app.call_from_thread(self._loaded, tasks, evaluations)

    def _loaded(self, tasks: list[dict[str, Any]], evaluations: list[dict[str, Any]]) -> None:
        if not self.tasks:
            self.tasks = {t["name"]: t for t in tasks}
            selection = self.query_one("#eval-tasks", SelectionList)
            selection.clear_options()
            options = []
            for task in tasks:
                needs = ", needs a file" if task.get("needs_data") else ""
                options.append(
                    (f"{task['name']} ({task['kind']}{needs})", task["name"], task["name"] in DEFAULT_TASKS)
                )
            selection.add_options(options)
        self.evaluations = evaluations
        if self.shown_run is None and evaluations:
            self.shown_run = evaluations[0]["run_id"]
        self._show_results()
        self._show_comparison()

    def on_selection_list_selection_highlighted(self, event: SelectionList.SelectionHighlighted[str]) -> None:
        """What the highlighted task measures, how a guess does, and the file it needs."""
        task = self.tasks.get(str(event.selection.value))
        if task is None:
            return
        text = Text(f"{task.get('description', '')}\n", style="")
        text.append(f"chance: {task.get('chance', '?')}", style="dim")
        if task.get("needs_data"):
            text.append(f"\nneeds a local file: {task.get('data_layout', '')}", style="yellow")
        self.query_one("#eval-task-help", Static).update(text)

    # -- submitting and following ---------------------------------------------------------------------------

    def spec(self) -> EvaluateSpec:
        """The job, through the engine's builder (as ``llmodel evaluate`` with the form's fields as flags)."""
        model = self.query_one("#eval-model", ModelPicker).path
        if not model:
            raise LLModelError("choose a checkpoint to evaluate (train a model first)")
        adapters = self.query_one("#eval-adapter", AdapterPicker)
        names = list(self.query_one("#eval-tasks", SelectionList).selected)
        if not names:
            raise LLModelError("tick at least one task")
        files = [v.strip() for v in self.query_one("#eval-data", Input).value.split(",") if v.strip()]
        limit = number(self.query_one("#eval-limit", Input).value, int, "limit", optional=True)
        adapter = adapters.served.get(adapters.adapter or "")
        return evaluate_spec(model, names, adapter=adapter, data_paths=files, limit=limit)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "eval-submit":
            return
        error = self.query_one("#eval-error", Static)
        try:
            spec = self.spec()
        except LLModelError as problem:
            error.update(first_line(problem))
            return
        error.update("")
        self._submit(spec)

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate-submit")
    def _submit(self, spec: EvaluateSpec) -> None:
        run_id = require_client(self).submit_job(spec)
        self.app.call_from_thread(self._following, run_id)
        self.post_message(JobSubmitted(run_id, "evaluate"))

    def _following(self, run_id: str) -> None:
        self.query_one(JobProgress).follow(run_id, "evaluate")
        self.shown_run, self.live = run_id, []
        self._show_results()

    @property
    def following(self) -> str | None:
        """The run id of the evaluation submitted last from here."""
        return self.query_one(JobProgress).run_id

    def job_event(self, event: dict[str, Any]) -> None:
        """An event of the followed evaluation (routed here by the app): progress, each task's result, the end."""
        if event.get("type") == "result" and event.get("task"):
            self.live.extend(result_rows(event))
            self._show_results()
        if event.get("type") == "progress":
            event = {
                **event,
                "stage": f"{event.get('stage', '')} ({event.get('done', 0)}/{event.get('total', 0)})",
            }
        if self.query_one(JobProgress).event(event) is not None:
            self.reload()  # the catalog has the rows now: the comparison takes them

    # -- drawing ----------------------------------------------------------------------------------------------

    def _shown_rows(self) -> list[dict[str, Any]]:
        recorded = [row for row in self.evaluations if row.get("run_id") == self.shown_run]
        return recorded or [row for row in self.live if row.get("task")]

    def _show_results(self) -> None:
        rows = self._shown_rows()
        table = self.query_one("#eval-results", DataTable)
        table.clear()
        for row in sorted(rows, key=lambda r: (r["task"], r["metric"])):
            value, stderr, chance = row.get("value"), row.get("stderr"), row.get("chance")
            shown = _number(value) + (f" ± {stderr:.3g}" if isinstance(stderr, (int, float)) else "")
            table.add_row(
                row["task"],
                row["metric"],
                score_bar(value, chance, row["metric"]),
                shown,
                _number(chance),
                str(row.get("n") or ""),
            )
        title = self.query_one("#eval-title", Label)
        if rows:
            tasks = sorted({r["task"] for r in rows})
            title.update(
                Text.assemble(
                    (evaluated_label(rows[0], self.runs), "bold"), f"  {', '.join(tasks)}  ({self.shown_run})"
                )
            )
        elif self.shown_run:
            title.update(f"{self.shown_run}: waiting for the first task's result")

    def _show_comparison(self) -> None:
        labels, values = comparison(self.evaluations, self.runs)
        table = self.query_one("#eval-compare", DataTable)
        table.clear(columns=True)
        if not labels:
            return
        table.add_column("task/metric", width=24)
        for label in labels:
            table.add_column(label, width=max(len(line) for line in label.splitlines()))
        for name, cells in values.items():
            metric = name.rsplit("/", 1)[-1]
            known = [v for v in cells if v is not None]
            best = (min(known) if metric in LOWER_IS_BETTER else max(known)) if len(known) > 1 else None
            table.add_row(
                name, *(Text(_number(v), style="bold" if v is not None and v == best else "") for v in cells)
            )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "—"
