"""Chat with a checkpoint: served through the engine (EngineClient.serve_start), replies streamed from /v1/chat/completions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker, get_current_worker

from engine.errors import LLModelError
from llmodel_app.tui import keymap
from llmodel_app.tui.components.chat_message import ChatMessage
from llmodel_app.tui.components.chat_settings import ChatSettings
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.components.model_picker import (
    AdapterPicker,
    ModelPicker,
    adapters_of,
    loads_same,
    model_label,
)
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.messages import AdapterPicked, ChatDelta, ModelPicked
from llmodel_app.tui.model_server import (
    ensure_serving,
    health_phrase,
    local_url,
    restart_needed,
    served_name,
    server_error,
)
from llmodel_app.tui.shared import workbench

STREAM_INTERVAL = 0.05  # at most twenty repaints of the growing reply a second


def stream_chat(url: str, body: dict[str, Any], key: str | None, stop: threading.Event) -> Iterator[str]:
    """Yield the reply's text pieces as the server streams them (OpenAI SSE chunks, then ``[DONE]``); an error
    event mid-stream (the server failed after it began to answer) raises it as a one-line error."""
    import httpx  # loaded with the first message, off the start-up path
    from httpx_sse import connect_sse

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {**body, "stream": True}
    with (
        httpx.Client(timeout=httpx.Timeout(10.0, read=120.0)) as http,
        connect_sse(http, "POST", f"{url}/v1/chat/completions", json=body, headers=headers) as source,
    ):
        if source.response.status_code >= 400:
            source.response.read()
            raise server_error(source.response)
        for event in source.iter_sse():
            if stop.is_set() or event.data == "[DONE]":
                return
            chunk = event.json()
            if isinstance(chunk.get("error"), dict):
                message = chunk["error"].get("message") or "no reason given"
                raise LLModelError(f"the model server failed mid-reply: {message}")
            for choice in chunk.get("choices", []):
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield piece


def fit_context(
    url: str, messages: list[dict[str, str]], max_tokens: int, key: str | None
) -> tuple[list[dict[str, str]], int]:
    """Drop the oldest turns until the prompt leaves room in the model's context; returns them and max_tokens."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    with httpx.Client(timeout=30.0, headers=headers) as http:
        while True:
            reply = http.post(f"{url}/tokenize", json={"messages": system + turns})
            reply.raise_for_status()
            count, limit = reply.json()["count"], reply.json()["max_model_len"]
            room = limit - count
            if room >= min(max_tokens, 16) or len(turns) <= 1:
                break
            turns = turns[2:] if len(turns) > 2 else turns[-1:]  # the oldest exchange goes first
    if room < 1:
        raise LLModelError(f"the message is longer than the model's {limit}-token context; shorten it")
    return system + turns, min(max_tokens, room)


