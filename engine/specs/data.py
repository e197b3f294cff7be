"""Tokenizer and dataset jobs: train a SentencePiece tokenizer, tokenize a corpus into a binary dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.data.split import SPLIT_SEED, VAL_FRACTION
from engine.specs.base import JobSpec, absolute, absolute_all, require_paths
from engine.tokenizer.sentencepiece_tokenizer import DEFAULT_VOCAB_SIZE
from engine.tokenizer.trainer import CHARACTER_COVERAGE, INPUT_SENTENCE_SIZE


@dataclass
class TokenizerSpec(JobSpec):
    """``llmodel tokenizer train``: a SentencePiece BPE tokenizer of ``inputs`` saved to ``output``."""

    kind = "tokenizer"
    inputs: list[str]
    output: str
    vocab_size: int = DEFAULT_VOCAB_SIZE
    input_format: str = "auto"
    character_coverage: float = CHARACTER_COVERAGE
    input_sentence_size: int = INPUT_SENTENCE_SIZE

    def check(self) -> None:
        require_paths(f"{self.kind} spec: inputs", self.inputs)


@dataclass
class DatasetSpec(JobSpec):
    """``llmodel data prepare``: ``inputs`` tokenized with ``tokenizer_path`` into the dataset ``output``."""

    kind = "dataset"
    inputs: list[str]
    tokenizer_path: str
    output: str
    val_fraction: float = VAL_FRACTION
    seed: int = SPLIT_SEED
    num_workers: int | None = None
    input_format: str = "auto"
    text_unit: str = "file"
    strict: bool = False

    def check(self) -> None:
        require_paths(f"{self.kind} spec: inputs", self.inputs)
        require_paths(f"{self.kind} spec: tokenizer_path", self.tokenizer_path)


def tokenizer_spec(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    input_format: str = "auto",
    character_coverage: float = CHARACTER_COVERAGE,
    input_sentence_size: int = INPUT_SENTENCE_SIZE,
) -> TokenizerSpec:
    """The tokenizer job of the CLI's flags or the workbench's form; missing inputs fail here."""
    spec = TokenizerSpec(
        inputs=absolute_all(inputs),
        output=str(absolute(output)),
        vocab_size=vocab_size,
        input_format=input_format,
        character_coverage=character_coverage,
        input_sentence_size=input_sentence_size,
    )
    spec.check()
    return spec


def dataset_spec(
    inputs: Sequence[str | Path],
    tokenizer_path: str | Path,
    output: str | Path,
    *,
    val_fraction: float = VAL_FRACTION,
    seed: int = SPLIT_SEED,
    num_workers: int | None = None,
    input_format: str = "auto",
    text_unit: str = "file",
    strict: bool = False,
) -> DatasetSpec:
    """The dataset job of the CLI's flags or the workbench's form; missing inputs or tokenizer fail here."""
    spec = DatasetSpec(
        inputs=absolute_all(inputs),
        tokenizer_path=str(absolute(tokenizer_path)),
        output=str(absolute(output)),
        val_fraction=val_fraction,
        seed=seed,
        num_workers=num_workers,
        input_format=input_format,
        text_unit=text_unit,
        strict=strict,
    )
    spec.check()
    return spec
