"""Printing a benchmark's table and saving its figures as JSON under ``benchmarks/results/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.fileio import write_json_atomic

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        return "  ".join(parts)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(name: str, machine: dict[str, Any], figures: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` (machine, date, figures) and return its path."""
    path = RESULTS_DIR / f"{name}.json"
    write_json_atomic(
        path, {"benchmark": name, "date": machine["date"], "machine": machine, "figures": figures}
    )
    return path
