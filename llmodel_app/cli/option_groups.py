"""Commands made of option groups: dataclasses whose fields are a command's options (as litgpt's ``TrainArgs``),
so commands that share options share the groups, not a copy of each other's signatures."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

import typer


def grouped_command(
    run: Callable[..., None], groups: Sequence[type], *, name: str, doc: str
) -> Callable[..., None]:
    """A Typer command whose options are the fields of ``groups``, in order; it calls ``run(ctx, *instances)``
    with one instance of each group."""
    parameters = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    members: list[list[str]] = []
    for group in groups:
        hints = typing.get_type_hints(group, include_extras=True)
        fields = dataclasses.fields(group)
        members.append([f.name for f in fields])
        parameters += [
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=_default(f), annotation=hints[f.name]
            )
            for f in fields
        ]

    def command(ctx: typer.Context, **options: Any) -> None:
        run(
            ctx,
            *(group(**{n: options[n] for n in names}) for group, names in zip(groups, members, strict=True)),
        )

    command.__dict__["__signature__"] = inspect.Signature(parameters)  # what Typer reads the options from
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    return command


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty
