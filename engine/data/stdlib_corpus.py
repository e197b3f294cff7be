"""The embedded default data, built from the running interpreter's standard library.

Nothing is downloaded: the corpus is the stdlib's ``.py`` sources (about 12 MB of code, docstrings and comments)
and the chat set pairs pydoc-style questions with the first paragraph of each public docstring. Files are read
in sorted order, so one interpreter always builds the same bytes.
"""

from __future__ import annotations

import ast
import json
import os
import sysconfig
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from engine.fileio import atomic_path

EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
_MIN_ANSWER_CHARS = 12


@dataclass(frozen=True)
class CorpusInfo:
    """A written corpus: one JSONL record per source file."""

    path: Path
    files: int
    bytes: int


@dataclass(frozen=True)
class ChatSetInfo:
    """A written chat set: one JSONL conversation per record."""

    path: Path
    items: int


@dataclass(frozen=True)
class InstructionSetInfo:
    """A written instruction set: Alpaca-style records split into training and held-out files."""

    train_path: Path
    heldout_path: Path
    train_items: int
    heldout_items: int


HELDOUT_FRACTION = 0.05


def stdlib_root() -> Path:
    """The running interpreter's standard library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def iter_stdlib_sources(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(relative path, text)`` for the stdlib's non-test ``.py`` files that decode as UTF-8, sorted."""
    root = root or stdlib_root()
    found: list[str] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS and not d.startswith(".")]
        base = Path(folder).relative_to(root)
        found.extend((base / name).as_posix() for name in filenames if name.endswith(".py"))
    for relative in sorted(found):
        try:
            text = (root / relative).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        yield relative, text


