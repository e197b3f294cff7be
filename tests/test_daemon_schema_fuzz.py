"""Property-based test of the engine's API: requests generated from its OpenAPI schema (valid and invalid ones),
each answer held to all of schemathesis' checks, on an engine in this process over a workspace with one run.

Left out: what starts processes or never ends by design (``POST /api/jobs``, ``POST /api/serve``, the event
streams) and ``POST /api/shutdown``; the job and serve specs have suites of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from engine.catalog import Catalog
from engine.daemon.app import create_app
from engine.daemon.broker import Broker
from engine.daemon.supervisor import Supervisor

TOKEN = "fuzz-token"
CONFIG = Path(__file__).parents[1] / "schemathesis.toml"
LEFT_OUT = [
    "POST /api/jobs",
    "POST /api/serve",
    "POST /api/shutdown",
    "GET /api/events",
    "GET /api/runs/{run_id}/events",
]


@pytest.fixture(scope="module")
def engine_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    workspace = tmp_path_factory.mktemp("fuzzed") / "workspace"
    (workspace / "runs").mkdir(parents=True)
    broker = Broker()
    with Catalog.open(workspace) as catalog:
        catalog.create_run(
            "pretrain-1", "pretrain", workspace / "runs" / "pretrain-1", {}, status="completed"
        )
        yield create_app(Supervisor(workspace, catalog, broker), broker, TOKEN)


@pytest.fixture(scope="module")
def engine_schema(engine_app):
    schema = schemathesis.openapi.from_dict(
        engine_app.openapi(), config=schemathesis.Config.from_path(CONFIG)
    )
    schema.app = engine_app
    return schema


schema = schemathesis.pytest.from_fixture("engine_schema").exclude(name=LEFT_OUT)


@schema.parametrize()
@settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_every_generated_request_gets_what_the_engines_schema_promises(case):
    # Not the Allow header of a 405: Starlette names the methods of the first route matching the path only
    # (GET for /api/runs/{run_id}, which DELETE has too).
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        excluded_checks=[schemathesis.checks.allow_header_conformance],
    )
