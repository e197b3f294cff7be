"""4-bit NormalFloat (NF4) base weights for QLoRA, through torchao's NF4 tensor (blockwise absmax scales with
double-quantised scalers, as in Dettmers et al. 2023), which runs on any device PyTorch does."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import torch
from torch import nn

from engine.errors import ConfigError

BLOCK_SIZE = 64  # weights per absmax scale, as in the QLoRA paper
SCALER_BLOCK_SIZES = (256, 128, 64, 32, 16, 8, 4, 2, 1)  # scales per second-level scale, largest that fits


def require_torchao() -> ModuleType:
    """torchao's NF4 module; a one-line ConfigError when torchao is not installed."""
    # torchao's optional CUDA extensions print a failure per missing library on a CPU build; NF4 needs none.
    os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    try:
        from torchao.quantization.quantize_.workflows.nf4 import nf4_tensor
    except ImportError:
        raise ConfigError(
            "QLoRA needs torchao's NF4 tensor, which is not installed; `pip install -e '.[qlora]'`, or use "
            "--method lora"
        ) from None
    return nf4_tensor


def available() -> bool:
    """Whether NF4 quantization can run here."""
    try:
        require_torchao()
    except ConfigError:
        return False
    return True


def to_nf4(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` quantized to NF4; its element count must be a multiple of the block size."""
    if weight.numel() % BLOCK_SIZE:
        raise ConfigError(
            f"a weight of {tuple(weight.shape)} has {weight.numel()} elements, not a multiple of {BLOCK_SIZE}; "
            "QLoRA needs layer sizes divisible by 8"
        )
    scalers = weight.numel() // BLOCK_SIZE
    scaler_block = next(size for size in SCALER_BLOCK_SIZES if scalers % size == 0)
    return require_torchao().to_nf4(
        weight.detach().contiguous(), block_size=BLOCK_SIZE, scaler_block_size=scaler_block
    )


def quantize_linear(linear: nn.Linear) -> None:
    """Replace the layer's weight by a frozen NF4 copy (in place)."""
    linear.weight = nn.Parameter(to_nf4(linear.weight.data), requires_grad=False)


def nf4_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ dequantize(weight).T``, differentiable with respect to ``x``."""
    return require_torchao().linear_nf4(x, weight)


def _as_nf4(weight: torch.Tensor) -> Any:
    """The weight as torchao's ``NF4Tensor``, a Tensor subclass of a package that publishes no types."""
    return weight


def dequantize(weight: torch.Tensor) -> torch.Tensor:
    """The full-precision weight an NF4 tensor stands for."""
    return torch.as_tensor(_as_nf4(weight).get_original_weight())


def weight_bytes(weight: torch.Tensor) -> int:
    """Bytes a weight occupies: its packed 4-bit codes and scales for NF4, its elements otherwise."""
    if weight.__class__.__name__ == "NF4Tensor":
        nf4 = _as_nf4(weight)
        parts = (nf4.quantized_data, nf4.quantized_scalers, nf4.quantization_factor, nf4.scaler_mean, nf4.nf4)
        return sum(t.numel() * t.element_size() for t in parts)
    return weight.numel() * weight.element_size()
