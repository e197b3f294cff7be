"""Bad input gets one line naming the problem and the fix, a non-zero exit, and never a traceback."""

from __future__ import annotations

import json

import pytest

from engine.model import ModelConfig
from tests.cli_runner import CliResult, run_cli


def assert_one_line_error(result: CliResult, *fragments: str) -> None:
    assert result.code != 0
    assert "Traceback" not in result.err
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, result.err
    # The error is the last thing said; only its own soft-wrapped continuation may follow it.
    message = " ".join(lines[errors[0] :])
    for fragment in fragments:
        assert fragment in message


def test_missing_input_file(capsys, tmp_path):
    result = run_cli(
        capsys, "tokenizer", "train", "--input", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "t")
    )
    assert_one_line_error(result, "nope.txt")


@pytest.mark.slow
def test_empty_corpus(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = run_cli(capsys, "tokenizer", "train", "--input", str(empty), "--output", str(tmp_path / "t"))
    assert_one_line_error(result, "empty")


@pytest.mark.slow
def test_malformed_jsonl_line_in_strict_mode_names_file_and_line(capsys, tmp_path, tokenizer_dir):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "fine"}\n{"text": broken\n')
    result = run_cli(
        capsys,
        "data",
        "prepare",
        "--input",
        str(data),
        "--tokenizer-path",
        str(tokenizer_dir),
        "--output",
        str(tmp_path / "ds"),
        "--strict",
    )
    assert_one_line_error(result, "data.jsonl:2")


def test_unknown_config_key(capsys, tmp_path, dataset_dir):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({**ModelConfig.from_preset("nano").to_dict(), "n_layer": 3}))
    result = run_cli(
        capsys, "pretrain", "--config", str(config), "--data-path", str(dataset_dir), "--max-steps", "1"
    )
    assert_one_line_error(result, "unknown config key 'n_layer'")


def test_malformed_config_json(capsys, tmp_path, dataset_dir):
    config = tmp_path / "bad.json"
    config.write_text('{"d_model": 64,\n "n_layers": }')
    result = run_cli(capsys, "pretrain", "--config", str(config), "--data-path", str(dataset_dir))
    assert_one_line_error(result, "bad.json:2")


@pytest.mark.slow
def test_vocab_mismatch_between_config_and_dataset(capsys, tmp_path, dataset_dir):
    config = tmp_path / "tiny.json"
    ModelConfig.from_preset("nano", vocab_size=1000).save(config)
    result = run_cli(
        capsys, "pretrain", "--config", str(config), "--data-path", str(dataset_dir), "--max-steps", "1"
    )
    assert_one_line_error(result, "vocab", "1000", "512")


def test_missing_checkpoint(capsys, tmp_path):
    result = run_cli(capsys, "generate", "--model-path", str(tmp_path / "no-run"), "--prompt", "hi")
    assert_one_line_error(result, "does not exist")


def test_a_run_without_checkpoints(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    result = run_cli(capsys, "generate", "--model-path", str(tmp_path / "run"), "--prompt", "hi")
    assert_one_line_error(result, "no complete checkpoint")


def test_unknown_preset(capsys, tmp_path):
    result = run_cli(capsys, "create-config", "--type", "huge", "--output", str(tmp_path / "c.json"))
    assert_one_line_error(result, "unknown preset 'huge'")


@pytest.mark.slow
def test_config_from_another_shape_than_the_checkpoint(capsys, tmp_path, dataset_dir):
    config = tmp_path / "nano.json"
    ModelConfig.from_dict({**ModelConfig.from_preset("nano").to_dict(), "d_model": 32, "d_ff": 64}).save(
        config
    )
    trained = run_cli(
        capsys,
        "pretrain",
        "--config",
        str(config),
        "--data-path",
        str(dataset_dir),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--seq-len",
        "16",
    )
    assert trained.code == 0, trained.err
    run = next((tmp_path / "workspace" / "runs").iterdir())
    other = tmp_path / "other.json"
    ModelConfig.from_preset("nano").save(other)
    result = run_cli(capsys, "generate", "--config", str(other), "--model-path", str(run), "--prompt", "x")
    assert_one_line_error(result, "d_model=32", "d_model=64")


def test_negative_temperature_is_refused_before_any_model_is_loaded(capsys, tmp_path):
    # tmp_path holds no checkpoint: the answer is about the temperature, so nothing was loaded first.
    result = run_cli(
        capsys, "generate", "--model-path", str(tmp_path), "--prompt", "x", "--temperature", "-1"
    )
    assert_one_line_error(result, "temperature must be ≥ 0, got -1")


def test_generate_without_a_model_path_uses_the_newest_completed_run_or_says_there_is_none(capsys, tmp_path):
    result = run_cli(capsys, "generate", "--prompt", "x")
    assert_one_line_error(result, "no completed run in workspace", "--model-path")


def test_unknown_option_is_a_usage_error(capsys):
    result = run_cli(capsys, "pretrain", "--no-such-flag")
    assert result.code == 2 and "Traceback" not in result.err


def test_help_lists_the_pipeline_commands(capsys):
    result = run_cli(capsys, "--help")
    assert result.code == 0
    for command in ("create-config", "tokenizer", "data", "pretrain", "generate", "quickstart"):
        assert command in result.out


@pytest.mark.parametrize(
    "args", [("tokenizer", "--help"), ("data", "prepare", "--help"), ("pretrain", "--help")]
)
def test_subcommand_help(capsys, args):
    assert run_cli(capsys, *args).code == 0


def test_no_arguments_opens_the_workbench_on_the_workspace(capsys, monkeypatch, tmp_path):
    opened: list[object] = []
    monkeypatch.setattr("llmodel_app.tui.app.run_workbench", opened.append)
    result = run_cli(capsys)
    assert result.code == 0, result.err
    assert opened == [tmp_path / "workspace"]


def test_api_without_a_model_path_in_an_empty_workspace_says_what_to_do(capsys):
    result = run_cli(capsys, "api")
    assert_one_line_error(result, "no completed run in workspace", "--model-path")
