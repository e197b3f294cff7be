"""The workbench as a new user meets it (tried in tmux): the model that answers is the one picked, narrow
terminals, the config chosen in the sidebar, keys typed in a burst, honest status lines, and reopening where one
left off. A fake engine client; tests/test_tui_workbench.py repeats the model switch against a real engine."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Tab

from llmodel_app.tui.app import LLModelApp
from llmodel_app.tui.components import attention_view, chat_pane
from llmodel_app.tui.components.metric_chart import PALETTE, MetricChart
from llmodel_app.tui.components.workspace_tree import WorkspaceTree
from llmodel_app.tui.workbench_state import STATE_FILE
from tests.tui_fakes import NANO, RUN_A, RUN_B, TOKENS, WORKSPACE, FakeClient, attention, factory
from tests.tui_helpers import mounted, wait_for

pytestmark = pytest.mark.slow  # the workbench driven through Pilot: seconds a test


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def workbench(client: FakeClient, workspace: Path = WORKSPACE, **options: Any) -> LLModelApp:
    return LLModelApp(workspace, connect=factory(client), poll_serving=False, **options)


async def loaded(pilot: Any) -> None:
    await wait_for(pilot, lambda: pilot.app.workspace_data.get("runs") is not None, what="the workspace")


def checkpoint(client: FakeClient, run_id: str, step: int) -> str:
    return next(c["path"] for c in client.runs[run_id]["checkpoints"] if c["step"] == step)


def shown(widget: Widget) -> str:
    """What the widget puts on the screen, its lines joined without whitespace (wrapped text reads whole)."""
    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return "".join("".join(strip.text.split()) for strip in lines)


def squashed(text: str) -> str:
    return "".join(text.split())


def burst(app: LLModelApp, *keys: str) -> None:
    """Keys as a terminal delivers a burst (a fast typist, tmux send-keys): all read before any is handled."""
    characters = {"tab": "\t", "ctrl+u": "\x15", "backspace": "\x7f"}
    for key in keys:
        app.post_message(events.Key(key, characters.get(key, key if len(key) == 1 else None)))


def fake_replies(monkeypatch: Any, client: FakeClient) -> None:
    """Model-server replies that say which model the engine serves when they are asked."""
    monkeypatch.setattr(
        chat_pane, "fit_context", lambda url, messages, max_tokens, key: (messages, max_tokens)
    )
    monkeypatch.setattr(
        chat_pane, "stream_chat", lambda url, body, key, stop: iter([f"answer of {client.serve['model']}"])
    )


# -- the model that answers ---------------------------------------------------------------------------------


def test_the_chat_answers_with_the_picked_checkpoint_restarting_a_server_that_serves_another(monkeypatch):
    client = FakeClient()
    quickstart_model = str(WORKSPACE / "runs" / RUN_A)
    client.serve = {
        "running": True,
        "model": quickstart_model,
        "host": "127.0.0.1",
        "port": 8123,
        "url": "http://127.0.0.1:8123",
        "auth": False,
        "health": "ok",
        "requests": 0,
    }
    fake_replies(monkeypatch, client)
    picked = checkpoint(client, RUN_B, 40)

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            (
                await mounted(pilot, "#rest-panel")
            ).poll()  # the server already running, as the Serve tab sees it
            await pilot.press("4")
            chat = await mounted(pilot, "#chat-pane")
            picker = app.query_one("#chat-model")
            await wait_for(pilot, lambda: picker.path, what="the checkpoints to pick from")
            picker.value = picked  # the user's choice in the list
            await wait_for(pilot, lambda: app.chosen_model == picked, what="the pick to reach the app")
            status = app.query_one("#chat-server")
            await wait_for(pilot, lambda: "restarts" in str(status.content), what="the pending switch")
            assert squashed(f"answering: {RUN_A} (latest)") in shown(status)
            assert squashed(f"your next message restarts it with {RUN_B} · step 40 ★") in shown(status)

            app.query_one("#prompt").focus()
            await pilot.press(*"hello", "enter")
            await wait_for(pilot, lambda: len(chat.history) == 2 and not chat.streaming, what="the reply")
            assert chat.history[1]["content"] == f"answer of {picked}"
            assert client.asked("serve_stop") == [{}], "the server of the other model was stopped"
            assert client.asked("serve_start")[-1] == {
                "model": picked,
                "host": "127.0.0.1",
                "port": 8123,
                "api_key": None,
                "adapters": None,
            }
            # The status line names the checkpoint that answers, whole (it wraps; it is not cut off).
            assert squashed(f"answering: {RUN_B} · step 40 ★") in shown(status)
            assert "restarts" not in str(status.content)

    run(scenario)


def test_while_a_server_starts_the_chat_says_starting_then_loading_never_unreachable(monkeypatch):
    client = FakeClient()
    # A server busy loading its model may miss the engine's health probe: the engine then says "unreachable".
    client.serve_health = ["starting", "starting", "loading", "unreachable", "loading"]
    fake_replies(monkeypatch, client)
    picked = checkpoint(client, RUN_A, 20)

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            app.choose_checkpoint(RUN_A, picked)
            chat = await mounted(pilot, "#chat-pane")
            status = app.query_one("#chat-server")
            seen: list[str] = []
            show = chat.serving_changed
            chat.serving_changed = lambda served: (show(served), seen.append(str(status.content)))
            await wait_for(pilot, lambda: chat.query_one("#chat-model").path == picked, what="the pick")
            chat.send("hello")
            await wait_for(pilot, lambda: len(chat.history) == 2 and not chat.streaming, what="the reply")
            label = f"{RUN_A} · step 20"
            assert any(line.startswith(f"starting: {label}") for line in seen), seen
            assert any(line.startswith(f"loading the model: {label}") for line in seen), seen
            assert seen[-1].startswith(f"answering: {label}"), seen
            assert not any("unreachable" in line or "not answering" in line for line in seen), seen

    run(scenario)


def test_typed_text_attention_runs_on_the_open_runs_best_checkpoint_when_none_is_picked(monkeypatch):
    client = FakeClient()
    asked: list[str] = []

    def attention_of(status: dict[str, Any], path: str, body: dict[str, Any], key: str | None) -> Any:
        asked.append(status["model"])
        return {"tokens": TOKENS, "weights": attention()}

    monkeypatch.setattr(attention_view, "post_to_server", attention_of)
    best = checkpoint(client, RUN_B, 40)

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            app.open_run(RUN_B)
            await pilot.press("3")
            view = await mounted(pilot, "#attention-view")
            await wait_for(pilot, lambda: view.data is not None, what="the newest snapshot")
            assert app.chosen_model is None
            app.query_one("#attention-prompt").focus()
            await pilot.press(*"def f", "enter")
            await wait_for(pilot, lambda: view.prompt_model == best, what="the typed text's maps")
            assert asked == [best] and client.asked("serve_start")[-1]["model"] == best
            assert f"typed text on {RUN_B} · step 40 ★" in str(app.query_one("#attention-title").content)
            assert not app._notifications, "no toast asks to choose a checkpoint first"

    run(scenario)


# -- what the screen shows ----------------------------------------------------------------------------------


def test_compare_shows_its_legend_above_the_charts_never_over_the_curves():
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=(170, 45)) as pilot:  # wide enough for plotext to draw its own legend
            await loaded(pilot)
            await pilot.press("8")
            compare = await mounted(pilot, "#compare-view")
            await wait_for(pilot, lambda: compare.run_ids, what="the runs to compare")
            compare.select([RUN_A, RUN_B])
            await wait_for(pilot, lambda: compare.curves, what="the curves")
            await pilot.pause(0.2)
            for chart_id in ("#compare-loss", "#compare-val_loss"):
                drawn = app.query_one(chart_id, MetricChart).render().plain
                assert any("\u2801" <= c <= "\u28ff" for c in drawn), "the curves are drawn (braille)"
                assert RUN_A not in drawn and RUN_B not in drawn, "no legend inside the plot"
            legend = app.query_one("#compare-legend").content
            assert RUN_A in str(legend) and RUN_B in str(legend)
            keys = [span.style.color.number for span in legend.spans if span.style.color is not None]
            assert keys == list(PALETTE[:2]), "each run's key in its curve's colour"

    run(scenario)


def test_a_run_without_attention_snapshots_says_so_on_one_line():
    client = FakeClient()
    client.attention_steps = ()

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            app.open_run(RUN_A)
            await pilot.press("3")
            await mounted(pilot, "#attention-view")
            title = app.query_one("#attention-title")
            await wait_for(pilot, lambda: "no attention snapshots yet" in str(title.content), what="the list")
            heatmap = app.query_one("#heatmap")
            lines = heatmap.render_lines(Region(0, 0, heatmap.size.width, heatmap.size.height))
            assert heatmap.size.height > 20
            assert [strip.text.strip() for strip in lines if strip.text.strip()] == ["no attention snapshot"]

    run(scenario)


def test_a_100_by_30_terminal_keeps_tabs_charts_and_the_sidebar_key_readable():
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=(100, 30)) as pilot:
            await loaded(pilot)
            app.open_run(RUN_A)
            view = await mounted(pilot, "#run-view")
            await wait_for(pilot, lambda: view.loaded, what="the run")
            await pilot.pause(0.2)
            sidebar = app.query_one("#sidebar")
            assert sidebar.display and sidebar.outer_size.width <= 30, "the sidebar shrinks"
            tabs = app.query_one("#tabs")
            for tab in app.main.query(Tab):
                assert tabs.region.x <= tab.region.x and tab.region.right <= 100, (
                    f"{tab.label_text} shows whole"
                )
            for chart in view.query(MetricChart):
                assert chart.size.width >= 22 and chart.size.height >= 8, f"{chart.id} is {chart.size}"
            # The footer's keys by their type's name: Textual keeps the FooterKey class private.
            footer = {key.key: key for key in app.screen.query("FooterKey")}
            palette = next(key for key in footer.values() if key.has_class("-command-palette"))
            assert "ctrl+b" in footer and footer["ctrl+b"].region.right <= palette.region.x, (
                "ctrl+b in the footer"
            )

            await pilot.press("ctrl+b")
            await pilot.pause(0.1)
            assert not sidebar.display and tabs.region.x == 0, "ctrl+b gives its columns to the tabs"
            await pilot.press("ctrl+b")
            await pilot.resize_terminal(80, 30)
            await pilot.pause(0.2)
            assert not sidebar.display, "below 90 columns the sidebar hides itself"
            await pilot.press("ctrl+b")
            await pilot.pause(0.1)
            assert sidebar.display and sidebar.outer_size.width <= 30, "and ctrl+b shows it, narrow"

    run(scenario)


# -- the config editor ---------------------------------------------------------------------------------------


def test_a_config_chosen_in_the_sidebar_opens_in_the_config_tab():
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await mounted(pilot, "#config-editor")
            tree = app.query_one(WorkspaceTree)
            tree.focus()
            tree.cursor_line = 0  # "Configs"
            await pilot.press("enter", "down", "enter")  # open the section, choose its config
            await wait_for(
                pilot, lambda: app.main.query_one("#tabs").active == "config", what="the config tab"
            )
            await wait_for(pilot, lambda: app.query_one("#field-d_model").value == "64", what="its fields")
            assert app.query_one("#config-name").value == "nano"
            assert app.query_one("#field-d_ff").value == str(NANO["d_ff"])
            assert app.query_one("#config-preset").is_blank(), "it is not the tiny preset"

    run(scenario)


def test_a_config_chosen_before_the_editor_mounts_opens_when_it_does():
    async def scenario() -> None:
        app = workbench(FakeClient())
        app.config_to_edit = ("nano", NANO)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("6")
            editor = await mounted(pilot, "#config-editor")
            await wait_for(pilot, lambda: editor.config is not None, what="the config")
            await pilot.pause(0.2)
            assert app.query_one("#field-d_model").value == "64" and editor.config.name == "nano"

    run(scenario)


def test_keys_typed_in_a_burst_after_clearing_a_field_all_land_in_order():
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("6")
            editor = await mounted(pilot, "#config-editor")
            await wait_for(pilot, lambda: editor.config is not None, what="the preset")
            d_model, n_layers = app.query_one("#field-d_model"), app.query_one("#field-n_layers")
            d_model.focus()
            await pilot.pause()
            burst(app, "ctrl+u", "2", "5", "6")
            await wait_for(
                pilot, lambda: d_model.value == "256", timeout=5, what=f"256, not {d_model.value!r}"
            )
            burst(app, "backspace", "backspace", "8", "8")
            await wait_for(
                pilot, lambda: d_model.value == "288", timeout=5, what=f"288, not {d_model.value!r}"
            )
            burst(app, "tab", "ctrl+u", "4")  # the keys after tab belong to the next field
            await wait_for(pilot, lambda: n_layers.value == "4", timeout=5, what=f"4, not {n_layers.value!r}")
            assert d_model.value == "288" and app.focused is n_layers

    run(scenario)


# -- honest status -------------------------------------------------------------------------------------------


def test_an_unconnected_workspace_is_connecting_not_empty():
    client = FakeClient(empty=True)
    gate = threading.Event()

    def slow_engine(workspace: Path, start: bool) -> FakeClient:
        gate.wait(30)  # an engine under load takes seconds to answer
        return client

    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=slow_engine, poll_serving=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.5)
            assert not app.query_one("#welcome-intro").display, "nothing says the workspace is empty"
            assert not app.query_one("#quickstart").display
            assert "connecting to the engine" in str(app.query_one("#workspace-summary").content)
            gate.set()
            await loaded(pilot)
            await wait_for(pilot, lambda: app.query_one("#welcome-intro").display, what="the welcome")
            assert "This workspace is empty" in str(app.query_one("#welcome-intro").content)

    run(scenario)


# -- reopening -----------------------------------------------------------------------------------------------


def test_reopening_restores_the_open_run_tab_and_picked_checkpoint(tmp_path: Path):
    client = FakeClient()
    picked = checkpoint(client, RUN_A, 20)

    async def first_session() -> None:
        app = workbench(client, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            app.open_run(RUN_B)
            await pilot.press("4")
            picker = (await mounted(pilot, "#chat-pane")).query_one("#chat-model")
            await wait_for(pilot, lambda: picker.path, what="the checkpoints to pick from")
            picker.value = picked
            await wait_for(pilot, lambda: app.chosen_model == picked, what="the pick")
            await pilot.press("3")
            await wait_for(pilot, lambda: app.main.query_one("#tabs").active == "attention", what="the tab")
            await pilot.pause(0.1)

    async def second_session() -> None:
        app = workbench(client, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await wait_for(pilot, lambda: app.current_run == RUN_B, what="the run reopened")
            assert app.main.query_one("#tabs").active == "attention" and app.chosen_model == picked
            view = await mounted(pilot, "#attention-view")
            await wait_for(pilot, lambda: view.run_id == RUN_B and view.data, what="its attention")
            await wait_for(pilot, lambda: app.query_one("#chat-model").path == picked, what="the chat's pick")
            await pilot.pause(0.3)
            assert app.main.query_one("#tabs").active == "attention", "nothing pulls another tab forward"

    run(first_session)
    assert json.loads((tmp_path / STATE_FILE).read_text()) == {
        "run": RUN_B,
        "tab": "attention",
        "model": picked,
    }
    run(second_session)
