"""How the workbench's main screens look (SVG snapshots), with fixed data from a fake engine client.

Update them after a deliberate change with ``pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from llmodel_app.tui.app import LLModelApp
from llmodel_app.tui.components.chat_message import ChatMessage
from tests.tui_fakes import RUN_A, RUN_B, WORKSPACE, FakeClient, factory
from tests.tui_helpers import mounted, wait_for

pytestmark = pytest.mark.slow  # the workbench driven through Pilot: seconds a test

SIZE = (120, 40)


def workbench(client: FakeClient) -> LLModelApp:
    return LLModelApp(WORKSPACE, connect=factory(client), poll_serving=False)


async def settle(pilot: Pilot) -> None:
    """Freeze what moves (cursor blink, toasts) and let the last redraw happen."""
    for widget in pilot.app.query("Input"):
        widget.cursor_blink = False
    pilot.app.clear_notifications()
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()  # until nothing is pending: a busy machine must not catch a half-finished redraw


async def loaded(pilot: Pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.workspace_data.get("runs") is not None, what="the workspace")


async def open_run(pilot: Pilot, run_id: str = RUN_A) -> Any:
    await loaded(pilot)
    pilot.app.open_run(run_id)
    run_view = await mounted(pilot, "#run-view")
    await wait_for(pilot, lambda: run_view.loaded, what="the run view")
    return run_view


def test_welcome_on_an_empty_workspace(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await settle(pilot)

    assert snap_compare(workbench(FakeClient(empty=True)), terminal_size=SIZE, run_before=run_before)


def test_run_view_with_charts_samples_checkpoints_and_log(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await open_run(pilot)
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_run_view_in_a_100_by_30_terminal(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await open_run(pilot)
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=(100, 30), run_before=run_before)


def test_run_view_smoothed_on_a_log_scale_in_the_light_theme(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("ctrl+t")  # light theme first, so every chart is drawn once, in light colours
        await open_run(pilot)
        await pilot.press("s", "s", "s", "g")
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_attention_heatmap(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await open_run(pilot)
        await pilot.press("3")
        view = await mounted(pilot, "#attention-view")
        await wait_for(pilot, lambda: view.data is not None, what="the attention map")
        pilot.app.query_one("#heatmap").focus()  # the cursor shows on the focused map
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_chat_pane(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("4")
        transcript = await mounted(pilot, "#transcript")
        await transcript.mount(ChatMessage("user", "def greet(name):"))
        await transcript.mount(ChatMessage("assistant", '    return "Hello, " + name'))
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_rest_panel_serving_with_a_key(snap_compare):
    client = FakeClient()
    client.serve = {
        "running": True,
        "model": f"{WORKSPACE}/runs/{RUN_A}",
        "host": "0.0.0.0",
        "port": 8000,
        "url": "http://0.0.0.0:8000",
        "auth": True,
        "health": "ok",
        "requests": 42,
    }

    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("5")
        panel = await mounted(pilot, "#rest-panel")
        panel.poll()
        await wait_for(pilot, lambda: panel.status.get("running"), what="the server status")
        await settle(pilot)

    assert snap_compare(workbench(client), terminal_size=SIZE, run_before=run_before)


def test_config_editor_shows_a_validation_error(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("6")
        editor = await mounted(pilot, "#config-editor")
        await wait_for(pilot, lambda: editor.config is not None, what="the preset")
        pilot.app.query_one("#field-n_heads").value = "3"
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_run_launcher_with_the_runs_cost(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("7")
        await mounted(pilot, "#job-launcher")
        config = pilot.app.query_one("#pretrain-config")
        await wait_for(pilot, lambda: config.value == "nano", what="the configs to choose from")
        pilot.app.query_one("#pretrain-max_steps").value = "500"
        cost = pilot.app.query_one("#launch-cost")
        await wait_for(
            pilot, lambda: "500" in str(cost.content) or "512,000" in str(cost.content), what="the cost"
        )
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_compare_view_of_two_runs(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("8")
        compare = await mounted(pilot, "#compare-view")
        await wait_for(pilot, lambda: compare.run_ids, what="the runs to compare")
        compare.select([RUN_A, RUN_B])
        table = pilot.app.query_one("#compare-table")
        await wait_for(pilot, lambda: table.row_count > 0, what="the comparison")
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_fine_tune_form_with_its_trainable_parameters_and_cost(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("7")
        launcher = await mounted(pilot, "#job-launcher")
        launcher.show_kind("finetune")
        cost = pilot.app.query_one("#finetune-cost")
        await wait_for(pilot, lambda: "trainable" in str(cost.content), what="the trainable count")
        pilot.app.query_one("#finetune-max_steps").value = "300"
        await wait_for(pilot, lambda: "153,600 tokens in all" in str(cost.content), what="the cost")
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_run_view_with_evaluation_task_curves(snap_compare):
    client = FakeClient()
    history = client.runs[RUN_A]["history"]
    history["stdlib-names/acc"] = [[s, 0.25 + 0.004 * s] for s in range(10, 41, 10)]
    history["stdlib-names/acc_norm"] = [[s, 0.24 + 0.003 * s] for s in range(10, 41, 10)]

    async def run_before(pilot: Pilot) -> None:
        view = await open_run(pilot)
        await wait_for(pilot, lambda: len(view.task_charts) == 2, what="the task curves")
        await settle(pilot)

    assert snap_compare(workbench(client), terminal_size=SIZE, run_before=run_before)


def test_evaluate_tab_with_results_against_chance_and_a_comparison(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("9")
        await mounted(pilot, "#evaluate-view")
        compare = pilot.app.query_one("#eval-compare")
        await wait_for(pilot, lambda: compare.row_count == 3, what="the evaluations")
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)


def test_evolve_tab_with_trials_and_the_pareto_front(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await loaded(pilot)
        await pilot.press("0")
        view = await mounted(pilot, "#evolve-view")
        await wait_for(pilot, lambda: view.data.get("trials"), what="the study's trials")
        await settle(pilot)

    assert snap_compare(workbench(FakeClient()), terminal_size=SIZE, run_before=run_before)
