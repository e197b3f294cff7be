"""The runs index: the catalog's writer keeps a JSON copy of the runs list that `llmodel runs list` reads
without DuckDB, and nobody trusts it once the catalog is newer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from engine.catalog import CATALOG_FILE, Catalog
from engine.catalog.runs_index import INDEX_FILE, read_index, select_runs
from llmodel_app.cli.entry import parse_runs_list
from tests.cli_runner import run_cli


def events(steps: int, loss: float) -> list[dict]:
    lines = [{"type": "status", "time": 1.0, "status": "running", "step": 0}]
    lines += [
        {"type": "step", "time": 1.0 + s, "step": s, "loss": loss / s, "lr": 1e-3}
        for s in range(1, steps + 1)
    ]
    return lines


def seed(workspace: Path) -> None:
    """Three runs: completed with metrics, running, and one created then removed."""
    with Catalog.open(workspace) as catalog:
        for i, kind in enumerate(["pretrain", "tokenizer", "pretrain", "pretrain"]):
            catalog.create_run(f"run-{i}", kind, workspace / "runs" / f"run-{i}", {"lr": i}, status="queued")
        catalog.ingest_events("run-0", events(5, 4.0), 6)
        catalog.update_run("run-0", status="completed")
        catalog.ingest_events("run-2", events(2, 3.0), 3)
        catalog.remove_run("run-3")


def test_the_index_equals_the_catalogs_runs_list_after_every_kind_of_change(tmp_path: Path) -> None:
    seed(tmp_path)
    with Catalog.open(tmp_path, read_only=True) as catalog:
        expected = catalog.list_runs()
    indexed = read_index(tmp_path)
    assert indexed == json.loads(json.dumps(expected, default=str))
    assert [run["id"] for run in indexed] == ["run-2", "run-1", "run-0"]
    assert indexed[2]["status"] == "completed" and indexed[2]["loss"] == pytest.approx(0.8)


def test_filters_and_limit_select_what_the_catalog_query_would(tmp_path: Path) -> None:
    seed(tmp_path)
    runs = read_index(tmp_path)
    with Catalog.open(tmp_path, read_only=True) as catalog:
        for kwargs in (
            {"kind": "pretrain"},
            {"status": "completed"},
            {"limit": 1},
            {"kind": "tokenizer", "limit": 5},
        ):
            assert select_runs(runs, **kwargs) == json.loads(
                json.dumps(catalog.list_runs(**kwargs), default=str)
            )


def test_an_index_older_than_the_catalog_is_not_trusted(tmp_path: Path) -> None:
    seed(tmp_path)
    assert read_index(tmp_path) is not None
    with duckdb.connect(str(tmp_path / CATALOG_FILE)) as conn:  # a write that bypassed the writer's index
        conn.execute("UPDATE runs SET status = 'failed' WHERE id = 'run-2'")
    assert read_index(tmp_path) is None


def test_a_commit_that_changes_no_run_keeps_the_index_current(tmp_path: Path) -> None:
    seed(tmp_path)
    with Catalog.open(tmp_path) as catalog:
        catalog.register_config("nano", str(tmp_path / "configs" / "nano.json"), "model", {"d_model": 64})
        assert read_index(tmp_path) is not None
    assert [run["id"] for run in read_index(tmp_path)] == ["run-2", "run-1", "run-0"]


@pytest.mark.parametrize("damage", ["missing", "garbage", "other format"])
def test_a_missing_or_unreadable_index_is_not_trusted(tmp_path: Path, damage: str) -> None:
    seed(tmp_path)
    index = tmp_path / INDEX_FILE
    if damage == "missing":
        index.unlink()
    else:
        index.write_text("{not json" if damage == "garbage" else json.dumps({"format": 99, "runs": []}))
    assert read_index(tmp_path) is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["runs", "list"], {"json": False}),
        (["runs", "list", "--json", "--kind", "pretrain"], {"json": True, "kind": "pretrain"}),
        (
            ["runs", "list", "--status=completed", "--limit", "3"],
            {"json": False, "status": "completed", "limit": "3"},
        ),
        (["runs", "list", "--workspace", "/w"], {"json": False, "workspace": "/w"}),
        (["runs", "list", "--help"], None),
        (["runs", "list", "--limit", "-1"], None),
        (["runs", "list", "--limit"], None),
        (["runs", "list", "extra"], None),
        (["runs", "show", "x"], None),
        ([], None),
    ],
)
def test_only_a_plain_runs_list_command_line_takes_the_fast_path(argv, expected) -> None:
    assert parse_runs_list(argv) == expected


def test_the_command_gives_the_same_answer_with_and_without_the_index(capsys, tmp_path: Path) -> None:
    seed(tmp_path)
    args = ("runs", "list", "--workspace", str(tmp_path))
    fast_json, fast_table = run_cli(capsys, *args, "--json"), run_cli(capsys, *args, "--kind", "pretrain")
    (tmp_path / INDEX_FILE).unlink()
    slow_json, slow_table = run_cli(capsys, *args, "--json"), run_cli(capsys, *args, "--kind", "pretrain")
    assert fast_json.code == slow_json.code == 0
    assert json.loads(fast_json.out) == json.loads(slow_json.out)
    assert fast_table.out == slow_table.out and "run-2" in fast_table.out and "run-1" not in fast_table.out


@pytest.mark.slow
def test_the_installed_script_answers_from_the_index_without_loading_duckdb_or_typer(tmp_path: Path) -> None:
    seed(tmp_path)
    probe = (
        "import sys; from llmodel_app.cli.entry import answer_runs_list; "
        "assert answer_runs_list(['runs', 'list', '--json']); "
        "assert not {'duckdb', 'typer', 'httpx', 'torch'} & set(sys.modules), sorted(sys.modules)"
    )
    env = {**os.environ, "LLMODEL_WORKSPACE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert [run["id"] for run in json.loads(result.stdout)] == ["run-2", "run-1", "run-0"]