def build_stdlib_corpus(output_path: str | Path, *, max_bytes: int | None = None) -> CorpusInfo:
    """Write the stdlib corpus as JSONL ``{"text", "source"}`` records, optionally only its first ``max_bytes``.

    ``bytes`` counts the UTF-8 text; the file that crosses ``max_bytes`` is cut at a line end.
    """
    output_path = Path(output_path)
    files = written = 0
    with atomic_path(output_path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for relative, text in iter_stdlib_sources():
            if not text.strip():
                continue
            size = len(text.encode("utf-8"))
            if max_bytes is not None and written + size > max_bytes:
                head = _head_lines(text, max_bytes - written)
                if head:
                    _write_record(fh, {"text": head, "source": relative})
                    files += 1
                    written += len(head.encode("utf-8"))
                break
            _write_record(fh, {"text": text, "source": relative})
            files += 1
            written += size
    return CorpusInfo(output_path, files, written)


def build_stdlib_chat_set(output_path: str | Path, max_items: int | None = None) -> ChatSetInfo:
    """Write pydoc-style chat pairs ("What does json.dumps do?" → docstring summary) as chat JSONL.

    Sources are parsed with ``ast``, never imported, so building it runs no stdlib code.
    """
    output_path = Path(output_path)
    items = 0
    with atomic_path(output_path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for relative, text in iter_stdlib_sources():
            module = _public_module_name(relative)
            if module is None:
                continue
            for question, answer in _doc_pairs(module, text):
                if max_items is not None and items >= max_items:
                    return ChatSetInfo(output_path, items)
                conversation = [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
                _write_record(fh, {"conversation": conversation, "source": relative})
                items += 1
    return ChatSetInfo(output_path, items)


def build_stdlib_instructions(
    directory: str | Path, *, max_items: int | None = None, heldout_fraction: float = HELDOUT_FRACTION
) -> InstructionSetInfo:
    """Write the embedded instruction set: a public stdlib function's docstring summary as the instruction, its
    signature as the response (Alpaca ``instruction``/``output`` records), split by content hash into
    ``instructions.train.jsonl`` and ``instructions.heldout.jsonl`` (what evaluation scores).

    Parsed with ``ast``, never imported; the same interpreter always writes the same files.
    """
    directory = Path(directory)
    train, heldout = stdlib_instruction_split(max_items, heldout_fraction)
    paths = (directory / "instructions.train.jsonl", directory / "instructions.heldout.jsonl")
    for path, records in zip(paths, (train, heldout), strict=True):
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for record in records:
                _write_record(fh, record)
    return InstructionSetInfo(paths[0], paths[1], len(train), len(heldout))


EMBEDDED_INSTRUCTIONS = Path("datasets") / "stdlib-instructions"  # where a workspace keeps the set


def workspace_instructions(workspace: Path, log: Callable[[str], None] = lambda _: None) -> Path:
    """The embedded instruction set's training file in ``workspace``, built there once (fine-tuning's default data)."""
    directory = workspace / EMBEDDED_INSTRUCTIONS
    path = directory / "instructions.train.jsonl"
    if not path.is_file():
        built = build_stdlib_instructions(directory)
        log(
            f"built the embedded instruction set: {built.train_items:,} training and {built.heldout_items:,} held-out pairs"
        )
    return path


def stdlib_instruction_split(
    max_items: int | None = None, heldout_fraction: float = HELDOUT_FRACTION
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The instruction set's (training, held-out) records, split by a hash of each instruction."""
    import numpy as np

    from engine.data.split import SPLIT_SEED, choose_validation, document_hash

    records = list(_instruction_records(max_items))
    hashes = np.array(
        [document_hash(record["instruction"], SPLIT_SEED) for record in records], dtype=np.uint64
    )
    heldout = choose_validation(hashes, heldout_fraction)
    return (
        [r for r, h in zip(records, heldout, strict=True) if not h],
        [r for r, h in zip(records, heldout, strict=True) if h],
    )


def _instruction_records(max_items: int | None) -> Iterator[dict[str, str]]:
    seen: set[str] = set()
    for relative, text in iter_stdlib_sources():
        module = _public_module_name(relative)
        if module is None:
            continue
        for summary, name, signature in _signature_pairs(text):
            if summary in seen:  # the same docstring twice would leak across the split
                continue
            seen.add(summary)
            yield {
                "instruction": f"Write the signature of the {module} function described here: {summary}",
                "input": "",
                "output": signature,
                "source": relative,
                "module": module,
                "name": name,
                "summary": summary,
            }
            if max_items is not None and len(seen) >= max_items:
                return


def _signature_pairs(source: str) -> Iterator[tuple[str, str, str]]:
    """(docstring summary, name, ``def name(args):``) of each public module-level function."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            summary = _summary(node)
            if summary:
                prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
                yield summary, node.name, f"{prefix} {node.name}({ast.unparse(node.args)}):"


def _write_record(fh: TextIO, record: Mapping[str, object]) -> None:
    fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _head_lines(text: str, budget: int) -> str:
    head = text.encode("utf-8")[: max(budget, 0)].decode("utf-8", errors="ignore")
    return head[: head.rfind("\n") + 1]


def _public_module_name(relative: str) -> str | None:
    parts = relative.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or any(part.startswith("_") for part in parts):
        return None
    return ".".join(parts)


def _doc_pairs(module: str, source: str) -> Iterator[tuple[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old escapes in some stdlib files warn on parse
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return
    summary = _summary(tree)
    if summary:
        yield f"What is the {module} module for?", summary
    seen: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.name.startswith("_") or node.name in seen:
            continue
        seen.add(node.name)
        name = f"{module}.{node.name}"
        summary = _summary(node)
        if isinstance(node, ast.ClassDef):
            if summary:
                yield f"What is {name}?", summary
            yield from _method_pairs(name, node)
        elif summary:
            yield f"What does {name} do?", summary


def _method_pairs(class_name: str, node: ast.ClassDef) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and not item.name.startswith("_"):
            summary = _summary(item)
            if summary and item.name not in seen:
                seen.add(item.name)
                yield f"What does {class_name}.{item.name} do?", summary


def _summary(node: ast.AsyncFunctionDef | ast.FunctionDef | ast.ClassDef | ast.Module) -> str | None:
    """The docstring's first paragraph on one line, or None when it is missing or too short to teach."""
    doc = ast.get_docstring(node, clean=True)
    if not doc:
        return None
    paragraph = doc.strip().split("\n\n", 1)[0]
    summary = " ".join(line.strip() for line in paragraph.splitlines())
    return summary if len(summary) >= _MIN_ANSWER_CHARS else None
