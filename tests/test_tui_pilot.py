"""Workbench behaviour with a fake engine client: fast, deterministic, no engine process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList, CommandPalette

from engine.model.config import ModelConfig
from llmodel_app.tui.app import LLModelApp
from llmodel_app.tui.commands import workbench_commands
from llmodel_app.tui.components.file_picker import FilePicker
from llmodel_app.tui.components.help_screen import HelpScreen
from llmodel_app.tui.components.metric_chart import MetricChart
from tests.cli_runner import run_cli
from tests.tui_fakes import RUN_A, WORKSPACE, FakeClient, factory, make_run, rebased
from tests.tui_helpers import mounted, wait_for

pytestmark = pytest.mark.slow  # the workbench driven through Pilot: seconds a test

SIZE = (120, 40)


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def notifications(app: LLModelApp) -> list[str]:
    return [n.message for n in app._notifications]


async def loaded(pilot: Any) -> None:
    await wait_for(pilot, lambda: pilot.app.workspace_data.get("runs") is not None, what="the workspace")


def test_an_empty_workspace_offers_the_quickstart_and_shows_its_progress(tmp_path: Path):
    client = FakeClient(empty=True, root=tmp_path)

    async def scenario() -> None:
        app = LLModelApp(
            tmp_path, connect=factory(client), poll_serving=False, quickstart_options={"corpus_bytes": 1000}
        )
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            button = app.query_one("#quickstart")
            assert button.display, "the quickstart is offered on an empty workspace"
            button.press()
            await wait_for(pilot, lambda: client.jobs(), what="the quickstart job")
            job = client.jobs()[0]
            assert job["kind"] == "quickstart" and job["spec"]["workspace"] == str(tmp_path)
            assert job["spec"]["options"]["corpus_bytes"] == 1000, "the given option over the tuned ones"
            run_id = "quickstart-20260103-000000-0001"
            for event in (
                {"type": "progress", "stage": "training a 512-token BPE tokenizer", "done": 50, "total": 100},
                {"type": "status", "status": "running", "step": 0, "total_steps": 40},
                {"type": "step", "step": 10, "loss": 4.5},
            ):
                client.events.put({**event, "run_id": run_id})
            stage = app.query_one("#quickstart-stage")
            await wait_for(pilot, lambda: "step 10" in str(stage.content), what="the training progress")
            bar = app.query_one("#quickstart-bar")
            assert bar.total == 40 and bar.progress == 10
            client.runs[run_id] = {
                **rebased(make_run(RUN_A, 3e-4, 1.0), tmp_path),
                "id": run_id,
                "kind": "quickstart",
            }
            client.events.put({"type": "job", "run_id": run_id, "status": "completed"})
            await wait_for(pilot, lambda: "completed" in str(stage.content), what="the outcome")
            # Its curves, then a chat with its newest checkpoint: one key each.
            await pilot.press("r")
            await wait_for(pilot, lambda: app.current_run == run_id, what="its run view")
            assert app.main.query_one("TabbedContent").active == "run"
            await pilot.press("1")
            await pilot.pause(0.1)
            app.query_one("#quickstart-curves").focus()  # where the finished quickstart leaves the focus
            await pilot.press("c")
            await wait_for(
                pilot, lambda: app.main.query_one("TabbedContent").active == "chat", what="the chat tab"
            )
            assert app.chosen_model.endswith("step-00000040")

    run(scenario)


def test_losing_the_engine_is_announced_and_the_app_reconnects_when_it_is_back():
    client = FakeClient()
    attempts = {"n": 0, "down": False}

    def connect(workspace: Path, start: bool) -> FakeClient:
        attempts["n"] += 1
        if attempts["down"]:
            raise ConnectionError("no engine is running for this workspace")
        return client

    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=connect, poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            assert "engine ● connected" in app.sub_title
            attempts["down"] = True
            client.events.put({"type": "_disconnect"})
            await wait_for(pilot, lambda: app.client is None, what="the loss to be noticed")
            assert "not connected" in app.sub_title
            assert any("went away" in m for m in notifications(app))
            tried = attempts["n"]
            await wait_for(pilot, lambda: attempts["n"] > tried, timeout=5, what="a reconnection attempt")
            attempts["down"] = False
            await wait_for(pilot, lambda: app.client is not None, timeout=5, what="the reconnection")
            assert "engine ● connected" in app.sub_title
            assert "Reconnected to the engine." in notifications(app)

    run(scenario)


def test_the_run_view_continues_the_recorded_curve_with_live_events_each_step_once():
    client = FakeClient()
    client.live[RUN_A] = [
        {"type": "step", "step": 39, "loss": 9.0},  # already in the history: replayed, ignored
        {
            "type": "step",
            "step": 41,
            "loss": 2.0,
            "lr": 1e-4,
            "grad_norm": 0.4,
            "tokens_per_s": 4000,
            "step_time": 0.5,
        },
        {
            "type": "step",
            "step": 42,
            "loss": 1.9,
            "lr": 1e-4,
            "grad_norm": 0.4,
            "tokens_per_s": 4000,
            "step_time": 0.5,
        },
        {"type": "checkpoint", "step": 42, "path": "/x/step-42", "best": True},
        {"type": "log", "level": "info", "message": "step 42/42 loss 1.9"},
    ]

    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=factory(client), poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            app.open_run(RUN_A)
            view = await mounted(pilot, "#run-view")
            chart = app.query_one("#chart-loss", MetricChart)
            await wait_for(pilot, lambda: len(chart.points) == 42, what="history plus live steps")
            assert [x for x, _ in chart.points] == [float(s) for s in range(1, 43)]
            assert chart.points[38][1] != 9.0, "a replayed step does not overwrite the history"
            assert view.checkpoints[42]["best"] and not view.checkpoints[40]["best"]
            await pilot.press("x")
            await pilot.pause(0.1)
            assert chart.points[-1][0] == 21.0, "the time axis counts training seconds (0.5 s per step)"

    run(scenario)


def test_the_config_editor_validates_as_you_type_and_counts_parameters():
    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=factory(FakeClient()), poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("6")
            editor = await mounted(pilot, "#config-editor")
            status = app.query_one("#config-status")
            app.query_one("#field-n_heads").value = "3"
            await wait_for(pilot, lambda: editor.error is not None, what="the validation error")
            assert "n_heads=3 does not divide d_model=512" in str(status.content)
            assert app.query_one("#config-save").disabled
            app.query_one("#field-n_heads").value = "8"
            await wait_for(pilot, lambda: editor.error is None, what="a valid config")
            expected = ModelConfig.from_dict(
                {**ModelConfig.from_preset("tiny").to_dict(), "n_heads": 8}
            ).num_parameters()
            assert f"{expected:,}" in str(status.content)
            app.query_one("#config-preset").value = "nano"
            await wait_for(pilot, lambda: app.query_one("#field-d_model").value == "64", what="the preset")

    run(scenario)


def test_the_pretrain_launcher_submits_its_job_built_by_the_engine(tmp_path: Path):
    client = FakeClient(root=tmp_path, on_disk=True)

    async def scenario() -> None:
        app = LLModelApp(tmp_path, connect=factory(client), poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("7")
            await mounted(pilot, "#job-launcher")
            config = app.query_one("#pretrain-config")
            await wait_for(pilot, lambda: config.value == "nano", what="the configs to choose from")
            app.query_one("#pretrain-max_steps").value = "30"
            await pilot.pause(0.1)
            cost = str(app.query_one("#launch-cost").content)
            assert "1,024 tokens/step (8 × 128) · 30,720 tokens in all" in cost, cost
            app.query_one("#launch-submit").press()
            await wait_for(pilot, lambda: client.jobs(), what="the submitted job")
            job = client.jobs()[0]
            assert job["kind"] == "pretrain"
            spec = job["spec"]
            assert spec["model_config"]["d_model"] == 64 and spec["train_config"]["max_steps"] == 30
            assert spec["data_paths"] == [str(tmp_path / "datasets" / "stdlib-512")]
            assert spec["cache_root"] == str(tmp_path / "datasets")
            app.query_one("#pretrain-batch_size").value = "zero"
            app.query_one("#launch-submit").press()
            await pilot.pause(0.1)
            assert "batch_size must be a number" in str(app.query_one("#launch-error").content)

    run(scenario)


def test_input_files_are_picked_from_a_directory_tree(monkeypatch, tmp_path):
    (tmp_path / "corpus.txt").write_text("hello\n")
    (tmp_path / "more.jsonl").write_text('{"text": "hi"}\n')
    monkeypatch.chdir(tmp_path)
    client = FakeClient()

    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=factory(client), poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("7")
            await mounted(pilot, "#job-launcher")
            app.query_one("#launch-kind").value = "tokenizer"
            await pilot.pause(0.1)
            app.query_one("#tokenizer-browse").press()
            await wait_for(pilot, lambda: isinstance(app.screen, FilePicker), what="the file picker")
            tree = app.screen.query_one("#picker-tree")
            await wait_for(pilot, lambda: len(tree.root.children) == 2, what="the folder's files")
            await pilot.press("down", "enter", "down", "enter")  # corpus.txt, then more.jsonl
            app.screen.query_one("#picker-done").press()
            inputs = app.query_one("#tokenizer-inputs")
            await wait_for(pilot, lambda: inputs.value, what="the chosen files in the form")
            assert inputs.value == f"{tmp_path / 'corpus.txt'}, {tmp_path / 'more.jsonl'}"

    run(scenario)


def test_the_command_palette_reaches_every_run_and_action():
    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=factory(FakeClient()), poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            names = [name for name, _, _ in workbench_commands(app)]
            for expected in (
                f"Open run {RUN_A}",
                "Run the quickstart",
                "Toggle dark/light theme",
                "Go to Chat",
                "Cancel the open run",
                "Stop the model server",
                f"Chat with {RUN_A} step 40",
            ):
                assert expected in names
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
            await pilot.press(*[key if key != " " else "space" for key in "go to compare"])
            hits = app.screen.query_one(CommandList)
            await wait_for(pilot, lambda: hits.option_count and hits.highlighted is not None, what="the hits")
            await pilot.press("enter")
            await wait_for(
                pilot, lambda: app.main.query_one("#tabs").active == "compare", what="the compare tab"
            )

    run(scenario)


def test_help_theme_and_cancel_confirmation():
    client = FakeClient()
    client.runs[RUN_A]["status"] = "running"

    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=factory(client), poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            dark = app.current_theme.dark
            await pilot.press("ctrl+t")
            assert app.current_theme.dark != dark
            app.open_run(RUN_A)
            view = await mounted(pilot, "#run-view")
            await wait_for(pilot, lambda: view.loaded, what="the run")
            await pilot.press("c")
            await pilot.pause(0.1)
            await pilot.press("y")
            await wait_for(pilot, lambda: client.asked("cancel"), what="the cancel request")
            assert client.asked("cancel") == [{"run_id": RUN_A}]

    run(scenario)


def test_the_workbench_never_imports_torch():
    probe = "import llmodel_app.tui.app, llmodel_app.cli.main, sys; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_llmodel_without_a_subcommand_opens_the_workbench(capsys, monkeypatch, tmp_path):
    opened: list[Path] = []
    monkeypatch.setattr("llmodel_app.tui.app.run_workbench", opened.append)
    assert run_cli(capsys, "--workspace", str(tmp_path / "lab")).code == 0
    assert opened == [(tmp_path / "lab").resolve()]
    monkeypatch.setenv("LLMODEL_WORKSPACE", str(tmp_path / "default"))
    assert run_cli(capsys).code == 0  # no arguments at all: the entry opens it without loading the CLI
    assert opened[-1] == (tmp_path / "default").resolve()


def test_the_attention_view_steps_through_snapshots_layers_heads_and_cells():
    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=factory(FakeClient()), poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            app.open_run(RUN_A)
            await pilot.press("3")
            view = await mounted(pilot, "#attention-view")
            await wait_for(pilot, lambda: view.data is not None, what="the newest snapshot")
            assert view.data["step"] == 40 and app.focused is app.query_one("#heatmap")
            await pilot.press("p")
            await wait_for(pilot, lambda: view.data["step"] == 20, what="the earlier snapshot")
            await pilot.press("right_square_bracket", "full_stop")
            assert (view.layer_index, view.head_index) == (1, 1)
            assert "layer 2/2  head 2/2" in str(app.query_one("#attention-title").content)
            await pilot.press("down", "right")
            help_line = str(app.query_one("#attention-help").content)
            assert "query '␣greet' → key '␣greet'" in help_line and "weight" in help_line

    run(scenario)


def test_serving_beyond_loopback_without_a_key_is_refused_beside_the_switch():
    client = FakeClient()

    async def scenario() -> None:
        app = LLModelApp(WORKSPACE, connect=factory(client), poll_serving=False)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("5")
            await mounted(pilot, "#rest-panel")
            picker = app.query_one("#rest-model")
            await wait_for(pilot, lambda: picker.path, what="a checkpoint to serve")
            app.query_one("#rest-host").value = "0.0.0.0"
            app.query_one("#rest-switch").value = True
            await pilot.pause(0.2)
            assert "enter an API key" in str(app.query_one("#rest-error").content)
            assert app.query_one("#rest-switch").value is False and not client.calls
            app.query_one("#rest-key").value = "s3cret-key-123"
            app.query_one("#rest-switch").value = True
            rest = app.query_one("#rest-panel")
            await wait_for(pilot, lambda: rest.status.get("health") == "ok", what="the server")
            assert client.asked("serve_start")[-1] == {
                "model": str(WORKSPACE / "runs" / RUN_A),
                "host": "0.0.0.0",
                "port": 8000,
                "api_key": "s3cret-key-123",
                "adapters": None,
            }
            assert "Authorization: Bearer s3cret-key-123" in rest.curl

    run(scenario)
