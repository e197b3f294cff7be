"""The Dockerfile and compose.yaml run real `llmodel` subcommands with valid flags (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml
from typer._click.exceptions import UsageError  # typer vendors its own click

from llmodel_app.cli.main import app

ROOT = Path(__file__).resolve().parent.parent


def parse_command_line(args: list[str]) -> None:
    """Parse ``llmodel ARGS`` exactly as the CLI would, without running it; raises on an unknown command or flag."""
    command = typer.main.get_command(app)
    context = command.make_context("llmodel", list(args), resilient_parsing=False)
    remaining = [*context._protected_args, *context.args]
    while hasattr(command, "resolve_command"):  # a group: descend into the named subcommand
        assert remaining, "a group needs a subcommand"
        name, command, remaining = command.resolve_command(context, remaining)
        context = command.make_context(name, remaining, parent=context, resilient_parsing=False)
        remaining = [*context._protected_args, *context.args]
    assert not remaining, f"unexpected arguments {remaining}"


def dockerfile_instruction(name: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines() if line.strip().upper().startswith(name + " ")]
    assert lines, f"no {name} in the Dockerfile"
    value = lines[-1][len(name) :].strip()
    return json.loads(value) if value.startswith("[") else shlex.split(value)


def test_the_image_runs_llmodel_with_a_valid_default_command():
    assert dockerfile_instruction("ENTRYPOINT") == ["llmodel"]
    parse_command_line(dockerfile_instruction("CMD"))


def test_the_image_runs_as_a_non_root_user_with_a_health_check_and_a_volume():
    text = (ROOT / "Dockerfile").read_text()
    assert dockerfile_instruction("USER") == ["llmodel"]
    assert "/health" in " ".join(dockerfile_instruction("HEALTHCHECK"))
    assert "/workspaces" in " ".join(dockerfile_instruction("VOLUME"))
    assert "torch==2.13.0" in text and "whl/cpu" in text, "CPU torch, pinned"


def test_compose_has_the_api_and_trainer_services_running_valid_commands():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"transformer-api", "transformer-trainer"}
    for service in services.values():
        parse_command_line(service["command"])
        assert any(v.endswith(":/workspaces") for v in service["volumes"])
    api = services["transformer-api"]
    assert api["ports"] == ["8000:8000"]
    assert "--port" in api["command"] and api["command"][api["command"].index("--port") + 1] == "8000"
    assert "LLMODEL_API_KEY" in api["environment"], "serving beyond loopback needs a key"


def test_the_parser_rejects_what_the_cli_would_reject():
    with pytest.raises(UsageError):
        parse_command_line(["serve", "latest", "--no-such-flag"])
    with pytest.raises(UsageError):
        parse_command_line(["no-such-command"])
