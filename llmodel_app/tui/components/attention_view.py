"""Attention maps: a run's snapshots stepped through in training order, or any typed text on the picked
checkpoint (else the open run's best; computed by the model server); layer and head chosen with keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.widgets import Input, Label, TabbedContent
from textual.worker import Worker

from llmodel_app.tui import keymap
from llmodel_app.tui.components.attention_heatmap import AttentionHeatmap
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.components.model_picker import best_checkpoint, loads_same, model_label
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.messages import AttentionCursor, ServingChanged
from llmodel_app.tui.model_server import ensure_serving, health_phrase, post_to_server
from llmodel_app.tui.shared import workbench

if TYPE_CHECKING:
    from engine.client import EngineClient


class AttentionView(Vertical):
    """Loads the run's snapshot list, then one map at a time (``/attention/{step}``); a typed text is sent to
    the model server's ``POST /attention`` for the checkpoint picked for chat, else the open run's best."""

    BINDINGS: ClassVar[list[BindingType]] = keymap.ATTENTION
    DEFAULT_CSS = """
    AttentionView #attention-title { width: 1fr; height: auto; padding: 0 1; background: $boost; }
    AttentionView #attention-help { height: 1; padding: 0 1; color: $text-muted; }
    AttentionView #attention-prompt { height: 3; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id: str | None = None
        self.snapshots: list[dict[str, Any]] = []
        self.index = 0
        self.layer_index = 0
        self.head_index = 0
        self.mean = False
        self.data: dict[str, Any] | None = None
        self.prompt_model: str | None = None  # set while the map shows a typed text on this checkpoint

    def compose(self) -> ComposeResult:
        yield Label("no run open", id="attention-title")
        yield FieldInput(
            placeholder="type a text + Enter: its attention on the picked checkpoint (else this run's best)",
            id="attention-prompt",
        )
        yield AttentionHeatmap(id="heatmap")
        yield Label(
            "[ ] layer   , . head   m mean of heads   n p snapshot   arrows: a cell's weight",
            id="attention-help",
        )

    def on_mount(self) -> None:
        run_id, client = workbench(self).current_run, workbench(self).client
        if run_id and client is not None:  # mounted lazily after a run was opened
            self.open_run(run_id, client)
        tabs = self.screen.query(TabbedContent)
        if tabs and tabs.first().active == "attention":
            self.query_one(AttentionHeatmap).focus()  # its tab was shown before it had mounted

    def open_run(self, run_id: str, client: EngineClient, *, force: bool = False) -> None:
        """Show ``run_id``'s newest snapshot; ``force`` re-reads the list (a new snapshot was saved)."""
        if not self.query(AttentionHeatmap):
            return  # still mounting: on_mount opens the app's current run
        if run_id == self.run_id and self.snapshots and not force:
            return
        if run_id != self.run_id:
            self.run_id, self.snapshots, self.data, self.index = run_id, [], None, 0
            self.prompt_model = None
            self.query_one("#attention-title", Label).update(f"{run_id}: loading attention snapshots…")
        self._load_list(run_id, client)

    @work(thread=True, exclusive=True, exit_on_error=False, group="attention-list")
    def _load_list(self, run_id: str, client: EngineClient) -> None:
        snapshots = client.attention(run_id)
        self.app.call_from_thread(self._listed, run_id, snapshots, client)

    def _listed(self, run_id: str, snapshots: list[dict[str, Any]], client: EngineClient) -> None:
        if run_id != self.run_id:
            return
        self.snapshots = sorted(snapshots, key=lambda s: s["step"])
        if not self.snapshots:
            self.query_one("#attention-title", Label).update(f"{run_id}: no attention snapshots yet")
            self.query_one(AttentionHeatmap).show([], [])
            return
        self.index = len(self.snapshots) - 1
        self._load_map(run_id, self.snapshots[self.index]["step"], client)

    @work(thread=True, exclusive=True, exit_on_error=False, group="attention-map")
    def _load_map(self, run_id: str, step: int, client: EngineClient) -> None:
        data = client.attention_map(run_id, step)
        self.app.call_from_thread(self._loaded, run_id, data)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "attention-prompt" or not event.value.strip():
            return
        model = self.prompt_target()
        title = self.query_one("#attention-title", Label)
        if model is None:
            where = f"{self.run_id} has" if self.run_id else "no run is open and there is"
            title.update(f"{where} no checkpoint to compute attention with: pick one in the Chat tab")
            return
        title.update(f"computing the attention on {self.label(model)}…")
        self._load_prompt(event.value, model, workbench(self).client)

    def prompt_target(self) -> str | None:
        """The checkpoint a typed text runs on: the one picked for chat, else the open run's best."""
        picked = workbench(self).chosen_model
        if picked:
            return picked
        runs = workbench(self).workspace_data.get("runs", [])
        run = next((r for r in runs if r.get("id") == self.run_id), None)
        return best_checkpoint(run) if run is not None else None

    def label(self, model: str) -> str:
        return model_label(model, workbench(self).workspace_data.get("runs", []))

    @work(thread=True, exclusive=True, exit_on_error=False, group="attention-map")
    def _load_prompt(self, text: str, model: str, client: EngineClient | None) -> None:
        def starting(status: dict[str, Any]) -> None:
            self.post_message(ServingChanged(status))
            if status.get("health") != "ok":
                self.app.call_from_thread(
                    self.query_one("#attention-title", Label).update,
                    f"the model server is {health_phrase(status)} for {self.label(model)}…",
                )

        key = workbench(self).serve_key
        runs = workbench(self).workspace_data.get("runs", [])
        same = lambda first, second: loads_same(first, second, runs)  # noqa: E731
        status = ensure_serving(client, model, lambda: False, key=key, on_status=starting, same=same)
        self.post_message(ServingChanged(status))
        data = post_to_server(status, "/attention", {"text": text}, key)
        self.app.call_from_thread(self._prompt_loaded, model, data)

    def _prompt_loaded(self, model: str, data: dict[str, Any]) -> None:
        self.prompt_model = model
        self.data = {**data, "step": None}
        self.layer_index = min(self.layer_index, len(data["weights"]) - 1)
        self.head_index = min(self.head_index, len(data["weights"][self.layer_index]) - 1)
        self._draw()
        self.query_one(AttentionHeatmap).focus()

    def _loaded(self, run_id: str, data: dict[str, Any]) -> None:
        if run_id != self.run_id:
            return
        self.prompt_model = None
        weights = data.get("weights") or []
        if not weights or not weights[0]:
            self.query_one("#attention-title", Label).update(
                f"{run_id}: the snapshot at step {data.get('step')} is empty"
            )
            return
        self.data = data
        self.layer_index = min(self.layer_index, len(weights) - 1)
        self.head_index = min(self.head_index, len(weights[self.layer_index]) - 1)
        self._draw()

    def _draw(self) -> None:
        if self.data is None:
            return
        weights = self.data["weights"]
        layers, heads = len(weights), len(weights[self.layer_index])
        if self.mean:
            maps = weights[self.layer_index]
            matrix = [
                [sum(m[i][j] for m in maps) / heads for j in range(len(maps[0][i]))]
                for i in range(len(maps[0]))
            ]
            head = "mean"
        else:
            matrix = weights[self.layer_index][self.head_index]
            head = f"{self.head_index + 1}/{heads}"
        self.query_one(AttentionHeatmap).show(self.data["tokens"], matrix)
        where = (
            f"typed text on {self.label(self.prompt_model)}"
            if self.prompt_model
            else f"{self.run_id}  step {self.data['step']} ({self.index + 1}/{len(self.snapshots)})"
        )
        self.query_one("#attention-title", Label).update(
            f"{where}  layer {self.layer_index + 1}/{layers}  head {head}"
        )

    def on_attention_cursor(self, message: AttentionCursor) -> None:
        self.query_one("#attention-help", Label).update(
            f"query {message.query!r} → key {message.key!r}: weight {message.weight:.3f}"
        )

    def action_layer(self, delta: int) -> None:
        if self.data:
            self.layer_index = (self.layer_index + delta) % len(self.data["weights"])
            self._draw()

    def action_head(self, delta: int) -> None:
        if self.data:
            self.mean = False
            self.head_index = (self.head_index + delta) % len(self.data["weights"][self.layer_index])
            self._draw()

    def action_toggle_mean(self) -> None:
        self.mean = not self.mean
        self._draw()

    def action_snapshot(self, delta: int) -> None:
        if not self.snapshots or self.run_id is None:
            return
        self.index = max(0, min(len(self.snapshots) - 1, self.index + delta))
        client = workbench(self).client
        if client is not None:
            self._load_map(self.run_id, self.snapshots[self.index]["step"], client)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
