"""The REST toggle: serve the chosen checkpoint on a host and port (an API key beyond loopback), live counts."""

from __future__ import annotations

import shlex
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Static, Switch
from textual.worker import Worker, get_current_worker

from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.components.model_picker import ModelPicker, model_label
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.messages import ServingChanged
from llmodel_app.tui.model_server import check_bind, health_phrase, wait_ready
from llmodel_app.tui.shared import require_client, workbench

POLL_SECONDS = 2.0


def curl_command(url: str, api_key: str | None, *, key_from_env: bool = False) -> str:
    """A ready-to-paste request against the server's OpenAI chat endpoint (the key, or $LLMODEL_API_KEY)."""
    body = '{"messages": [{"role": "user", "content": "def hello():"}], "max_tokens": 32}'
    parts = [
        "curl",
        shlex.quote(f"{url}/v1/chat/completions"),
        "-H",
        shlex.quote("Content-Type: application/json"),
    ]
    if api_key:
        parts += ["-H", shlex.quote(f"Authorization: Bearer {api_key}")]
    elif key_from_env:
        parts += ["-H", '"Authorization: Bearer $LLMODEL_API_KEY"']  # double quotes: the shell expands it
    parts += ["-d", shlex.quote(body)]
    return " ".join(parts)


class RestPanel(VerticalScroll):
    """Flipping the switch starts or stops the workspace's model server through the engine (EngineClient.serve_start/serve_stop)."""

    DEFAULT_CSS = """
    RestPanel { padding: 1 2; }
    RestPanel Grid { grid-size: 2; grid-columns: 12 1fr; height: auto; grid-rows: 1; grid-gutter: 0 1; }
    RestPanel Grid Label { padding: 0; }
    RestPanel #rest-toggle { height: auto; margin: 1 0; }
    RestPanel #rest-toggle Label { padding: 1 1; }
    RestPanel #rest-error { color: $error; height: auto; }
    RestPanel #rest-url, RestPanel #rest-stats { height: auto; margin-top: 1; }
    RestPanel #rest-curl { height: auto; margin-top: 1; padding: 0 1; background: $boost; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status: dict[str, Any] = {"running": False}
        self.busy = False
        self.api_key: str | None = None
        self.curl = ""
        self._synced: tuple[Any, ...] = ()
        self.runs: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label("checkpoint")
            yield ModelPicker(id="rest-model")
            yield Label("host")
            yield FieldInput("127.0.0.1", id="rest-host", compact=True)
            yield Label("port")
            yield FieldInput("8000", id="rest-port", restrict=r"[0-9]*", compact=True)
            yield Label("API key")
            yield FieldInput(
                placeholder="required unless the host is loopback", password=True, id="rest-key", compact=True
            )
        with Horizontal(id="rest-toggle"):
            yield Switch(id="rest-switch")
            yield Label("REST API off", id="rest-state")
        yield Static("", id="rest-error")
        yield Static("", id="rest-url")
        yield Static("", id="rest-curl", markup=False)
        yield Button("Copy curl command", id="rest-copy", disabled=True)
        yield Static("", id="rest-stats")

    def on_mount(self) -> None:
        # Mounted lazily: take the workspace and the chosen checkpoint the app already has.
        self.call_after_refresh(self._catch_up)
        if workbench(self).poll_serving:
            self.set_interval(POLL_SECONDS, self.poll)
            self.poll()

    def _catch_up(self) -> None:
        """Mounted lazily (once the Selects inside have mounted too): take what the app already knows."""
        app = workbench(self)
        self.show_workspace(app.workspace_data)
        if app.chosen_model:
            self.choose_model(app.chosen_model)

    def show_workspace(self, data: dict[str, Any]) -> None:
        self.runs = data.get("runs", [])
        self.query_one("#rest-model", ModelPicker).set_runs(self.runs)

    # -- the switch ---------------------------------------------------------------------------------

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        error = self.query_one("#rest-error", Static)
        error.update("")
        if not event.value:
            self.busy = True
            self._stop_serving()
            return
        host = self.query_one("#rest-host", Input).value.strip()
        port = self.query_one("#rest-port", Input).value.strip()
        key = self.query_one("#rest-key", Input).value.strip()
        model = self.query_one("#rest-model", ModelPicker).path
        problem = check_bind(host, port, key) or (None if model else "choose a checkpoint to serve")
        if problem:
            error.update(problem)
            self._set_switch(False)
            return
        self.busy = True
        self._start_serving(model, host, int(port), key or None)

    def _set_switch(self, on: bool) -> None:
        switch = self.query_one("#rest-switch", Switch)
        if switch.value != on:
            with switch.prevent(Switch.Changed):
                switch.value = on

    @work(thread=True, exclusive=True, exit_on_error=False, group="rest")
    def _start_serving(self, model: str, host: str, port: int, key: str | None) -> None:
        worker = get_current_worker()
        try:
            client = require_client(self)
            if client.serve_status().get("running"):
                client.serve_stop()  # one server per workspace: the REST settings replace the chat's
            started = dict(client.serve_start(model, host=host, port=port, api_key=key))
            workbench(self).serve_key = key
            self.api_key = key
            self.app.call_from_thread(self._show, {**started, "running": True, "health": "starting"})
            status = wait_ready(
                client,
                lambda: worker.is_cancelled,
                on_status=lambda s: self.app.call_from_thread(self._show, s),
                just_started=True,
            )
        except Exception as error:  # shown beside the switch, which goes back off
            if not worker.is_cancelled:
                self.app.call_from_thread(self._failed, str(error))
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, status)
            self.app.call_from_thread(self._done)

    @work(thread=True, exclusive=True, exit_on_error=False, group="rest")
    def _stop_serving(self) -> None:
        try:
            require_client(self).serve_stop()
        except Exception as error:
            self.app.call_from_thread(self._failed, str(error))
            return
        self.app.call_from_thread(self._show, {"running": False})
        self.app.call_from_thread(self._done)

    def _done(self) -> None:
        self.busy = False

    def _failed(self, message: str) -> None:
        self.busy = False
        self.query_one("#rest-error", Static).update(message)
        self._set_switch(False)
        self._poll()

    # -- status -------------------------------------------------------------------------------------------

    def poll(self) -> None:
        if workbench(self).client is not None and not self.busy:
            self._poll()

    @work(thread=True, exclusive=True, exit_on_error=False, group="rest-poll")
    def _poll(self) -> None:
        client = workbench(self).client
        if client is None:
            return
        try:
            status = client.serve_status()
        except Exception:  # the engine link reports a lost engine; polling just skips a beat
            return
        self.app.call_from_thread(self._show, status)

    def _show(self, status: dict[str, Any]) -> None:
        self.status = status
        running = bool(status.get("running"))
        if not self.busy:
            self._set_switch(running)
        state = self.query_one("#rest-state", Label)
        url = self.query_one("#rest-url", Static)
        curl = self.query_one("#rest-curl", Static)
        stats = self.query_one("#rest-stats", Static)
        self.query_one("#rest-copy", Button).disabled = not running
        if running:
            key = self.api_key if status.get("auth") else None
            state.update(f"REST API on — {health_phrase(status)}")
            served = model_label(str(status.get("model") or ""), self.runs)
            url.update(Text.assemble(("URL", "bold"), f" {status.get('url')}   ", (f"model {served}", "dim")))
            self.curl = curl_command(status["url"], key, key_from_env=bool(status.get("auth")) and not key)
            self._sync_inputs(status)
            curl.update(self.curl)
            requests = status.get("requests")
            stats.update(
                f"requests served: [b]{requests if requests is not None else '—'}[/b]   {health_phrase(status)}"
            )
        else:
            state.update("REST API off")
            url.update("")
            self.curl = ""
            curl.update("")
            stats.update("")
        self.post_message(ServingChanged(status))

    def _sync_inputs(self, status: dict[str, Any]) -> None:
        """Show a server found running (started elsewhere, or before the workbench opened) in the fields, once."""
        where = (status.get("host"), status.get("port"), status.get("model"))
        if self.busy or where == self._synced:
            return
        self._synced = where
        self.query_one("#rest-host", Input).value = str(status.get("host", ""))
        self.query_one("#rest-port", Input).value = str(status.get("port", ""))
        if status.get("model"):
            self.query_one("#rest-model", ModelPicker).choose(str(status["model"]))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "rest-copy" and self.status.get("running"):
            self.app.copy_to_clipboard(self.curl)
            self.notify("curl command copied to the clipboard")

    def choose_model(self, path: str) -> None:
        self.query_one("#rest-model", ModelPicker).choose(path)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
