"""The headless pipeline a new user runs: config → tokenizer → dataset → pretrain → generate, on a nano model.

Each long command runs as a job of the workspace's engine process, which the first command starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

pytestmark = pytest.mark.slow  # every test trains a model through the CLI's jobs


def runs(capsys) -> list[dict]:
    result = run_cli(capsys, "runs", "list", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_the_whole_pipeline_runs_from_the_command_line(capsys, tmp_path, corpus_file):
    config = tmp_path / "nano.json"
    tokenizer = tmp_path / "tok"
    dataset = tmp_path / "ds"

    result = run_cli(capsys, "create-config", "--type", "nano", "--output", str(config))
    assert result.code == 0, result.err
    assert json.loads(config.read_text())["d_model"] == 64

    result = run_cli(
        capsys,
        "tokenizer",
        "train",
        "--input",
        str(corpus_file),
        "--vocab-size",
        "512",
        "--output",
        str(tokenizer),
    )
    assert result.code == 0, result.err
    assert (tokenizer / "tokenizer.model").is_file()

    result = run_cli(
        capsys,
        "data",
        "prepare",
        "--input",
        str(corpus_file),
        "--tokenizer-path",
        str(tokenizer),
        "--output",
        str(dataset),
    )
    assert result.code == 0, result.err
    assert json.loads((dataset / "meta.json").read_text())["vocab_size"] == 512

    result = run_cli(
        capsys,
        "pretrain",
        "--config",
        str(config),
        "--data-path",
        str(dataset),
        "--max-steps",
        "6",
        "--batch-size",
        "4",
        "--seq-len",
        "32",
        "--eval-interval",
        "3",
        "--checkpoint-interval",
        "3",
    )
    assert result.code == 0, result.err
    pretrain = next(r for r in runs(capsys) if r["kind"] == "pretrain")
    assert pretrain["status"] == "completed" and pretrain["step"] == 6
    run_dir = Path(json.loads(run_cli(capsys, "runs", "show", pretrain["id"], "--json").out)["run_dir"])
    assert (run_dir / "checkpoints" / "step-00000006" / "COMPLETE").is_file()

    result = run_cli(
        capsys,
        "generate",
        "--model-path",
        str(run_dir),
        "--prompt",
        "def ",
        "--max-tokens",
        "8",
        "--seed",
        "1",
    )
    assert result.code == 0, result.err
    assert result.out.startswith("def ") and len(result.out.strip()) > len("def")
    # Without --model-path: the workspace's newest completed run, named.
    default = run_cli(capsys, "generate", "--prompt", "def ", "--max-tokens", "8", "--seed", "1")
    assert default.code == 0, default.err
    assert f"newest completed run, {run_dir.name}" in default.err and default.out == result.out

    kinds = sorted(r["kind"] for r in runs(capsys))
    assert kinds == ["dataset", "pretrain", "tokenizer"], "every step is recorded in the workspace catalog"


def test_pretrain_prepares_raw_text_automatically_and_resumes_with_auto(
    capsys, tmp_path, corpus_file, tokenizer_dir
):
    config = tmp_path / "nano.json"
    run_cli(capsys, "create-config", "--type", "nano", "--output", str(config))
    common = (
        "--config",
        str(config),
        "--data-path",
        str(corpus_file),
        "--tokenizer-path",
        str(tokenizer_dir),
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--checkpoint-interval",
        "2",
    )
    first = run_cli(capsys, "pretrain", *common, "--max-steps", "2")
    assert first.code == 0, first.err
    workspace = Path(tmp_path / "workspace")
    assert len(list((workspace / "datasets").iterdir())) == 1, "raw input is prepared once and cached"

    again = run_cli(capsys, "pretrain", *common, "--max-steps", "4", "--resume-from-checkpoint", "auto")
    assert again.code == 0, again.err
    listed = runs(capsys)
    assert len(listed) == 1, "auto resume continues the existing run"
    run_dir = workspace / "runs" / listed[0]["id"]
    steps = [
        json.loads(line)["step"]
        for line in (run_dir / "events.jsonl").read_text().splitlines()
        if '"type":"step"' in line
    ]
    assert steps == [1, 2, 3, 4]
    assert listed[0]["step"] == 4 and listed[0]["status"] == "completed"


QUICKSTART = [
    "quickstart",
    "--preset",
    "nano",
    "--corpus-mb",
    "0.3",
    "--vocab-size",
    "512",
    "--max-steps",
    "20",
]


def assert_only_the_same_settings_are_reused(workspace: Path, run: Path) -> None:
    from engine.model import ModelConfig
    from engine.pipelines.quickstart import completed_quickstart
    from engine.training.config import TrainConfig

    record = json.loads((run / "run.json").read_text())
    model, train = (
        ModelConfig.from_dict(record["model_config"]),
        TrainConfig.from_dict(record["train_config"]),
    )
    dataset = Path(record["dataset"])
    found = completed_quickstart(workspace, model, train, dataset)
    assert found is not None and found.path == run
    assert (
        completed_quickstart(
            workspace, model, TrainConfig.from_dict({**train.to_dict(), "max_steps": 12}), dataset
        )
        is None
    )
    assert (
        completed_quickstart(
            workspace, ModelConfig.from_dict({**model.to_dict(), "n_layers": 1}), train, dataset
        )
        is None
    )
    assert completed_quickstart(workspace, model, train, dataset.with_name("other")) is None


def test_quickstart_runs_end_to_end_and_with_chat_after_it_only_fine_tunes_the_model_it_made(
    capsys, tmp_path
):
    first = run_cli(capsys, *QUICKSTART)
    assert first.code == 0, first.err
    assert "validation loss" in first.err
    assert "def " in first.out and "The " in first.out
    workspace = tmp_path / "workspace"
    assert (workspace / "configs" / "quickstart.json").is_file()
    trained = sorted(p.parent.name for p in workspace.glob("runs/*/checkpoints"))
    assert len(trained) == 1

    chat = run_cli(capsys, *QUICKSTART, "--chat", "--chat-steps", "6")
    assert chat.code == 0, chat.err
    assert f"reused the completed quickstart model {trained[0]} (same settings): only fine-tuned" in chat.err
    assert sorted(p.parent.name for p in workspace.glob("runs/*/checkpoints")) == trained, (
        "no second pretraining"
    )
    assert "<|user|>\nWrite the signature of the" in chat.out and "<|assistant|>\n" in chat.out
    assert (workspace / "adapters" / "quickstart-chat" / "adapter_config.json").is_file()
    (verdict,) = [
        line for line in chat.err.splitlines() if "held-out instructions (stdlib-signatures)" in line
    ]
    assert "the adapter scores exact match" in verdict and "BLEU" in verdict and "the base model" in verdict
    assert_only_the_same_settings_are_reused(workspace, workspace / "runs" / trained[0])
    if "the answer matches the expected one" in verdict:
        assert verdict.startswith("✓")
    else:
        assert verdict.startswith("✗ the answer does not match the expected def "), verdict


def test_training_settings_come_from_the_file_unless_a_flag_is_typed(capsys, tmp_path, dataset_dir):
    config = tmp_path / "nano.json"
    run_cli(capsys, "create-config", "--type", "nano", "--output", str(config))
    settings = tmp_path / "train.json"
    settings.write_text(json.dumps({"batch_size": 2, "seq_len": 16, "max_steps": 5, "weight_decay": 0.0}))
    result = run_cli(
        capsys,
        "pretrain",
        "--config",
        str(config),
        "--data-path",
        str(dataset_dir),
        "--train-config",
        str(settings),
        "--max-steps",
        "2",
    )
    assert result.code == 0, result.err
    run = runs(capsys)[0]
    resolved = json.loads((tmp_path / "workspace" / "runs" / run["id"] / "run.json").read_text())[
        "train_config"
    ]
    assert resolved["batch_size"] == 2 and resolved["weight_decay"] == 0.0
    assert resolved["max_steps"] == 2, "a typed flag wins over the file"
