"""Evaluation and benchmarking from the command line: engine jobs, a results table, catalog rows, a JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.client import EngineClient
from engine.workspace import workspace_root
from tests.cli_runner import run_cli
from tests.test_cli_errors import assert_one_line_error


@pytest.mark.slow
def test_evaluate_runs_tasks_as_a_job_and_records_every_result(capsys, served_run_dir):
    result = run_cli(
        capsys,
        "evaluate",
        "--model-path",
        str(served_run_dir),
        "--tasks",
        "stdlib-names,stdlib-ppl",
        "--limit",
        "4",
    )
    assert result.code == 0, result.err
    assert "stdlib-names" in result.out and "acc_norm" in result.out and "bits_per_byte" in result.out
    run = json.loads(run_cli(capsys, "runs", "list", "--json").out)[0]
    assert run["kind"] == "evaluate" and run["status"] == "completed"
    saved = json.loads((Path(run["run_dir"]) / "results.json").read_text())["results"]
    assert [r["task"] for r in saved] == ["stdlib-names", "stdlib-ppl"]
    assert saved[0]["checkpoint"].startswith(str(served_run_dir)) and saved[0]["baseline"]["acc"] == 0.25
    shown = run_cli(capsys, "runs", "show", run["id"])
    assert "perplexity" in shown.out and "0.25" in shown.out, "the catalog holds the rows, chance beside them"
    as_json = run_cli(
        capsys,
        "evaluate",
        "--model-path",
        str(served_run_dir),
        "--tasks",
        "stdlib-names",
        "--limit",
        "2",
        "--json",
    )
    assert json.loads(as_json.out)[0]["scores"][0]["n"] == 2
    with EngineClient.connect(
        workspace_root(None)
    ) as client:  # what the workbench compares across checkpoints
        rows = client.evaluations()
    assert {(r["run_id"], r["task"]) for r in rows} >= {
        (run["id"], "stdlib-names"),
        (run["id"], "stdlib-ppl"),
    }


def test_tasks_list_names_every_task_with_its_chance(capsys):
    result = run_cli(capsys, "evaluate", "--tasks", "list")
    assert result.code == 0
    for name in (
        "stdlib-ppl",
        "stdlib-names",
        "stdlib-signatures",
        "hellaswag",
        "arc_easy",
        "mmlu",
        "gsm8k",
        "humaneval",
    ):
        assert name in result.out


def test_bad_tasks_are_one_line_errors_before_any_job(capsys, served_run_dir):
    assert_one_line_error(
        run_cli(capsys, "evaluate", "--model-path", str(served_run_dir), "--tasks", "hellaswg"),
        "unknown task 'hellaswg'",
    )
    assert_one_line_error(
        run_cli(capsys, "evaluate", "--model-path", str(served_run_dir), "--tasks", "hellaswag"),
        "pass --data-path hellaswag=FILE",
        "endings and label",
    )


@pytest.mark.slow
def test_benchmark_measures_speed_latency_memory_and_says_when_energy_is_unavailable(capsys, served_run_dir):
    result = run_cli(capsys, "benchmark", "--model-path", str(served_run_dir), "--new-tokens", "8", "--json")
    assert result.code == 0, result.err
    figures = json.loads(result.out)
    values = {s["metric"]: s["value"] for s in figures["scores"]}
    for name in (
        "tokens_per_s_batch1",
        "tokens_per_s_batch8",
        "ttft_ms_p50",
        "token_latency_ms_p99",
        "peak_memory_mb",
        "train_tokens_per_s",
    ):
        assert values[name] > 0, name
    assert "energy_j_per_token" in values or "unavailable" in figures["settings"]["energy"]


@pytest.mark.slow
def test_training_with_eval_tasks_draws_them_as_curves(capsys, tmp_path, dataset_dir):
    config = tmp_path / "nano.json"
    run_cli(capsys, "create-config", "--type", "nano", "--output", str(config))
    result = run_cli(
        capsys,
        "pretrain",
        "--config",
        str(config),
        "--data-path",
        str(dataset_dir),
        "--max-steps",
        "4",
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--eval-interval",
        "2",
        "--eval-tasks",
        "stdlib-names",
    )
    assert result.code == 0, result.err
    run = json.loads(run_cli(capsys, "runs", "list", "--json").out)[0]
    from llmodel_app.cli.reading import read

    curves = read(tmp_path / "workspace", lambda reader: reader.metrics(run["id"], ["stdlib-names/acc"]))
    curve = curves["stdlib-names/acc"]
    assert [step for step, *_ in curve] == [2, 4]
    assert_one_line_error(
        run_cli(
            capsys,
            "pretrain",
            "--config",
            str(config),
            "--data-path",
            str(dataset_dir),
            "--eval-tasks",
            "nope",
        ),
        "unknown task 'nope'",
    )
