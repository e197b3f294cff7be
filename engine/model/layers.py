"""Building blocks of the Transformer: norms, positions, attention, feed-forward."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.config import ModelConfig
from engine.model.kv_cache import LayerKVCache

# Products with at most this many rows (each decoding step) take Linear's split path on CPU.
FEW_ROWS = 16


class Linear(nn.Linear):
    """``nn.Linear`` that spreads products of a few rows over the CPU threads.

    BLAS runs a one- or few-row product (a decoding step) on one core at a fraction of the memory bandwidth.
    Viewing the weight as one block of output rows per thread and multiplying with ``bmm`` gives each thread its
    own block, which about doubles decoding speed on a 2-core CPU. Training-sized inputs keep ``F.linear``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        blocks = math.gcd(self.out_features, torch.get_num_threads())
        if x.device.type != "cpu" or not 0 < rows <= FEW_ROWS or blocks == 1 or self.bias is not None:
            return F.linear(x, self.weight, self.bias)
        weight = self.weight.view(blocks, self.out_features // blocks, self.in_features)
        columns = x.reshape(rows, self.in_features).t().expand(blocks, -1, -1)
        out = torch.bmm(weight, columns).view(self.out_features, rows).t()
        return out.reshape(*x.shape[:-1], self.out_features).contiguous()


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (no bias)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 for stability under bf16 autocast.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (h * self.weight.float()).to(x.dtype)


def build_norm(config: ModelConfig) -> nn.Module:
    if config.norm_type == "rmsnorm":
        return RMSNorm(config.d_model, config.rms_norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.rms_norm_eps)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding tables (GPT-NeoX / Llama half-split layout)."""

    def __init__(self, head_dim: int, max_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate q and k (B, H, T, hd) by the angles of ``positions`` (B, T)."""
        cos = self.cos[positions].unsqueeze(1).to(q.dtype)
        sin = self.sin[positions].unsqueeze(1).to(q.dtype)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


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
        self.n_kv_heads = config.n_kv_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.use_sdpa = config.attention_type == "flash"
        d, kv = config.d_model, config.n_kv_heads * config.head_dim
        self.q_proj = Linear(d, d, bias=False)
        self.k_proj = Linear(d, kv, bias=False)
        self.v_proj = Linear(d, kv, bias=False)
        self.o_proj = Linear(d, d, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        rope: RotaryEmbedding | None,
        bias: torch.Tensor | None,
        cache: LayerKVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend causally; ``bias`` is an additive (B|1, H|1, Tq, Tk) mask/bias or None for plain causal."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = rope(q, k, positions)
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
            self.gate_proj = Linear(config.d_model, config.d_ff, bias=False)
        self.up_proj = Linear(config.d_model, config.d_ff, bias=False)
        self.down_proj = Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.swiglu:
            h = F.silu(self.gate_proj(x)) * self.up_proj(x)
        else:
            h = F.gelu(self.up_proj(x))
        return self.dropout(self.down_proj(h))


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
        positions: torch.Tensor,
        rope: RotaryEmbedding | None,
        bias: torch.Tensor | None,
        cache: LayerKVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.norm_first:
            h, weights = self.self_attn(self.input_layernorm(x), positions, rope, bias, cache, need_weights)
            x = x + self.resid_dropout(h)
            x = x + self.mlp(self.post_attention_layernorm(x))
        else:
            h, weights = self.self_attn(x, positions, rope, bias, cache, need_weights)
            x = self.input_layernorm(x + self.resid_dropout(h))
            x = self.post_attention_layernorm(x + self.mlp(x))
        return x, weights
