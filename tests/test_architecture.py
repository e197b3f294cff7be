"""The rooms of the code keep their doors: the layer order of the packages, and what none may import
(docs/ARCHITECTURE.md, "Layers")."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module imports only from layers below its own (and from its own package); packages on one
# layer never import each other. docs/ARCHITECTURE.md shows the same list.
LAYERS: list[list[str]] = [
    ["engine.errors", "engine.kinds", "engine.lazy", "engine.net", "engine.processes"],
    ["engine.device", "engine.fileio", "engine.typed_config", "engine.workspace"],
    ["engine.tokenizer"],
    ["engine.data", "engine.model"],
    ["engine.adapters"],
    ["engine.runs"],
    ["engine.generation"],
    ["engine.training"],
    ["engine.evaluation"],
    ["engine.evolve", "engine.finetune"],
    ["engine.api", "engine.specs"],
    ["engine.pipelines"],
    ["engine.catalog", "engine.server"],
    ["engine.daemon"],
    ["engine.client"],
    ["llmodel_app"],
]
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    source: str  # the importing unit (a package, or a top-level module of the engine)
    target: str  # the imported unit


def unit_of(module: str) -> str | None:
    """The layer unit a module belongs to: ``engine.<package or module>``, or ``llmodel_app``; None outside."""
    parts = module.split(".")
    if parts[0] == "llmodel_app":
        return "llmodel_app"
    if parts[0] == "engine" and len(parts) > 1:
        return f"engine.{parts[1]}"
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The absolute names an import statement brings in (``from a import b`` is ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def imports(package: str) -> Iterator[Import]:
    """Every import in every file under ``package``: module top, functions, TYPE_CHECKING blocks alike."""
    for path in sorted((ROOT / package).rglob("*.py")):
        module = module_name(path)
        source = unit_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = imported_names(node, module, path.name == "__init__.py")
            for target in sorted({unit for unit in map(unit_of, names) if unit}):
                if source and target != source:
                    yield Import(str(path.relative_to(ROOT)), getattr(node, "lineno", 0), source, target)


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file under ``package`` imports (absolute names), by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        module = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names.update(imported_names(node, module, path.name == "__init__.py"))
        found[str(path.relative_to(ROOT))] = names
    return found


def engine_units() -> set[str]:
    """The engine's packages and top-level modules, as they are on disk."""
    engine = ROOT / "engine"
    packages = {f"engine.{p.name}" for p in engine.iterdir() if (p / "__init__.py").is_file()}
    modules = {f"engine.{p.stem}" for p in engine.glob("*.py") if p.name != "__init__.py"}
    return packages | modules


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of the unit graph, each as the path that closes it."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(unit: str, path: list[str]) -> None:
        if unit in path:
            found.append([*path[path.index(unit) :], unit])
            return
        if unit in done:
            return
        for target in sorted(edges.get(unit, ())):
            visit(target, [*path, unit])
        done.add(unit)

    for unit in sorted(edges):
        visit(unit, [])
    return found


def test_every_engine_package_and_module_has_one_layer():
    listed = [unit for units in LAYERS for unit in units]
    assert len(listed) == len(set(listed)), "a unit is listed on two layers"
    assert set(listed) - {"llmodel_app"} == engine_units()


def test_no_module_imports_its_own_layer_or_a_later_one():
    offenders = [
        f"{i.file}:{i.line}: {i.source} (layer {LEVEL[i.source] + 1}) imports {i.target} "
        f"(layer {LEVEL.get(i.target, -1) + 1})"
        for package in ("engine", "llmodel_app")
        for i in imports(package)
        if i.target not in LEVEL or LEVEL[i.target] >= LEVEL[i.source]
    ]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for package in ("engine", "llmodel_app"):
        for i in imports(package):
            edges.setdefault(i.source, set()).add(i.target)
    assert not cycles(edges), cycles(edges)


def test_the_checks_see_function_local_and_relative_imports_and_name_a_cycle():
    tree = ast.parse("def load():\n    from engine.finetune.lora import apply_lora\n")
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert unit_of(imported_names(node, "engine.runs.loading", False)[0]) == "engine.finetune"
    assert cycles({"engine.runs": {"engine.finetune"}, "engine.finetune": {"engine.runs"}}) == [
        ["engine.finetune", "engine.runs", "engine.finetune"]
    ]
    assert imported_names(
        ast.parse("from .checkpoint import save").body[0], "engine.runs.loading", False
    ) == [
        "engine.runs.checkpoint",
        "engine.runs.checkpoint.save",
    ]


def test_the_architecture_document_shows_the_same_layers():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    documented = [
        re.findall(r"`([\w.]+)`", line) for line in section.splitlines() if re.match(r"\d+\. ", line)
    ]
    assert documented == LAYERS


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("engine", ("llmodel_app", "textual")),  # the library never imports the front end
        ("engine/server", ("engine.training", "engine.daemon")),  # the model server stands alone
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
