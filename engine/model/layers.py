"""Building blocks of the Transformer: norms, positions, attention, feed-forward."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.config import ModelConfig
from engine.model.kv_cache import LayerCache


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (no bias)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.float32:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        # Normalise in fp32 for stability under bf16 autocast.
        return F.rms_norm(x.float(), self.weight.shape, self.weight.float(), self.eps).to(x.dtype)


def build_norm(config: ModelConfig) -> RMSNorm | nn.LayerNorm:
    if config.norm_type == "rmsnorm":
        return RMSNorm(config.d_model, config.rms_norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.rms_norm_eps)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding tables (GPT-NeoX / Llama half-split layout)."""

    cos: torch.Tensor
    signed_sin: torch.Tensor

    def __init__(self, head_dim: int, max_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", torch.cat([freqs.cos(), freqs.cos()], dim=-1), persistent=False)
        # sin with the sign of rotate_half folded in: rotate_half(x) * sin == x.roll(half) * signed_sin.
        self.register_buffer("signed_sin", torch.cat([-freqs.sin(), freqs.sin()], dim=-1), persistent=False)

    def forward(self, positions: torch.Tensor) -> RopeTables:
        """The (B, 1, T, hd) cos and signed-sin tables of ``positions`` (B, T), computed once per forward pass."""
        return self.cos[positions].unsqueeze(1), self.signed_sin[positions].unsqueeze(1)


RopeTables = tuple[torch.Tensor, torch.Tensor]


def apply_rotary(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """Rotate ``x`` (B, H, T, hd) by the angles the tables hold."""
    cos, signed_sin = tables
    if cos.dtype != x.dtype:  # bf16 activations under autocast
        cos, signed_sin = cos.to(x.dtype), signed_sin.to(x.dtype)
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def sinusoidal_table(max_len: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine position table of the original Transformer."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : dim // 2]
    return table


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Per-head ALiBi slopes (Press et al.), including the non-power-of-two interleave."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(power_of_two(closest) + extra)


class Attention(nn.Module):
    """Multi-head attention with grouped KV heads (MHA/GQA/MQA), an explicit and an SDPA path."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.n_kv_heads = config.kv_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.use_sdpa = config.attention_type in ("flash", "flash2")
        d, kv = config.d_model, config.kv_heads * config.head_dim
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv, bias=False)
        self.v_proj = nn.Linear(d, kv, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of ``x`` (B, T, d) as (B, heads, T, head_dim)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeTables | None,
        bias: torch.Tensor | None,
        cache: LayerCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend causally; ``bias`` is an additive (B|1, H|1, Tq, Tk) mask/bias or None for plain causal."""
        B, T, _ = x.shape
        q, k, v = self.project(x)
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        if cache is not None:
            k, v = cache.append(k, v)
        if self.n_kv_heads != self.n_heads:
            repeat = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(repeat, dim=1)
            v = v.repeat_interleave(repeat, dim=1)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if self.use_sdpa and not need_weights:
            if bias is None:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=T > 1)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout)
        else:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
            if bias is None:
                bias = causal_bias(T, k.shape[-2], x.device)
            weights = torch.softmax((scores + bias).float(), dim=-1).to(q.dtype)
            out = F.dropout(weights, dropout, self.training) @ v
        out = out.transpose(1, 2).reshape(B, T, -1)
        return self.o_proj(out), weights


def causal_bias(q_len: int, k_len: int, device: torch.device, past: int | None = None) -> torch.Tensor:
    """Additive causal mask (1, 1, q_len, k_len): query i sits at key position ``past + i``."""
    past = k_len - q_len if past is None else past
    q_pos = torch.arange(q_len, device=device).unsqueeze(1) + past
    k_pos = torch.arange(k_len, device=device).unsqueeze(0)
    mask = torch.zeros(q_len, k_len, device=device)
    mask.masked_fill_(k_pos > q_pos, float("-inf"))
    return mask.view(1, 1, q_len, k_len)


class FeedForward(nn.Module):
    """SwiGLU (gate/up/down, as Llama) or a GELU MLP (up/down)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.swiglu = config.ffn_type == "swiglu"
        if self.swiglu:
            self.gate_proj = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.up_proj = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down_proj = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The activation fed to ``down_proj``: silu(gate) * up, or gelu(up)."""
        if self.swiglu:
            return F.silu(self.gate_proj(x)) * self.up_proj(x)
        return F.gelu(self.up_proj(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.down_proj(self.hidden(x))
        return self.dropout(out) if self.training else out  # no module call per decoding step


class Block(nn.Module):
    """One Transformer layer, pre-norm (norm → sublayer → residual) or post-norm (residual → norm)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.input_layernorm = build_norm(config)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = build_norm(config)
        self.mlp = FeedForward(config)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeTables | None,
        bias: torch.Tensor | None,
        cache: LayerCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.norm_first:
            h, weights = self.self_attn(self.input_layernorm(x), rope, bias, cache, need_weights)
            x = x + (self.resid_dropout(h) if self.training else h)
            x = x + self.mlp(self.post_attention_layernorm(x))
        else:
            h, weights = self.self_attn(x, rope, bias, cache, need_weights)
            x = self.input_layernorm(x + (self.resid_dropout(h) if self.training else h))
            x = self.post_attention_layernorm(x + self.mlp(x))
        return x, weights
