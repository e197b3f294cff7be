"""The on-disk token format: ``<prefix>.bin`` ids plus ``<prefix>.idx`` document offsets.

``.bin`` is the raw id stream (uint16 when the vocab fits, else uint32), each document followed by ``</s>``, so
it can be memory-mapped and sampled as one array. ``.idx`` is a 16-byte header (magic, version, dtype code)
followed by ``num_documents + 1`` little-endian int64 offsets into ``.bin``, counted in tokens.
"""

from __future__ import annotations

import struct
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

from engine.errors import DataError
from engine.fileio import atomic_path
from engine.tokenizer.trainer import EOS_ID

MAGIC = b"LLMDIDX\x00"
VERSION = 1
_HEADER = struct.Struct("<8sII")
_DTYPES: dict[int, np.dtype] = {1: np.dtype("<u2"), 2: np.dtype("<u4")}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}
_OFFSET_DTYPE = np.dtype("<i8")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest id dtype for ``vocab_size``: uint16 up to 65536 ids, else uint32."""
    return _DTYPES[1] if vocab_size <= 1 << 16 else _DTYPES[2]


def split_prefix(prefix: str | Path) -> Path:
    """Accept ``data/train``, ``data/train.bin`` or ``data/train.idx`` and return ``data/train``."""
    prefix = Path(prefix)
    return prefix.with_suffix("") if prefix.suffix in (".bin", ".idx") else prefix


class BinaryDatasetWriter:
    """Append documents to ``<prefix>.bin/.idx``; both files appear (atomically) only on a clean close."""

    def __init__(self, prefix: str | Path, vocab_size: int, *, eos_id: int = EOS_ID):
        self.prefix = split_prefix(prefix)
        self.vocab_size = vocab_size
        self.eos_id = eos_id
        self.dtype = token_dtype(vocab_size)
        self.num_tokens = 0
        self._offsets = [0]
        self._stack = ExitStack()
        # Entered first so it is renamed last: a new .idx never points into an old .bin.
        self._idx_tmp = self._stack.enter_context(atomic_path(self.prefix.with_suffix(".idx")))
        self._bin_tmp = self._stack.enter_context(atomic_path(self.prefix.with_suffix(".bin")))
        self._bin: BinaryIO | None = open(self._bin_tmp, "wb")  # noqa: SIM115 - closed in close()/abort()

    @property
    def num_documents(self) -> int:
        return len(self._offsets) - 1

    def add_document(self, ids: np.ndarray | list[int]) -> None:
        """Append one document; ``</s>`` is added after it."""
        if self._bin is None:
            raise ValueError("writer is closed")
        tokens = np.asarray(ids)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"token id outside 0..{self.vocab_size - 1} in document {self.num_documents}")
        out = np.empty(tokens.size + 1, dtype=self.dtype)
        out[:-1] = tokens
        out[-1] = self.eos_id
        self._bin.write(out.tobytes())
        self.num_tokens += out.size
        self._offsets.append(self.num_tokens)

    def close(self) -> None:
        """Write the index and move both files into place."""
        if self._bin is None:
            return
        self._bin.close()
        self._bin = None
        with open(self._idx_tmp, "wb") as fh:
            fh.write(_HEADER.pack(MAGIC, VERSION, _CODES[self.dtype]))
            fh.write(np.asarray(self._offsets, dtype=_OFFSET_DTYPE).tobytes())
        self._stack.close()

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop the temporary files; existing files at the prefix stay as they were."""
        if self._bin is not None:
            self._bin.close()
            self._bin = None
        exc = exc or RuntimeError("writer aborted")
        self._stack.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> BinaryDatasetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc)


class TokenDataset:
    """A memory-mapped ``<prefix>.bin/.idx`` pair: ``tokens`` is the whole id stream, documents end in ``</s>``."""

    def __init__(self, prefix: str | Path):
        self.prefix = split_prefix(prefix)
        bin_path, idx_path = self.prefix.with_suffix(".bin"), self.prefix.with_suffix(".idx")
        for path in (bin_path, idx_path):
            if not path.is_file():
                raise DataError(f"{path}: missing; re-run `llmodel data prepare`")
        self.dtype, self.offsets = _read_index(idx_path)
        expected = int(self.offsets[-1]) * self.dtype.itemsize
        actual = bin_path.stat().st_size
        if actual != expected:
            raise DataError(
                f"{bin_path}: {actual} bytes but its index expects {expected} (truncated or from another run); "
                "re-run `llmodel data prepare`"
            )
        if expected == 0:
            self.tokens: np.ndarray = np.empty(0, dtype=self.dtype)
        else:
            self.tokens = np.memmap(bin_path, dtype=self.dtype, mode="r")

    @property
    def num_tokens(self) -> int:
        """Tokens in the stream, the ``</s>`` after each document included."""
        return int(self.offsets[-1])

    @property
    def num_documents(self) -> int:
        return len(self.offsets) - 1

    def __len__(self) -> int:
        return self.num_documents

    def document(self, i: int) -> np.ndarray:
        """The ids of document ``i``, without its trailing ``</s>``."""
        if not -self.num_documents <= i < self.num_documents:
            raise IndexError(f"document {i} out of range ({self.num_documents} documents)")
        i %= self.num_documents
        return self.tokens[self.offsets[i] : self.offsets[i + 1] - 1]

    def __repr__(self) -> str:
        return f"TokenDataset({str(self.prefix)!r}, documents={self.num_documents}, tokens={self.num_tokens})"


def _read_index(path: Path) -> tuple[np.dtype, np.ndarray]:
    raw = path.read_bytes()
    if len(raw) < _HEADER.size:
        raise DataError(f"{path}: too short to be a dataset index; re-run `llmodel data prepare`")
    magic, version, code = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise DataError(f"{path}: not an LLModel dataset index (bad magic); re-run `llmodel data prepare`")
    if version != VERSION or code not in _DTYPES:
        raise DataError(
            f"{path}: index version {version} / dtype code {code} is not supported by this LLModel; "
            "upgrade LLModel or re-run `llmodel data prepare`"
        )
    body = raw[_HEADER.size :]
    if len(body) % _OFFSET_DTYPE.itemsize or not body:
        raise DataError(f"{path}: truncated index; re-run `llmodel data prepare`")
    offsets = np.frombuffer(body, dtype=_OFFSET_DTYPE)
    if offsets[0] != 0 or np.any(np.diff(offsets) < 1):
        raise DataError(f"{path}: corrupt document offsets; re-run `llmodel data prepare`")
    return _DTYPES[code], offsets
