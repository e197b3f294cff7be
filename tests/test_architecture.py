"""The rooms of the code keep their doors: what each package may import (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file under ``package`` imports (absolute names), by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("engine", ("llmodel_app", "textual")),  # the library never imports the front end
        ("engine/server", ("engine.training", "engine.daemon")),  # the model server stands alone
        ("engine/generation", ("engine.training", "engine.server", "engine.daemon")),
        ("engine/runs", ("engine.training", "engine.server", "engine.daemon")),
        ("engine/model", ("engine.training", "engine.server", "engine.daemon", "engine.generation")),
    ],
)
def test_a_package_never_imports_what_it_must_not(package, forbidden):
    offenders = [
        f"{file}: {name}"
        for file, names in imported_modules(package).items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert not offenders, offenders


def test_the_daemon_and_the_model_server_do_not_share_a_name():
    assert not (ROOT / "engine" / "service").exists() and not (ROOT / "engine" / "serving").exists()
    assert (ROOT / "engine" / "daemon").is_dir() and (ROOT / "engine" / "server").is_dir()
