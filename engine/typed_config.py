"""Build typed config dataclasses from JSON-like dicts with one-line errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def check_fields(cls: type[DataclassInstance], data: Any, source: str) -> dict[str, Any]:
    """Return ``data`` with values checked against ``cls``'s field types; unknown keys are an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown config key {unknown[0]!r}; valid keys are: {', '.join(sorted(known))}"
        )
    return {key: coerce(key, value, hints[key], source) for key, value in data.items()}


def coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Check ``value`` against a type hint, allowing an int where a float is expected."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {type(value).__name__} {value!r}")
        return origin(_coerce_items(key, value, args, source))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _coerce_items(
    key: str, items: list[Any] | tuple[Any, ...], args: tuple[Any, ...], source: str
) -> list[Any]:
    """The elements of a ``list[X]`` / ``tuple[X, ...]`` value, each checked against ``X`` (named by its index)."""
    homogeneous = len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis)
    element_origin = typing.get_origin(args[0]) if args else None
    if homogeneous and (element_origin is Literal or (element_origin is None and isinstance(args[0], type))):
        return [coerce(f"{key}[{i}]", item, args[0], source) for i, item in enumerate(items)]
    return list(items)  # a bare list, a fixed-shape tuple, or elements of a nested type
