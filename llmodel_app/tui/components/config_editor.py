"""A model config from a preset or the workspace, every field validated as you type, with its parameter count
and memory."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, get_args, get_origin

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from engine.errors import LLModelError
from engine.model.config import PRESETS, ModelConfig
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.shared import workbench

MEMORY_BATCH, MEMORY_SEQ = 8, None  # what the memory estimate assumes: batch 8 at the model's max_len


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TB"


def editable_fields() -> list[tuple[str, Any]]:
    """``(name, resolved type)`` of every ModelConfig field but ``name``."""
    hints = typing.get_type_hints(ModelConfig)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(ModelConfig) if f.name != "name"]


def literal_choices(kind: Any) -> tuple[str, ...] | None:
    return tuple(get_args(kind)) if get_origin(kind) is typing.Literal else None


class ConfigEditor(Horizontal):
    """Fields on the left; validity, parameter count, memory estimate and saving on the right."""

    DEFAULT_CSS = """
    ConfigEditor #config-fields { width: 1fr; padding: 0 1; }
    ConfigEditor #config-grid { grid-size: 2; grid-columns: 27 1fr; height: auto; grid-rows: 1; grid-gutter: 0 1; }
    ConfigEditor #config-grid Label { padding: 0; }
    ConfigEditor #config-side { width: 34; padding: 0 1; }
    ConfigEditor #config-status { height: auto; margin: 1 0; }
    ConfigEditor #config-status.-invalid { color: $error; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields = editable_fields()
        self.config: ModelConfig | None = None
        self.error: str | None = None
        self._loading = False
        self._preset: str | None = None  # the preset the fields were last filled from (None: a saved config)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="config-fields"), Grid(id="config-grid"):
            for name, kind in self.fields:
                yield Label(name)
                choices = literal_choices(kind)
                if choices:
                    yield Select(
                        [(c, c) for c in choices], allow_blank=False, id=f"field-{name}", compact=True
                    )
                elif kind is bool:
                    yield Select(
                        [("true", True), ("false", False)],
                        allow_blank=False,
                        id=f"field-{name}",
                        compact=True,
                    )
                else:
                    yield FieldInput(id=f"field-{name}", compact=True)
        # A saved config chosen before this (lazy) tab mounted opens instead of the tiny preset.
        opens_preset = workbench(self).config_to_edit is None
        with Vertical(id="config-side"):
            yield Label("preset")
            presets = [(p, p) for p in PRESETS]
            if opens_preset:
                yield Select(presets, prompt="a preset", id="config-preset", compact=True, value="tiny")
            else:
                yield Select(presets, prompt="a preset", id="config-preset", compact=True)
            yield Label("name")
            yield FieldInput("my-model", id="config-name", restrict=r"[A-Za-z0-9_.\-]*", compact=True)
            yield Static("", id="config-status")
            yield Button("Save to the workspace", id="config-save", variant="primary")

    def on_mount(self) -> None:
        saved = workbench(self).config_to_edit
        if saved:
            self.open_saved(*saved)
        else:
            self.open_preset("tiny")

    def open_preset(self, preset: str) -> None:
        self._preset = preset
        self.load(ModelConfig.from_preset(preset).to_dict(), name=preset)

    def open_saved(self, name: str, data: dict[str, Any]) -> None:
        """Fill the fields from a config of the workspace; the preset list goes blank (it is not one)."""
        self._preset = None
        preset = self.query_one("#config-preset", Select)
        with preset.prevent(Select.Changed):
            preset.clear()
        self.load(data, name=name)

    def load(self, data: dict[str, Any], name: str | None = None) -> None:
        """Fill the fields from a config dict (a preset or a saved config)."""
        self._loading = True
        try:
            for field, kind in self.fields:
                widget = self.query_one(f"#field-{field}")
                value = data.get(field)
                if isinstance(widget, Select):
                    if value in (literal_choices(kind) or (True, False)):
                        widget.value = value
                elif isinstance(widget, Input):
                    widget.value = "" if value is None else str(value)
            if name:
                self.query_one("#config-name", Input).value = name
        finally:
            self._loading = False
        self.validate_config()

    def values(self) -> dict[str, Any]:
        """The fields as typed values; a blank optional field is None, a malformed number stays a string."""
        data: dict[str, Any] = {}
        for field, kind in self.fields:
            widget = self.query_one(f"#field-{field}")
            if isinstance(widget, Select):
                data[field] = widget.value
                continue
            raw = widget.value.strip() if isinstance(widget, Input) else ""
            optional = type(None) in get_args(kind)
            base = next((k for k in get_args(kind) if k is not type(None)), kind) if optional else kind
            if raw == "" and optional:
                data[field] = None
                continue
            try:
                data[field] = base(raw) if base in (int, float) else raw
            except ValueError:
                data[field] = raw
        return data

    def validate_config(self) -> None:
        """Build the config with ModelConfig.from_dict (the engine's own checks) and show the outcome."""
        status = self.query_one("#config-status", Static)
        data = self.values()
        name = self.query_one("#config-name", Input).value.strip() or "custom"
        try:
            self.config = ModelConfig.from_dict({**data, "name": name}, source="config")
            self.error = None
        except LLModelError as error:
            self.config, self.error = None, str(error)
        status.set_class(self.error is not None, "-invalid")
        if self.config is None:
            status.update(f"✗ {self.error}")
            self.query_one("#config-save", Button).disabled = True
            return
        self.query_one("#config-save", Button).disabled = False
        params = self.config.num_parameters()
        training = self.config.estimate_memory(batch_size=MEMORY_BATCH)
        inference = self.config.estimate_memory(batch_size=1, training=False)
        status.update(
            f"✓ valid\n\n[b]{params:,}[/b] parameters ({params / 1e6:.1f} M)\n"
            f"training memory ≈ [b]{human_bytes(training['total'])}[/b]\n"
            f"  (batch {MEMORY_BATCH} × {self.config.max_len} tokens, fp32 + AdamW)\n"
            f"inference memory ≈ {human_bytes(inference['total'])}"
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        if not self._loading:
            self.validate_config()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "config-preset":
            if isinstance(event.value, str) and event.value != self._preset:
                self.open_preset(event.value)
        elif not self._loading:
            self.validate_config()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "config-save" and self.config is not None:
            workspace = workbench(self).workspace
            path = workspace / "configs" / f"{self.config.name}.json"
            try:
                self.config.save(path)
            except OSError as error:
                self.notify(
                    f"could not save {path}: {error.strerror or error}", severity="error", title="Config"
                )
                return
            self.notify(f"saved {path}; the Launch tab can train it now")
            workbench(self).saved_configs[self.config.name] = self.config.to_dict()
            workbench(self).action_refresh()
