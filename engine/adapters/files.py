"""Adapters on disk in PEFT's layout, bound to the base checkpoint they were trained on.

A directory holds ``adapter_config.json`` and ``adapter_model.safetensors`` exactly as ``peft`` writes them (keys
``base_model.model.<module>.lora_A.weight``), so the ecosystem's tools read it, plus ``llmodel_adapter.json``:
the base checkpoint, the sha256 of its weights, how it was trained and how well. Loading onto another base is
refused, naming both.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.adapters.lora import adapter_state, apply_lora, load_adapter_state, model_targets
from engine.adapters.settings import LoraSettings
from engine.errors import CheckpointError, ConfigError, NotFoundError
from engine.fileio import atomic_dir
from engine.model import Transformer

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
META_FILE = "llmodel_adapter.json"
PEFT_PREFIX = "base_model.model."


class BaseCheckpoint(Protocol):
    """The checkpoint an adapter is trained on and bound to (an :class:`engine.runs.checkpoint.Checkpoint`)."""

    @property
    def path(self) -> Path: ...

    @property
    def step(self) -> int: ...

    @property
    def weights_sha256(self) -> str: ...


@dataclass
class Adapter:
    """An adapter directory: its LoRA settings, its tensors' file, and what LLModel recorded about it."""

    path: Path
    settings: LoraSettings
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.name)

    @property
    def base_sha256(self) -> str | None:
        return self.meta.get("base_sha256")

    def tensors(self) -> dict[str, torch.Tensor]:
        """The adapter's tensors under this model's own names (PEFT's prefix removed)."""
        try:
            raw = load_file(str(self.path / WEIGHTS_FILE))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"adapter {self.path}: {WEIGHTS_FILE} is unreadable ({error}); train it again"
            ) from None
        return {key.removeprefix(PEFT_PREFIX): value for key, value in raw.items()}


def save_adapter(
    model: Transformer, directory: Path, settings: LoraSettings, base: BaseCheckpoint, **meta: Any
) -> Adapter:
    """Write the model's LoRA tensors and settings as a PEFT adapter directory (atomically); return it."""
    tensors = {
        PEFT_PREFIX + key: value.detach().cpu().contiguous() for key, value in adapter_state(model).items()
    }
    targets = model_targets(model, settings.target_modules)  # all-linear: the projections this model has
    base_path = Path(base.path).resolve()  # one spelling of the base, whatever the caller typed
    peft_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base_path),
        "r": settings.rank,
        "lora_alpha": settings.alpha,
        "lora_dropout": settings.dropout,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
    }
    record = {
        "name": directory.name,
        "method": "qlora" if settings.quantize_base else "lora",
        "base_checkpoint": str(base_path),
        "base_step": base.step,
        "base_sha256": base.weights_sha256,
        "settings": settings.to_dict(),
        "targets": targets,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **meta,
    }
    needed = sum(t.numel() * t.element_size() for t in tensors.values()) + 8192  # and the two JSON files
    with atomic_dir(directory, needed=needed) as staging:
        save_file(tensors, str(staging / WEIGHTS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(peft_config, indent=2) + "\n", encoding="utf-8")
        (staging / META_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return Adapter(directory, settings, record)


def load_adapter(path: str | Path) -> Adapter:
    """Read an adapter directory (ours, or a PEFT LoRA adapter for a model of this layout)."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"no adapter at {path}: expected {CONFIG_FILE} and {WEIGHTS_FILE} (see `llmodel adapters list`)"
        )
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        meta = (
            json.loads((path / META_FILE).read_text(encoding="utf-8")) if (path / META_FILE).is_file() else {}
        )
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"adapter {path}: unreadable JSON ({error}); train it again") from None
    if config.get("peft_type") != "LORA":
        raise ConfigError(
            f"adapter {path} is a {config.get('peft_type')!r} adapter; LLModel loads LoRA adapters"
        )
    targets = config.get("target_modules") or []
    settings = LoraSettings(
        rank=int(config.get("r", 0)),
        alpha=float(config.get("lora_alpha", 0)),
        dropout=float(config.get("lora_dropout", 0.0)),
        target_modules=[targets] if isinstance(targets, str) else list(targets),
    )
    return Adapter(path, settings, meta)


def check_base(adapter: Adapter, base: BaseCheckpoint) -> None:
    """Refuse an adapter trained on another base checkpoint, naming both."""
    expected = adapter.base_sha256
    if expected is not None and expected != base.weights_sha256:
        raise CheckpointError(
            f"adapter {adapter.name} was trained on {adapter.meta.get('base_checkpoint', 'another checkpoint')}, "
            f"not on {base.path} (their weights differ); load it with the base it was trained on"
        )


def attach_adapter(model: Transformer, adapter: Adapter, base: BaseCheckpoint) -> None:
    """Wrap the model's target projections in LoRA layers holding the adapter's tensors (for evaluation)."""
    check_base(adapter, base)
    apply_lora(model, adapter.settings)
    load_adapter_state(model, adapter.tensors(), str(adapter.path))


def resolve_adapter(name_or_path: str | Path, workspace: Path) -> Adapter:
    """An adapter directory given by path, or by name under the workspace's ``adapters/``."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return load_adapter(candidate)
    named = workspace / "adapters" / str(name_or_path)
    if named.is_dir():
        return load_adapter(named)
    raise NotFoundError(f"no adapter named {name_or_path} in {workspace}; see `llmodel adapters list`")
