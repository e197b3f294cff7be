"""LoRA (Hu et al. 2021): a frozen projection plus a trainable low-rank update ``B @ A`` scaled by ``alpha / r``.

Written here rather than taken from ``peft`` because the layer has to fit this project's model paths: a frozen
base that may be NF4 (QLoRA), state-dict keys that stay the base model's own (``q_proj.weight``) with the
adapter beside them in PEFT's names (``q_proj.lora_A.weight``), and a merge that feeds the compiled CPU decoding
step. It is small on purpose; adapters it saves are PEFT's files (engine/adapters/files.py), and a test
loads one with ``peft`` itself onto this model and gets the same logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from engine.adapters.nf4 import dequantize, nf4_linear, quantize_linear
from engine.adapters.settings import ATTENTION_TARGETS, MLP_TARGETS, LoraSettings, target_names
from engine.errors import ConfigError
from engine.model import Transformer


class LoRALinear(nn.Linear):
    """A frozen ``nn.Linear`` (its weight fp32, or NF4 under QLoRA) plus ``lora_B(lora_A(dropout(x))) * scaling``.

    At initialisation ``lora_B`` is zero, so the layer computes exactly what the base layer did.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.weight.requires_grad_(False)
        self.bias = base.bias
        device = base.weight.device
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, device=device)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, device=device)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as PEFT does
        nn.init.zeros_(self.lora_B.weight)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (
            base_linear(x, self.weight, self.bias)
            + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling
        )

    def delta_weight(self) -> torch.Tensor:
        """The update this adapter adds to the weight: ``B @ A * scaling`` (out, in)."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling


def base_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T (+ bias)`` for a plain or an NF4 weight (dequantized blockwise on the fly)."""
    if weight.__class__.__name__ == "NF4Tensor":
        out = nf4_linear(x, weight)
        return out if bias is None else out + bias
    return F.linear(x, weight, bias)


def projections(model: Transformer) -> Iterator[tuple[str, nn.Module, str, nn.Linear]]:
    """(full name, parent module, attribute, linear) of every projection in the model's blocks."""
    for index, layer in enumerate(model.model.layers):
        for parent_name in ("self_attn", "mlp"):
            parent = layer.get_submodule(parent_name)
            for attribute in (*ATTENTION_TARGETS, *MLP_TARGETS):
                linear = getattr(parent, attribute, None)
                if isinstance(linear, nn.Linear):
                    yield f"model.layers.{index}.{parent_name}.{attribute}", parent, attribute, linear


def model_targets(model: Transformer, targets: list[str]) -> list[str]:
    """The projection names ``targets`` selects in this model (``all-linear``: every one it has)."""
    return target_names(targets, {attribute for _, _, attribute, _ in projections(model)})


def apply_lora(model: Transformer, settings: LoraSettings) -> list[str]:
    """Freeze every base parameter, wrap the target projections in :class:`LoRALinear`; return their names.

    Under QLoRA (``quantize_base="nf4"``) every block projection's weight is stored in NF4 first.
    """
    targets = model_targets(model, settings.target_modules)
    for param in model.parameters():
        param.requires_grad_(False)
    if settings.quantize_base == "nf4":
        for _, _, _, linear in projections(model):
            quantize_linear(linear)
    wrapped = []
    for name, parent, attribute, linear in list(projections(model)):
        if attribute in targets:
            layer = LoRALinear(linear, settings.rank, settings.alpha, settings.dropout)
            setattr(parent, attribute, layer.train(model.training))  # a new module starts in training mode
            wrapped.append(name)
    return wrapped


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors by their state-dict names (``...q_proj.lora_A.weight``)."""
    return {
        name: value for name, value in model.state_dict().items() if ".lora_A." in name or ".lora_B." in name
    }


def load_adapter_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load adapter tensors into the model's LoRA layers; every tensor must find its place, and fill it."""
    expected = adapter_state(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        which = f"lacks {missing[0]}" if missing else f"has {unexpected[0]}, which this model does not"
        raise ConfigError(f"adapter {source} does not fit this model: it {which}")
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise ConfigError(
                f"adapter {source} does not fit this model: {name} is {tuple(value.shape)}, "
                f"expected {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors, strict=False)


@torch.no_grad()
def merge_lora(model: Transformer) -> Transformer:
    """Fold every LoRA update into its base weight and put plain ``nn.Linear`` layers back (in place)."""
    for _, parent, attribute, linear in list(projections(model)):
        if isinstance(linear, LoRALinear):
            if linear.weight.__class__.__name__ == "NF4Tensor":
                base = dequantize(linear.weight)
            else:
                base = linear.weight.data
            plain = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
            plain.to(base.device)
            plain.weight.data = base + linear.delta_weight().to(base.dtype)
            if linear.bias is not None:
                plain.bias.data = linear.bias.data
            setattr(parent, attribute, plain)
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def trainable_summary(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters) — an NF4 weight counts its original size."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def describe_trainable(trainable: int, total: int) -> str:
    """E.g. ``"trainable 82,944 of 13.8M parameters (0.60%)"``."""
    return f"trainable {trainable:,} of {_short(total)} parameters ({100 * trainable / max(total, 1):.2f}%)"


def _short(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
