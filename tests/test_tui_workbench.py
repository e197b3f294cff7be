"""The workbench against a real engine: tree → run view → attention → chat → a LoRA adapter fine-tuned from the
Launch form, chatting with it and the base from one server → REST toggle, with a nano model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from engine.client import EngineClient
from engine.net import free_port
from llmodel_app.tui.app import LLModelApp
from llmodel_app.tui.components.attention_heatmap import AttentionHeatmap
from llmodel_app.tui.components.metric_chart import MetricChart
from llmodel_app.tui.components.workspace_tree import WorkspaceTree
from tests.tui_helpers import mounted, submit_run, train_run, wait_for

pytestmark = pytest.mark.slow  # a real engine trains, serves and fine-tunes


def test_a_trained_run_opens_charts_attention_chat_and_rest(
    tmp_path: Path, dataset_dir, tokenizer_dir, nano_config
):
    workspace = tmp_path / "workspace"
    run_id = train_run(workspace, dataset_dir, tokenizer_dir, nano_config.to_dict(), steps=8)
    sft = tmp_path / "sums.jsonl"
    sft.write_text(
        "".join(
            json.dumps({"prompt": f"{a} + {b} =", "response": str(a + b)}) + "\n"
            for a in range(6)
            for b in range(6)
        )
    )
    asyncio.run(_tree_run_attention_chat_rest(workspace, run_id, sft))


async def _tree_run_attention_chat_rest(workspace: Path, run_id: str, sft: Path) -> None:
    app = LLModelApp(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        tree = app.query_one(WorkspaceTree)
        await wait_for(pilot, lambda: run_id in tree.runs, what="the run in the tree")
        assert "engine ● connected" in app.sub_title

        # The run view: the chart holds every recorded step of the run.
        assert tree.select_run(run_id)
        run_view = await mounted(pilot, "#run-view")
        await wait_for(pilot, lambda: run_view.loaded and run_view.run_id == run_id, what="the run view")
        await pilot.pause(0.5)
        chart = app.query_one("#chart-loss", MetricChart)
        assert [x for x, _ in chart.points] == [float(step) for step in range(1, 9)]
        assert app.query_one("#chart-val_loss", MetricChart).points, "eval points"
        await pilot.press("s", "g", "x")
        assert run_view.smoothing_index == 1 and run_view.log_scale and run_view.axis == "time"
        assert sorted(run_view.checkpoints) == [4, 8]

        # The attention view: the newest snapshot, then the previous one in training order.
        await pilot.press("3")
        attention = await mounted(pilot, "#attention-view")
        await wait_for(pilot, lambda: attention.data is not None, what="an attention snapshot")
        assert attention.data["step"] == 8 and app.query_one(AttentionHeatmap).tokens
        attention.action_snapshot(-1)
        await wait_for(pilot, lambda: attention.data["step"] == 4, what="the earlier snapshot")
        attention.action_layer(1)
        assert attention.layer_index == 1

        # Chat: choosing a checkpoint, sending a message, a streamed reply.
        checkpoint = tree.runs[run_id]["checkpoints"][-1]["path"]
        app.choose_checkpoint(run_id, checkpoint)
        chat = await mounted(pilot, "#chat-pane")
        chat.send("def hello():")
        await wait_for(
            pilot, lambda: not chat.streaming and len(chat.history) == 2, timeout=90, what="a chat reply"
        )
        assert chat.history[1]["role"] == "assistant" and chat.history[1]["content"]

        # Picking another checkpoint in the chat: the next message restarts the server with it, on the same port.
        first = app.client.serve_status()
        assert first["model"] == checkpoint
        checkpoint = tree.runs[run_id]["checkpoints"][0]["path"]  # step 4
        chat.query_one("#chat-model").value = checkpoint
        await wait_for(pilot, lambda: app.chosen_model == checkpoint, what="the pick")
        chat.send("def bye():")
        assert chat.streaming
        await wait_for(pilot, lambda: not chat.streaming, timeout=90, what="the second reply")
        assert not [n.message for n in app._notifications if n.title == "Chat"], (
            "the reply came without error"
        )
        served = app.client.serve_status()
        assert (
            served["model"] == checkpoint
            and served["port"] == first["port"]
            and served["pid"] != first["pid"]
        )
        assert f"answering: {run_id} · step 4" in str(app.query_one("#chat-server").content)

        # The attention view on a typed text: the picked checkpoint's maps, computed by the model server.
        await pilot.press("3")
        prompt = app.query_one("#attention-prompt")
        prompt.value = "def add(a, b):"
        await prompt.action_submit()
        await wait_for(
            pilot, lambda: attention.prompt_model == checkpoint, timeout=60, what="a typed text's maps"
        )
        assert "".join(attention.data["tokens"]).startswith("def") and len(attention.data["weights"]) == 2
        assert "typed text" in str(app.query_one("#attention-title").render())

        # A LoRA adapter fine-tuned from the Launch tab's form on the step-8 checkpoint; then the chat answers with
        # it, and with the base again, from one server that serves both (the OpenAI `model` field picks).
        base = tree.runs[run_id]["checkpoints"][-1]["path"]
        await pilot.press("7")
        launcher = await mounted(pilot, "#job-launcher")
        launcher.show_kind("finetune")
        await pilot.pause(0.1)
        app.query_one("#finetune-base").value = base
        for name, value in (
            ("data", str(sft)),
            ("lora_rank", "4"),
            ("adapter_name", "sums"),
            ("max_steps", "2"),
            ("batch_size", "2"),
            ("device", "cpu"),
        ):
            app.query_one(f"#finetune-{name}").value = value
        cost = app.query_one("#finetune-cost")
        await wait_for(pilot, lambda: "trainable 1,024 of" in str(cost.content), what="the trainable count")
        app.query_one("#launch-submit").press()
        adapters = lambda: {a["name"] for a in app.workspace_data.get("adapters", [])}  # noqa: E731
        await wait_for(pilot, lambda: "sums" in adapters(), timeout=120, what="the fine-tuned adapter")
        app.choose_checkpoint(run_id, base, "sums")
        picker = app.query_one("#chat-adapter")
        await wait_for(pilot, lambda: picker.adapter == "sums", what="the adapter in the chat's list")
        chat.send("1 + 2 =")
        await wait_for(
            pilot, lambda: not chat.streaming and len(chat.history) == 6, timeout=90, what="its reply"
        )
        served = app.client.serve_status()
        assert served["model"] == base and set(served["adapters"]) == {"sums"}
        status = str(app.query_one("#chat-server").content)
        assert f"answering: {run_id} · step 8 ★ + adapter sums" in status, status
        app.query_one("#chat-adapter").value = "(base)"
        await wait_for(pilot, lambda: app.chosen_adapter is None, what="the base picked")
        chat.send("2 + 2 =")
        await wait_for(
            pilot, lambda: not chat.streaming and len(chat.history) == 8, timeout=90, what="the base's"
        )
        assert app.client.serve_status()["pid"] == served["pid"], "switching to the base kept the server"
        assert not [n.message for n in app._notifications if n.title == "Chat"], (
            "the replies came without error"
        )

        # REST: off (the chat's server), then on at a chosen port, queried from outside, then off again.
        await pilot.press("5")
        rest = await mounted(pilot, "#rest-panel")
        await wait_for(pilot, lambda: rest.status.get("running"), what="the chat's server in the REST panel")
        switch = app.query_one("#rest-switch")
        switch.value = False
        await wait_for(
            pilot, lambda: not rest.status.get("running") and not rest.busy, what="the server stopping"
        )
        port = free_port()
        app.query_one("#rest-port").value = str(port)
        switch.value = True
        await wait_for(
            pilot,
            lambda: rest.status.get("port") == port and rest.status.get("health") == "ok",
            timeout=90,
            what="the REST server",
        )
        assert str(port) in rest.curl
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "def", "max_tokens": 3}, timeout=30
        )
        assert reply.status_code == 200
        await wait_for(pilot, lambda: (rest.status.get("requests") or 0) >= 1, what="a live request count")
        switch.value = False
        await wait_for(
            pilot, lambda: not rest.status.get("running") and not rest.busy, what="the server stopping"
        )
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)

        # The engine goes away: the workbench says so, and reconnects once an engine is back.
        first_pid = app.client.record.pid
        app.client.shutdown()
        await wait_for(
            pilot, lambda: "not connected" in app.sub_title, timeout=30, what="the loss to be announced"
        )
        await asyncio.to_thread(
            lambda: EngineClient.connect(workspace).close()
        )  # e.g. `llmodel engine start`
        await wait_for(pilot, lambda: app.connected, timeout=60, what="the reconnection")
        assert app.client.record.pid != first_pid and "engine ● connected" in app.sub_title
        await wait_for(pilot, lambda: run_id in tree.runs, what="the run in the tree again")


def test_a_config_tokenizer_dataset_and_run_made_in_the_workbench_train_with_a_live_curve(
    tmp_path: Path, corpus_file: Path
):
    asyncio.run(_config_tokenizer_dataset_run(tmp_path / "workspace", corpus_file))


async def _launch(app: LLModelApp, pilot, kind: str, fields: dict[str, str], selects: dict[str, str]) -> None:
    """Fill the launcher's form for ``kind`` and submit it."""
    app.query_one("#launch-kind").value = kind
    await pilot.pause(0.1)
    for name, value in selects.items():
        app.query_one(f"#{kind}-{name}").value = value
    for name, value in fields.items():
        app.query_one(f"#{kind}-{name}").value = value
    await pilot.pause(0.1)
    app.query_one("#launch-submit").press()


