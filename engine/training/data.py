"""What the training loop reads: batches chosen by step number, fixed evaluation batches, the length of an epoch.

Pretraining reads random windows of a prepared token stream (:class:`TokenStreamData`); fine-tuning reads
rendered conversations (``engine/finetune/batches.py``). Both give a batch as keyword arguments of the model's
forward pass (``input_ids``, ``labels`` and, where needed, ``attention_mask``, ``positions``, ``segment_ids``)
and both choose it from (seed, step, micro-step) alone, so a resumed run reads exactly what an uninterrupted one
would have.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import torch

from engine.data.binary import TokenDataset
from engine.data.meta import check_tokenizer, check_vocab, load_dataset_meta
from engine.errors import DataError
from engine.model import ModelConfig
from engine.tokenizer import Tokenizer
from engine.training.batches import WindowSampler, evaluation_windows
from engine.training.config import TrainConfig

Batch = dict[str, torch.Tensor]


class TrainingData(Protocol):
    """A source of training and evaluation batches for :class:`engine.training.trainer.Trainer`."""

    source: str  # what the run records as its data (a dataset folder, the SFT files)
    seq_len: int
    nominal_tokens_per_step: int  # batch x sequence length x accumulation: what the cost estimates use

    def batch(self, step: int, micro: int) -> Batch: ...

    def eval_batches(self) -> list[Batch]: ...

    def steps_per_epoch(self) -> float: ...


def tokens_in(batch: Batch) -> int:
    """The real (non-padding) input tokens of a batch."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()


def total_steps(data: TrainingData, cfg: TrainConfig) -> int:
    """``max_steps`` when set, else the optimizer steps of ``epochs`` passes over the data."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * data.steps_per_epoch()))


class TokenStreamData:
    """Random windows of a prepared dataset's token stream (pretraining), validation windows spread evenly."""

    def __init__(
        self, data_dir: Path, model_config: ModelConfig, cfg: TrainConfig, tokenizer: Tokenizer | None
    ) -> None:
        self.source = str(data_dir)
        meta = load_dataset_meta(data_dir)
        check_vocab(
            meta.vocab_size,
            model_config.vocab_size,
            tokenizer.vocab_size if tokenizer else None,
            dataset=data_dir,
        )
        if tokenizer is not None:
            check_tokenizer(meta, tokenizer.sha256, dataset=data_dir)
        self.train_tokens = TokenDataset(data_dir / "train").tokens
        self.val_tokens = TokenDataset(data_dir / "val").tokens
        self.seq_len = min(cfg.seq_len or model_config.max_len, model_config.max_len)
        if len(self.train_tokens) < self.seq_len + 2:
            raise DataError(
                f"dataset {data_dir} has {len(self.train_tokens)} training tokens, fewer than one window of "
                f"{self.seq_len}; add data or lower --seq-len"
            )
        self.nominal_tokens_per_step = cfg.batch_size * self.seq_len * cfg.gradient_accumulation_steps
        self._sampler = WindowSampler(self.train_tokens, self.seq_len, cfg.batch_size, cfg.seed)
        self._batch_size, self._eval_batches = cfg.batch_size, cfg.eval_batches

    def batch(self, step: int, micro: int) -> Batch:
        x, y = self._sampler.batch(step, micro)
        return {"input_ids": x, "labels": y}

    def eval_batches(self) -> list[Batch]:
        windows = evaluation_windows(self.val_tokens, self.seq_len, self._batch_size, self._eval_batches)
        return [{"input_ids": x, "labels": y} for x, y in windows]

    def steps_per_epoch(self) -> float:
        return len(self.train_tokens) / self.nominal_tokens_per_step