class ChatPane(Horizontal):
    """The conversation on the left; the model (a checkpoint, then its base or one of its adapters), its server
    and the sampling settings on the right. The server loads every adapter of the picked checkpoint, and each
    request's OpenAI ``model`` field picks the base or an adapter: switching between them never restarts it."""

    BINDINGS: ClassVar[list[BindingType]] = keymap.CHAT
    DEFAULT_CSS = """
    ChatPane #chat-main { width: 1fr; }
    ChatPane #transcript { height: 1fr; border: round $primary-darken-2; }
    ChatPane #chat-input { height: auto; }
    ChatPane #prompt { width: 1fr; }
    ChatPane #chat-side { width: 34; padding: 0 1; }
    ChatPane #chat-input Button { min-width: 8; }
    ChatPane #chat-server { height: auto; color: $text-muted; margin-bottom: 1; }
    ChatPane #chat-buttons { height: auto; margin-top: 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history: list[dict[str, str]] = []
        self.streaming = False
        self.server: dict[str, Any] = {"running": False}
        self.runs: list[dict[str, Any]] = []
        self.adapters: list[dict[str, Any]] = []  # every adapter of the workspace (the listing's adapters)
        self.turn = 0  # bumped by clear, so a late reply to the old conversation is dropped
        self._stop = threading.Event()
        self._reply: ChatMessage | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="chat-main"):
            yield VerticalScroll(id="transcript")
            with Horizontal(id="chat-input"):
                yield FieldInput(placeholder="Say something and press enter", id="prompt")
                yield Button("Send", id="send", variant="primary")
                yield Button("Stop", id="stop", variant="warning", disabled=True)
        with VerticalScroll(id="chat-side"):
            yield Label("model")
            yield ModelPicker(id="chat-model")
            yield Label("adapter")
            yield AdapterPicker(id="chat-adapter")
            yield Static("", id="chat-server")
            yield Button("Start serving", id="chat-serve")
            yield ChatSettings(id="chat-settings")
            with Horizontal(id="chat-buttons"):
                yield Button("Clear", id="chat-clear")
                yield Button("Copy", id="chat-copy")

    def on_mount(self) -> None:
        # Mounted lazily: take the workspace and the chosen checkpoint the app already has.
        self.call_after_refresh(self._catch_up)

    def _catch_up(self) -> None:
        """Mounted lazily (once the Selects inside have mounted too): take what the app already knows."""
        app = workbench(self)
        self.show_workspace(app.workspace_data)
        if app.chosen_model:
            self.choose_model(app.chosen_model)
        if app.chosen_adapter:
            self.choose_adapter(app.chosen_adapter)

    def show_workspace(self, data: dict[str, Any]) -> None:
        self.runs = data.get("runs", [])
        self.adapters = data.get("adapters", [])
        self.query_one("#chat-model", ModelPicker).set_runs(self.runs)
        self.call_after_refresh(self._offer_adapters)  # once the picker has taken the listing

    def _offer_adapters(self) -> None:
        """The base and the adapters of the picked checkpoint in the adapter list; then the status line."""
        picked = self.query_one("#chat-model", ModelPicker).path
        self.query_one("#chat-adapter", AdapterPicker).set_adapters(
            adapters_of(picked, self.runs, self.adapters)
        )
        self.call_after_refresh(self._show_server)

    # -- the server ---------------------------------------------------------------------------------

    def serving_changed(self, status: dict[str, Any]) -> None:
        self.server = status
        self._show_server()

    def _named(self, path: str, adapter: str | None) -> str:
        """``run · step 40 ★``, then ``+ adapter`` when one answers."""
        return model_label(path, self.runs) + (f" + adapter {adapter}" if adapter else "")

    def _show_server(self) -> None:
        """Which checkpoint (and adapter) answers, how the server is, and whether the next message restarts it."""
        picked = self.query_one("#chat-model", ModelPicker).path
        adapters = self.query_one("#chat-adapter", AdapterPicker)
        adapter = adapters.adapter
        status = self.server
        if not status.get("running"):
            text = Text(
                f"no model server running; sending starts {self._named(picked, adapter)}"
                if picked
                else "choose a checkpoint to chat with"
            )
        else:
            served = str(status.get("model") or "")
            serving = set(status.get("adapters") or {})
            restarts = bool(picked) and restart_needed(status, picked, adapter, self._same)
            answering = adapter if adapter in serving and not restarts else None
            text = Text(f"{health_phrase(status)}: {self._named(served, answering)}\n")
            text.append(str(status.get("url")), style="dim")
            if serving:
                text.append(
                    f"\nserving {len(serving)} adapter{'s' * (len(serving) != 1)} beside the base",
                    style="dim",
                )
            if restarts and picked:
                text.append(f"\nyour next message restarts it with {self._named(picked, adapter)}")
        self.query_one("#chat-server", Static).update(text)

    def on_select_changed(self, event: Select.Changed) -> None:
        """The user picked another checkpoint or adapter (the pickers' own changes are quiet)."""
        if event.select.id == "chat-model" and isinstance(event.value, str):
            event.stop()
            self.post_message(ModelPicked(event.value))
            self._offer_adapters()
        elif event.select.id == "chat-adapter":
            event.stop()
            self.post_message(AdapterPicked(self.query_one("#chat-adapter", AdapterPicker).adapter))
            self._show_server()

    def _serving_status(self, status: dict[str, Any]) -> None:
        """Each health the server goes through while it starts (called from a worker thread)."""
        self.app.call_from_thread(self.serving_changed, status)

    def _same(self, first: str | None, second: str | None) -> bool:
        """Whether two paths load the same checkpoint (a run folder loads its newest)."""
        return loads_same(first, second, self.runs)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-serve")
    def _start_serving(self, model: str | None, adapters: dict[str, str]) -> None:
        worker = get_current_worker()
        status = ensure_serving(
            workbench(self).client,
            model,
            lambda: worker.is_cancelled,
            key=workbench(self).serve_key,
            on_status=self._serving_status,
            adapters=adapters,
            same=self._same,
        )
        self.app.call_from_thread(self.serving_changed, status)
        self.app.call_from_thread(self.notify, f"model server ready at {status.get('url')}")

    # -- sending and streaming ------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "prompt":
            self.send()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "send": self.send,
            "stop": self.action_stop,
            "chat-clear": self.action_clear,
            "chat-copy": self.action_copy,
            "chat-serve": lambda: self._start_serving(self._picked(), self._adapters_of(self._picked())),
        }
        if event.button.id in actions:
            actions[event.button.id]()

    def on_unmount(self) -> None:
        self._stop.set()  # quitting must not wait for a reply or a loading server

    def send(self, text: str | None = None) -> None:
        prompt = self.query_one("#prompt", Input)
        text = (text if text is not None else prompt.value).strip()
        if not text or self.streaming:
            return
        try:
            settings = self.query_one(ChatSettings).values()
        except LLModelError as error:
            self.notify(str(error), severity="error", title="Chat settings")
            return
        prompt.value = ""
        self.history.append({"role": "user", "content": text})
        transcript = self.query_one("#transcript", VerticalScroll)
        transcript.mount(ChatMessage("user", text))
        self._reply = ChatMessage("assistant")
        transcript.mount(self._reply)
        transcript.scroll_end(animate=False)
        messages = list(self.history)
        system = self.query_one(ChatSettings).system_prompt
        if system:
            messages.insert(0, {"role": "system", "content": system})
        self._set_streaming(True)
        self._stop.clear()
        model = self._picked()
        served = self._adapters_of(model)
        adapter = self.query_one("#chat-adapter", AdapterPicker).adapter
        self._stream(messages, settings, model, served, adapter if adapter in served else None, self.turn)

    def _picked(self) -> str | None:
        return self.query_one("#chat-model", ModelPicker).path

    def _adapters_of(self, model: str | None) -> dict[str, str]:
        """Every adapter of ``model`` (name → folder), from the listing itself: the adapter list may not have
        caught up with a pick made this instant."""
        return {a["name"]: a["path"] for a in adapters_of(model, self.runs, self.adapters)}

    def _set_streaming(self, streaming: bool) -> None:
        self.streaming = streaming
        self.query_one("#stop", Button).disabled = not streaming
        self.query_one("#send", Button).disabled = streaming

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat")
    def _stream(
        self,
        messages: list[dict[str, str]],
        settings: dict[str, Any],
        model: str | None,
        adapters: dict[str, str],
        adapter: str | None,
        turn: int,
    ) -> None:
        text = ""
        try:
            app = workbench(self)
            status = ensure_serving(
                app.client,
                model,
                self._stop.is_set,
                key=app.serve_key,
                on_status=self._serving_status,
                adapters=adapters,
                adapter=adapter,
                same=self._same,
            )
            self.app.call_from_thread(self.serving_changed, status)
            key = app.serve_key if status.get("auth") else None
            url = local_url(status)
            messages, settings["max_tokens"] = fit_context(url, messages, settings["max_tokens"], key)
            # The base answers to its run's name, an adapter to its own: one server, no restart between them.
            name = adapter or served_name(str(status.get("model") or model or ""))
            last = 0.0
            for piece in stream_chat(url, {"model": name, "messages": messages, **settings}, key, self._stop):
                text += piece
                now = time.monotonic()
                if now - last >= STREAM_INTERVAL:
                    last = now
                    self.post_message(ChatDelta(text, turn=turn))
        except Exception as error:  # shown in the conversation, never raised
            message = str(error) if isinstance(error, LLModelError) else f"{type(error).__name__}: {error}"
            self.post_message(ChatDelta(text, turn=turn, done=True, error=message))
            return
        self.post_message(ChatDelta(text, turn=turn, done=True))

    def on_chat_delta(self, message: ChatDelta) -> None:
        if message.turn != self.turn:  # a reply to a conversation cleared since
            return
        if self._reply is not None:
            shown = message.text + ("" if message.done else " ▌")
            if message.error:
                shown = (message.text + "\n" if message.text else "") + f"[{message.error}]"
            self._reply.set_content(shown)
            self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)
        if message.done:
            if message.text:
                self.history.append({"role": "assistant", "content": message.text})
            elif self.history and self.history[-1]["role"] == "user":
                self.history.pop()  # nothing came back: let the user send it again
            if message.error:
                self.notify(message.error, severity="error", title="Chat")
            self._reply = None
            self._set_streaming(False)

    # -- actions -------------------------------------------------------------------------------------------

    def action_stop(self) -> None:
        self._stop.set()

    def action_clear(self) -> None:
        self._stop.set()
        self.turn += 1
        self._reply = None
        self._set_streaming(False)
        self.history = []
        self.query_one("#transcript", VerticalScroll).remove_children()

    def action_copy(self) -> None:
        transcript = "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in self.history)
        self.app.copy_to_clipboard(transcript)
        self.notify(f"copied {len(self.history)} messages to the clipboard")

    def choose_model(self, path: str) -> None:
        self.query_one("#chat-model", ModelPicker).choose(path)
        self.call_after_refresh(self._offer_adapters)

    def choose_adapter(self, adapter: str | None) -> None:
        """The base (None) or an adapter of the picked checkpoint answers next."""
        self.query_one("#chat-adapter", AdapterPicker).choose(adapter)
        self.call_after_refresh(self._show_server)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
