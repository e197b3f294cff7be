"""Read documents from plain text, JSONL, chat JSONL and saved Hugging Face datasets.

Formats: ``text`` (a whole file, or each non-blank line, is a document), ``jsonl`` (a record's ``text``, else
``content``, else ``prompt``+``response`` in the chat template), ``chat`` (LMSYS-style ``conversation`` or
``messages`` lists) and ``hf`` (a directory written by ``datasets.save_to_disk``). ``auto`` picks per path.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.records import Message, RecordError, has_conversation, record_messages, record_text
from engine.errors import DataError
from engine.tokenizer.chat_template import render_chat

FORMATS = ("auto", "text", "jsonl", "chat", "hf")
TEXT_UNITS = ("file", "line")
JSON_SUFFIXES = frozenset({".jsonl", ".json"})
PROSE_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst", ".tex"}
CODE_SUFFIXES = {".py", ".pyi", ".c", ".h", ".cc", ".cpp", ".hpp", ".js", ".ts", ".java", ".go", ".rs"}
SCRIPT_SUFFIXES = {".rb", ".sh"}
MARKUP_SUFFIXES = {".html", ".css", ".xml", ".csv", ".tsv", ".toml", ".yaml", ".yml", ".ini", ".cfg"}
TEXT_SUFFIXES = frozenset(PROSE_SUFFIXES | CODE_SUFFIXES | SCRIPT_SUFFIXES | MARKUP_SUFFIXES)
HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")

OnBadLine = Callable[[str], None]
Paths = Iterable[str | os.PathLike[str]] | str | os.PathLike[str]


@dataclass(frozen=True)
class Source:
    """One input file or dataset directory and the format it is read with."""

    path: Path
    format: str


def iter_documents(
    paths: Paths,
    *,
    input_format: str = "auto",
    text_unit: str = "file",
    strict: bool = False,
    on_bad_line: OnBadLine | None = None,
) -> Iterator[str]:
    """Yield every non-blank document of ``paths`` in a deterministic order.

    A malformed record raises DataError when ``strict``, else it is skipped and reported to ``on_bad_line``.
    Missing paths and unknown formats raise at once, before the first document.
    """
    if text_unit not in TEXT_UNITS:
        raise DataError(f"unknown text unit {text_unit!r}; use one of {', '.join(TEXT_UNITS)}")
    sources = resolve_sources(paths, input_format)
    return _documents(sources, text_unit, _Reporter(strict, on_bad_line))


def iter_chat_conversations(
    paths: Paths,
    *,
    input_format: str = "auto",
    strict: bool = False,
    on_bad_line: OnBadLine | None = None,
) -> Iterator[list[Message]]:
    """Yield each conversation as ``[{"role", "content"}, ...]`` with canonical roles (for chat fine-tuning)."""
    sources = resolve_sources(paths, input_format)
    for source in sources:
        if source.format == "text":
            raise DataError(
                f"{source.path}: plain text has no conversations; give chat JSONL with a 'conversation' list"
            )
    return _conversations(sources, _Reporter(strict, on_bad_line))


def iter_sft_records(
    paths: Paths,
    *,
    input_format: str = "auto",
    text_unit: str = "file",
    strict: bool = False,
    on_bad_line: OnBadLine | None = None,
) -> Iterator[tuple[str, list[Message] | str]]:
    """Yield ``(where, example)`` for supervised fine-tuning: a conversation in any format
    :func:`engine.data.records.record_messages` reads, or plain text (``text``/``content`` fields, text files)."""
    sources = resolve_sources(paths, input_format)
    report = _Reporter(strict, on_bad_line)
    for source in sources:
        if source.format == "text":
            for n, text in enumerate(_text_documents(source.path, text_unit, report)):
                yield f"{source.path}#{n + 1}", text
            continue
        for where, record in _records(source, report):
            try:
                messages = record_messages(record)
                example: list[Message] | str = messages if messages is not None else record_text(record)
            except RecordError as err:
                report(where, str(err))
                continue
            yield where, example


def resolve_sources(paths: Paths, input_format: str = "auto") -> list[Source]:
    """Expand directories (sorted, recursive) and decide each input's format; missing paths raise DataError."""
    if input_format not in FORMATS:
        raise DataError(f"unknown input format {input_format!r}; use one of {', '.join(FORMATS)}")
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise DataError(f"{path}: no such file or directory; check the path")
        if path.is_dir():
            found = _expand_directory(path, input_format)
            if not found:
                raise DataError(f"{path}: no text, JSONL or dataset files inside; point at the files to read")
            sources.extend(found)
        else:
            sources.append(Source(path, _file_format(path, input_format)))
    for source in sources:
        if source.format == "hf":
            _require_datasets(source.path)
    return sources


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format ``auto`` reads a single file or directory with."""
    path = Path(path)
    if path.is_dir():
        return "hf" if _is_hf_dataset(path) else "text"
    return _file_format(path, "auto")


class _Reporter:
    """Raises on a bad record when strict, else reports it and lets the reader skip it."""

    def __init__(self, strict: bool, on_bad_line: OnBadLine | None):
        self.strict = strict
        self.on_bad_line = on_bad_line

    def __call__(self, where: str, problem: str, fix: str = "fix the line") -> None:
        if self.strict:
            raise DataError(f"{where}: {problem}; {fix}, or run without --strict to skip it")
        if self.on_bad_line is not None:
            self.on_bad_line(f"{where}: {problem}; skipped")


def _silent(where: str, problem: str, fix: str = "") -> None:
    return None


def _documents(sources: list[Source], text_unit: str, report: _Reporter) -> Iterator[str]:
    for source in sources:
        if source.format == "text":
            yield from _text_documents(source.path, text_unit, report)
            continue
        for where, record in _records(source, report):
            try:
                if source.format == "chat":
                    text = render_chat(_required_messages(record), add_generation_prompt=False)
                else:
                    text = record_text(record)
            except RecordError as err:
                report(where, str(err))
                continue
            if text.strip():
                yield text


def _conversations(sources: list[Source], report: _Reporter) -> Iterator[list[Message]]:
    for source in sources:
        for where, record in _records(source, report):
            try:
                yield _required_messages(record)
            except RecordError as err:
                report(where, str(err))


def _required_messages(record: Any) -> list[Message]:
    messages = record_messages(record)
    if messages is None:
        raise RecordError("record has no 'conversation' or 'messages' list")
    return messages


def _text_documents(path: Path, text_unit: str, report: _Reporter) -> Iterator[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        report(str(path), f"not valid UTF-8 (byte {err.start})", fix="convert the file to UTF-8")
        return
    if text_unit == "file":
        if text.strip():
            yield text
        return
    for line in text.split("\n"):  # not splitlines(): form feeds inside source files are not line ends
        if line.strip():
            yield line


def _records(source: Source, report: Callable[..., None]) -> Iterator[tuple[str, Any]]:
    if source.format == "hf":
        return _hf_records(source.path)
    return _json_records(source.path, report)


def _json_records(path: Path, report: Callable[..., None]) -> Iterator[tuple[str, Any]]:
    """Yield ``("file:line", record)`` for JSON lines, or ``("file[i]", record)`` for a ``.json`` array."""
    if path.suffix.lower() == ".json" and _starts_with_bracket(path):
        try:
            records = json.loads(path.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            report(str(path), f"malformed JSON array ({err})", fix="fix the file")
            return
        for i, record in enumerate(records):
            yield f"{path}[{i}]", record
        return
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                report(where, f"not valid UTF-8 (byte {err.start})")
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                report(where, f"malformed JSON ({err.msg})")
                continue
            yield where, record


def _starts_with_bracket(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return head[:1] == b"["


def _require_datasets(path: Path) -> None:
    if importlib.util.find_spec("datasets") is None:
        raise DataError(
            f"{path} is a saved Hugging Face dataset, which needs the optional `datasets` package; "
            "pip install 'llmodel[datasets]'"
        )


def _hf_records(path: Path) -> Iterator[tuple[str, Any]]:
    _require_datasets(path)
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        names = ["train"] if "train" in loaded else sorted(loaded)
        splits = [(f"{path}[{name}:", loaded[name]) for name in names]
    else:
        splits = [(f"{path}[", loaded)]
    for prefix, split in splits:
        for i, row in enumerate(split):
            yield f"{prefix}{i}]", row


def _file_format(path: Path, input_format: str) -> str:
    if input_format == "hf":
        raise DataError(f"{path} is a file, but format hf needs a directory written by `save_to_disk`")
    if input_format != "auto":
        return input_format
    if path.suffix.lower() not in JSON_SUFFIXES:
        return "text"
    first = next(iter(_json_records(path, _silent)), None)
    return "chat" if first is not None and has_conversation(first[1]) else "jsonl"


def _is_hf_dataset(path: Path) -> bool:
    return any((path / marker).is_file() for marker in HF_MARKERS)


def _expand_directory(root: Path, input_format: str) -> list[Source]:
    if input_format in ("auto", "hf") and _is_hf_dataset(root):
        return [Source(root, "hf")]
    if input_format == "hf":
        raise DataError(
            f"{root} is not a saved Hugging Face dataset (no dataset_info.json or dataset_dict.json); "
            "write it with `save_to_disk` or choose another input format"
        )
    suffixes = JSON_SUFFIXES if input_format in ("jsonl", "chat") else TEXT_SUFFIXES | JSON_SUFFIXES
    found: list[Source] = []
    for folder, dirnames, filenames in os.walk(root):
        base = Path(folder)
        kept = []
        for name in dirnames:
            if name.startswith(".") or name == "__pycache__":
                continue
            if input_format == "auto" and _is_hf_dataset(base / name):
                found.append(Source(base / name, "hf"))
            else:
                kept.append(name)
        dirnames[:] = sorted(kept)
        for name in filenames:
            path = base / name
            if not name.startswith(".") and path.suffix.lower() in suffixes:
                found.append(Source(path, _file_format(path, input_format)))
    return sorted(found, key=lambda s: s.path.relative_to(root).as_posix())
