"""The decoder-only Transformer, with weights named in the Llama layout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from engine.errors import LLModelError
from engine.model.config import ModelConfig
from engine.model.kv_cache import Cache, KVCache
from engine.model.layers import (
    Block,
    RotaryEmbedding,
    alibi_slopes,
    build_norm,
    causal_bias,
    sinusoidal_table,
)

IGNORE_INDEX = -100


@dataclass
class ModelOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None
    attentions: list[torch.Tensor] | None = None


class Backbone(nn.Module):
    """Embeddings, the stack of blocks and the final norm (the ``model.*`` weights)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        if config.pos_type == "absolute":
            self.embed_positions = nn.Embedding(config.max_len, config.d_model)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = build_norm(config)

    @property
    def blocks(self) -> list[Block]:
        """The layers as the blocks they are (an ``nn.ModuleList`` yields untyped modules)."""
        return cast("list[Block]", list(self.layers))


class Transformer(nn.Module):
    """A causal language model built from a :class:`ModelConfig`."""

    sinusoidal: torch.Tensor  # buffers of the position types that use them
    alibi: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.drop = nn.Dropout(config.dropout)
        self.rope = (
            RotaryEmbedding(config.head_dim, config.max_len, config.rope_theta)
            if config.pos_type == "rope"
            else None
        )
        if config.pos_type == "sinusoidal":
            self.register_buffer(
                "sinusoidal", sinusoidal_table(config.max_len, config.d_model), persistent=False
            )
        if config.pos_type == "alibi":
            self.register_buffer("alibi", alibi_slopes(config.n_heads), persistent=False)
        self.gradient_checkpointing = config.use_gradient_checkpointing
        self.apply(self._init_weights)
        # Residual projections scaled by depth (GPT-2) so the residual stream does not grow with layers.
        scaled_std = config.initializer_range / math.sqrt(2 * config.n_layers)
        for name, param in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(param, mean=0.0, std=scaled_std)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)

    def num_parameters(self) -> int:
        """Parameters actually allocated (tied weights once)."""
        return sum(p.numel() for p in self.parameters())

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty KV cache on this model's device and dtype."""
        weight = self.lm_head.weight
        c = self.config
        return KVCache(
            c.n_layers,
            batch_size,
            c.kv_heads,
            max_len or c.max_len,
            c.head_dim,
            dtype=weight.dtype,
            device=weight.device,
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        kv_cache: Cache | None = None,
        return_attention: bool = False,
        logits_for: str = "all",
    ) -> ModelOutput:
        """Run the model on ``input_ids`` (B, T).

        ``attention_mask`` (B, past + T) marks real tokens with 1 (left padding for batched prompts);
        ``segment_ids`` (B, T) packs several sequences in a row: a token attends only to earlier tokens of its own
        segment (give ``positions`` restarting at each segment too); ``labels`` (B, T) gives the loss, with -100
        ignored; ``logits_for="last"`` keeps only the final position.
        """
        B, T = input_ids.shape
        past = kv_cache.length if kv_cache is not None else 0
        if past + T > self.config.max_len:
            raise LLModelError(
                f"sequence of {past + T} tokens exceeds the model's context max_len={self.config.max_len}; "
                "shorten the input"
            )
        if positions is None:
            if attention_mask is not None:
                positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
            else:
                positions = torch.arange(past, past + T, device=input_ids.device).unsqueeze(0).expand(B, T)
        x = self.model.embed_tokens(input_ids)
        if self.config.pos_type == "absolute":
            x = x + self.model.embed_positions(positions)
        elif self.config.pos_type == "sinusoidal":
            x = x + self.sinusoidal[positions].to(x.dtype)
        if self.training:
            x = self.drop(x)
        if segment_ids is not None and past:
            raise LLModelError(
                "packed sequences (segment_ids) cannot continue a KV cache; run them without one"
            )
        bias = self._attention_bias(T, past, attention_mask, input_ids.device, segment_ids)
        rope = self.rope(positions) if self.rope is not None else None
        attentions: list[torch.Tensor] | None = [] if return_attention else None
        for i, layer in enumerate(self.model.blocks):
            cache = kv_cache.layers[i] if kv_cache is not None else None
            if self.gradient_checkpointing and self.training and cache is None and not return_attention:
                x, weights = checkpoint(layer, x, rope, bias, use_reentrant=False)
            else:
                x, weights = layer(x, rope, bias, cache, return_attention)
            if attentions is not None:
                attentions.append(weights)
        hidden = self.model.norm(x)
        if logits_for == "last":
            hidden = hidden[:, -1:, :]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits.float().view(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
            )
        return ModelOutput(logits=logits, loss=loss, hidden_states=hidden, attentions=attentions)

    def _attention_bias(
        self,
        q_len: int,
        past: int,
        attention_mask: torch.Tensor | None,
        device: torch.device,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """The additive attention bias, or None when plain causal masking suffices (the fast SDPA path)."""
        k_len = past + q_len
        alibi = self.config.pos_type == "alibi"
        if not alibi and attention_mask is None and segment_ids is None and (past == 0 or q_len == 1):
            return None
        bias = causal_bias(q_len, k_len, device, past)
        if alibi:
            q_pos = torch.arange(past, k_len, device=device).unsqueeze(1)
            k_pos = torch.arange(k_len, device=device).unsqueeze(0)
            distance = (q_pos - k_pos).clamp(min=0).float()
            bias = bias - self.alibi.view(1, -1, 1, 1) * distance.view(1, 1, q_len, k_len)
        if segment_ids is not None:
            same = segment_ids.unsqueeze(2) == segment_ids.unsqueeze(1)  # (B, T, T)
            bias = bias.masked_fill(~same.unsqueeze(1), float("-inf"))
        if attention_mask is not None:
            key_ok = attention_mask.bool().view(-1, 1, 1, k_len)
            bias = bias.masked_fill(~key_ok, float("-inf"))
            # A query with no real key to see (left padding) attends to itself so its softmax row is never
            # empty; a real query whose own key sits elsewhere (per-row cache positions) is left alone.
            empty = torch.isneginf(bias).all(-1, keepdim=True)
            bias = bias.masked_fill(empty & _diagonal(q_len, past, device), 0.0)
        return bias


def _diagonal(q_len: int, past: int, device: torch.device) -> torch.Tensor:
    """(1, 1, q_len, past + q_len) true where a query meets its own key."""
    q_pos = torch.arange(past, past + q_len, device=device).unsqueeze(1)
    k_pos = torch.arange(past + q_len, device=device).unsqueeze(0)
    return (q_pos == k_pos).view(1, 1, q_len, past + q_len)
