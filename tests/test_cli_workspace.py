"""Workspaces: created, listed, chosen, shown and removed by name; names are validated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.workspace import workspace_root
from tests.cli_runner import run_cli


@pytest.fixture
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run from an empty folder with no LLMODEL_WORKSPACE, as a new user would."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMODEL_WORKSPACE")
    return tmp_path


def test_create_makes_the_layout_and_the_catalog(capsys, in_tmp):
    result = run_cli(capsys, "workspace", "create", "lab")
    assert result.code == 0, result.err
    root = in_tmp / "workspaces" / "lab"
    assert (root / "workspace.duckdb").is_file()
    for folder in ("configs", "tokenizers", "datasets", "runs"):
        assert (root / folder).is_dir()
    again = run_cli(capsys, "workspace", "create", "lab")
    assert again.code == 1 and "already exists" in again.err


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "-flag", "x" * 65, "a b"])
def test_names_that_could_escape_or_surprise_are_refused(capsys, in_tmp, name):
    result = run_cli(capsys, "workspace", "create", "--", name)
    assert result.code == 1 and "invalid workspace name" in result.err
    assert not (in_tmp / "escape").exists()


def test_use_makes_a_workspace_the_default(capsys, in_tmp):
    run_cli(capsys, "workspace", "create", "one")
    run_cli(capsys, "workspace", "create", "two")
    assert workspace_root() == in_tmp / "workspaces" / "default"
    assert run_cli(capsys, "workspace", "use", "two").code == 0
    assert workspace_root() == (in_tmp / "workspaces" / "two").resolve()
    listed = json.loads(run_cli(capsys, "workspace", "list", "--json").out)
    assert [(w["name"], w["current"]) for w in listed] == [("one", False), ("two", True)]
    assert run_cli(capsys, "workspace", "use", "missing").code == 1


def test_show_counts_what_the_workspace_holds(capsys, in_tmp):
    run_cli(capsys, "workspace", "create", "lab")
    shown = json.loads(run_cli(capsys, "workspace", "show", "lab", "--json").out)
    assert shown["runs_total"] == 0 and shown["engine"] is None


def test_a_workspace_without_a_catalog_yet_reads_as_an_empty_one_with_every_count(capsys, in_tmp):
    (in_tmp / "workspaces" / "fresh").mkdir(parents=True)
    shown = json.loads(run_cli(capsys, "workspace", "show", "fresh", "--json").out)
    run_cli(capsys, "workspace", "create", "lab")
    catalogued = json.loads(run_cli(capsys, "workspace", "show", "lab", "--json").out)
    assert set(shown) == set(catalogued) and shown["adapters"] == 0 and shown["runs_total"] == 0
    assert not (in_tmp / "workspaces" / "fresh" / "workspace.duckdb").exists(), "reading creates nothing"


def test_remove_deletes_the_folder_and_forgets_the_choice(capsys, in_tmp):
    run_cli(capsys, "workspace", "create", "lab")
    run_cli(capsys, "workspace", "use", "lab")
    result = run_cli(capsys, "workspace", "remove", "lab", "--yes")
    assert result.code == 0, result.err
    assert not (in_tmp / "workspaces" / "lab").exists()
    assert workspace_root() == in_tmp / "workspaces" / "default"


@pytest.mark.slow
def test_remove_refuses_while_an_engine_serves_the_workspace(capsys, in_tmp):
    run_cli(capsys, "workspace", "create", "lab")
    assert run_cli(capsys, "engine", "start", "--workspace", str(in_tmp / "workspaces" / "lab")).code == 0
    result = run_cli(capsys, "workspace", "remove", "lab", "--yes")
    assert result.code == 1 and "running engine" in result.err
    assert (in_tmp / "workspaces" / "lab").is_dir()
