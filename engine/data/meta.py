"""A prepared dataset's ``meta.json`` and the vocabulary checks made at every arrow of the pipeline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.data.split import SPLIT_SEED, VAL_FRACTION
from engine.errors import DataError, VocabMismatchError
from engine.fileio import write_json_atomic

FORMAT_VERSION = 1
META_FILE = "meta.json"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class SplitCounts:
    """Documents and tokens in one split; ``tokens`` counts the ``</s>`` after each document."""

    documents: int
    tokens: int


@dataclass
class DatasetMeta:
    """What ``meta.json`` records about a prepared dataset; written last, so its presence marks it complete."""

    tokenizer: str
    tokenizer_sha256: str
    vocab_size: int
    dtype: str
    train: SplitCounts
    val: SplitCounts
    sources: list[str] = field(default_factory=list)
    val_fraction: float = VAL_FRACTION
    seed: int = SPLIT_SEED
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            **{k: v for k, v in asdict(self).items() if k != "format_version"},
        }

    def save(self, directory: str | Path) -> None:
        write_json_atomic(Path(directory) / META_FILE, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> DatasetMeta:
        """Read ``<directory>/meta.json``; a missing, unreadable or newer file raises DataError."""
        path = Path(directory) / META_FILE
        if not path.is_file():
            raise DataError(
                f"{directory} is not a prepared dataset (no {META_FILE}); run `llmodel data prepare`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            version = int(data.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise DataError(
                    f"{path}: dataset format {version} is newer than this LLModel supports ({FORMAT_VERSION}); "
                    "upgrade LLModel or re-run `llmodel data prepare`"
                )
            splits: dict[str, Any] = {
                name: SplitCounts(int(data[name]["documents"]), int(data[name]["tokens"])) for name in SPLITS
            }
            fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in SPLITS}
            return cls(**fields, **splits)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataError(
                f"{path}: unreadable dataset metadata ({err!r}); re-run `llmodel data prepare`"
            ) from None


def load_dataset_meta(directory: str | Path) -> DatasetMeta:
    """Shorthand for :meth:`DatasetMeta.load`."""
    return DatasetMeta.load(directory)


def check_vocab(
    meta_vocab: int,
    model_vocab: int,
    tokenizer_vocab: int | None = None,
    *,
    dataset: str | Path = "the dataset",
) -> None:
    """Raise VocabMismatchError unless dataset, model config and (if given) tokenizer share one vocab size."""
    if tokenizer_vocab is not None and tokenizer_vocab != meta_vocab:
        raise VocabMismatchError(
            f"dataset {dataset} was tokenized with vocab {meta_vocab} but the tokenizer has {tokenizer_vocab}; "
            "use the dataset's tokenizer or re-run `llmodel data prepare` with this one"
        )
    if model_vocab != meta_vocab:
        raise VocabMismatchError(
            f"dataset {dataset} was tokenized with vocab {meta_vocab} but the model config has vocab_size "
            f"{model_vocab}; set vocab_size to {meta_vocab} or re-run `llmodel data prepare`"
        )


def check_tokenizer(meta: DatasetMeta, tokenizer_sha256: str, *, dataset: str | Path = "the dataset") -> None:
    """Raise VocabMismatchError if the dataset was made with a different ``tokenizer.model``."""
    if meta.tokenizer_sha256 != tokenizer_sha256:
        raise VocabMismatchError(
            f"dataset {dataset} was made with another tokenizer ({meta.tokenizer}, sha256 "
            f"{meta.tokenizer_sha256[:12]}); use that tokenizer or re-run `llmodel data prepare` with this one"
        )


def is_prepared_dataset(directory: str | Path) -> bool:
    """True when ``directory`` holds a complete prepared dataset (its meta.json is written last)."""
    path = Path(directory)
    return path.is_dir() and (path / META_FILE).is_file() and (path / "train.bin").is_file()
