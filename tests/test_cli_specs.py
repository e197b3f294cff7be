"""Every job command's flags become the spec its builder makes: the CLI assembles no spec of its own, so what the
workbench's forms submit (through the same builders) is the same job. The engine is a recording stand-in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.finetune.config import FinetuneSettings, training_defaults
from engine.model.config import ModelConfig
from engine.runs.checkpoint import MARKER, META, WEIGHTS
from engine.specs import (
    JobSpec,
    benchmark_spec,
    dataset_spec,
    evaluate_spec,
    finetune_spec,
    pretrain_spec,
    quickstart_spec,
    tokenizer_spec,
)
from engine.training.config import TrainConfig
from llmodel_app.cli import jobs, main  # main: every command module bound to the real connect() first
from tests.cli_runner import run_cli


class RecordingEngine:
    """Takes each submitted spec and ends its job at once, completed."""

    def __init__(self) -> None:
        self.submitted: list[JobSpec] = []

    def __enter__(self) -> RecordingEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit_job(self, spec: JobSpec) -> str:
        self.submitted.append(spec)
        return f"{spec.kind}-1"

    def follow(self, run_id: str, offset: int = 0) -> Iterator[dict[str, Any]]:
        yield {"type": "end", "status": "completed"}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> RecordingEngine:
    assert main.app is not None
    recording = RecordingEngine()
    monkeypatch.setattr(jobs, "connect", lambda workspace: recording)
    return recording


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "workspace"  # $LLMODEL_WORKSPACE (conftest)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A run folder holding one complete checkpoint whose weights' hash is recorded."""
    checkpoint = tmp_path / "base-run" / "checkpoints" / "step-00000010"
    checkpoint.mkdir(parents=True)
    weights = b"not really weights"
    (checkpoint / WEIGHTS).write_bytes(weights)
    meta = {"files": {WEIGHTS: hashlib.sha256(weights).hexdigest()}, "model_config": {}, "step": 10}
    (checkpoint / META).write_text(json.dumps(meta), encoding="utf-8")
    (checkpoint / MARKER).write_text("", encoding="utf-8")
    return tmp_path / "base-run"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("def f():\n    return 1\n", encoding="utf-8")
    return path


def submitted(engine: RecordingEngine, capsys: pytest.CaptureFixture[str], *args: str) -> JobSpec:
    result = run_cli(capsys, *args)
    assert result.code == 0, result.err
    assert len(engine.submitted) == 1
    return engine.submitted.pop()


def test_tokenizer_and_dataset_flags_are_their_builders_specs(engine, capsys, corpus, tmp_path):
    spec = submitted(
        engine, capsys, "tokenizer", "train", "-i", str(corpus), "-o", "tok", "--vocab-size", "300"
    )
    assert spec == tokenizer_spec([corpus], "tok", vocab_size=300)
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    args = ("data", "prepare", "-i", str(corpus), "--tokenizer-path", str(tokenizer), "-o", "ds", "--strict")
    assert submitted(engine, capsys, *args) == dataset_spec([corpus], tokenizer, "ds", strict=True)


def test_pretrain_flags_are_the_pretrain_builders_spec(engine, capsys, workspace, tmp_path):
    config = tmp_path / "model.json"
    config.write_text(json.dumps(ModelConfig.from_preset("nano").to_dict()), encoding="utf-8")
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    args = (
        "pretrain",
        "--config",
        str(config),
        "--data-path",
        str(dataset),
        "--max-steps",
        "7",
        "--seed",
        "3",
    )
    expected = pretrain_spec(
        ModelConfig.load(config), TrainConfig(max_steps=7, seed=3), [dataset], workspace=workspace
    )
    assert submitted(engine, capsys, *args) == expected


@pytest.mark.parametrize(
    ("command", "method"),
    [
        (("finetune", "--method", "lora"), "lora"),
        (("lora-finetune",), "lora"),
        (("lora-finetune", "--qlora"), "qlora"),
        (("lora-finetune", "--quantize", "nf4"), "qlora"),
        (("finetune",), "full"),
    ],
)
def test_both_fine_tuning_commands_build_one_spec_with_the_methods_defaults(
    engine, capsys, workspace, base, corpus, command, method
):
    args = (
        *command,
        "--model-path",
        str(base),
        "--data-path",
        str(corpus),
        "--lora-rank",
        "4",
        "--max-steps",
        "5",
    )
    settings = FinetuneSettings(method=method, lora_rank=4)
    training = TrainConfig.from_dict(
        {**training_defaults(method), "max_steps": 5, "epochs": 1.0, "seed": 1337}
    )
    expected = finetune_spec(base, settings, training, workspace=workspace, data_paths=[corpus])
    spec = submitted(engine, capsys, *args)
    assert spec == expected
    assert spec.train_config.learning_rate == (2e-5 if method == "full" else 2e-4)


def test_evaluate_and_benchmark_flags_are_their_builders_specs(engine, capsys, base):
    args = ("evaluate", "--tasks", "stdlib-names,stdlib-ppl", "--model-path", str(base), "--limit", "3")
    assert submitted(engine, capsys, *args) == evaluate_spec(base, ["stdlib-names", "stdlib-ppl"], limit=3)
    args = ("benchmark", "--model-path", str(base), "--new-tokens", "9")
    assert submitted(engine, capsys, *args) == benchmark_spec(base, new_tokens=9)


def test_quickstart_flags_are_the_quickstart_builders_spec(engine, capsys, workspace):
    spec = submitted(engine, capsys, "quickstart", "--max-steps", "30", "--preset", "nano", "--chat")
    assert spec == quickstart_spec(workspace, max_steps=30, preset="nano", chat=True)


def test_evolve_flags_are_the_study_builders_spec(engine, capsys, workspace, tmp_path):
    from engine.specs import study_spec

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    args = ("evolve", "--space", "hpo", "--data-path", str(dataset), "--trials", "3", "--study", "s1")
    expected = study_spec(workspace, space="hpo", data_paths=[dataset], trials=3, name="s1")
    spec = submitted(engine, capsys, *args)
    assert spec == expected
    assert spec.settings is not None and spec.settings["base_train"]["eval_interval"] == 25
