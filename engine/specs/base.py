"""What every job spec shares: JSON in and out with one-line errors naming the field, and the checks of the files
a spec names, run where the spec is built and again when the engine receives it."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from engine.errors import ConfigError, first_line
from engine.typed_config import coerce

S = TypeVar("S", bound="JobSpec")
INT_LIMIT = 2**63 - 1  # what any counter a job keeps can hold


class SpecError(ConfigError):
    """A job spec the engine cannot run: unknown key, wrong type, missing field or file. The daemon answers 422."""


@dataclasses.dataclass
class JobSpec:
    """One job's settings; ``kind`` names the job (``engine.kinds.JOB_KINDS``)."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[S], data: Any) -> S:
        """The spec ``data`` describes; raises :class:`SpecError` naming the first bad field."""
        if not isinstance(data, dict):
            raise SpecError(f"{cls.kind} spec: expected a JSON object, got {type(data).__name__}")
        spec: S = parse_fields(cls, data, f"{cls.kind} spec", "")
        return spec

    def check(self) -> None:
        """Raise :class:`SpecError` when a file or checkpoint the spec names is missing."""
        raise NotImplementedError(f"{type(self).__name__} says nothing of the files it needs")


def parse_fields(cls: type, data: dict[str, Any], source: str, prefix: str) -> Any:
    """The dataclass ``cls`` from ``data``: unknown keys, missing required fields and wrong types are a
    :class:`SpecError` naming the field (``prefix`` + its name) in ``source``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; valid keys are: {', '.join(sorted(fields))}"
        )
    for name, spec_field in fields.items():
        missing = (
            spec_field.default is dataclasses.MISSING and spec_field.default_factory is dataclasses.MISSING
        )
        if missing and name not in data:
            raise SpecError(f"{source}: missing required field '{prefix}{name}'")
    hints = typing.get_type_hints(cls)
    values = {key: field_value(source, prefix + key, value, hints[key]) for key, value in data.items()}
    try:
        return cls(**values)
    except ConfigError as error:
        message = first_line(error)
        raise SpecError(message if message.startswith(source) else f"{source}: {message}") from None


def field_value(source: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` of field ``key`` checked against ``hint``: scalars as config fields are, list elements and dict
    values by their own type, nested settings dataclasses through their ``from_dict``."""
    too_large = _too_large(value)
    if too_large is not None:
        raise SpecError(f"{source}: {key}{too_large}: integers must be at most {INT_LIMIT}")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise SpecError(f"{source}: {key} must be a JSON object, got {type(value).__name__}")
        from_dict = getattr(hint, "from_dict", None)
        if from_dict is None:
            return parse_fields(hint, value, source, f"{key}.")
        return _settings(f"{source}: {key}", from_dict, value)
    if origin is list and args:
        if not isinstance(value, list):
            raise SpecError(f"{source}: {key} must be a list, got {type(value).__name__} {value!r}")
        return [field_value(source, f"{key}[{i}]", item, args[0]) for i, item in enumerate(value)]
    if origin is dict and args:
        if not isinstance(value, dict):
            raise SpecError(f"{source}: {key} must be a JSON object, got {type(value).__name__}")
        return {k: field_value(source, f"{key}.{k}", v, args[1]) for k, v in value.items()}
    if hint is Any:
        return value
    try:
        return coerce(key, value, hint, source)
    except ConfigError as error:
        raise SpecError(first_line(error)) from None


def _settings(source: str, from_dict: Any, value: dict[str, Any]) -> Any:
    """A settings dataclass with its own ``from_dict`` (training config, model config, fine-tuning settings)."""
    try:
        return from_dict(value, source=source)
    except ConfigError as error:
        message = first_line(error)
        raise SpecError(message if message.startswith(source) else f"{source}: {message}") from None


def _too_large(value: Any, path: str = "") -> str | None:
    """The path (``""``, ``.key``, ``[3]``) of the first integer in ``value`` that no counter can hold."""
    if isinstance(value, int) and not isinstance(value, bool):
        return path if abs(value) > INT_LIMIT else None
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((f".{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for suffix, item in items:
        found = _too_large(item, path + suffix)
        if found is not None:
            return found
    return None


# -- checks of the files a spec names ------------------------------------------------------------------------------


def absolute(path: str | Path | None) -> str | None:
    """Paths travel to the engine absolute: its working directory is not the user's."""
    return str(Path(path).expanduser().resolve()) if path is not None else None


def absolute_all(paths: Iterable[str | Path]) -> list[str]:
    return [str(Path(p).expanduser().resolve()) for p in paths]


def require_paths(source: str, paths: str | Iterable[str] | None) -> None:
    """Every path exists, else a :class:`SpecError` naming the field and the path."""
    if paths is None:
        return
    for path in [paths] if isinstance(paths, str) else paths:
        if not Path(path).exists():
            raise SpecError(f"{source}: {path}: no such file or directory; check the path")


def require_checkpoint(source: str, path: str | None) -> None:
    """``path`` is a checkpoint directory, or a run (or its ``checkpoints`` folder) with a complete one. Cheap:
    the marker only; the job verifies the weights' hashes when it loads them."""
    from engine.runs.checkpoint import MARKER, META, list_checkpoints

    if path is None:
        return
    folder = Path(path)
    if not folder.exists():
        raise SpecError(
            f"{source}: checkpoint path {path} does not exist; pass a run or a checkpoint directory"
        )
    if (folder / META).is_file() or folder.name.startswith("step-"):
        if not (folder / MARKER).is_file():
            raise SpecError(f"{source}: checkpoint {path} is incomplete (no {MARKER} marker)")
        return
    for candidate in (folder / "checkpoints", folder):
        if any((step / MARKER).is_file() for step in list_checkpoints(candidate)):
            return
    raise SpecError(f"{source}: no complete checkpoint in {path}; train first or pass a checkpoint directory")
