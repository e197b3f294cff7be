"""Attention maps: every layer's and head's attention on a text — the fixed probe saved during training, or any
text a user types — at most 64x64, for the workbench."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from engine.errors import LLModelError
from engine.fileio import atomic_path
from engine.model import Transformer

if TYPE_CHECKING:
    from engine.tokenizer import Tokenizer

MAX_SIDE = 64
PROBE_TEXT = 'def greet(name):\n    """Say hello to someone."""\n    return "Hello, " + name + "!"\n'


def capture_attention(model: Transformer, ids: list[int]) -> torch.Tensor:
    """Attention weights (layers, heads, T, T) for ``ids`` through the explicit attention path, at most 64x64."""
    ids = ids[: model.config.max_len]
    device = model.lm_head.weight.device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([ids], device=device), return_attention=True)
    model.train(was_training)
    weights = torch.stack([a[0] for a in out.attentions]).float().cpu()  # (L, H, T, T)
    return downsample(weights, MAX_SIDE)


def attention_on_text(model: Transformer, tokenizer: Tokenizer, text: str) -> tuple[torch.Tensor, list[str]]:
    """Attention weights (layers, heads, T, T), at most 64x64, and the token labels of both axes, for ``text``."""
    ids = tokenizer.encode(text)[: model.config.max_len]
    if not ids:
        raise LLModelError("the text has no tokens; type something to look at")
    return capture_attention(model, ids), token_labels([tokenizer.decode([i]) for i in ids])


def downsample(weights: torch.Tensor, side: int) -> torch.Tensor:
    """Pool the last two dims into at most ``side`` token buckets: queries averaged, keys summed.

    Each pooled row is still a probability distribution over (bucketed) keys.
    """
    t = weights.shape[-1]
    if t <= side:
        return weights
    bucket = torch.tensor([i * side // t for i in range(t)])
    member = F.one_hot(bucket, side).to(weights.dtype)  # (t, side)
    row_mean = (member / member.sum(0, keepdim=True)).T  # (side, t)
    return row_mean @ weights @ member


def token_labels(pieces: list[str], side: int = MAX_SIDE) -> list[str]:
    """One label per row/column; when the map was pooled, each label joins the pieces of its bucket."""
    if len(pieces) <= side:
        return pieces
    labels = ["" for _ in range(side)]
    for i, piece in enumerate(pieces):
        labels[i * side // len(pieces)] += piece
    return labels


def save_snapshot(path: Path, weights: torch.Tensor, labels: list[str], step: int) -> None:
    """Write the snapshot as safetensors (float16) with the step and labels in its metadata, atomically."""
    with atomic_path(path) as tmp:
        save_file(
            {"attention": weights.to(torch.float16).contiguous()},
            str(tmp),
            metadata={"step": str(step), "tokens": json.dumps(labels)},
        )


def load_snapshot(path: Path) -> tuple[torch.Tensor, list[str], int]:
    """Read a snapshot: (weights (L, H, T, T) float32, token labels, step)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    weights = load_file(str(path))["attention"].float()
    return weights, json.loads(meta.get("tokens", "[]")), int(meta.get("step", 0))
