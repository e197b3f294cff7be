"""Property-based test of the model server's API: requests generated from its own OpenAPI schema (valid and
invalid ones) never get a 5xx, never hang, and leave the batcher generating."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.serving_fixtures import live_server

pytestmark = pytest.mark.slow  # hundreds of generated requests: tens of seconds

WAIT = 20.0  # seconds a single request may take before it counts as hung


@pytest.fixture(scope="module")
def server(served_run_dir: Path):
    with live_server(served_run_dir) as live:
        yield live


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_no_generated_request_gets_a_5xx_or_hangs(case, server):
    response = case.call(base_url=server.url, timeout=WAIT)
    assert response.status_code < 500, f"{case.method} {case.path} {case.body!r} -> {response.text}"
    assert server.served.batcher.alive


def test_generation_goes_on_after_the_fuzzing(server):
    with server.client() as client:
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
