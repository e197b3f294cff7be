"""`llmodel evolve` end to end: a tiny study as an engine job (every trial a run), its results, export, resume,
the engine's study routes, and bad input as one line each."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.client import EngineClient
from engine.workspace import workspace_root
from tests.cli_runner import run_cli
from tests.test_cli_errors import assert_one_line_error

SPACE = """\
learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
n_layers: {type: int, low: 1, high: 2}
d_model: {type: categorical, choices: [32, 64]}
fixed: {n_heads: 4, seq_len: 32, batch_size: 2}
"""


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def evolve(capsys, space_file: Path, dataset_dir: Path, *extra: str):
    return run_cli(
        capsys,
        "evolve",
        "--space",
        str(space_file),
        "--data-path",
        str(dataset_dir),
        "--trial-budget",
        "6",
        "--population",
        "2",
        "--seed",
        "3",
        *extra,
    )


@pytest.mark.slow
def test_a_tiny_study_runs_every_trial_as_a_run_and_reports_and_exports_the_best(
    capsys, space_file, dataset_dir
):
    result = evolve(
        capsys, space_file, dataset_dir, "--trials", "3", "--study", "tiny", "--objectives", "val_loss,params"
    )
    assert result.code == 0, result.err
    assert "study tiny: 3 trials completed" in result.err  # success lines go to stderr, like the other jobs
    runs = json.loads(run_cli(capsys, "runs", "list", "--json").out)
    job = next(r for r in runs if r["kind"] == "evolve")
    trials = [r for r in runs if r["kind"] == "trial"]
    assert len(trials) == 3 and all(
        r["status"] == "completed" and r["parent_id"] == job["id"] for r in trials
    )
    assert all(r["metrics"]["val_loss"] > 0 for r in trials), "each trial has its own curves in the catalog"

    shown = json.loads(run_cli(capsys, "evolve", "show", "tiny", "--json").out)
    complete = [t for t in shown["trials"] if t["state"] == "complete"]
    assert len(complete) == 3 and set(shown["pareto_front"]) <= {t["number"] for t in complete}
    by_run = {Path(t["run_dir"]).name: t for t in complete}
    for run in trials:  # the study's objectives are the runs' own final validation losses
        assert by_run[run["id"]]["objectives"]["val_loss"] == pytest.approx(run["metrics"]["val_loss"])
    listed = run_cli(capsys, "evolve", "list")
    assert "tiny" in listed.out and "3/3" in listed.out

    exported = run_cli(capsys, "evolve", "export", "tiny")
    assert exported.code == 0, exported.err
    folder = (
        workspace_root(None)
        / "configs"
        / f"tiny-trial{min(complete, key=lambda t: t['objectives']['val_loss'])['number']}"
    )
    model = json.loads((folder / "model.json").read_text())
    train = json.loads((folder / "train.json").read_text())
    best = min(complete, key=lambda t: t["objectives"]["val_loss"])
    assert (model["n_layers"], model["d_model"]) == (best["params"]["n_layers"], best["params"]["d_model"])
    assert (
        train["learning_rate"] == pytest.approx(best["params"]["learning_rate"]) and train["batch_size"] == 2
    )
    trained = run_cli(
        capsys,
        "pretrain",
        "--config",
        str(folder / "model.json"),
        "--train-config",
        str(folder / "train.json"),
        "--data-path",
        str(dataset_dir),
        "--max-steps",
        "2",
    )
    assert trained.code == 0, trained.err

    with EngineClient.connect(workspace_root(None)) as client:
        studies = client.studies()
        assert studies[0]["name"] == "tiny" and studies[0]["complete"] == 3
        report = client.study("tiny")
        assert [t["number"] for t in report["trials"]] == [t["number"] for t in shown["trials"]]
        again = client.export_trial("tiny", best["number"])
        assert again["model_config"]["n_layers"] == best["params"]["n_layers"]
        assert any(c["name"] == again["name"] for c in client.configs())
        assert {t["name"] for t in client.tasks()} >= {"stdlib-ppl", "hellaswag"}


@pytest.mark.slow
def test_a_cancelled_study_resumes_to_exactly_its_trials(capsys, space_file, dataset_dir):
    queued = evolve(capsys, space_file, dataset_dir, "--trials", "4", "--study", "stop", "--detach")
    assert queued.code == 0, queued.err
    with EngineClient.connect(workspace_root(None)) as client:
        job = next(r for r in client.runs() if r["kind"] == "evolve")
        deadline = time.monotonic() + 120
        while not any(r["kind"] == "trial" and r["status"] == "completed" for r in client.runs()):
            assert time.monotonic() < deadline, "no trial completed"
            time.sleep(0.2)
        client.cancel(job["id"])
        while client.run(job["id"])["status"] not in ("cancelled", "completed"):
            assert time.monotonic() < deadline, "the study did not stop"
            time.sleep(0.2)
        assert not [r for r in client.runs() if r["status"] == "running"], "no trial left running"
    resumed = evolve(capsys, space_file, dataset_dir, "--trials", "4", "--study", "stop", "--resume")
    assert resumed.code == 0, resumed.err
    shown = json.loads(run_cli(capsys, "evolve", "show", "stop", "--json").out)
    assert sum(t["state"] == "complete" for t in shown["trials"]) == 4
    assert not [t for t in shown["trials"] if t["state"] in ("running", "waiting")]


def test_bad_studies_are_one_line_errors(capsys, tmp_path, space_file, dataset_dir):
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("learning_rte: {type: float, low: 0.001, high: 0.01}\n")
    assert_one_line_error(evolve(capsys, unknown, dataset_dir), "unknown search parameter 'learning_rte'")
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    assert_one_line_error(evolve(capsys, empty, dataset_dir), "the search space is empty")
    broken = tmp_path / "broken.yaml"
    broken.write_text("learning_rate: {type: float\n")
    assert_one_line_error(evolve(capsys, broken, dataset_dir), "malformed space file")
    assert_one_line_error(
        evolve(capsys, space_file, dataset_dir, "--sampler", "cmaes"), "unknown sampler 'cmaes'"
    )
    assert_one_line_error(
        evolve(capsys, space_file, dataset_dir, "--objectives", "val_loss,bleu"), "unknown objective 'bleu'"
    )
    assert_one_line_error(evolve(capsys, space_file, dataset_dir, "--study", "../escape"), "study")
    assert_one_line_error(run_cli(capsys, "evolve", "workers", "--study", "nowhere"), "no study nowhere")
    assert_one_line_error(
        run_cli(
            capsys, "evolve", "workers", "--study", "x", "--storage", "postgresql://nobody@127.0.0.1:1/none"
        ),
        "cannot open the study storage",
    )
    assert_one_line_error(run_cli(capsys, "evolve", "show", "nowhere"), "no study nowhere")


@pytest.mark.slow
def test_resuming_with_another_space_changes_nothing(capsys, tmp_path, space_file, dataset_dir):
    assert evolve(capsys, space_file, dataset_dir, "--trials", "1", "--study", "same").code == 0
    other = tmp_path / "other.yaml"
    other.write_text("n_layers: {type: int, low: 1, high: 3}\n")
    assert_one_line_error(
        evolve(capsys, other, dataset_dir, "--trials", "2", "--study", "same", "--resume"),
        "study same searches a different space",
    )
    assert_one_line_error(
        evolve(capsys, space_file, dataset_dir, "--trials", "1", "--study", "same"),
        "already exists",
        "--resume",
    )
    shown = json.loads(run_cli(capsys, "evolve", "show", "same", "--json").out)
    assert len(shown["trials"]) == 1 and shown["settings"]["space"]["params"].keys() == {
        "learning_rate",
        "n_layers",
        "d_model",
    }
