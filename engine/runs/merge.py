"""An adapter's base checkpoint, and base + adapter written as one full checkpoint (``llmodel lora merge``)."""

from __future__ import annotations

from pathlib import Path

from engine.adapters.files import Adapter, attach_adapter
from engine.adapters.lora import merge_lora
from engine.errors import CheckpointError, DiskFullError
from engine.model import Transformer
from engine.runs.checkpoint import Checkpoint, load_weights, resolve_checkpoint, save_checkpoint


def base_of(adapter: Adapter) -> Checkpoint:
    """The checkpoint the adapter was trained on (as its record names it)."""
    recorded = adapter.meta.get("base_checkpoint")
    if not recorded:
        raise CheckpointError(
            f"adapter {adapter.name} does not record its base checkpoint; pass --model-path"
        )
    return resolve_checkpoint(recorded)


def merge_to_checkpoint(adapter: Adapter, output: Path, base: Checkpoint | None = None) -> Checkpoint:
    """Write base + adapter as one full checkpoint under ``output`` (a run-like folder ``generate`` and ``serve``
    take); its logits equal the base's with the adapter."""
    base = base or base_of(adapter)
    model = Transformer(base.model_config)
    load_weights(base, model)
    attach_adapter(model, adapter, base)
    merge_lora(model)
    meta = {
        "tokenizer": base.meta.get("tokenizer"),
        "merged_from": {"base": str(base.path), "adapter": str(adapter.path), "adapter_name": adapter.name},
    }
    try:
        return save_checkpoint(
            output / "checkpoints", step=base.step, model=model, model_config=base.model_config, meta=meta
        )
    except DiskFullError as full:
        unchanged = (
            f"the base {base.path} and the adapter {adapter.path} are unchanged; free space and merge again"
        )
        raise full.with_last_good(unchanged) from None
