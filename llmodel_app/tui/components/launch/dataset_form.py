"""The dataset form: input files, the tokenizer that encodes them, a name and the validation share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Button, Input, Label, Select

from engine.errors import LLModelError
from engine.specs import DatasetSpec, dataset_spec
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.form_fields import number, refill_select, split_paths


class DatasetForm(Vertical):
    KIND = "dataset"

    def compose(self) -> ComposeResult:
        with Grid():
            yield Button("input files…", id="dataset-browse", compact=True)
            yield FieldInput(placeholder="corpus.txt, more.jsonl", id="dataset-inputs", compact=True)
            yield Label("tokenizer")
            yield Select([], prompt="a tokenizer", id="dataset-tokenizer", compact=True)
            yield Label("name")
            yield FieldInput("my-dataset", id="dataset-name", compact=True)
            yield Label("validation fraction")
            yield FieldInput("0.005", id="dataset-val_fraction", compact=True)

    def show_workspace(self, data: dict[str, Any], configs: dict[str, dict[str, Any]]) -> None:
        refill_select(
            self.query_one("#dataset-tokenizer", Select),
            [(t["name"], t["path"]) for t in data.get("tokenizers", [])],
        )

    def spec(self, workspace: Path) -> DatasetSpec:
        """The job, through the engine's builder (as ``llmodel data prepare`` with the form's fields)."""
        value = lambda name: self.query_one(f"#dataset-{name}", Input).value  # noqa: E731
        tokenizer = self.query_one("#dataset-tokenizer", Select).value
        if not isinstance(tokenizer, str):
            raise LLModelError("choose a tokenizer")
        output = workspace / "datasets" / value("name").strip()
        val_fraction = number(value("val_fraction"), float, "validation fraction")
        return dataset_spec(split_paths(value("inputs")), tokenizer, output, val_fraction=val_fraction)
