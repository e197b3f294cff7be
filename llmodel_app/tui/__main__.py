"""``python -m llmodel_app.tui [--workspace W]``: the workbench without the CLI around it."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.workspace import workspace_root


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m llmodel_app.tui", description="Open the LLModel workbench."
    )
    parser.add_argument(
        "--workspace", type=Path, default=None, help="Workspace directory (default: the current one)."
    )
    args = parser.parse_args()
    from llmodel_app.tui.app import run_workbench

    run_workbench(workspace_root(args.workspace))


if __name__ == "__main__":
    main()
