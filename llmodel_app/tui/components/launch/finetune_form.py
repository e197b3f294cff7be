"""The fine-tuning form: a base checkpoint, data files, the method (LoRA, QLoRA or full) with its adapter
settings, and what the run trains and costs before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Button, Input, Label, Select, SelectionList, Static
from textual.worker import Worker

from engine.adapters.settings import ATTENTION_TARGETS, MLP_TARGETS, target_names
from engine.errors import LLModelError, first_line
from engine.finetune.config import FinetuneSettings, training_defaults
from engine.finetune.sizing import finetune_size
from engine.specs import FinetuneSpec, finetune_spec
from engine.training.config import TrainConfig
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.components.model_picker import base_checkpoint, model_choices
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.form_fields import number, refill_select, short_rate, split_paths
from llmodel_app.tui.launch_cost import finetune_cost
from llmodel_app.tui.shared import workbench

METHODS = (
    ("LoRA: an adapter over the frozen base", "lora"),
    ("QLoRA: LoRA over a 4-bit NF4 base", "qlora"),
    ("full: every weight trains", "full"),
)
TARGET_CHOICES = (
    ("q_proj, v_proj", "q_proj,v_proj"),
    ("all-linear", "all-linear"),
    ("the ones ticked below", "chosen"),
)
TRAINING_FIELDS = (
    ("epochs", "1"),
    ("max_steps", ""),
    ("learning_rate", short_rate(training_defaults("lora")["learning_rate"])),
    ("batch_size", "4"),
    ("device", "auto"),
)


class FinetuneForm(Vertical):
    KIND = "finetune"
    DEFAULT_CSS = """
    FinetuneForm #finetune-target-list { height: auto; max-height: 9; margin: 0 0 0 25; display: none; }
    FinetuneForm #finetune-target-list.-shown { display: block; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs: list[dict[str, Any]] = []
        # run id → its model config (from the run's record), or why it could not be read
        self.base_configs: dict[str, dict[str, Any] | str] = {}

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label("base checkpoint")
            yield Select([], prompt="a trained checkpoint", id="finetune-base", compact=True)
            yield Button("data files…", id="finetune-browse", compact=True)
            yield FieldInput(
                placeholder="blank: the embedded instruction set", id="finetune-data", compact=True
            )
            yield Label("method")
            yield Select(METHODS, value="lora", allow_blank=False, id="finetune-method", compact=True)
        with Grid(id="finetune-lora"):
            yield Label("rank")
            yield FieldInput("16", id="finetune-lora_rank", compact=True)
            yield Label("alpha")
            yield FieldInput("16", id="finetune-lora_alpha", compact=True)
            yield Label("adapter name")
            yield FieldInput(placeholder="blank: the run id", id="finetune-adapter_name", compact=True)
            yield Label("targets")
            yield Select(
                TARGET_CHOICES, value="q_proj,v_proj", allow_blank=False, id="finetune-targets", compact=True
            )
        yield SelectionList[str](
            *((name, name) for name in (*ATTENTION_TARGETS, *MLP_TARGETS)),
            id="finetune-target-list",
            compact=True,
        )
        with Grid():
            for name, default in TRAINING_FIELDS:
                yield Label(name)
                placeholder = "blank: the epochs decide" if name == "max_steps" else ""
                yield FieldInput(default, placeholder=placeholder, id=f"finetune-{name}", compact=True)
        yield Static("", id="finetune-cost")

    def show_workspace(self, data: dict[str, Any], configs: dict[str, dict[str, Any]]) -> None:
        self.runs = data.get("runs", [])
        refill_select(
            self.query_one("#finetune-base", Select),
            [(label.strip(), path) for label, path in model_choices(self.runs)],
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "finetune-method" and isinstance(event.value, str):
            self._method_changed(event.value)
        elif event.select.id == "finetune-targets":
            self.query_one("#finetune-target-list").set_class(event.value == "chosen", "-shown")

    def _method_changed(self, method: str) -> None:
        """LoRA settings only for an adapter; the learning rate follows the method while it is a default one."""
        self.query_one("#finetune-lora").display = method != "full"
        self.query_one("#finetune-target-list").set_class(
            method != "full" and self.query_one("#finetune-targets", Select).value == "chosen", "-shown"
        )
        rate = self.query_one("#finetune-learning_rate", Input)
        try:
            typed = float(rate.value)
        except ValueError:
            return
        if typed in {training_defaults(m)["learning_rate"] for _, m in METHODS}:
            rate.value = short_rate(training_defaults(method)["learning_rate"])

    def _value(self, name: str) -> str:
        return self.query_one(f"#finetune-{name}", Input).value

    def planned(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The fine-tuning settings (method, LoRA) and the training ones over the method's defaults; a one-line
        error for a bad field (a bad rank, alpha or target included)."""
        method = str(self.query_one("#finetune-method", Select).value)
        choice = self.query_one("#finetune-targets", Select).value
        targets = (
            list(self.query_one("#finetune-target-list", SelectionList).selected)
            if choice == "chosen"
            else str(choice).split(",")
        )
        finetune = FinetuneSettings.from_dict(
            {
                "method": method,
                "lora_rank": number(self._value("lora_rank"), int, "rank"),
                "lora_alpha": number(self._value("lora_alpha"), float, "alpha"),
                "target_modules": targets,
                "adapter_name": self._value("adapter_name").strip() or None,
            }
        )
        settings = {
            "epochs": number(self._value("epochs"), float, "epochs"),
            "max_steps": number(self._value("max_steps"), int, "max_steps", optional=True),
            "learning_rate": number(self._value("learning_rate"), float, "learning_rate"),
            "batch_size": number(self._value("batch_size"), int, "batch_size"),
            "device": self._value("device").strip() or "auto",
        }
        train = TrainConfig.from_dict({**training_defaults(method), **settings}, source="training settings")
        return finetune.to_dict(), train.to_dict()

    def spec(self, workspace: Path) -> FinetuneSpec:
        """The job, through the engine's builder (as ``llmodel finetune`` / ``lora-finetune`` with the form's
        fields as flags; no data files: the engine's embedded instruction set)."""
        base = self.query_one("#finetune-base", Select).value
        checkpoint = base_checkpoint(base, self.runs) if isinstance(base, str) else None
        if checkpoint is None:
            raise LLModelError("choose the checkpoint to fine-tune (train a model first)")
        finetune, training = self.planned()
        data = self._value("data")
        return finetune_spec(
            checkpoint,
            finetune,
            training,
            workspace=workspace,
            data_paths=split_paths(data) if data.strip() else [],
        )

    def _base_run(self, path: str) -> str | None:
        """The id of the run a picked checkpoint (or run folder) belongs to."""
        for run in self.runs:
            if path == run.get("run_dir") or any(c["path"] == path for c in run.get("checkpoints") or []):
                return str(run["id"])
        return None

    def show_cost(self, workspace: Path) -> None:
        """What the fine-tuning run trains (trainable of all parameters) and what it costs, before it starts."""
        cost = self.query_one("#finetune-cost", Static)
        base = self.query_one("#finetune-base", Select).value
        if not isinstance(base, str):
            cost.update("choose the checkpoint to fine-tune (train a model first)")
            return
        run_id = self._base_run(base)
        if run_id is None or run_id not in self.base_configs:
            cost.update("reading the base's model config…")
            if run_id is not None:
                self._load_base_config(run_id, workspace)
            return
        config = self.base_configs[run_id]
        if isinstance(config, str):
            cost.update(f"cost: {config}")
            return
        try:
            settings, training = self.planned()
            method = settings["method"]
            size = finetune_size(
                config, method, rank=settings["lora_rank"], targets=settings["target_modules"]
            )
            text = size.describe()
            if method != "full":
                text += f" · rank {settings['lora_rank']} on {', '.join(target_names(settings['target_modules']))}"
            estimate = finetune_cost(config, training, self.runs, adapter=method != "full")
            cost.update(f"{text}\n{estimate}")
        except LLModelError as problem:
            cost.update(f"cost: {first_line(problem)}")

    @work(thread=True, exclusive=True, exit_on_error=False, group="launch-base")
    def _load_base_config(self, run_id: str, workspace: Path) -> None:
        client = workbench(self).client
        if client is None:
            return
        try:
            config = (client.run(run_id).get("config") or {}).get("model_config")
        except LLModelError as error:
            config = f"the base's model config could not be read ({error})"
        self.app.call_from_thread(
            self._base_config_loaded, run_id, config or f"run {run_id} records no model config", workspace
        )

    def _base_config_loaded(self, run_id: str, config: dict[str, Any] | str, workspace: Path) -> None:
        self.base_configs[run_id] = config
        self.show_cost(workspace)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