async def _config_tokenizer_dataset_run(workspace: Path, corpus_file: Path) -> None:
    app = LLModelApp(workspace)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_for(pilot, lambda: app.connected, timeout=60, what="the engine")
        listed = lambda kind, name: any(a["name"] == name for a in app.workspace_data.get(kind, []))  # noqa: E731

        # A config from the nano preset, saved into the workspace.
        await pilot.press("6")
        await mounted(pilot, "#config-editor")
        app.query_one("#config-preset").value = "nano"
        await pilot.pause(0.2)  # choosing a preset names the config after it: rename it after that
        app.query_one("#config-name").value = "nano-lab"
        await pilot.pause(0.2)
        app.query_one("#config-save").press()
        await wait_for(
            pilot, lambda: (workspace / "configs" / "nano-lab.json").is_file(), what="the saved config"
        )

        # A tokenizer, then a dataset with it, each a job launched from the Launch tab.
        await pilot.press("7")
        await mounted(pilot, "#job-launcher")
        await _launch(
            app, pilot, "tokenizer", {"inputs": str(corpus_file), "name": "tok", "vocab_size": "512"}, {}
        )
        await wait_for(pilot, lambda: listed("tokenizers", "tok"), timeout=120, what="the tokenizer job")
        stage = app.query_one("#launch-stage")
        await wait_for(
            pilot,
            lambda: "tokenizer" in str(stage.content) and "completed" in str(stage.content),
            what="the tokenizer job's progress",
        )
        tokenizer = str(workspace / "tokenizers" / "tok")
        await _launch(
            app,
            pilot,
            "dataset",
            {"inputs": str(corpus_file), "name": "corpus", "val_fraction": "0.05"},
            {"tokenizer": tokenizer},
        )
        await wait_for(pilot, lambda: listed("datasets", "corpus"), timeout=120, what="the dataset job")

        # The run: its cost is shown before submitting, then the run view follows the curve as it trains.
        await _launch(
            app,
            pilot,
            "pretrain",
            {
                "max_steps": "400",
                "batch_size": "2",
                "seq_len": "16",
                "warmup_steps": "5",
                "eval_interval": "100",
                "checkpoint_interval": "200",
                "device": "cpu",
            },
            {"config": "nano-lab", "dataset": str(workspace / "datasets" / "corpus")},
        )
        assert "32 tokens/step (2 × 16) · 12,800 tokens in all" in str(app.query_one("#launch-cost").content)
        run_view = await mounted(pilot, "#run-view")
        await wait_for(
            pilot, lambda: run_view.run_id and run_view.loaded, timeout=60, what="the new run's view"
        )
        chart = app.query_one("#chart-loss", MetricChart)
        seen_while_running: set[int] = set()

        def finished() -> bool:
            if run_view.run.get("status") == "running" and chart.points:
                seen_while_running.add(len(chart.points))
            return run_view.run.get("status") == "completed" and len(chart.points) == 400

        await wait_for(pilot, finished, timeout=180, what="the run to train to the end")
        assert len(seen_while_running) >= 2, f"the curve did not grow live: {sorted(seen_while_running)}"
        assert [x for x, _ in chart.points] == [float(step) for step in range(1, 401)]


