"""What a walk through the workbench in tmux found (2026-12-02), each at three terminal sizes: chart titles
that vanished, tables without rows at 80×24, Compare's settings, the palette's entries, the server the chat
restarts. A fake engine client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.geometry import Region
from textual.widget import Widget

from llmodel_app.tui.app import LLModelApp
from llmodel_app.tui.components.metric_chart import MetricChart, chart_title
from tests.tui_fakes import RUN_A, RUN_B, WORKSPACE, FakeClient, checkpoint_path, factory
from tests.tui_helpers import mounted, wait_for

SIZES = [pytest.param(size, id=f"{size[0]}x{size[1]}") for size in ((140, 42), (100, 30), (80, 24))]


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def workbench(client: FakeClient) -> LLModelApp:
    return LLModelApp(WORKSPACE, connect=factory(client), poll_serving=False)


async def loaded(pilot: Any) -> None:
    await wait_for(pilot, lambda: pilot.app.workspace_data.get("runs") is not None, what="the workspace")


def first_line(widget: Widget) -> str:
    return widget.render_lines(Region(0, 0, widget.size.width, 1))[0].text


def test_a_chart_title_gives_way_before_its_flags_and_never_outgrows_the_chart():
    assert chart_title("train loss", ["log"], 40) == "train loss · log"
    assert chart_title("learning rate", ["log", "x: time"], 24) == "learnin… · log · x: time"
    assert len(chart_title("learning rate", ["ema 0.9", "log", "x: time"], 20)) <= 20


@pytest.mark.slow  # the workbench driven through Pilot
@pytest.mark.parametrize("size", SIZES)
def test_chart_titles_stay_after_log_scale_then_the_time_axis(size: tuple[int, int]):
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            app.open_run(RUN_A)
            await mounted(pilot, "#run-view")
            await wait_for(
                pilot, lambda: app.main.query_one("#chart-loss", MetricChart).series, what="curves"
            )
            await pilot.press("g", "x")
            await pilot.pause(0.3)
            charts = [c for c in app.main.query(MetricChart) if c.region.width]
            assert charts
            for chart in charts:
                title = first_line(chart)
                assert "log" in title and "x: time" in title, (chart.id, title)

    run(scenario)


async def palette_choose(pilot: Any, name: str) -> None:
    """Open the palette, type ``name``, and choose the hit it highlights."""
    from textual.command import CommandList, CommandPalette

    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), timeout=5, what="the palette")
    await pilot.press(*[key if key != " " else "space" for key in name])
    hits = app.screen.query_one(CommandList)
    await wait_for(pilot, lambda: hits.option_count and hits.highlighted is not None, what="the hits")
    await pilot.press("enter")


@pytest.mark.slow  # the workbench driven through Pilot
@pytest.mark.parametrize("size", SIZES)
def test_the_palette_offers_no_pruned_checkpoint_and_a_chat_entry_opens_that_chat(size: tuple[int, int]):
    from llmodel_app.tui.commands import workbench_commands

    client = FakeClient()
    # Step 20 was pruned: the catalog keeps it, the listing does not.
    client.runs[RUN_A]["checkpoints"][0]["pruned"] = True

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            names = [name for name, _, _ in workbench_commands(app)]
            assert f"Chat with {RUN_A} step 40" in names and f"Chat with {RUN_A} step 20" not in names
            await palette_choose(pilot, f"Chat with {RUN_A} step 40")
            chat = await mounted(pilot, "#chat-pane")
            await wait_for(pilot, lambda: app.main.query_one("TabbedContent").active == "chat", what="Chat")
            picker = chat.query_one("#chat-model")
            await wait_for(pilot, lambda: picker.path == checkpoint_path(RUN_A, 40), what="the checkpoint")
            assert app.chosen_model == checkpoint_path(RUN_A, 40)
            await palette_choose(pilot, f"Open run {RUN_B}")
            await wait_for(pilot, lambda: app.current_run == RUN_B, what="the run")
            assert app.main.query_one("TabbedContent").active == "run"

    run(scenario)


@pytest.mark.slow  # the workbench driven through Pilot
@pytest.mark.parametrize("size", SIZES)
def test_the_launch_cost_takes_the_speed_of_the_run_closest_in_shape_and_names_it(size: tuple[int, int]):
    from engine.model.config import ModelConfig
    from tests.tui_fakes import NANO

    flops_per_token = ModelConfig.from_dict(NANO).flops_per_token(128)
    client = FakeClient()  # RUN_A, the newest, is thirty times bigger: its speed would be 10× off here
    client.runs[RUN_A]["info"] = {
        "flops_per_token": 30 * flops_per_token,
        "device": "cuda",
        "tokens_per_step": 1024,
    }
    client.runs[RUN_A]["metrics"]["tokens_per_s"] = 400.0
    client.runs[RUN_B]["info"] = {
        "flops_per_token": flops_per_token,
        "device": "cpu",
        "tokens_per_step": 1024,
    }
    client.runs[RUN_B]["metrics"]["tokens_per_s"] = 4_000.0

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            await pilot.press("7")
            await mounted(pilot, "#job-launcher")
            config = app.main.query_one("#pretrain-config")
            await wait_for(pilot, lambda: config.value == "nano", what="the configs to choose from")
            cost = app.main.query_one("#launch-cost")
            await wait_for(pilot, lambda: "time" in str(cost.content), what="the cost")
            text = str(cost.content)
            assert "4 evaluations × 20 batches: 81,920 tokens, forward only" in text, text  # 200 steps / 50
            assert f"from {RUN_B}, the measured run closest in shape" in text, text
            assert "assuming the 4,000 tokens/s it reached on cpu" in text, text
            # 200 steps × 8 × 128 = 204,800 tokens at 4,000 tokens/s: 51 s, and 81,920 / 4,000 / 3: 7 s.
            assert "time ≈ 58 s (51 s training + 7 s evaluating)" in text, text
            app.main.query_one("#pretrain-eval_batches").value = "5"
            await wait_for(
                pilot, lambda: "4 evaluations × 5 batches" in str(cost.content), what="the new cost"
            )

    run(scenario)


def rows_on_screen(app: LLModelApp, table: Any) -> int:
    """How many of ``table``'s rows the screen shows now (its visible height less borders and header)."""
    visible = app.main._compositor.visible_widgets.get(table)
    if visible is None:
        return 0
    region, clip = visible
    return max(0, region.intersection(clip).height - 2 - table.header_height)


