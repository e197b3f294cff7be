"""Evaluation tasks as data: where the documents come from, the request kind, the prompt, the metrics, the chance.

Three kinds, after lm-evaluation-harness: ``perplexity`` (rolling log-likelihood of whole documents),
``multiple_choice`` (log-likelihood of each choice after the prompt) and ``generate`` (generation until a stop,
compared with a reference). Built-in tasks are made locally from the standard library; the standard suites read
local files in their published layouts; a small task file (JSON or YAML) defines a custom task without code.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError, NotFoundError
from engine.evaluation import suites
from engine.fileio import read_mapping

Doc = dict[str, Any]
KINDS = ("perplexity", "multiple_choice", "generate", "code")


@dataclass
class Task:
    """One evaluation task."""

    name: str
    kind: str  # one of KINDS
    description: str
    load: Callable[[Path | None], Iterator[Doc]]  # documents, given the --data-path (when the task needs one)
    prompt: Callable[[Doc], str] = lambda doc: ""
    choices: Callable[[Doc], list[str]] = lambda doc: []
    gold: Callable[[Doc], int] = lambda doc: 0
    labels: Callable[[Doc], list[int]] | None = None  # which choices are true (TruthfulQA MC2)
    reference: Callable[[Doc], str] = lambda doc: ""
    until: list[str] = field(default_factory=lambda: ["\n"])
    max_tokens: int = 64
    text: Callable[[Doc], str] = lambda doc: doc.get("text", "")
    extract: Callable[[str], str | None] | None = None  # answer extraction before exact match (GSM8K)
    metrics: tuple[str, ...] = ()  # for generation: which of GENERATION_METRICS
    needs_data: bool = False
    data_layout: str = ""  # what --data-path must hold, said when it is missing
    chance: str = ""  # how well a guess does, printed beside the score
    default_limit: int | None = None


def builtin_tasks() -> dict[str, Task]:
    """Every task ``llmodel evaluate`` knows by name."""
    tasks = [*suites.stdlib_tasks(), *suites.standard_tasks()]
    return {task.name: task for task in tasks}


def resolve_task(name: str, workspace: Path | None = None) -> Task:
    """A built-in task by name, or a custom task from a task file (``.json``, ``.yaml``/``.yml``)."""
    known = builtin_tasks()
    if name in known:
        return known[name]
    path = Path(name)
    if path.suffix in (".json", ".yaml", ".yml"):
        return load_task_file(path)
    raise NotFoundError(
        f"unknown task {name!r}; see `llmodel evaluate --tasks list`, or give a task file (.json/.yaml)"
    )


# -- custom tasks ---------------------------------------------------------------------------------------------------

_FIELD = re.compile(r"\{(\w+)\}")
# What a generation task may ask for; "f1" treats the answers as labels (accuracy and macro F1 over them).
GENERATION_METRICS = ("exact_match", "bleu", "chrf", "rouge", "distinct", "f1")


def load_task_file(path: Path) -> Task:
    """A task from a small declarative file: name, kind, data, prompt (``{field}`` placeholders), and for
    multiple choice ``choices`` (a field holding a list, or a fixed list) and ``answer`` (a field holding the
    index or the text of the right choice); for generation ``target`` (a template) and ``until``."""
    if not path.is_file():
        raise DataError(f"task file {path} not found")
    spec = read_mapping(path, "task file", DataError)
    known = {
        "name",
        "kind",
        "description",
        "data",
        "prompt",
        "choices",
        "answer",
        "target",
        "until",
        "metrics",
        "max_tokens",
        "text",
    }
    unknown = sorted(set(spec) - known)
    if unknown:
        raise DataError(f"{path}: unknown key {unknown[0]!r}; a task file takes {', '.join(sorted(known))}")
    kind = spec.get("kind")
    if kind not in ("perplexity", "multiple_choice", "generate"):
        raise DataError(f"{path}: 'kind' must be perplexity, multiple_choice or generate, not {kind!r}")
    if "data" not in spec:
        raise DataError(f"{path}: 'data' (the JSONL file of documents) is missing")
    data = (path.parent / spec["data"]).resolve()
    name = str(spec.get("name") or path.stem)
    task = Task(
        name=name,
        kind=kind,
        description=str(spec.get("description") or f"custom task from {path.name}"),
        load=lambda _: suites.read_records(data, f"task {name}'s data"),
        needs_data=False,
        until=list(spec.get("until") or ["\n"]),
        max_tokens=int(spec.get("max_tokens") or 64),
    )
    if kind == "perplexity":
        task.text = _template(spec.get("text", "{text}"), path)
    if "prompt" in spec:
        task.prompt = _template(spec["prompt"], path)
    elif kind != "perplexity":
        raise DataError(
            f"{path}: 'prompt' (a template such as 'Question: {{question}}\\nAnswer:') is missing"
        )
    if kind == "multiple_choice":
        task.choices, task.gold = _choices(spec, path), _answer(spec, path)
        task.chance = "1 / the number of choices"
    if kind == "generate":
        if "target" not in spec:
            raise DataError(f"{path}: 'target' (a template of the expected answer) is missing")
        task.reference = _template(spec["target"], path)
        task.metrics = tuple(spec.get("metrics") or ("exact_match", "bleu", "chrf", "rouge"))
        unknown = [m for m in task.metrics if m not in GENERATION_METRICS]
        if unknown:
            raise DataError(
                f"{path}: unknown metric {unknown[0]!r}; choose from {', '.join(GENERATION_METRICS)}"
            )
    return task


def _template(template: str, path: Path) -> Callable[[Doc], str]:
    fields = _FIELD.findall(template)

    def render(doc: Doc) -> str:
        missing = [f for f in fields if f not in doc]
        if missing:
            raise DataError(f"{path}: a document has no field {missing[0]!r} that the template uses")
        return _FIELD.sub(lambda m: str(doc[m.group(1)]), template)

    return render


def _choices(spec: dict[str, Any], path: Path) -> Callable[[Doc], list[str]]:
    choices = spec.get("choices")
    if isinstance(choices, list):
        return lambda doc: [str(c) for c in choices]
    if isinstance(choices, str):
        key = choices.strip("{}")
        return lambda doc: [str(c) for c in doc[key]]
    raise DataError(f"{path}: 'choices' must name a field holding a list, or be a list of fixed choices")


def _answer(spec: dict[str, Any], path: Path) -> Callable[[Doc], int]:
    key = str(spec.get("answer", "")).strip("{}")
    if not key:
        raise DataError(f"{path}: 'answer' (the field holding the right choice's index or text) is missing")
    choices = _choices(spec, path)

    def gold(doc: Doc) -> int:
        value = doc[key]
        options = choices(doc)
        if isinstance(value, int):
            return value
        if str(value) in options:
            return options.index(str(value))
        if str(value).isdigit():
            return int(value)
        raise DataError(f"{path}: answer {value!r} is neither an index nor one of the choices")

    return gold


def distractors(names: list[str], right: str, count: int, seed: str) -> list[str]:
    """``count`` other names, the same every time for the same ``seed``."""
    rng = random.Random(seed)
    pool = [n for n in names if n != right]
    return rng.sample(pool, min(count, len(pool)))
