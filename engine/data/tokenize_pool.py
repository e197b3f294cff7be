"""Tokenise a stream of documents in order, in worker processes or in-process."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from engine.tokenizer import Tokenizer

_CHUNK_CHARS = 1 << 20
_CHUNK_DOCS = 512
_worker_tokenizer: Tokenizer | None = None


def default_num_workers() -> int:
    """min(CPU count, 4): tokenisation stops scaling well past that for one corpus on one disk."""
    return min(os.cpu_count() or 1, 4)


def tokenize_documents(
    documents: Iterable[str], model_proto: bytes, *, num_workers: int, dtype: np.dtype
) -> Iterator[list[np.ndarray]]:
    """Yield the token arrays of ``documents`` chunk by chunk, in input order, whatever ``num_workers`` is."""
    chunks = _chunks(documents)
    if num_workers <= 1:
        tokenizer = Tokenizer(model_proto)
        for chunk in chunks:
            yield _encode(tokenizer, chunk, dtype)
        return
    # spawn, not fork: the parent may hold torch or OpenMP threads that a forked child would inherit broken.
    # An executor, not multiprocessing.Pool: a worker that dies raises BrokenProcessPool instead of hanging.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(num_workers, context, initializer=_init_worker, initargs=(model_proto,)) as pool:
        pending: deque[Future[list[np.ndarray]]] = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_encode_in_worker, chunk, dtype.str))
                # Bounded look-ahead keeps memory flat on corpora larger than RAM.
                if len(pending) >= 2 * num_workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _chunks(documents: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for text in documents:
        chunk.append(text)
        size += len(text)
        if size >= _CHUNK_CHARS or len(chunk) >= _CHUNK_DOCS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _encode(tokenizer: Tokenizer, texts: list[str], dtype: np.dtype) -> list[np.ndarray]:
    return [np.asarray(ids, dtype=dtype) for ids in tokenizer.encode_batch(texts, num_threads=1)]


def _init_worker(model_proto: bytes) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer(model_proto)


def _encode_in_worker(texts: list[str], dtype: str) -> list[np.ndarray]:
    assert _worker_tokenizer is not None, "worker not initialised"
    return _encode(_worker_tokenizer, texts, np.dtype(dtype))
