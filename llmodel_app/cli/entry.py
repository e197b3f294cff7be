"""The ``llmodel`` console entry: the two commands people expect at once, before loading the full CLI.

Python spends longer importing Typer, the command modules and DuckDB than either of these needs. ``llmodel``
alone opens the workbench straight away; ``llmodel runs list`` (with its own options only) answers from the
workspace's runs index when it is current (``engine/catalog/runs_index.py``). Anything else — other commands,
help, a typo, a stale index — goes to the Typer app in ``main.py``, which gives the same answer or the usual error.
"""

from __future__ import annotations

import sys

_VALUE_OPTIONS = {"--kind": "kind", "--status": "status", "--limit": "limit", "--workspace": "workspace"}


def parse_runs_list(argv: list[str]) -> dict[str, str | bool] | None:
    """The options of a plain ``runs list`` command line, or None when it is anything else."""
    if argv[:2] != ["runs", "list"]:
        return None
    options: dict[str, str | bool] = {"json": False}
    rest = argv[2:]
    while rest:
        token = rest.pop(0)
        name, has_value, value = token.partition("=")
        if token == "--json":
            options["json"] = True
        elif name in _VALUE_OPTIONS and (has_value or rest):
            options[_VALUE_OPTIONS[name]] = value if has_value else rest.pop(0)
        else:
            return None
    limit = options.get("limit")
    if isinstance(limit, str) and not limit.isdigit():
        return None  # Typer reports the bad value
    return options


def answer_runs_list(argv: list[str]) -> bool:
    """Print the runs from the index and return True, or return False to leave the command to the full CLI."""
    options = parse_runs_list(argv)
    if options is None:
        return False
    from engine.catalog.runs_index import read_index, select_runs
    from engine.errors import LLModelError
    from engine.workspace import workspace_root

    try:
        workspace = workspace_root(_text(options, "workspace"))
    except LLModelError:
        return False
    runs = read_index(workspace)
    if runs is None:
        return False
    limit = options.get("limit")
    rows = select_runs(
        runs,
        kind=_text(options, "kind"),
        status=_text(options, "status"),
        limit=int(limit) if isinstance(limit, str) else None,
    )
    if options["json"]:
        import json

        sys.stdout.write(json.dumps(rows, default=str, indent=2) + "\n")
    else:
        from rich.console import Console

        from llmodel_app.cli.runs_table import runs_table

        Console().print(runs_table(rows))
    return True


def open_workbench(argv: list[str]) -> bool:
    """Open the workbench on the default workspace when there are no arguments; False otherwise."""
    if argv:
        return False
    from engine.errors import LLModelError
    from engine.workspace import workspace_root

    try:
        workspace = workspace_root(None)
    except LLModelError:
        return False  # the full CLI reports it
    from llmodel_app.tui.app import run_workbench

    run_workbench(workspace)
    return True


def _text(options: dict[str, str | bool], name: str) -> str | None:
    """An option's value as typed; None when it was not given (or left empty)."""
    value = options.get(name)
    return value if isinstance(value, str) and value else None


def main() -> None:
    """Console entry point."""
    argv = sys.argv[1:]
    if open_workbench(argv) or answer_runs_list(argv):
        return
    from llmodel_app.cli.main import main as full_cli

    full_cli()


if __name__ == "__main__":
    main()
