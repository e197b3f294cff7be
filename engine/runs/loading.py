"""Loading a trained model (checkpoint or run folder) with its tokenizer for inference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.adapters.files import attach_adapter, load_adapter
from engine.adapters.lora import apply_lora, load_adapter_state, merge_lora
from engine.adapters.settings import LoraSettings
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
    checkpoint: ckpt.Checkpoint  # the base weights' checkpoint
    device: torch.device
    adapter: str | None = None  # the adapter merged into the weights, if any


def load_for_inference(
    model_path: str | Path,
    *,
    config_path: str | Path | None = None,
    tokenizer_path: str | Path | None = None,
    adapter: str | Path | None = None,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load weights from a checkpoint or run directory; the config and tokenizer default to the checkpoint's own.

    A LoRA run's checkpoint holds only its adapter: its base (the checkpoint it started from) is loaded and the
    adapter merged in. ``adapter`` (an adapter directory) is merged the same way, after checking that it was
    trained on this base. Merged weights decode as fast as the base.
    """
    checkpoint = ckpt.resolve_checkpoint(model_path, log=log)
    run_adapter = None
    if checkpoint.meta.get("adapter"):
        if adapter is not None:
            raise LLModelError(
                f"{model_path} is a LoRA run and carries its own adapter; pass its base "
                f"({checkpoint.meta.get('init_from')}) as --model-path to load another adapter"
            )
        settings = LoraSettings(**{**checkpoint.meta["adapter"], "quantize_base": None})
        run_adapter = (settings, ckpt.load_tensors(checkpoint), str(checkpoint.path))
        tokenizer_path = tokenizer_path or checkpoint.meta.get("tokenizer")
        checkpoint = ckpt.resolve_checkpoint(checkpoint.meta["init_from"], log=log)
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
    adapter_name = None
    if adapter is not None:
        loaded = load_adapter(adapter)
        attach_adapter(model, loaded, checkpoint)
        adapter_name = loaded.name
    elif run_adapter is not None:
        settings, tensors, source = run_adapter
        apply_lora(model, settings)
        load_adapter_state(model, tensors, source)
        adapter_name = Path(source).parent.parent.name
    if adapter_name is not None:
        merge_lora(model)
    model.to(target).eval()
    if target.type == "cpu":
        prepare_for_decoding(model)
    return LoadedModel(model, tokenizer, checkpoint, target, adapter_name)
