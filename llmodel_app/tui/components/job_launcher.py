"""Launch a tokenizer, dataset, pretraining or fine-tuning job: the form of the chosen kind, checked, then
submitted to the engine, and the job's progress under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Button, ContentSwitcher, Input, Select, SelectionList, Static
from textual.worker import Worker

from engine.errors import LLModelError, first_line
from engine.specs import JobSpec
from llmodel_app.tui.components.file_picker import FilePicker
from llmodel_app.tui.components.job_progress import JobProgress
from llmodel_app.tui.components.launch.dataset_form import DatasetForm
from llmodel_app.tui.components.launch.finetune_form import FinetuneForm
from llmodel_app.tui.components.launch.pretrain_form import PretrainForm
from llmodel_app.tui.components.launch.tokenizer_form import TokenizerForm
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.messages import JobSubmitted
from llmodel_app.tui.shared import require_client, workbench

KINDS = (
    ("Pretrain a model", "pretrain"),
    ("Fine-tune a model", "finetune"),
    ("Train a tokenizer", "tokenizer"),
    ("Prepare a dataset", "dataset"),
)
Form = PretrainForm | FinetuneForm | TokenizerForm | DatasetForm
FORMS: dict[str, type[Form]] = {
    form.KIND: form for form in (PretrainForm, FinetuneForm, TokenizerForm, DatasetForm)
}


class JobLauncher(VerticalScroll):
    DEFAULT_CSS = """
    JobLauncher { padding: 1 2; }
    JobLauncher Grid { grid-size: 2; grid-columns: 24 1fr; height: auto; grid-rows: 1; grid-gutter: 0 1; }
    JobLauncher Grid Label { padding: 0; }
    JobLauncher ContentSwitcher { height: auto; }
    JobLauncher ContentSwitcher > Vertical { height: auto; }
    JobLauncher #launch-error { color: $error; height: auto; margin: 1 0; }
    JobLauncher #launch-cost, JobLauncher #finetune-cost { height: auto; margin: 1 0 0 0; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Select(KINDS, value="pretrain", allow_blank=False, id="launch-kind", compact=True)
        with ContentSwitcher(initial="form-pretrain"):
            for kind, form in FORMS.items():
                yield form(id=f"form-{kind}")
        yield Static("", id="launch-error")
        yield Button("Submit the job", id="launch-submit", variant="primary")
        yield JobProgress(stage_id="launch-stage", bar_id="launch-bar", id="launch-progress")

    def on_mount(self) -> None:
        self.query_one(JobProgress).display = False
        self.call_after_refresh(self._catch_up)

    @property
    def workspace(self) -> Path:
        return workbench(self).workspace

    def form(self, kind: str) -> Form:
        return self.query_one(f"#form-{kind}", FORMS[kind])

    def show_kind(self, kind: str) -> None:
        """Show the form of ``kind`` (pretrain, finetune, tokenizer, dataset)."""
        self.query_one("#launch-kind", Select).value = kind

    @property
    def following(self) -> str | None:
        """The run id of the job submitted last from here, whose progress shows under the form."""
        return self.query_one(JobProgress).run_id

    def job_event(self, event: dict[str, Any]) -> None:
        """An event of the followed job (routed here by the app)."""
        self.query_one(JobProgress).event(event)

    def _catch_up(self) -> None:
        """Mounted lazily (once the widgets inside have mounted too): take what the app already knows."""
        self.show_workspace(workbench(self).workspace_data)

    def show_workspace(self, data: dict[str, Any]) -> None:
        """Fill the choices from the workspace listings (and configs saved by the editor this session)."""
        configs = {
            c["name"]: c.get("data") or {}
            for c in data.get("configs", [])
            if c.get("kind", "model") == "model"
        }
        configs.update(workbench(self).saved_configs)
        for kind in FORMS:
            self.form(kind).show_workspace(data, configs)

    def _show_costs(self) -> None:
        if self.is_mounted:
            self.query_one(PretrainForm).show_cost(self.workspace)
            self.query_one(FinetuneForm).show_cost(self.workspace)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "launch-kind" and isinstance(event.value, str):
            self.query_one(ContentSwitcher).current = f"form-{event.value}"
            self.query_one("#launch-error", Static).update("")
        self._show_costs()

    def on_input_changed(self, event: Input.Changed) -> None:
        if (event.input.id or "").startswith("pretrain-"):
            self.query_one(PretrainForm).show_cost(self.workspace)
        elif (event.input.id or "").startswith("finetune-"):
            self.query_one(FinetuneForm).show_cost(self.workspace)

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        self.query_one(FinetuneForm).show_cost(self.workspace)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        browse = {
            "tokenizer-browse": "#tokenizer-inputs",
            "dataset-browse": "#dataset-inputs",
            "finetune-browse": "#finetune-data",
        }
        if event.button.id in browse:
            self._browse(self.query_one(browse[event.button.id], Input))
            return
        if event.button.id != "launch-submit":
            return
        kind = str(self.query_one("#launch-kind", Select).value)
        error = self.query_one("#launch-error", Static)
        try:
            spec = self.spec(kind)
        except LLModelError as problem:
            error.update(first_line(problem))
            return
        error.update("")
        self._submit(kind, spec)

    def spec(self, kind: str) -> JobSpec:
        """The job the form of ``kind`` holds; raises a one-line error for a bad field."""
        return self.form(kind).spec(self.workspace)

    def _browse(self, target: Input) -> None:
        """Pick files in a modal; they replace the comma-separated list in ``target``."""
        chosen = [p.strip() for p in target.value.split(",") if p.strip()]

        def picked(paths: list[str] | None) -> None:
            if paths:
                target.value = ", ".join(paths)

        self.app.push_screen(FilePicker(Path.cwd(), chosen), picked)

    @work(thread=True, exclusive=True, exit_on_error=False, group="launch")
    def _submit(self, kind: str, spec: JobSpec) -> None:
        run_id = require_client(self).submit_job(spec)
        self.app.call_from_thread(self.query_one(JobProgress).follow, run_id, kind)
        self.post_message(JobSubmitted(run_id, kind))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
