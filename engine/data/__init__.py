"""Data: readers for raw inputs, the memory-mapped token format, dataset preparation and the stdlib corpus.

Names load on first use, so importing one light module of this package (its defaults, its split rule) does not
load NumPy and every reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_attributes

if TYPE_CHECKING:
    from engine.data.binary import BinaryDatasetWriter, TokenDataset, token_dtype
    from engine.data.meta import DatasetMeta, SplitCounts, check_tokenizer, check_vocab, load_dataset_meta
    from engine.data.prepare import prepare_dataset, prepared_dataset_for
    from engine.data.readers import detect_format, iter_chat_conversations, iter_documents, resolve_sources
    from engine.data.stdlib_corpus import ChatSetInfo, CorpusInfo, build_stdlib_chat_set, build_stdlib_corpus

_SOURCES = {
    **dict.fromkeys(("BinaryDatasetWriter", "TokenDataset", "token_dtype"), "engine.data.binary"),
    **dict.fromkeys(
        ("DatasetMeta", "SplitCounts", "check_tokenizer", "check_vocab", "load_dataset_meta"),
        "engine.data.meta",
    ),
    **dict.fromkeys(("prepare_dataset", "prepared_dataset_for"), "engine.data.prepare"),
    **dict.fromkeys(
        ("detect_format", "iter_chat_conversations", "iter_documents", "resolve_sources"),
        "engine.data.readers",
    ),
    **dict.fromkeys(
        ("ChatSetInfo", "CorpusInfo", "build_stdlib_chat_set", "build_stdlib_corpus"),
        "engine.data.stdlib_corpus",
    ),
}
__all__ = [
    "BinaryDatasetWriter",
    "ChatSetInfo",
    "CorpusInfo",
    "DatasetMeta",
    "SplitCounts",
    "TokenDataset",
    "build_stdlib_chat_set",
    "build_stdlib_corpus",
    "check_tokenizer",
    "check_vocab",
    "detect_format",
    "iter_chat_conversations",
    "iter_documents",
    "load_dataset_meta",
    "prepare_dataset",
    "prepared_dataset_for",
    "resolve_sources",
    "token_dtype",
]
__getattr__ = lazy_attributes(__name__, _SOURCES)