@pytest.mark.slow  # the workbench driven through Pilot
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("key", "view", "table"),
    [("9", "#evaluate-view", "#eval-results"), ("0", "#evolve-view", "#evolve-table")],
)
def test_the_evaluate_results_and_the_evolve_trials_show_rows_while_a_job_runs(
    size: tuple[int, int], key: str, view: str, table: str
):
    async def scenario() -> None:
        app = workbench(FakeClient())
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            await pilot.press(key)
            tab = await mounted(pilot, view)
            rows = app.main.query_one(table)
            await wait_for(pilot, lambda: rows.row_count >= 3, what="the rows")
            tab.query_one("JobProgress").follow("job-20260103-000000-0001", "job")  # its bar takes rows too
            await pilot.press(key)  # back to the tab: its table takes the focus and comes into view
            await wait_for(pilot, lambda: app.focused is rows, what="the table's focus")
            await pilot.pause(0.2)
            assert rows_on_screen(app, rows) >= 3

    run(scenario)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def table_rows(table: Any) -> dict[str, list[str]]:
    return {
        str(row[0]): [str(cell) for cell in row[1:]]
        for row in (table.get_row_at(i) for i in range(table.row_count))
    }


@pytest.mark.slow  # the workbench driven through Pilot
@pytest.mark.parametrize("size", SIZES)
def test_compare_lists_the_settings_that_differ_rounded_with_the_lora_and_base_of_a_fine_tune(
    size: tuple[int, int],
):
    from tests.tui_fakes import FINETUNE_RUN, make_run

    client = FakeClient()
    client.runs[RUN_A]["config"]["train_config"]["weight_decay"] = 0.1 + 0.2  # 0.30000000000000004
    client.runs[FINETUNE_RUN] = {**make_run(FINETUNE_RUN, 2e-4, 0.9), "id": FINETUNE_RUN, "kind": "finetune"}
    client.runs[FINETUNE_RUN]["config"]["train_config"]["weight_decay"] = 0.3
    client.runs[FINETUNE_RUN]["info"] = {
        "adapter": {"rank": 8, "alpha": 16.0, "target_modules": ["q_proj", "v_proj"]},
        "init_from": checkpoint_path(RUN_A, 40),
    }

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            await pilot.press("8")
            compare = await mounted(pilot, "#compare-view")
            await wait_for(pilot, lambda: compare.run_ids, what="the runs to compare")
            compare.select([RUN_A, FINETUNE_RUN])
            table = compare.query_one("#compare-table")
            await wait_for(pilot, lambda: table.row_count, what="the settings")
            rows = table_rows(table)
            assert rows["train_config.learning_rate"] == ["0.001", "0.0002"]
            assert rows["adapter.rank"] == ["—", "8"] and rows["adapter.target_modules"] == [
                "—",
                "q_proj, v_proj",
            ]
            assert rows["base checkpoint"] == ["—", checkpoint_path(RUN_A, 40)]
            assert "model_config.d_model" not in rows, "equal values are left out"
            assert "train_config.weight_decay" not in rows, "0.30000000000000004 reads 0.3, as the other does"
            assert (
                str(table.border_title) == "5 settings that differ (a: all 30)"
            )  # lr, rank, alpha, targets, base
            table.focus()
            await pilot.press("a")
            rows = table_rows(table)
            assert rows["model_config.d_model"] == ["64", "64"]
            assert rows["train_config.weight_decay"] == ["0.3", "0.3"]
            numbers = [value for values in rows.values() for value in values if is_number(value)]
            assert numbers and all(len(value) <= 8 for value in numbers), numbers  # no 17-digit floats

    run(scenario)


