"""Deterministic batches of token windows: the data position is just the step number."""

from __future__ import annotations

import numpy as np
import torch


class WindowSampler:
    """Random fixed-length windows from a token stream, chosen by (seed, step, micro-step).

    Because each batch depends only on its indices, resuming at step N reproduces the exact batches of an
    uninterrupted run without storing a data cursor.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        if len(tokens) < seq_len + 2:
            raise ValueError(f"{len(tokens)} tokens are too few for windows of {seq_len}")
        self.tokens, self.seq_len, self.batch_size, self.seed = tokens, seq_len, batch_size, seed

    def batch(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets, each (batch_size, seq_len), int64."""
        rng = np.random.default_rng((self.seed, step, micro))
        offsets = rng.integers(0, len(self.tokens) - self.seq_len - 1, size=self.batch_size)
        return gather_windows(self.tokens, offsets, self.seq_len)


def gather_windows(
    tokens: np.ndarray, offsets: np.ndarray, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets for windows starting at ``offsets``."""
    window = np.stack([np.asarray(tokens[o : o + seq_len + 1], dtype=np.int64) for o in offsets])
    data = torch.from_numpy(window)
    return data[:, :-1], data[:, 1:]


def evaluation_windows(
    tokens: np.ndarray, seq_len: int, batch_size: int, num_batches: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Evenly spaced windows over the whole validation stream, the same every time."""
    seq_len = min(seq_len, len(tokens) - 1)
    if seq_len < 2:
        return []
    count = batch_size * num_batches
    offsets = np.unique(np.linspace(0, len(tokens) - seq_len - 1, num=count).astype(np.int64))
    return [
        gather_windows(tokens, offsets[i : i + batch_size], seq_len)
        for i in range(0, len(offsets), batch_size)
    ]
