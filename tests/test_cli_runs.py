"""`llmodel runs`: list, show, compare, logs and remove, through the engine or straight from the catalog."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.cli_runner import run_cli
from tests.conftest import stop_engines

pytestmark = pytest.mark.slow  # every test reads runs the engine trained


class _StringCapture:
    """``capsys.readouterr`` for module-scoped set-up, which cannot use capsys: output since the last call."""

    def __init__(self) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()

    def readouterr(self) -> SimpleNamespace:
        captured = SimpleNamespace(out=self.out.getvalue(), err=self.err.getvalue())
        for stream in (self.out, self.err):
            stream.seek(0)
            stream.truncate()
        return captured


def train_two_runs(capsys, workspace_root: Path, dataset_dir: Path) -> list[str]:
    """Two 3-step nano runs that differ in learning rate, through the CLI; their ids, newest first."""
    config = workspace_root / "nano.json"
    run_cli(capsys, "create-config", "--type", "nano", "--output", str(config))
    for lr in ("0.001", "0.003"):
        result = run_cli(
            capsys,
            "pretrain",
            "--config",
            str(config),
            "--data-path",
            str(dataset_dir),
            "--max-steps",
            "3",
            "--batch-size",
            "2",
            "--seq-len",
            "16",
            "--learning-rate",
            lr,
            "--eval-interval",
            "3",
        )
        assert result.code == 0, result.err
    return [run["id"] for run in json.loads(run_cli(capsys, "runs", "list", "--json").out)]


@pytest.fixture(scope="module")
def trained_workspace(
    tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path
) -> Iterator[tuple[Path, list[str]]]:
    """One workspace with two finished runs, trained once for the read-only tests of this module."""
    root = tmp_path_factory.mktemp("runs")
    capture = _StringCapture()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLMODEL_WORKSPACE", str(root / "workspace"))
        patch.setenv("OMP_NUM_THREADS", "1")
        with contextlib.redirect_stdout(capture.out), contextlib.redirect_stderr(capture.err):
            ids = train_two_runs(capture, root, dataset_dir)
        yield root / "workspace", ids
        stop_engines(root)


@pytest.fixture
def two_runs(monkeypatch: pytest.MonkeyPatch, trained_workspace: tuple[Path, list[str]]) -> list[str]:
    workspace, ids = trained_workspace
    monkeypatch.setenv("LLMODEL_WORKSPACE", str(workspace))
    return ids


def test_list_gives_each_run_with_its_latest_metrics(capsys, two_runs):
    listed = json.loads(run_cli(capsys, "runs", "list", "--json").out)
    assert len(listed) == 2
    for run in listed:
        assert {"id", "kind", "status", "created", "step"} <= set(run)
        assert run["kind"] == "pretrain" and run["status"] == "completed" and run["step"] == 3
        assert run["loss"] > 0 and run["val_loss"] > 0
    assert listed[0]["created"] >= listed[1]["created"], "newest first"


def test_show_has_config_checkpoints_and_metrics(capsys, two_runs):
    shown = json.loads(run_cli(capsys, "runs", "show", two_runs[0], "--json").out)
    assert shown["config"]["train_config"]["max_steps"] == 3
    assert [c["step"] for c in shown["checkpoints"]] == [3]
    assert "val_loss" in shown["metrics"]


def test_compare_lists_the_settings_that_differ_and_the_final_metrics(capsys, two_runs):
    compared = json.loads(run_cli(capsys, "runs", "compare", *two_runs, "--json").out)
    assert compared["differing"] == ["train_config.learning_rate"]
    table = run_cli(capsys, "runs", "compare", *two_runs)
    assert "train_config.learning_rate" in table.out and "val_loss" in table.out


def test_logs_show_the_training_log(capsys, two_runs):
    result = run_cli(capsys, "runs", "logs", two_runs[0])
    assert result.code == 0 and "step 3/3" in result.out


def test_reading_works_without_an_engine(capsys, two_runs):
    assert run_cli(capsys, "engine", "stop").code == 0
    listed = json.loads(run_cli(capsys, "runs", "list", "--json").out)
    assert [run["id"] for run in listed] == two_runs
    status = json.loads(run_cli(capsys, "engine", "status", "--json").out)
    assert status["running"] is False, "reading did not start an engine"


def test_remove_deletes_the_run_and_its_folder(capsys, tmp_path, dataset_dir):
    two_runs = train_two_runs(capsys, tmp_path, dataset_dir)  # its own runs: this test deletes one
    folder = tmp_path / "workspace" / "runs" / two_runs[1]
    assert folder.is_dir()
    assert run_cli(capsys, "runs", "remove", two_runs[1], "--yes").code == 0
    assert not folder.exists()
    listed = json.loads(run_cli(capsys, "runs", "list", "--json").out)
    assert [run["id"] for run in listed] == [two_runs[0]]


def test_an_unknown_run_is_a_one_line_error(capsys, two_runs):
    result = run_cli(capsys, "runs", "show", "nope")
    assert result.code == 1 and "no run named nope" in result.err
