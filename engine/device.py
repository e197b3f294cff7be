"""Device and precision selection."""

from __future__ import annotations

import contextlib
import resource
import sys

import torch

from engine.errors import LLModelError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LLModelError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LLModelError("device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LLModelError("device mps was asked for but MPS is not available; use --device cpu or auto")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU."""
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise LLModelError("fp16 needs a CUDA GPU; use --precision bf16 or fp32 on this device")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of this process on ``device``: allocator peak on CUDA, resident set size on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
