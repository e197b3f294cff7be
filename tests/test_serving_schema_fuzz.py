"""Property-based test of the model server's API: requests generated from its own OpenAPI schema (valid and
invalid ones), each answer held to all of schemathesis' checks: no 5xx and no hang, only the status codes, media
types and bodies the schema documents, schema-valid requests served (or a documented 400: a context the
schema cannot express) and schema-violating ones refused. Once on the base model alone, once with two adapters;
the batcher goes on generating after both."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.serving_fixtures import live_server
from tests.test_serving_adapters import random_adapter

pytestmark = pytest.mark.slow  # hundreds of generated requests on two live servers: tens of seconds

WAIT = 20.0  # seconds a single request may take before it counts as hung
CONFIG = Path(__file__).parents[1] / "schemathesis.toml"  # the same settings as the CLI's run
FUZZ = settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def server(served_run_dir: Path):
    with live_server(served_run_dir) as live:
        yield live


@pytest.fixture(scope="module")
def adapter_server(served_run_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from engine.runs import checkpoint as ckpt

    base = ckpt.resolve_checkpoint(served_run_dir)
    root = tmp_path_factory.mktemp("fuzzed-adapters")
    adapters = {
        "terse": random_adapter(base, root / "terse", 1, ["q_proj", "v_proj"]),
        "verbose": random_adapter(base, root / "verbose", 2, ["all-linear"]),
    }
    with live_server(served_run_dir, adapters=adapters) as live:
        yield live


def _schema(live) -> schemathesis.schemas.BaseSchema:
    config = schemathesis.Config.from_path(CONFIG)
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json", config=config)


@pytest.fixture(scope="module")
def api_schema(server):
    return _schema(server)


@pytest.fixture(scope="module")
def adapter_api_schema(adapter_server):
    return _schema(adapter_server)


base_schema = schemathesis.pytest.from_fixture("api_schema")
adapter_schema = schemathesis.pytest.from_fixture("adapter_api_schema")


@base_schema.parametrize()
@FUZZ
def test_every_generated_request_gets_what_the_schema_promises(case, server):
    case.call_and_validate(base_url=server.url, timeout=WAIT)
    assert server.served.batcher.alive


@adapter_schema.parametrize()
@FUZZ
def test_with_adapters_every_generated_request_gets_what_the_schema_promises(case, adapter_server):
    case.call_and_validate(base_url=adapter_server.url, timeout=WAIT)
    assert adapter_server.served.batcher.alive


@pytest.mark.parametrize("which", ["server", "adapter_server"])
def test_generation_goes_on_after_the_fuzzing(which, request):
    live = request.getfixturevalue(which)
    with live.client() as client:
        reply = client.post("/v1/completions", json={"prompt": "def ", "max_tokens": 4, "temperature": 0})
        assert client.get("/health").json()["status"] == "ok"
        metrics = client.get("/metrics").text
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] >= 1
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("llmodel_requests_total{")
    )
    print(f"{served:.0f} requests served")
    assert served >= 200, "a few hundred generated requests reached the server"
