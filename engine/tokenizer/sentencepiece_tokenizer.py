"""The LLModel tokenizer: a SentencePiece BPE model with fixed special ids and an exact round trip."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sentencepiece as spm

from engine.errors import DataError, LLModelError, VocabMismatchError
from engine.fileio import atomic_dir
from engine.tokenizer.chat_template import render_chat
from engine.tokenizer.trainer import (
    BOS_ID,
    CHARACTER_COVERAGE,
    EOS_ID,
    INPUT_SENTENCE_SIZE,
    MASK_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Log,
    Progress,
    train_bpe,
)

__all__ = [
    "BOS_ID",
    "DEFAULT_VOCAB_SIZE",
    "EOS_ID",
    "MASK_ID",
    "MODEL_FILE",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "Tokenizer",
]

DEFAULT_VOCAB_SIZE = 32000
MODEL_FILE = "tokenizer.model"
VOCAB_FILE = "tokenizer.vocab"
META_FILE = "meta.json"
_SKIPPED_ON_DECODE = frozenset({PAD_ID, BOS_ID, EOS_ID, MASK_ID})
_SPECIAL_IDS = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
_SPECIAL_PATTERN = re.compile("(" + "|".join(re.escape(token) for token in SPECIAL_TOKENS) + ")")


class Tokenizer:
    """SentencePiece BPE with ``<pad> <unk> <s> </s> <mask>`` at ids 0..4."""

    def __init__(
        self, model_proto: bytes, *, meta: Mapping[str, Any] | None = None, path: Path | None = None
    ):
        self._model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self._model_proto)
        self.meta: dict[str, Any] = dict(meta or {})
        self.path = path
        for i, token in enumerate(SPECIAL_TOKENS):
            if self._sp.id_to_piece(i) != token:
                where = path or "this model"
                raise LLModelError(
                    f"{where} is not an LLModel tokenizer (id {i} is {self._sp.id_to_piece(i)!r}, "
                    f"expected {token!r}); train one with `llmodel tokenizer train`"
                )

    @classmethod
    def train(
        cls,
        documents: Callable[[], Iterable[str]],
        output_dir: Path | str,
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        *,
        sources: Sequence[str | os.PathLike[str]],
        character_coverage: float = CHARACTER_COVERAGE,
        max_sentence_length: int = 16384,
        input_sentence_size: int = INPUT_SENTENCE_SIZE,
        num_threads: int | None = None,
        progress: Progress | None = None,
        log: Log | None = None,
    ) -> Tokenizer:
        """Train on the text of ``documents()`` (called once per pass), read from ``sources``; save into
        ``output_dir`` and return the tokenizer. Reading files of every format is ``engine.data``'s
        ``train_tokenizer``."""
        paths = [Path(p) for p in sources]
        trained = train_bpe(
            documents,
            vocab_size,
            source_names=", ".join(str(p) for p in paths) or "no inputs",
            character_coverage=character_coverage,
            max_sentence_length=max_sentence_length,
            input_sentence_size=input_sentence_size,
            num_threads=num_threads,
            progress=progress,
            log=log,
        )
        meta = {
            "sources": [p.name for p in paths],
            "documents": trained.documents,
            "characters": trained.characters,
            "sentences": trained.sentences,
            "requested_vocab_size": vocab_size,
            "character_coverage": character_coverage,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        tokenizer = cls(trained.model_proto, meta=meta)
        tokenizer.save(output_dir)
        return tokenizer

    @classmethod
    def load(cls, path: Path | str) -> Tokenizer:
        """Load from a tokenizer directory (holding ``tokenizer.model``) or from the ``.model`` file itself."""
        path = Path(path)
        model_file = path / MODEL_FILE if path.is_dir() else path
        if not model_file.is_file():
            raise DataError(
                f"no tokenizer at {path} (expected {model_file}); train one with `llmodel tokenizer train`"
            )
        meta_file = model_file.parent / META_FILE
        meta: dict[str, Any] = {}
        if meta_file.is_file():
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
            except ValueError as err:
                raise DataError(
                    f"{meta_file}: unreadable tokenizer metadata ({err}); delete it or retrain"
                ) from None
        try:
            return cls(model_file.read_bytes(), meta=meta, path=path)
        except RuntimeError as err:
            raise DataError(
                f"{model_file}: not a SentencePiece model ({err}); retrain the tokenizer"
            ) from None

    def save(self, output_dir: Path | str) -> None:
        """Write ``tokenizer.model``, a readable ``tokenizer.vocab`` and ``meta.json`` as one directory, atomically."""
        output_dir = Path(output_dir)
        self.meta.update(
            {
                "vocab_size": self.vocab_size,
                "model_type": "bpe",
                "special_tokens": {token: i for i, token in enumerate(SPECIAL_TOKENS)},
                "sha256": self.sha256,
            }
        )
        with atomic_dir(output_dir) as tmp:
            (tmp / MODEL_FILE).write_bytes(self._model_proto)
            vocab = "".join(f"{_escape(p)}\t{s:g}\n" for p, s in self._pieces())
            (tmp / VOCAB_FILE).write_text(vocab, encoding="utf-8")
            (tmp / META_FILE).write_text(json.dumps(self.meta, indent=2) + "\n", encoding="utf-8")
        self.path = output_dir

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def sha256(self) -> str:
        """Hex digest of ``tokenizer.model``; datasets record it to prove which tokenizer made them."""
        return hashlib.sha256(self._model_proto).hexdigest()

    @property
    def model_proto(self) -> bytes:
        return self._model_proto

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    @property
    def mask_id(self) -> int:
        return MASK_ID

    def encode(
        self, text: str, *, add_bos: bool = False, add_eos: bool = False, parse_special: bool = False
    ) -> list[int]:
        """Token ids of ``text``; any UTF-8 round-trips through :meth:`decode`.

        With ``parse_special``, special tokens written in the text (``<s>``, ``</s>``, ...) become their ids, as
        Hugging Face tokenizers do for API clients; otherwise they are ordinary text (training data).
        """
        try:
            if parse_special and any(token in text for token in SPECIAL_TOKENS):
                ids = [BOS_ID] if add_bos else []
                for part in _SPECIAL_PATTERN.split(text):
                    if part in _SPECIAL_IDS:
                        ids.append(_SPECIAL_IDS[part])
                    elif part:
                        ids.extend(self._sp.encode(part))
                return ids + ([EOS_ID] if add_eos else [])
            return self._sp.encode(text, add_bos=add_bos, add_eos=add_eos)
        except RuntimeError:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # what SentencePiece's binding reports as a failed cast
                raise DataError(
                    "the text is not valid Unicode (it holds a lone surrogate); fix its encoding"
                ) from None
            raise

    def encode_batch(
        self, texts: Sequence[str], *, add_bos: bool = False, add_eos: bool = False, num_threads: int = -1
    ) -> list[list[int]]:
        """Encode many texts at once (``num_threads=-1`` lets SentencePiece use every core)."""
        return self._sp.encode(list(texts), add_bos=add_bos, add_eos=add_eos, num_threads=num_threads)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, skipping ``<pad> <s> </s> <mask>``."""
        kept = [int(i) for i in ids if int(i) not in _SKIPPED_ON_DECODE]
        for i in kept:
            self._check_id(i)
        return self._sp.decode(kept)

    def id_to_piece(self, i: int) -> str:
        self._check_id(int(i))
        return self._sp.id_to_piece(int(i))

    def piece_to_id(self, piece: str) -> int:
        """Id of ``piece``, or ``unk_id`` when the vocabulary lacks it."""
        return self._sp.piece_to_id(piece)

    def apply_chat_template(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """Render messages with :mod:`engine.tokenizer.chat_template` (the format chat SFT data uses)."""
        return render_chat(messages, add_generation_prompt=add_generation_prompt)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, path={str(self.path) if self.path else None!r})"

    def _check_id(self, i: int) -> None:
        if not 0 <= i < self.vocab_size:
            raise VocabMismatchError(
                f"token id {i} is outside the tokenizer's vocabulary of {self.vocab_size}; "
                "use the tokenizer the model was trained with"
            )

    def _pieces(self) -> list[tuple[str, float]]:
        return [(self._sp.id_to_piece(i), self._sp.get_score(i)) for i in range(self.vocab_size)]


def _escape(piece: str) -> str:
    # tokenizer.vocab is for reading only; escape the whitespace pieces that would break its lines.
    return piece.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
