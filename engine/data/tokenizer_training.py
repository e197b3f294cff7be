"""A tokenizer trained on files of any input format (text, JSONL, chat, a Hugging Face dataset folder)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.data.readers import iter_documents
from engine.tokenizer import Tokenizer
from engine.tokenizer.sentencepiece_tokenizer import DEFAULT_VOCAB_SIZE
from engine.tokenizer.trainer import CHARACTER_COVERAGE, INPUT_SENTENCE_SIZE, Log, Progress


def train_tokenizer(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    output_dir: Path | str,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    *,
    input_format: str = "auto",
    character_coverage: float = CHARACTER_COVERAGE,
    max_sentence_length: int = 16384,
    input_sentence_size: int = INPUT_SENTENCE_SIZE,
    num_threads: int | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
) -> Tokenizer:
    """Train on the documents of ``inputs`` (a path or several), save into ``output_dir`` and return it."""
    paths = [Path(inputs)] if isinstance(inputs, str | os.PathLike) else [Path(p) for p in inputs]
    passes = 0

    def documents() -> Iterator[str]:
        nonlocal passes
        passes += 1
        # Bad lines are reported on the first pass only; later passes re-read the same files.
        return iter_documents(paths, input_format=input_format, on_bad_line=log if passes == 1 else None)

    return Tokenizer.train(
        documents,
        output_dir,
        vocab_size,
        sources=paths,
        character_coverage=character_coverage,
        max_sentence_length=max_sentence_length,
        input_sentence_size=input_sentence_size,
        num_threads=num_threads,
        progress=progress,
        log=log,
    )
