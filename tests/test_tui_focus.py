"""The workbench's focus rules, as Posting and Harlequin keep them: a field keeps the printable keys typed into
it (digits included), Tab moves to the next field without selecting its text, Escape leaves a field for the tab
bar, and the ctrl shortcuts and the command palette work wherever the focus is. At three terminal sizes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual import events
from textual.command import CommandPalette
from textual.widgets import Input, Tabs

from llmodel_app.tui.app import LLModelApp
from tests.tui_fakes import WORKSPACE, FakeClient, factory
from tests.tui_helpers import mounted, wait_for

pytestmark = pytest.mark.slow  # the workbench driven through Pilot: seconds a test

SIZES = [pytest.param(size, id=f"{size[0]}x{size[1]}") for size in ((140, 42), (100, 30), (80, 24))]


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def workbench(client: FakeClient) -> LLModelApp:
    return LLModelApp(WORKSPACE, connect=factory(client), poll_serving=False)


def active(app: LLModelApp) -> str:
    return app.main.query_one("TabbedContent").active


async def serve_tab_port(pilot: Any) -> Input:
    """The Serve tab's port field, focused (the workspace listed, so nothing refills it meanwhile)."""
    app = pilot.app
    await wait_for(pilot, lambda: app.workspace_data.get("runs") is not None, what="the workspace")
    await pilot.press("5")
    await mounted(pilot, "#rest-panel")
    port = app.main.query_one("#rest-port", Input)
    port.focus()
    await pilot.pause()
    return port


@pytest.mark.parametrize("size", SIZES)
def test_digits_typed_into_a_field_stay_in_it_and_do_not_switch_tabs(size: tuple[int, int]):
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=size) as pilot:
            port = await serve_tab_port(pilot)
            await pilot.press("end", "1", "2")
            await pilot.pause()
            assert port.value == "800012" and active(app) == "serve" and app.focused is port
            for digit in "34":  # a burst, as a fast typist or tmux sends it: read before any is handled
                app.post_message(events.Key(digit, digit))
            await wait_for(
                pilot, lambda: port.value == "80001234", timeout=5, what=f"80001234, not {port.value!r}"
            )
            assert active(app) == "serve"

    run(scenario)


@pytest.mark.parametrize("size", SIZES)
def test_tab_moves_to_the_next_field_without_selecting_its_text(size: tuple[int, int]):
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=size) as pilot:
            await serve_tab_port(pilot)
            host = app.main.query_one("#rest-host", Input)
            host.focus()
            await pilot.pause()
            await pilot.press("tab")
            port = app.main.query_one("#rest-port", Input)
            assert app.focused is port and port.selection.is_empty
            await pilot.press("7")
            assert port.value == "80007", "the key typed after Tab is added, not put in place of the text"

    run(scenario)


@pytest.mark.parametrize("size", SIZES)
def test_escape_leaves_a_field_for_the_tab_bar_where_digits_switch_tabs_again(size: tuple[int, int]):
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=size) as pilot:
            port = await serve_tab_port(pilot)
            await pilot.press("escape")
            assert isinstance(app.focused, Tabs) and port.value == "8000"
            await pilot.press("1")
            await wait_for(pilot, lambda: active(app) == "home", timeout=5, what="the Home tab")

    run(scenario)


@pytest.mark.parametrize("size", SIZES)
def test_ctrl_shortcuts_and_the_palette_work_while_a_field_has_focus(size: tuple[int, int]):
    async def scenario() -> None:
        app = workbench(FakeClient())
        started: list[bool] = []
        async with app.run_test(size=size) as pilot:
            port = await serve_tab_port(pilot)
            app.connected = False  # as when the engine is down: ctrl+e starts it
            app._link.start_engine = lambda: started.append(True)
            await pilot.press("ctrl+e")
            assert started == [True] and port.value == "8000"
            app.connected = True
            theme = app.theme
            await pilot.press("ctrl+t")
            assert app.theme != theme
            await pilot.press("ctrl+p")
            await wait_for(
                pilot, lambda: isinstance(app.screen, CommandPalette), timeout=5, what="the palette"
            )

    run(scenario)
