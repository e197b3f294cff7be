"""How `llmodel runs` prints runs for people: the runs table and its cell formats (Rich, nothing heavier)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table


def when(epoch: Any) -> str:
    """A unix time as local ``YYYY-MM-DD HH:MM``, or ``-``."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(epoch))) if epoch else "-"


def num(value: Any) -> str:
    """A metric with four significant digits, or ``-``."""
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def runs_table(rows: Sequence[Mapping[str, Any]]) -> Table | str:
    """The table `llmodel runs list` prints (id, kind, status, created, step, loss, val loss)."""
    if not rows:
        return "no runs yet"
    table = Table(
        "id", "kind", "status", "created", "step", "loss", "val loss", box=None, header_style="bold"
    )
    for row in rows:
        steps = (
            f"{row.get('step') or 0}/{row['total_steps']}"
            if row.get("total_steps")
            else str(row.get("step") or "-")
        )
        table.add_row(
            row["id"],
            row["kind"],
            row["status"],
            when(row.get("created")),
            steps,
            num(row.get("loss")),
            num(row.get("val_loss")),
        )
    return table
