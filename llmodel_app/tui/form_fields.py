"""What the workbench's forms share: reading a field as a number or a list of paths, a learning rate as one
types it, and refilling a list of choices without losing the one picked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Select

from engine.errors import LLModelError


def short_rate(value: float) -> str:
    """A learning rate as one would type it: 2e-4, not 2e-04 or 0.0002."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def split_paths(text: str) -> list[str]:
    """Comma-separated paths, made absolute; each must exist."""
    paths = [Path(p.strip()).expanduser() for p in text.split(",") if p.strip()]
    if not paths:
        raise LLModelError("enter at least one input file or directory")
    for path in paths:
        if not path.exists():
            raise LLModelError(f"{path} does not exist")
    return [str(p.resolve()) for p in paths]


def number(text: str, kind: type, label: str, *, optional: bool = False) -> Any:
    """``text`` as an int or a float; a one-line error naming ``label`` when it is not one (blank: None when
    ``optional``)."""
    text = text.strip()
    if not text and optional:
        return None
    try:
        return kind(text)
    except ValueError:
        raise LLModelError(f"{label} must be a number, got {text!r}") from None


def refill_select(select: Select[str], options: list[tuple[str, str]]) -> None:
    """New options for ``select``, keeping its value while it is still offered (else the first option)."""
    if not select.query("SelectOverlay"):  # the Select's own parts are not mounted yet
        select.call_after_refresh(refill_select, select, options)
        return
    current = select.value
    select.set_options(options)
    if isinstance(current, str) and current in {v for _, v in options}:
        select.value = current
    elif options:
        select.value = options[0][1]
