"""Shared Rich consoles and the one-line message helpers of the CLI."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

out = Console()
err = Console(stderr=True)


def info(message: str) -> None:
    err.print(f"[dim]·[/dim] {message}", highlight=False)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def success(message: str) -> None:
    err.print(f"[green]✓[/green] {message}", highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, fast for thousands of rows."""
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
