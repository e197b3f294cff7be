"""The pretraining form: a saved model config, a prepared dataset and the training settings, and what the run
will cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label, Select, Static

from engine.errors import LLModelError, first_line
from engine.specs import PretrainSpec, pretrain_spec
from engine.training.config import TrainConfig
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.form_fields import number, refill_select
from llmodel_app.tui.launch_cost import DEFAULT_TRAIN, run_cost

FIELDS = (
    ("max_steps", "200"),
    ("batch_size", "8"),
    ("seq_len", ""),
    ("learning_rate", "3e-4"),
    ("warmup_steps", "20"),
    ("eval_interval", "50"),
    ("eval_batches", str(DEFAULT_TRAIN.eval_batches)),
    ("checkpoint_interval", "100"),
    ("device", "auto"),
)
INTEGERS = ("max_steps", "batch_size", "warmup_steps", "eval_interval", "eval_batches", "checkpoint_interval")


class PretrainForm(Vertical):
    KIND = "pretrain"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.configs: dict[str, dict[str, Any]] = {}
        self.runs: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label("model config")
            yield Select([], prompt="a saved config", id="pretrain-config", compact=True)
            yield Label("dataset")
            yield Select([], prompt="a prepared dataset", id="pretrain-dataset", compact=True)
            for name, default in FIELDS:
                yield Label(name + (" (blank: max_len)" if name == "seq_len" else ""))
                yield FieldInput(default, id=f"pretrain-{name}", compact=True)
        yield Static("", id="launch-cost")

    def show_workspace(self, data: dict[str, Any], configs: dict[str, dict[str, Any]]) -> None:
        self.configs, self.runs = configs, data.get("runs", [])
        refill_select(self.query_one("#pretrain-config", Select), [(n, n) for n in self.configs])
        refill_select(
            self.query_one("#pretrain-dataset", Select),
            [(d["name"], d["path"]) for d in data.get("datasets", [])],
        )

    def _value(self, name: str) -> str:
        return self.query_one(f"#pretrain-{name}", Input).value

    def planned(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The chosen model config and the training settings typed; a one-line error for a bad field."""
        config = self.query_one("#pretrain-config", Select).value
        if not isinstance(config, str) or config not in self.configs:
            raise LLModelError("choose a model config (save one in the Config tab)")
        settings: dict[str, Any] = {name: number(self._value(name), int, name) for name in INTEGERS}
        settings.update(
            seq_len=number(self._value("seq_len"), int, "seq_len", optional=True),
            learning_rate=number(self._value("learning_rate"), float, "learning_rate"),
            device=self._value("device").strip() or "auto",
        )
        return self.configs[config], TrainConfig.from_dict(settings, source="training settings").to_dict()

    def spec(self, workspace: Path) -> PretrainSpec:
        """The job, through the engine's builder (as ``llmodel pretrain`` with the form's fields as flags)."""
        config, settings = self.planned()
        dataset = self.query_one("#pretrain-dataset", Select).value
        if not isinstance(dataset, str):
            raise LLModelError("choose a dataset (prepare one first)")
        return pretrain_spec(config, settings, [dataset], workspace=workspace)

    def show_cost(self, workspace: Path) -> None:
        """The run's cost under the form, or what is missing to tell it."""
        cost = self.query_one("#launch-cost", Static)
        try:
            config, settings = self.planned()
            cost.update(run_cost(config, settings, self.runs))
        except LLModelError as problem:
            cost.update(f"cost: {first_line(problem)}")
