"""The Dockerfile and compose.yaml run real `llmodel` subcommands with valid flags (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml

from llmodel_app.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
USAGE_ERROR = 2  # the exit code of the CLI's usage errors (unknown command or flag, missing argument)


def parse_command_line(args: list[str]) -> None:
    """Parse ``llmodel ARGS`` as the CLI would, without running it; raises the CLI's usage error on an unknown
    command or flag, a missing argument or an extra one (the command lines here give no group options)."""
    command = typer.main.get_command(app)
    name, remaining, context = "llmodel", list(args), None
    while hasattr(command, "resolve_command"):  # a group: descend into the named subcommand
        assert remaining, "a group needs a subcommand"
        context = command.make_context(name, remaining[:1], parent=context, resilient_parsing=False)
        name, command, remaining = command.resolve_command(context, remaining)
    command.make_context(name, remaining, parent=context, resilient_parsing=False)


def dockerfile_instructions(name: str) -> list[list[str]]:
    """The arguments of every ``name`` instruction of the Dockerfile, in order."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines() if line.strip().upper().startswith(name + " ")]
    assert lines, f"no {name} in the Dockerfile"
    values = [line[len(name) :].strip() for line in lines]
    return [json.loads(value) if value.startswith("[") else shlex.split(value) for value in values]


def dockerfile_instruction(name: str) -> list[str]:
    """The arguments of the last ``name`` instruction (the one in effect)."""
    return dockerfile_instructions(name)[-1]


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


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["serve", "latest", "--no-such-flag"], "No such option"),
        (["no-such-command"], "No such command"),
        (["serve", "latest", "surplus"], "unexpected extra argument"),
    ],
)
def test_the_parser_rejects_what_the_cli_would_reject(args, problem):
    with pytest.raises(Exception, match=problem) as err:
        parse_command_line(args)
    assert getattr(err.value, "exit_code", None) == USAGE_ERROR


def test_the_image_installs_the_tested_versions():
    text = (ROOT / "Dockerfile").read_text()
    copied = [line for line in text.splitlines() if line.startswith("COPY ") and "pyproject.toml" in line]
    assert copied and "constraints.txt" in copied[0].split(), "the constraints travel with pyproject.toml"
    installs = [" ".join(run) for run in dockerfile_instructions("RUN") if "pip install ." in " ".join(run)]
    assert installs and "pip install . -c constraints.txt" in installs[0]


def test_the_readme_and_ci_set_up_with_the_same_constraints():
    install = "pip install -e '.[dev]' -c constraints.txt"
    assert install in (ROOT / "README.md").read_text()
    assert install in (ROOT / ".ci" / "run").read_text()
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[a-z0-9-]+==[\w.]+", line) for line in pins), (
        "name==version lines only"
    )
    names = {line.split("==")[0] for line in pins}
    assert {"textual", "typer", "fastapi", "optuna", "mypy", "ruff"} <= names
    assert not names & {"torch", "llmodel"}, "torch's build is chosen per machine; the project is not pinned"
