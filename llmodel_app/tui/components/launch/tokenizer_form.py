"""The tokenizer form: input files, a name and a vocabulary size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Button, Input, Label

from engine.specs import TokenizerSpec, tokenizer_spec
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.form_fields import number, split_paths


class TokenizerForm(Vertical):
    KIND = "tokenizer"

    def compose(self) -> ComposeResult:
        with Grid():
            yield Button("input files…", id="tokenizer-browse", compact=True)
            yield FieldInput(placeholder="corpus.txt, more.jsonl", id="tokenizer-inputs", compact=True)
            yield Label("name")
            yield FieldInput("my-tokenizer", id="tokenizer-name", compact=True)
            yield Label("vocab size")
            yield FieldInput("8000", id="tokenizer-vocab_size", compact=True)

    def show_workspace(self, data: dict[str, Any], configs: dict[str, dict[str, Any]]) -> None:
        """Nothing here comes from the workspace's listings."""

    def spec(self, workspace: Path) -> TokenizerSpec:
        """The job, through the engine's builder (as ``llmodel tokenizer train`` with the form's fields)."""
        value = lambda name: self.query_one(f"#tokenizer-{name}", Input).value  # noqa: E731
        output = workspace / "tokenizers" / value("name").strip()
        vocab_size = number(value("vocab_size"), int, "vocab size")
        return tokenizer_spec(split_paths(value("inputs")), output, vocab_size=vocab_size)