def replies_by_name(monkeypatch: Any) -> list[str]:
    """Replies that name the model the request asked for; returns the names asked, in order."""
    from llmodel_app.tui.components import chat_pane

    asked: list[str] = []
    monkeypatch.setattr(
        chat_pane, "fit_context", lambda url, messages, max_tokens, key: (messages, max_tokens)
    )

    def reply(url: str, body: dict[str, Any], key: Any, stop: Any) -> Any:
        asked.append(body["model"])
        return iter([f"answer of {body['model']}"])

    monkeypatch.setattr(chat_pane, "stream_chat", reply)
    return asked


@pytest.mark.slow  # the workbench driven through Pilot
@pytest.mark.parametrize("size", SIZES)
def test_the_chat_keeps_a_server_that_already_serves_the_picked_checkpoint(
    monkeypatch, size: tuple[int, int]
):
    client = FakeClient()
    # The Serve tab started the run folder (its newest checkpoint, step 40) without adapters.
    client.serve = {
        "running": True,
        "model": str(WORKSPACE / "runs" / RUN_A),
        "host": "127.0.0.1",
        "port": 8123,
        "url": "http://127.0.0.1:8123",
        "auth": False,
        "health": "ok",
        "requests": 0,
        "adapters": {},
    }
    asked = replies_by_name(monkeypatch)

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            app.choose_checkpoint(RUN_A, checkpoint_path(RUN_A, 40))
            chat = await mounted(pilot, "#chat-pane")
            chat.serving_changed(dict(client.serve))
            status = chat.query_one("#chat-server")
            await wait_for(pilot, lambda: "answering" in str(status.content), what="the status line")
            assert "restarts" not in str(status.content)
            chat.send("hello")
            await wait_for(pilot, lambda: len(chat.history) == 2 and not chat.streaming, what="the reply")
            assert asked == [RUN_A] and client.calls == [], "the server was kept"

            chat.query_one(
                "#chat-adapter"
            ).value = "chat-sums"  # an adapter it does not serve: now it restarts
            await wait_for(
                pilot, lambda: "restarts it with" in str(status.content), what="the pending restart"
            )
            chat.send("and now?")
            await wait_for(
                pilot, lambda: len(chat.history) == 4 and not chat.streaming, what="the adapter's reply"
            )
            assert asked == [RUN_A, "chat-sums"] and client.asked("serve_stop") == [{}]
            assert set(client.asked("serve_start")[-1]["adapters"]) == {"chat-qlora", "chat-sums"}

    run(scenario)


class FailingModelServer:
    """A model server on a loopback port that starts a streamed reply, then fails: two content chunks, an
    OpenAI-shaped error event and ``[DONE]``, as ``engine/server/completion.py`` ends a stream that broke."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/tokenize":
                    body = json.dumps({"count": 5, "max_model_len": 128}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                events = [
                    {"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in ("def ", "greet")
                ]
                events.append(
                    {"error": {"message": "CUDA out of memory", "type": "server_error", "code": 500}}
                )
                for event in events:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.mark.slow  # the workbench driven through Pilot
@pytest.mark.parametrize("size", SIZES)
def test_a_server_error_mid_reply_shows_in_the_conversation_after_what_came(size: tuple[int, int]):
    server = FailingModelServer()
    client = FakeClient()
    picked = checkpoint_path(RUN_A, 40)
    client.serve = {
        "running": True,
        "model": picked,
        "host": "127.0.0.1",
        "port": server.port,
        "auth": False,
        "url": f"http://127.0.0.1:{server.port}",
        "health": "ok",
        "requests": 0,
        "adapters": {},
    }

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            app.choose_checkpoint(RUN_A, picked)
            chat = await mounted(pilot, "#chat-pane")
            await wait_for(pilot, lambda: chat.query_one("#chat-model").path == picked, what="the pick")
            chat.send("write a greeting")
            await wait_for(
                pilot, lambda: not chat.streaming and len(chat.query("ChatMessage")) == 2, what="the end"
            )
            shown = str(chat.query("ChatMessage").last().content)
            error = "[the model server failed mid-reply: CUDA out of memory]"
            assert shown == f"assistant\ndef greet\n{error}", shown
            assert any("CUDA out of memory" in n.message for n in app._notifications)
            assert chat.history == [
                {"role": "user", "content": "write a greeting"},
                {"role": "assistant", "content": "def greet"},
            ]

    try:
        run(scenario)
    finally:
        server.close()
