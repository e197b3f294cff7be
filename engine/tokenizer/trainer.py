"""SentencePiece BPE training over documents: line sampling, settings that keep code exact, vocab retry."""

from __future__ import annotations

import io
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sentencepiece as spm

from engine.errors import ConfigError, DataError
from engine.tokenizer.chat_template import ROLE_MARKERS

Progress = Callable[[int, int], None]
Log = Callable[[str], None]

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<mask>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID = 0, 1, 2, 3, 4
NEWLINE_PIECE = "\n"
# <mask>, the chat role markers and "\n" are whole pieces right after the control ids; "\n" gets its own piece
# because SentencePiece would otherwise only reach it through the <0x0A> byte fallback.
USER_DEFINED_SYMBOLS = ("<mask>", *ROLE_MARKERS.values(), NEWLINE_PIECE)

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_LOW = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")
_SAMPLING_SEED = 1337
CHARACTER_COVERAGE = 0.9995  # share of characters covered by pieces; the rarest fall back to bytes
INPUT_SENTENCE_SIZE = 2_000_000  # lines sampled for training at most


@dataclass(frozen=True)
class TrainedModel:
    """A trained model proto and what went into it."""

    model_proto: bytes
    vocab_size: int
    documents: int
    characters: int
    sentences: int


def split_sentences(text: str, max_bytes: int) -> Iterator[str]:
    """Yield the non-blank lines of ``text`` (newline kept), long ones cut to at most ``max_bytes`` UTF-8 bytes."""
    for line in text.splitlines(keepends=True):
        if not line.strip():
            continue
        if len(line) * 4 <= max_bytes or len(line.encode("utf-8")) <= max_bytes:
            yield line
            continue
        piece: list[str] = []
        size = 0
        for char in line:
            width = len(char.encode("utf-8"))
            if size + width > max_bytes:
                yield "".join(piece)
                piece, size = [], 0
            piece.append(char)
            size += width
        if piece:
            yield "".join(piece)


def train_bpe(
    documents: Callable[[], Iterable[str]],
    vocab_size: int,
    *,
    source_names: str,
    character_coverage: float = CHARACTER_COVERAGE,
    max_sentence_length: int = 16384,
    input_sentence_size: int = INPUT_SENTENCE_SIZE,
    num_threads: int | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
) -> TrainedModel:
    """Train a BPE model on the lines of ``documents()`` (called once per pass) and return its proto."""
    n_documents, n_sentences = _count(documents, max_sentence_length)
    if n_sentences == 0:
        raise DataError(f"no text found in {source_names}; check the paths and the input format")
    keep = min(1.0, input_sentence_size / n_sentences)
    expected = min(n_sentences, input_sentence_size)
    if keep < 1.0 and log:
        log(f"sampling about {expected:,} of {n_sentences:,} lines (input_sentence_size)")
    while True:
        sampled = _SampleCounter()
        writer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=sampled.iterate(documents, max_sentence_length, keep, expected, progress),
                model_writer=writer,
                **_trainer_options(vocab_size, character_coverage, max_sentence_length, num_threads),
            )
        except RuntimeError as err:
            too_high = _TOO_HIGH.search(str(err))
            if too_high:
                vocab_size = int(too_high.group(2))
                if log:
                    log(
                        f"vocab_size {too_high.group(1)} is too large for this corpus; "
                        f"retraining with {vocab_size}, the largest SentencePiece allows"
                    )
                continue
            too_low = _TOO_LOW.search(str(err))
            if too_low:
                raise ConfigError(
                    f"vocab_size {too_low.group(1)} is too small for this corpus, which needs at least "
                    f"{too_low.group(2)} pieces for its characters and bytes; raise vocab_size or lower character_coverage"
                ) from None
            raise
        if progress:
            progress(expected, expected)
        return TrainedModel(writer.getvalue(), vocab_size, n_documents, sampled.characters, sampled.sentences)


def _trainer_options(
    vocab_size: int, character_coverage: float, max_sentence_length: int, num_threads: int | None
) -> dict[str, Any]:
    # identity normalisation, no dummy prefix and kept whitespace make decode(encode(s)) == s for source code.
    return {
        "model_type": "bpe",
        "vocab_size": vocab_size,
        "character_coverage": character_coverage,
        "max_sentence_length": max_sentence_length,
        "num_threads": num_threads or os.cpu_count() or 1,
        "byte_fallback": True,
        "pad_id": PAD_ID,
        "unk_id": UNK_ID,
        "bos_id": BOS_ID,
        "eos_id": EOS_ID,
        "pad_piece": SPECIAL_TOKENS[PAD_ID],
        "unk_piece": SPECIAL_TOKENS[UNK_ID],
        "bos_piece": SPECIAL_TOKENS[BOS_ID],
        "eos_piece": SPECIAL_TOKENS[EOS_ID],
        "user_defined_symbols": list(USER_DEFINED_SYMBOLS),
        "normalization_rule_name": "identity",
        "remove_extra_whitespaces": False,
        "add_dummy_prefix": False,
        "split_digits": True,
        "allow_whitespace_only_pieces": True,
        "minloglevel": 2,
    }


def _count(documents: Callable[[], Iterable[str]], max_bytes: int) -> tuple[int, int]:
    n_documents = n_sentences = 0
    for text in documents():
        n_documents += 1
        n_sentences += sum(1 for _ in split_sentences(text, max_bytes))
    return n_documents, n_sentences


class _SampleCounter:
    """Feeds a deterministic Bernoulli sample of lines to SentencePiece and counts what it fed."""

    def __init__(self) -> None:
        self.sentences = 0
        self.characters = 0

    def iterate(
        self,
        documents: Callable[[], Iterable[str]],
        max_bytes: int,
        keep: float,
        limit: int,
        progress: Progress | None,
    ) -> Iterator[str]:
        rng = random.Random(_SAMPLING_SEED)
        every = max(1, limit // 100)
        for text in documents():
            for sentence in split_sentences(text, max_bytes):
                if keep < 1.0 and rng.random() >= keep:
                    continue
                self.sentences += 1
                self.characters += len(sentence)
                yield sentence
                if progress and self.sentences % every == 0:
                    progress(self.sentences, limit)
                if self.sentences >= limit:
                    return
