"""Shared fixtures: a small slice of the embedded corpus, a tiny tokenizer and a prepared dataset.

They are built once per test session so every test that trains a model starts from the same tiny data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.daemon.model_servers import ModelServerManager
from engine.daemon.record import RECORD_FILE, live_record
from engine.data.prepare import prepare_dataset
from engine.data.stdlib_corpus import build_stdlib_corpus
from engine.data.tokenizer_training import train_tokenizer
from engine.model import ModelConfig
from engine.processes import terminate
from engine.training.config import TrainConfig

TINY_VOCAB = 512


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # Tiny models run faster on one thread; no test writes into the repository's own workspaces/, and
    # every engine a test started is stopped after it.
    torch.set_num_threads(1)
    monkeypatch.setenv("LLMODEL_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    stop_engines(tmp_path)


def stop_engines(root: Path) -> None:
    """Stop every engine whose workspace lies under ``root``, and any model server it started."""
    for serve_file in root.rglob(".serve.json"):
        ModelServerManager(serve_file.parent).stop()
    for record_file in root.rglob(RECORD_FILE):
        record = live_record(record_file.parent)
        if record is not None:
            terminate(record.process)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 300 KB of real Python source and docstrings as JSONL."""
    path = tmp_path_factory.mktemp("corpus") / "stdlib.jsonl"
    build_stdlib_corpus(path, max_bytes=300_000)
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tokenizer") / "tok"
    train_tokenizer([corpus_file], out, TINY_VOCAB)
    return out


@pytest.fixture(scope="session")
def dataset_dir(corpus_file: Path, tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dataset") / "ds"
    prepare_dataset([corpus_file], tokenizer_dir, out, val_fraction=0.05, num_workers=0)
    return out


@pytest.fixture
def nano_config() -> ModelConfig:
    """Two layers, d_model 32, context 64: trains a step in a few milliseconds."""
    return ModelConfig.from_dict(
        {
            "vocab_size": TINY_VOCAB,
            "d_model": 32,
            "n_layers": 2,
            "n_heads": 4,
            "d_ff": 64,
            "max_len": 64,
            "dropout": 0.1,
        }
    )


@pytest.fixture
def quick_train_config() -> TrainConfig:
    return TrainConfig(
        batch_size=4,
        seq_len=32,
        max_steps=12,
        warmup_steps=2,
        learning_rate=3e-3,
        eval_interval=4,
        eval_batches=2,
        sample_interval=6,
        sample_tokens=8,
        checkpoint_interval=4,
        keep_last=2,
        log_interval=2,
        device="cpu",
    )


@pytest.fixture(scope="session")
def served_run_dir(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path, tokenizer_dir: Path) -> Path:
    """A nano model trained 30 steps (d_model 32, context 64), for the model-server tests."""
    from engine.training.trainer import Trainer

    config = ModelConfig.from_dict(
        {"vocab_size": TINY_VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 64}
    )
    settings = TrainConfig(
        batch_size=4,
        seq_len=32,
        max_steps=30,
        warmup_steps=3,
        learning_rate=3e-3,
        eval_interval=30,
        checkpoint_interval=30,
        device="cpu",
    )
    run_dir = tmp_path_factory.mktemp("served") / "run"
    Trainer(config, settings, dataset_dir, run_dir, tokenizer_path=tokenizer_dir).run()
    return run_dir
