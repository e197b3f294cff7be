"""Batches of fine-tuning examples, chosen by step number so a resumed run reads what an uninterrupted one would.

Each epoch visits the examples in an order fixed by (seed, epoch). Without packing a batch is ``batch_size``
examples padded on the right; with packing, consecutive examples fill windows of ``seq_len`` tokens, each keeping
its own positions (from 0) and seeing only itself (``segment_ids``), so a packed batch computes the same
per-example losses as the examples one by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from engine.finetune.sft_data import IGNORE, Example
from engine.training.config import TrainConfig
from engine.training.data import Batch


class SFTBatches:
    """The :class:`engine.training.data.TrainingData` of a fine-tuning run."""

    def __init__(
        self,
        train: Sequence[Example],
        val: Sequence[Example],
        *,
        seq_len: int,
        cfg: TrainConfig,
        pad_id: int,
        packing: bool = False,
        source: str = "",
        sample_prompt: str | None = None,
    ) -> None:
        self.train, self.val = list(train), list(val)
        self.seq_len, self.pad_id, self.packing, self.source = seq_len, pad_id, packing, source
        self.sample_prompt = sample_prompt
        self.batch_size, self.seed, self.eval_count = cfg.batch_size, cfg.seed, cfg.eval_batches
        self.accumulation = cfg.gradient_accumulation_steps
        self.nominal_tokens_per_step = cfg.batch_size * seq_len * cfg.gradient_accumulation_steps
        self._epochs: dict[int, list[list[Example]]] = {}  # the current epoch's rows
        self._counts: list[int] = []  # micro-batches in each epoch so far

    # -- TrainingData ---------------------------------------------------------------------------------------

    def batch(self, step: int, micro: int) -> Batch:
        epoch, position = self._locate(step * self.accumulation + micro)
        rows = self._epoch(epoch)[position * self.batch_size : (position + 1) * self.batch_size]
        return self._collate(rows)

    def eval_batches(self) -> list[Batch]:
        rows = [[example] for example in self.val[: self.batch_size * self.eval_count]]
        return [self._collate(rows[i : i + self.batch_size]) for i in range(0, len(rows), self.batch_size)]

    def steps_per_epoch(self) -> float:
        return self._micro_batches(0) / self.accumulation

    # -- order and packing ------------------------------------------------------------------------------------

    def _micro_batches(self, epoch: int) -> int:
        """Micro-batches in an epoch (packing may fill a different number of windows each epoch)."""
        while len(self._counts) <= epoch:
            self._counts.append(math.ceil(len(self._epoch(len(self._counts))) / self.batch_size))
        return self._counts[epoch]

    def _locate(self, index: int) -> tuple[int, int]:
        """The (epoch, micro-batch within it) of the ``index``-th micro-batch of the run."""
        epoch = 0
        while index >= self._micro_batches(epoch):
            index -= self._micro_batches(epoch)
            epoch += 1
        return epoch, index

    def _epoch(self, epoch: int) -> list[list[Example]]:
        """The epoch's rows in order: one example each, or the examples packed into each window."""
        if epoch not in self._epochs:
            order = np.random.default_rng((self.seed, epoch)).permutation(len(self.train))
            examples = [self.train[i] for i in order]
            self._epochs = {epoch: pack(examples, self.seq_len) if self.packing else [[e] for e in examples]}
        return self._epochs[epoch]

    def _collate(self, rows: list[list[Example]]) -> Batch:
        """Inputs, next-token labels, mask, positions and segments of some rows, padded on the right."""
        width = max(sum(len(e.ids) - 1 for e in row) for row in rows)
        shape = (len(rows), width)
        input_ids = torch.full(shape, self.pad_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE, dtype=torch.long)
        mask = torch.zeros(shape, dtype=torch.long)
        positions = torch.zeros(shape, dtype=torch.long)
        segments = torch.zeros(shape, dtype=torch.long)
        for r, row in enumerate(rows):
            start = 0
            for s, example in enumerate(row, start=1):
                n = len(example.ids) - 1
                input_ids[r, start : start + n] = torch.tensor(example.ids[:-1])
                labels[r, start : start + n] = torch.tensor(example.labels[1:])
                mask[r, start : start + n] = 1
                positions[r, start : start + n] = torch.arange(n)
                segments[r, start : start + n] = s
                start += n
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": mask}
        if any(len(row) > 1 for row in rows):
            batch |= {"positions": positions, "segment_ids": segments}
        return batch


def pack(examples: Sequence[Example], seq_len: int) -> list[list[Example]]:
    """Fill windows of ``seq_len`` input tokens with consecutive examples, never splitting one."""
    windows: list[list[Example]] = []
    used = seq_len  # forces a new window for the first example
    for example in examples:
        size = len(example.ids) - 1
        if used + size > seq_len:
            windows.append([])
            used = 0
        windows[-1].append(example)
        used += size
    return windows
