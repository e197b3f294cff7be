"""Deterministic train/validation split by document content."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

VAL_FRACTION = 0.005  # the share of documents held out for validation unless told otherwise
SPLIT_SEED = 1337


def document_hash(text: str, seed: int) -> int:
    """A 64-bit hash of ``text`` under ``seed``; equal texts share a split, so duplicates never leak into val."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=str(seed).encode("ascii"))
    return int.from_bytes(digest.digest(), "little")


def choose_validation(hashes: np.ndarray, val_fraction: float) -> np.ndarray:
    """Mark documents for validation: those whose hash falls under ``val_fraction`` of the hash range.

    With two or more documents both splits get at least one: the smallest hash joins val if none did, the
    largest stays in train if all did.
    """
    import numpy as np

    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    hashes = np.asarray(hashes, dtype=np.uint64)
    threshold = min(int(val_fraction * 2.0**64), 2**64 - 1)
    is_val = hashes < np.uint64(threshold)
    if hashes.size >= 2:
        if not is_val.any():
            is_val[np.argmin(hashes)] = True
        if is_val.all():
            is_val[np.argmax(hashes)] = False
    return is_val
