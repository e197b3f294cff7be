"""The workbench's faces of fine-tuning, evaluation and evolutionary search, with a fake engine client: the jobs
its forms build with the engine's builders, and what the engine reports shows live."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Select, SelectionList

from engine.finetune.config import training_defaults
from engine.finetune.sizing import finetune_size
from engine.training.config import TrainConfig
from llmodel_app.tui.app import LLModelApp
from llmodel_app.tui.commands import workbench_commands
from llmodel_app.tui.components import chat_pane
from llmodel_app.tui.components.evaluate_view import comparison, score_bar
from llmodel_app.tui.components.evolve_view import EvolveView
from llmodel_app.tui.components.metric_chart import MetricChart
from llmodel_app.tui.components.workspace_tree import WorkspaceTree
from tests.tui_fakes import (
    ADAPTERS,
    NANO,
    RUN_A,
    RUN_B,
    STUDY,
    WORKSPACE,
    FakeClient,
    checkpoint_path,
    factory,
    make_run,
    rebased,
    study_report,
    trial,
)
from tests.tui_helpers import mounted, wait_for

pytestmark = pytest.mark.slow  # the workbench driven through Pilot, and the CLI's jobs

SIZE = (120, 40)


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def workbench(client: FakeClient, workspace: Path = WORKSPACE) -> LLModelApp:
    return LLModelApp(workspace, connect=factory(client), poll_serving=False)


async def loaded(pilot: Any) -> None:
    await wait_for(pilot, lambda: pilot.app.workspace_data.get("runs") is not None, what="the workspace")


# -- fine-tuning -------------------------------------------------------------------------------------------------


def test_the_fine_tune_form_counts_trainable_parameters_and_submits_its_job(tmp_path: Path):
    client = FakeClient(root=tmp_path, on_disk=True)

    async def scenario() -> None:
        app = workbench(client, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("7")
            launcher = await mounted(pilot, "#job-launcher")
            launcher.show_kind("finetune")
            cost = app.query_one("#finetune-cost")
            lora = finetune_size(NANO, "lora", rank=16, targets=["q_proj", "v_proj"])
            await wait_for(pilot, lambda: lora.describe() in str(cost.content), what="the trainable count")
            assert lora.trainable == 2 * 2 * 16 * (64 + 64), "q and v of two layers, rank 16"

            app.query_one("#finetune-method", Select).value = "full"
            await wait_for(pilot, lambda: "(100.00%)" in str(cost.content), what="the full count")
            assert app.query_one("#finetune-learning_rate").value == "2e-5", (
                "full fine-tuning's learning rate"
            )
            app.query_one("#finetune-method", Select).value = "lora"
            app.query_one("#finetune-lora_rank").value = "4"
            app.query_one("#finetune-targets", Select).value = "chosen"
            await pilot.pause(0.1)
            targets = app.query_one("#finetune-target-list", SelectionList)
            assert targets.display, "the projections to tick show for a chosen set"
            for name in ("k_proj", "gate_proj", "down_proj"):
                targets.select(name)
            chosen = finetune_size(NANO, "lora", rank=4, targets=["k_proj", "gate_proj", "down_proj"])
            await wait_for(
                pilot, lambda: chosen.describe() in str(cost.content), what="the chosen targets' count"
            )
            app.query_one("#finetune-max_steps").value = "30"
            await wait_for(pilot, lambda: "15,360 tokens in all" in str(cost.content), what="the run's cost")
            assert "512 tokens/step (4 × 128)" in str(cost.content)

            app.query_one("#launch-submit").press()
            await wait_for(pilot, lambda: client.jobs(), what="the fine-tuning job")
            job = client.jobs()[0]
            assert job["kind"] == "finetune"
            spec = job["spec"]
            # The run's newest checkpoint, as the engine resolves a run; no data files: the embedded set.
            assert spec["base"] == client.checkpoint_path(RUN_A, 40) and spec["data_paths"] == []
            assert spec["finetune"]["lora_rank"] == 4
            assert spec["finetune"]["target_modules"] == ["k_proj", "gate_proj", "down_proj"]
            assert spec["train_config"]["max_steps"] == 30 and spec["train_config"]["learning_rate"] == 2e-4
            assert spec["train_config"]["warmup_steps"] == training_defaults("lora")["warmup_steps"]
            assert spec["adapters_dir"] == str(tmp_path / "adapters")
            run_id = "finetune-20260103-000000-0001"
            await wait_for(pilot, lambda: app.current_run == run_id, what="the run view on the new run")

            client.runs[RUN_B]["config"]["model_config"] = {**NANO, "ffn_type": "gelu"}
            app.query_one("#finetune-base", Select).value = client.checkpoint_path(RUN_B, 20)
            await wait_for(
                pilot, lambda: "this model has no gate_proj" in str(cost.content), what="the refusal"
            )
            app.query_one(
                "#finetune-targets", Select
            ).value = "all-linear"  # on a GELU model: its six projections
            gelu = finetune_size({**NANO, "ffn_type": "gelu"}, "lora", rank=4, targets=["all-linear"])
            await wait_for(
                pilot, lambda: f"trainable {gelu.trainable:,}" in str(cost.content), what="the count"
            )

    run(scenario)


def test_the_run_view_follows_a_fine_tuning_run_live_with_its_evaluation_task_curves():
    client = FakeClient()
    run_id = "finetune-20260103-101010-ab12"
    client.runs[run_id] = {**make_run(run_id, 2e-4, 0.9), "kind": "finetune", "status": "running"}
    history = client.runs[run_id]["history"]
    history["stdlib-names/acc"] = [[10, 0.26], [20, 0.29], [30, 0.31], [40, 0.33]]
    history["stdlib-ppl/perplexity"] = [[20, 88.0], [40, 71.0]]
    client.live[run_id] = [
        {"type": "step", "step": 41, "loss": 2.0, "lr": 1e-4, "tokens_per_s": 900.0, "step_time": 0.5},
        {
            "type": "eval",
            "step": 41,
            "val_loss": 2.1,
            "stdlib-names/acc": 0.36,
            "stdlib-ppl/perplexity": 69.5,
        },
    ]

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            app.open_run(run_id)
            view = await mounted(pilot, "#run-view")
            loss = app.query_one("#chart-loss", MetricChart)
            await wait_for(pilot, lambda: len(loss.points) == 41, what="history plus the live step")
            await wait_for(pilot, lambda: len(view.task_charts) == 2, what="a chart per task metric")
            accuracy = view.task_charts["stdlib-names/acc"]
            assert accuracy.points == [(10.0, 0.26), (20.0, 0.29), (30.0, 0.31), (40.0, 0.33), (41.0, 0.36)]
            assert accuracy.title == "stdlib-names acc" and accuracy.region.height >= 8
            assert view.task_charts["stdlib-ppl/perplexity"].points[-1] == (41.0, 69.5)
            app.open_run(RUN_B)  # a run without task curves hides the row
            await wait_for(pilot, lambda: view.loaded and view.run_id == RUN_B, what="the other run")
            await pilot.pause(0.3)
            assert not view.task_charts and not app.query_one("#eval-charts").display

    run(scenario)


# -- chat with the base or an adapter --------------------------------------------------------------------------------


def test_the_chat_switches_between_base_and_adapters_without_restarting_the_server(monkeypatch):
    client = FakeClient()
    asked: list[str] = []
    monkeypatch.setattr(
        chat_pane, "fit_context", lambda url, messages, max_tokens, key: (messages, max_tokens)
    )

    def reply(url: str, body: dict[str, Any], key: Any, stop: Any) -> Any:
        asked.append(body["model"])
        return iter([f"answer of {body['model']}"])

    monkeypatch.setattr(chat_pane, "stream_chat", reply)
    base = checkpoint_path(RUN_A, 40)

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            app.choose_checkpoint(RUN_A, base)
            chat = await mounted(pilot, "#chat-pane")
            adapters = app.query_one("#chat-adapter")
            await wait_for(pilot, lambda: len(adapters.adapters) == 2, what="the base's adapters")
            assert [a["name"] for a in adapters.adapters] == [
                "chat-qlora",
                "chat-sums",
            ] and adapters.adapter is None

            chat.send("hello")
            await wait_for(
                pilot, lambda: len(chat.history) == 2 and not chat.streaming, what="the base's reply"
            )
            served = {a["name"]: a["path"] for a in ADAPTERS}
            assert client.asked("serve_start")[-1] == {
                "model": base,
                "host": "127.0.0.1",
                "port": client.serve["port"],
                "api_key": None,
                "adapters": served,
            }
            assert asked == [RUN_A], "the base answers to its run's name"

            adapters.value = "chat-sums"  # the user's pick in the list
            await wait_for(pilot, lambda: app.chosen_adapter == "chat-sums", what="the pick to reach the app")
            status = app.query_one("#chat-server")
            await wait_for(
                pilot, lambda: "+ adapter chat-sums" in str(status.content), what="the status line"
            )
            assert f"answering: {RUN_A} · step 40 ★ + adapter chat-sums" in str(status.content)
            assert "restarts" not in str(status.content)
            calls = len(client.calls)
            chat.send("and now?")
            await wait_for(
                pilot, lambda: len(chat.history) == 4 and not chat.streaming, what="the adapter's reply"
            )
            assert asked == [RUN_A, "chat-sums"] and chat.history[-1]["content"] == "answer of chat-sums"
            assert len(client.calls) == calls, "the server was not restarted"

            chat.query_one("#chat-model").value = checkpoint_path(RUN_B, 40)
            await wait_for(pilot, lambda: not adapters.adapters, what="the other checkpoint's (no) adapters")
            assert adapters.adapter is None and "restarts it with" in str(status.content)

    run(scenario)


def test_the_sidebar_lists_adapters_under_their_checkpoint_and_studies_that_open_in_the_evolve_tab():
    client = FakeClient()

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            tree = app.query_one(WorkspaceTree)
            run_node = tree._run_nodes[RUN_A]
            step_40 = next(n for n in run_node.children if (n.data or {}).get("step") == 40)
            names = [str(child.label) for child in step_40.children]
            assert [n.split()[1] for n in names] == ["chat-qlora", "chat-sums"] and "lora r8" in names[1]
            assert not next(n for n in run_node.children if (n.data or {}).get("step") == 20).children
            run_node.expand()
            await pilot.pause(0.1)
            tree.select_node(step_40.children[1])
            await wait_for(pilot, lambda: app.main.query_one("#tabs").active == "chat", what="the chat tab")
            assert (app.chosen_model, app.chosen_adapter) == (checkpoint_path(RUN_A, 40), "chat-sums")
            adapters = await mounted(pilot, "#chat-adapter")
            await wait_for(
                pilot, lambda: adapters.adapter == "chat-sums", what="the adapter in the chat's list"
            )

            studies = tree._sections["studies"]
            assert [str(n.label) for n in studies.children] == ["arch 4/8 ●"]
            tree.select_node(studies.children[0])
            await wait_for(
                pilot, lambda: app.main.query_one("#tabs").active == "evolve", what="the evolve tab"
            )
            evolve = await mounted(pilot, "#evolve-view")
            await wait_for(pilot, lambda: evolve.data.get("name") == STUDY, what="the study")
            names = [name for name, _, _ in workbench_commands(app)]
            assert "Open study arch" in names and "Chat with adapter chat-sums" in names

    run(scenario)


# -- evaluation ----------------------------------------------------------------------------------------------------


def test_a_score_bar_marks_chance_and_says_whether_it_is_beaten():
    bar = score_bar(0.5, 0.25, "acc", width=8)
    assert bar.plain == "██┃█····" and bar.spans[0].style == "green"
    assert score_bar(0.2, 0.25, "acc", width=8).spans[0].style == "red"
    assert score_bar(40.0, 512.0, "perplexity", width=8).spans[0].style == "green", (
        "lower perplexity is better"
    )
    assert score_bar(None, 0.25, "acc").plain == ""


def test_the_comparison_takes_each_models_newest_value():
    client = FakeClient()
    training = client.evaluation_rows[-1]  # a run's scores at its validations: one column, the newest step's
    rows = [
        *client.evaluation_rows,
        {**training, "step": 20, "value": 0.27, "created": training["created"] - 60},
    ]
    labels, values = comparison(rows, list(client.runs.values()))
    assert labels == [
        "…60101-120000-a1b2 @40\n+ chat-sums",
        "…60101-120000-a1b2 @40\nbase",
        "…60102-090000-c3d4 @40\nbase",
        "…60101-120000-a1b2 @40\ntraining",
    ]
    assert values["stdlib-names/acc"] == [0.42, 0.36, 0.22, 0.3]
    assert values["stdlib-names/acc_norm"] == [0.38, 0.34, None, None]


def test_the_evaluate_tab_submits_its_job_follows_it_and_compares_every_evaluation(tmp_path: Path):
    client = FakeClient(root=tmp_path, on_disk=True)

    async def scenario() -> None:
        app = workbench(client, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("9")
            view = await mounted(pilot, "#evaluate-view")
            results = app.query_one("#eval-results", DataTable)
            await wait_for(pilot, lambda: results.row_count == 3, what="the newest evaluation's results")
            assert view.shown_run == "evaluate-20260102-170000-0007"
            assert (
                results.get_row_at(0)[:2] == ["stdlib-names", "acc"] and "┃" in results.get_row_at(0)[2].plain
            )
            compare = app.query_one("#eval-compare", DataTable)
            assert compare.row_count == 3 and len(compare.columns) == 5, (
                "task/metric, then four evaluated models"
            )

            app.query_one("#eval-model").value = client.checkpoint_path(RUN_A, 40)
            adapters = app.query_one("#eval-adapter")
            await wait_for(pilot, lambda: len(adapters.adapters) == 2, what="the checkpoint's adapters")
            adapters.value = "chat-sums"
            tasks = app.query_one("#eval-tasks", SelectionList)
            tasks.highlighted = 3
            help_text = app.query_one("#eval-task-help")
            await wait_for(
                pilot, lambda: "needs a local file" in str(help_text.content), what="the task's help"
            )
            assert "commonsense sentence completion" in str(help_text.content)
            tasks.select("stdlib-ppl")
            tasks.select("hellaswag")
            app.query_one("#eval-limit").value = "8"
            app.query_one("#eval-submit").press()
            await pilot.pause(0.1)
            error = str(app.query_one("#eval-error").content)
            assert "task hellaswag reads a local file" in error and "hellaswag=FILE" in error, error
            assert not client.jobs()
            tasks.deselect("hellaswag")
            app.query_one("#eval-submit").press()
            await wait_for(pilot, lambda: client.jobs(), what="the evaluation job")
            job = client.jobs()[0]
            assert job["kind"] == "evaluate"
            assert job["spec"]["tasks"] == ["stdlib-names", "stdlib-ppl"], "in the order ticked"
            assert job["spec"]["adapter"] == client.adapter_rows[1]["path"]
            assert job["spec"]["settings"]["limit"] == 8

            run_id = "evaluate-20260103-000000-0001"
            for event in (
                {"type": "progress", "stage": "stdlib-ppl", "done": 3, "total": 8},
                {
                    "type": "result",
                    "model": client.checkpoint_path(RUN_A, 40),
                    "checkpoint": client.checkpoint_path(RUN_A, 40),
                    "step": 40,
                    "adapter": client.adapter_rows[1]["path"],
                    "task": "stdlib-names",
                    "kind": "multiple_choice",
                    "scores": [
                        {"metric": "acc", "value": 0.5, "stderr": 0.19, "n": 8},
                        {"metric": "acc_norm", "value": 0.375, "stderr": 0.18, "n": 8},
                    ],
                    "chance": "acc 0.25",
                    "baseline": {"acc": 0.25, "acc_norm": 0.25},
                    "seconds": 1.5,
                },
            ):
                client.events.put({**event, "run_id": run_id})
            stage = app.query_one("#eval-stage")
            await wait_for(pilot, lambda: "stdlib-ppl (3/8)" in str(stage.content), what="the progress")
            await wait_for(pilot, lambda: results.row_count == 2, what="the first task's results, live")
            assert results.get_row_at(0)[3] == "0.5 ± 0.19"
            client.evaluation_rows[:0] = [
                {**row, "run_id": run_id, "created": 1767400000.0, "settings": {"limit": 8}}
                for row in client.evaluation_rows[:2]
            ]
            client.evaluation_rows[0]["value"], client.evaluation_rows[1]["value"] = 0.5, 0.375
            client.events.put({"type": "job", "run_id": run_id, "status": "completed"})
            await wait_for(pilot, lambda: "completed" in str(stage.content), what="the outcome")
            await wait_for(
                pilot,
                lambda: compare.get_row_at(0)[1].plain == "0.5",
                what="the new result in the comparison",
            )

    run(scenario)


# -- evolutionary search ---------------------------------------------------------------------------------------------


def test_the_evolve_tab_starts_a_study_shows_its_trials_live_and_trains_a_trials_config(tmp_path: Path):
    workspace = tmp_path
    dataset = workspace / "datasets" / "stdlib-512"
    client = FakeClient(root=workspace, on_disk=True)
    client.study_reports.clear()

    async def scenario() -> None:
        app = workbench(client, workspace)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("0")
            view = await mounted(pilot, "#evolve-view")
            assert view.study is None, "no study yet"
            dataset_field = app.query_one("#evolve-dataset", Select)
            await wait_for(pilot, lambda: dataset_field.value == str(dataset), what="the datasets")
            for name, value in (
                ("name", "lab"),
                ("objectives", "val_loss,params"),
                ("trials", "6"),
                ("trial_budget", "50"),
                ("population", "4"),
                ("max_params", "500000"),
            ):
                app.query_one(f"#evolve-{name}").value = value
            app.query_one("#evolve-trial_budget").value = "fifty"
            app.query_one("#evolve-submit").press()
            error = app.query_one("#evolve-error")
            await wait_for(pilot, lambda: "trial budget 'fifty'" in str(error.content), what="the refusal")
            app.query_one("#evolve-trial_budget").value = "50"
            app.query_one("#evolve-submit").press()
            await wait_for(pilot, lambda: client.jobs(), what="the study job")
            spec = client.jobs()[0]["spec"]
            assert spec["study"] == "lab" and spec["data_paths"] == [str(dataset)]
            settings = spec["settings"]
            assert settings["objectives"] == ["val_loss", "params"] and settings["sampler"] == "nsga2"
            assert (settings["n_trials"], settings["budget_steps"], settings["population"]) == (6, 50, 4)
            assert settings["max_params"] == 500_000
            title = app.query_one("#evolve-title")
            await wait_for(
                pilot, lambda: "waiting for its job" in str(title.content), what="the waiting study"
            )

            # The study's job starts: trial events refresh the table.
            report = rebased(study_report(), workspace)
            report["name"], report["trials"] = "lab", report["trials"][:2]
            client.study_reports["lab"] = report
            client.events.put(
                {
                    "type": "trial",
                    "run_id": "evolve-20260103-000000-0001",
                    "study": "lab",
                    "number": 1,
                    "state": "complete",
                }
            )
            table = app.query_one("#evolve-table", DataTable)
            await wait_for(pilot, lambda: table.row_count == 2, what="the first trials")
            report["trials"].append(trial(2, "running", 32, 2, "gelu", None, 30_000))
            client.events.put(
                {
                    "type": "trial",
                    "run_id": "evolve-20260103-000000-0001",
                    "study": "lab",
                    "number": 2,
                    "state": "running",
                }
            )
            await wait_for(pilot, lambda: table.row_count == 3, what="a trial that started")
            assert "1/8 complete" not in str(title.content) and "2/8 complete · 1 running" in str(
                title.content
            )
            assert view.query_one("#evolve-chart").drawn["line"], "the front is drawn"

            # Train trial 1's config in full: exported, then a pretraining run that the run view opens.
            table.focus()
            table.move_cursor(row=1)
            app.query_one("#evolve-train-steps").value = "500"
            await pilot.press("t")
            await wait_for(pilot, lambda: len(client.jobs()) == 2, what="the pretraining job")
            assert client.asked("export_trial") == [{"name": "lab", "trial": 1}]
            pretrain = client.jobs()[1]
            assert pretrain["kind"] == "pretrain"
            assert pretrain["spec"] == {
                "model_config": {
                    **NANO,
                    "d_model": 96,
                    "n_layers": 3,
                    "ffn_type": "swiglu",
                    "d_ff": 192,
                    "name": "1-nano",
                },
                "train_config": TrainConfig.from_dict(
                    {
                        "batch_size": 8,
                        "learning_rate": 0.0012,
                        "seq_len": 64,
                        "warmup_steps": 10,
                        "max_steps": 500,
                    }
                ).to_dict(),
                "data_paths": [str(dataset)],
                "tokenizer_path": None,
                "cache_root": str(workspace / "datasets"),
                "resume_from": None,
            }
            await wait_for(pilot, lambda: app.current_run == "pretrain-20260103-000000-0001", what="the run")
            await pilot.press("0")
            await pilot.pause(0.2)
            table.move_cursor(row=2)
            await pilot.press("t")
            await pilot.pause(0.2)
            assert len(client.jobs()) == 2, "a running trial is not exported"
            table.move_cursor(row=0)
            await pilot.press("o")
            await wait_for(pilot, lambda: app.current_run == f"trial-{STUDY}-0", what="the trial's run")

    run(scenario)


def test_trial_events_of_another_study_leave_the_open_one_alone():
    client = FakeClient()

    async def scenario() -> None:
        app = workbench(client)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            app.open_study(STUDY)
            view: EvolveView = await mounted(pilot, "#evolve-view")
            await wait_for(pilot, lambda: view.data.get("name") == STUDY, what="the study")
            view.study_event({"type": "trial", "study": "other", "number": 0})
            assert not view._stale
            view.study_event({"type": "trial", "study": STUDY, "number": 6})
            assert view._stale

    run(scenario)
