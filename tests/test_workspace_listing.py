"""The workspace listing: one request answers what a workspace tree shows — runs with the checkpoints that can
still load (complete, not pruned, flagged best/latest) and the adapters trained on each — computed in the engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.catalog import Catalog
from engine.client import EngineClient
from engine.daemon.app import create_app
from engine.daemon.broker import Broker
from engine.daemon.record import EngineRecord
from engine.daemon.supervisor import Supervisor
from engine.runs.checkpoint import MARKER, META

TOKEN = "secret"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[EngineClient, Catalog, Path]]:
    """The engine's client and API, in this process."""
    workspace = tmp_path / "workspace"
    (workspace / "runs").mkdir(parents=True)
    broker = Broker()
    record = EngineRecord(
        pid=0, host="testserver", port=80, token=TOKEN, workspace=str(workspace), started=0.0
    )
    with Catalog.open(workspace) as catalog:
        app = create_app(Supervisor(workspace, catalog, broker), broker, TOKEN)
        with EngineClient(record, http=TestClient(app)) as client:
            yield client, catalog, workspace


def save(run_dir: Path, step: int, *, complete: bool = True) -> str:
    folder = run_dir / "checkpoints" / f"step-{step:08d}"
    folder.mkdir(parents=True)
    (folder / META).write_text("{}", encoding="utf-8")
    if complete:
        (folder / MARKER).write_text("", encoding="utf-8")
    return str(folder)


def test_the_listing_has_each_runs_usable_checkpoints_with_their_adapters_in_one_answer(daemon):
    client, catalog, workspace = daemon
    run_dir = workspace / "runs" / "pretrain-1"
    catalog.create_run("pretrain-1", "pretrain", run_dir, {}, status="running")
    pruned = str(run_dir / "checkpoints" / "step-00000010")  # saved, then deleted by keep_last
    best, newest, partial = save(run_dir, 20), save(run_dir, 30), save(run_dir, 40, complete=False)
    events = [
        {"type": "checkpoint", "step": 10, "path": pruned},
        {"type": "checkpoint", "step": 20, "path": best, "best": True},
        {"type": "checkpoint", "step": 30, "path": newest},
        {"type": "checkpoint", "step": 40, "path": partial},
        {"type": "step", "step": 40, "loss": 2.0},
    ]
    catalog.ingest_events("pretrain-1", events, len(events))
    catalog.create_run("tokenizer-1", "tokenizer", workspace / "runs" / "tokenizer-1", {}, status="completed")
    meta = {"method": "lora", "base_checkpoint": best, "settings": {"rank": 4, "alpha": 8.0}}
    catalog.register_adapter("chat", workspace / "adapters" / "chat", meta)

    listing = client.workspace_listing()
    runs = {run["id"]: run for run in listing["runs"]}
    checkpoints = runs["pretrain-1"]["checkpoints"]
    assert [(c["step"], c["best"], c["latest"]) for c in checkpoints] == [
        (20, True, False),
        (30, False, True),
    ]
    assert [a["name"] for a in checkpoints[0]["adapters"]] == ["chat"] and checkpoints[1]["adapters"] == []
    assert runs["tokenizer-1"]["checkpoints"] == []
    assert [a["name"] for a in listing["adapters"]] == ["chat"]
    assert listing["summary"]["adapters"] == 1 and listing["path"] == str(workspace)
    for key in ("configs", "tokenizers", "datasets", "studies", "jobs"):
        assert listing[key] == [], key
    json.dumps(listing)  # plain JSON all the way down
