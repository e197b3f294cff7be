"""Supervised fine-tuning examples: conversations rendered with the one chat template, loss on the assistant.

A conversation becomes the token ids the model server would see plus labels: the assistant's replies (their
text, the line end, and what ends them — the next turn's role marker, or ``</s>`` after the last reply) are
targets; everything else is ``-100`` unless ``train_on_inputs``. The prompt part is encoded exactly as the
server encodes a chat prompt (``<|role|>`` blocks up to ``<|assistant|>\\n`` as one string), and each reply on
its own, as the model will produce it. Plain text is continued pretraining: every token is a target.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.readers import iter_sft_records
from engine.data.records import Message
from engine.data.split import SPLIT_SEED, choose_validation, document_hash
from engine.errors import DataError
from engine.model.config import ModelConfig
from engine.tokenizer import GENERATION_PROMPT, Tokenizer, render_chat

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One training sequence: token ids and, position by position, the label (the id, or -100)."""

    ids: list[int]
    labels: list[int]

    @property
    def targets(self) -> int:
        """Tokens whose prediction is trained (the first position has no context and never counts)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)


@dataclass
class SFTData:
    """Encoded examples split into train and validation, with what was cut or left out along the way."""

    train: list[Example]
    val: list[Example]
    read: int = 0
    truncated: int = 0
    without_targets: int = 0
    cut_off: int = 0  # of those without targets, how many lost them to the cut
    bad_records: list[str] = field(default_factory=list)
    sample_prompt: str | None = None  # a held-out conversation's prompt, for samples during training

    def summary(self, seq_len: int) -> str:
        parts = [
            f"{len(self.train):,} training and {len(self.val):,} validation examples from {self.read:,} read"
        ]
        if self.truncated:
            parts.append(f"{self.truncated:,} longer than the context ({seq_len + 1} tokens) were cut to fit")
        if self.without_targets:
            parts.append(
                f"{self.without_targets:,} had no assistant tokens left to train on and were dropped"
            )
        if self.bad_records:
            parts.append(f"{len(self.bad_records):,} malformed records were skipped")
        return "; ".join(parts)


def encode_conversation(
    messages: Sequence[Message], tokenizer: Tokenizer, config: ModelConfig, *, train_on_inputs: bool = False
) -> Example:
    """The conversation's ids after the model's BOS, labelled on every assistant turn (or on everything)."""
    ids, labels = [config.bos_token_id], [IGNORE]
    pending = ""  # text of non-assistant turns not yet encoded
    label_next_marker = False  # a reply ends where the next turn's marker begins: that token is a target

    def flush(text: str) -> None:
        nonlocal label_next_marker
        part = tokenizer.encode(text)
        ids.extend(part)
        marks = list(part) if train_on_inputs else [IGNORE] * len(part)
        if label_next_marker and part:
            marks[0] = part[0]
        labels.extend(marks)
        label_next_marker = False

    for message in messages:
        if message["role"] != "assistant":
            pending += render_chat([message], add_generation_prompt=False)
            continue
        flush(pending + GENERATION_PROMPT)
        pending = ""
        reply = tokenizer.encode(message["content"] + "\n")
        ids.extend(reply)
        labels.extend(reply)
        label_next_marker = True
    if pending:
        flush(pending)
    elif messages and messages[-1]["role"] == "assistant":
        ids.append(config.eos_token_id)
        labels.append(config.eos_token_id)
    return Example(ids, labels)


def chat_prompt(messages: Sequence[Message]) -> str | None:
    """What the model is asked before the conversation's first reply: the turns before it, then ``<|assistant|>``."""
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            return render_chat(messages[:index], add_generation_prompt=True) if index else None
    return None


def encode_text(text: str, tokenizer: Tokenizer, config: ModelConfig) -> Example:
    """Plain text for continued pretraining: BOS, the text, EOS, every token a target."""
    ids = [config.bos_token_id, *tokenizer.encode(text), config.eos_token_id]
    return Example(ids, list(ids))


def load_sft_data(
    paths: Iterable[str | Path],
    tokenizer: Tokenizer,
    config: ModelConfig,
    *,
    seq_len: int,
    input_format: str = "auto",
    train_on_inputs: bool = False,
    val_fraction: float = 0.05,
    val_paths: Iterable[str | Path] = (),
    strict: bool = False,
    log: Callable[[str], None] | None = None,
) -> SFTData:
    """Read, encode and split the examples of ``paths`` (validation: ``val_paths``, else a held-out share).

    An example longer than ``seq_len + 1`` tokens is cut to fit and counted; one with nothing left to train on
    is dropped and counted; malformed records are reported with file and line.
    """
    paths = list(paths)
    data = SFTData([], [])

    def bad(message: str) -> None:
        data.bad_records.append(message)
        if log:
            log(message)

    def encoded(sources: Iterable[str | Path]) -> list[tuple[str | None, Example]]:
        found = []
        for _, record in iter_sft_records(
            list(sources), input_format=input_format, strict=strict, on_bad_line=bad
        ):
            data.read += 1
            prompt = None
            if isinstance(record, str):
                example = encode_text(record, tokenizer, config)
            else:
                example = encode_conversation(record, tokenizer, config, train_on_inputs=train_on_inputs)
                prompt = chat_prompt(record)
            had_targets = example.targets > 0
            if len(example.ids) > seq_len + 1:
                example = Example(example.ids[: seq_len + 1], example.labels[: seq_len + 1])
                data.truncated += 1
            if example.targets == 0:
                data.without_targets += 1
                data.cut_off += had_targets
                continue
            found.append((prompt, example))
        return found

    train = encoded(paths)
    val_sources = list(val_paths)
    if val_sources:
        val = encoded(val_sources)
    else:
        hashes = np.array([document_hash(json.dumps(e.ids), SPLIT_SEED) for _, e in train], dtype=np.uint64)
        is_val = (
            choose_validation(hashes, val_fraction) if len(train) > 1 else np.zeros(len(train), dtype=bool)
        )
        val = [pair for pair, v in zip(train, is_val, strict=True) if v]
        train = [pair for pair, v in zip(train, is_val, strict=True) if not v]
    data.train, data.val = [e for _, e in train], [e for _, e in val]
    data.sample_prompt = next((p for p, _ in [*val, *train] if p), None)
    if not data.train:
        names = ", ".join(str(p) for p in paths)
        if data.cut_off:
            raise DataError(
                f"every example's assistant reply in {names} lies beyond the context of {seq_len + 1} tokens; "
                "raise --seq-len (up to the model's max_len) or shorten the prompts"
            )
        if data.without_targets:
            raise DataError(
                f"no example in {names} has an assistant turn to train on; give conversations with assistant "
                "replies, or --train-on-inputs to train on every token"
            )
        raise DataError(f"no training examples found in {names}; check the paths and the format")
    if log:
        log(data.summary(seq_len))
    return data
