"""Loading a trained model (checkpoint or run folder) with its tokenizer for inference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.device import resolve_device
from engine.errors import LLModelError
from engine.model import ModelConfig, Transformer
from engine.model.decode_layout import prepare_for_decoding
from engine.runs import checkpoint as ckpt
from engine.tokenizer import Tokenizer


@dataclass
class LoadedModel:
    model: Transformer
    tokenizer: Tokenizer
    checkpoint: ckpt.Checkpoint
    device: torch.device


def load_for_inference(
    model_path: str | Path,
    *,
    config_path: str | Path | None = None,
    tokenizer_path: str | Path | None = None,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load weights from a checkpoint or run directory; the config and tokenizer default to the checkpoint's own."""
    checkpoint = ckpt.resolve_checkpoint(model_path, log=log)
    config = ModelConfig.load(config_path) if config_path else checkpoint.model_config
    ckpt.check_compatible(checkpoint, config)
    if tokenizer_path is None:
        tokenizer_path = checkpoint.meta.get("tokenizer")
        if not tokenizer_path:
            raise LLModelError(f"checkpoint {checkpoint.path} records no tokenizer; pass --tokenizer-path")
    tokenizer = Tokenizer.load(Path(tokenizer_path))
    if tokenizer.vocab_size != config.vocab_size:
        raise LLModelError(
            f"tokenizer {tokenizer_path} has {tokenizer.vocab_size} tokens but the model's vocab_size is "
            f"{config.vocab_size}; pass the tokenizer the model was trained with"
        )
    target = resolve_device(device)
    model = Transformer(config)
    ckpt.load_weights(checkpoint, model)
    model.to(target).eval()
    if target.type == "cpu":
        prepare_for_decoding(model)
    return LoadedModel(model, tokenizer, checkpoint, target)
