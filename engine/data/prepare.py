"""Tokenise raw inputs into a prepared dataset: train/val ``.bin``/``.idx`` pairs and ``meta.json``."""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engine.data.binary import BinaryDatasetWriter, token_dtype
from engine.data.cache import input_fingerprint
from engine.data.meta import (
    FORMAT_VERSION,
    META_FILE,
    DatasetMeta,
    SplitCounts,
    check_tokenizer,
    check_vocab,
    load_dataset_meta,
)
from engine.data.readers import iter_documents
from engine.data.split import SPLIT_SEED, VAL_FRACTION, choose_validation, document_hash
from engine.data.tokenize_pool import default_num_workers, tokenize_documents
from engine.errors import ConfigError, DataError
from engine.fileio import atomic_dir
from engine.tokenizer import Tokenizer

__all__ = [
    "DatasetMeta",
    "SplitCounts",
    "check_tokenizer",
    "check_vocab",
    "load_dataset_meta",
    "prepare_dataset",
    "prepared_dataset_for",
]

Progress = Callable[[int, int], None]
Log = Callable[[str], None]
Inputs = Iterable[str | os.PathLike[str]] | str | os.PathLike[str]

# Below this many characters a worker pool costs more to start than it saves.
_POOL_MIN_CHARS = 2_000_000


def prepare_dataset(
    inputs: Inputs,
    tokenizer_path: str | Path,
    output_dir: str | Path,
    *,
    val_fraction: float = VAL_FRACTION,
    seed: int = SPLIT_SEED,
    num_workers: int | None = None,
    input_format: str = "auto",
    text_unit: str = "file",
    strict: bool = False,
    progress: Progress | None = None,
    log: Log | None = None,
) -> DatasetMeta:
    """Tokenise ``inputs`` with the tokenizer at ``tokenizer_path`` into ``output_dir`` and return its metadata.

    A document goes to val when its content hash falls under ``val_fraction``, so the split does not depend on
    input order; val always gets at least one document (a lone document gives its tail). ``num_workers`` of 0
    or 1 tokenises in-process; the default uses up to 4 worker processes on large inputs. ``progress`` gets
    (documents done, documents total).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction {val_fraction} is outside [0, 1); use e.g. 0.005")
    paths = [Path(inputs)] if isinstance(inputs, str | os.PathLike) else [Path(p) for p in inputs]
    tokenizer = Tokenizer.load(tokenizer_path)
    output_dir = Path(output_dir)

    def documents(on_bad_line: Log | None) -> Iterable[str]:
        return iter_documents(
            paths, input_format=input_format, text_unit=text_unit, strict=strict, on_bad_line=on_bad_line
        )

    hashes = array("Q")
    characters = 0
    for text in documents(log):
        hashes.append(document_hash(text, seed))
        characters += len(text)
    total = len(hashes)
    if total == 0:
        names = ", ".join(str(p) for p in paths) or "no inputs"
        raise DataError(f"no documents found in {names}; check the paths and the input format")
    is_val = choose_validation(np.frombuffer(hashes, dtype=np.uint64), val_fraction)
    if num_workers is None:
        num_workers = default_num_workers() if characters >= _POOL_MIN_CHARS else 1

    vocab_size = tokenizer.vocab_size
    # Written into a temporary directory that replaces output_dir at the end: a cancel or a crash leaves the old
    # dataset (or none), never half of one.
    # About three characters a token: the disk-full message says how much room the token files want.
    needed = characters // 3 * token_dtype(vocab_size).itemsize
    before = "the dataset there is unchanged" if output_dir.exists() else "nothing was written there"
    last_good = f"{before}; free space and prepare it again"
    with atomic_dir(output_dir, needed=needed, last_good=last_good) as staging:
        with (
            BinaryDatasetWriter(staging / "train", vocab_size) as train,
            BinaryDatasetWriter(staging / "val", vocab_size) as val,
        ):
            done = 0
            chunks = tokenize_documents(
                documents(None), tokenizer.model_proto, num_workers=num_workers, dtype=token_dtype(vocab_size)
            )
            for arrays in chunks:
                for ids in arrays:
                    if done >= total:
                        raise DataError("the inputs changed while they were being prepared; run it again")
                    if total == 1:
                        _split_lone_document(ids, train, val, val_fraction, log)
                    else:
                        (val if is_val[done] else train).add_document(ids)
                    done += 1
                if progress:
                    progress(done, total)
            if done != total:
                raise DataError("the inputs changed while they were being prepared; run it again")
        meta = DatasetMeta(
            tokenizer=str(tokenizer_path),
            tokenizer_sha256=tokenizer.sha256,
            vocab_size=vocab_size,
            dtype=token_dtype(vocab_size).name,
            train=SplitCounts(train.num_documents, train.num_tokens),
            val=SplitCounts(val.num_documents, val.num_tokens),
            sources=[str(p) for p in paths],
            val_fraction=val_fraction,
            seed=seed,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        meta.save(staging)
    return meta


def prepared_dataset_for(
    raw_inputs: Inputs,
    tokenizer_path: str | Path,
    cache_root: str | Path,
    *,
    val_fraction: float = VAL_FRACTION,
    seed: int = SPLIT_SEED,
    num_workers: int | None = None,
    input_format: str = "auto",
    text_unit: str = "file",
    strict: bool = False,
    progress: Progress | None = None,
    log: Log | None = None,
) -> Path:
    """A prepared dataset of ``raw_inputs`` under ``cache_root``, reused while inputs and tokenizer are unchanged.

    The key hashes each input's path, size and mtime, the tokenizer's sha256 and the preparation settings.
    """
    paths = [raw_inputs] if isinstance(raw_inputs, str | os.PathLike) else list(raw_inputs)
    settings = {
        "tokenizer_sha256": Tokenizer.load(tokenizer_path).sha256,
        "val_fraction": val_fraction,
        "seed": seed,
        "input_format": input_format,
        "text_unit": text_unit,
        "format_version": FORMAT_VERSION,
    }
    directory = Path(cache_root) / input_fingerprint(paths, extra=settings)[:16]
    if (directory / META_FILE).is_file():
        if log:
            log(f"using the cached dataset {directory}")
        return directory
    if log:
        log(f"preparing {', '.join(str(p) for p in paths)} into {directory}")
    prepare_dataset(
        paths,
        tokenizer_path,
        directory,
        val_fraction=val_fraction,
        seed=seed,
        num_workers=num_workers,
        input_format=input_format,
        text_unit=text_unit,
        strict=strict,
        progress=progress,
        log=log,
    )
    return directory


def _split_lone_document(
    ids: np.ndarray,
    train: BinaryDatasetWriter,
    val: BinaryDatasetWriter,
    val_fraction: float,
    log: Log | None,
) -> None:
    # One document cannot be split by document; its tail becomes val so training still has a held-out set.
    if len(ids) < 2:
        train.add_document(ids)
        if log:
            log("only one tiny document: the validation split is empty")
        return
    held_out = min(len(ids) - 1, max(1, round(len(ids) * val_fraction)))
    train.add_document(ids[:-held_out])
    val.add_document(ids[-held_out:])
    if log:
        log(f"only one document: its last {held_out} tokens form the validation split")