def test_quitting_mid_run_and_reopening_shows_the_whole_curve_as_it_goes_on(
    tmp_path: Path, dataset_dir, tokenizer_dir, nano_config
):
    workspace = tmp_path / "workspace"
    steps = 100_000  # far more than the test watches: the run is still training throughout, then cancelled
    run_id = submit_run(
        workspace, dataset_dir, tokenizer_dir, nano_config.to_dict(), steps=steps, interval=50_000
    )
    try:
        first = asyncio.run(_watch(workspace, run_id, grow_by=100))
        last = asyncio.run(_watch(workspace, run_id, grow_by=100))
    finally:
        with EngineClient.connect(workspace) as client:
            client.cancel(run_id)
    assert last["reopened_with"] >= first["points"], "the reopened chart starts from the recorded history"
    assert last["points"] >= last["reopened_with"] + 100, "then follows the run live"
    xs = last["xs"]
    history, live = xs[: last["reopened_with"]], xs[last["reopened_with"] :]
    assert history == sorted(set(history)), "the recorded history: each step once, in order"
    if history[-1] == len(history):  # short enough to come unbucketed (the history keeps 2,000 points)
        assert history == [float(step) for step in range(1, len(history) + 1)], "every recorded step"
    assert live == [history[-1] + 1 + i for i in range(len(live))], "then every live step once, no gap"


async def _watch(workspace: Path, run_id: str, grow_by: int) -> dict:
    """Open the workbench on ``run_id``'s run view until its loss chart has ``grow_by`` more points than it
    opened with; what the chart held."""
    app = LLModelApp(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        tree = app.query_one(WorkspaceTree)
        await wait_for(pilot, lambda: run_id in tree.runs, what="the run in the tree")
        tree.select_run(run_id)
        view = await mounted(pilot, "#run-view")
        await wait_for(pilot, lambda: view.loaded and view.run_id == run_id, what="the run view")
        chart = app.query_one("#chart-loss", MetricChart)
        await wait_for(pilot, lambda: chart.points, what="the recorded curve")
        reopened_with = len(chart.points)
        await wait_for(
            pilot, lambda: len(chart.points) >= reopened_with + grow_by, timeout=120, what="live points"
        )
        assert view.run.get("status") == "running"
        return {
            "points": len(chart.points),
            "reopened_with": reopened_with,
            "xs": [x for x, _ in chart.points],
        }
