"""Turning next-token logits into a choice: penalties, temperature, top-k, top-p."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.errors import LLModelError

# Temperatures below this sample as greedy: dividing logits by ~1e-45 overflows to inf (vLLM uses the same bound).
GREEDY_BELOW = 1e-5
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts


@dataclass
class SamplingParams:
    """How to pick each next token; ``do_sample=False`` (or temperature 0) is greedy."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    do_sample: bool = True
    stop: list[str] = field(default_factory=list)
    stop_at_eos: bool = True
    seed: int | None = None
    logprobs: int = 0  # how many most likely alternatives to record with each generated token

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise LLModelError(f"max tokens must be ≥ 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise LLModelError(f"temperature must be ≥ 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 0:
            raise LLModelError(f"top-k must be ≥ 0, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise LLModelError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise LLModelError(f"repetition penalty must be > 0, got {self.repetition_penalty}")
        if self.seed is not None and not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise LLModelError(f"seed must be between {SEED_RANGE[0]} and {SEED_RANGE[1]}, got {self.seed}")
        if self.logprobs < 0:
            raise LLModelError(f"logprobs must be ≥ 0, got {self.logprobs}")

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature < GREEDY_BELOW


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style penalty on tokens already in ``seen`` (B, V bool): positive logits divided, negative multiplied."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def filter_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the ``k`` highest logits per row; others become -inf."""
    if not k or k >= logits.shape[-1]:
        return logits
    threshold = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < threshold, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose probability reaches ``p``."""
    if p is None or p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    # Drop a token when the mass before it already reaches p; the top token always stays (a p below float32's
    # smallest value would otherwise compare as 0 and drop it too).
    drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= p
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_tokens(
    logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Choose one token per row of ``logits`` (B, V); extreme settings never yield inf/nan probabilities."""
    logits = _finite(apply_repetition_penalty(logits.float(), seen, params.repetition_penalty))
    if params.greedy:
        return logits.argmax(-1)
    logits = _finite(logits / params.temperature)
    logits = filter_top_p(filter_top_k(logits, params.top_k), params.top_p)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _finite(logits: torch.Tensor) -> torch.Tensor:
    """Overflowed logits (a tiny penalty or temperature divides by ~0) clamped to the largest finite float.

    Several tokens at the top then tie, as their true ratio is beyond float range anyway; nan never survives.
    """
    top = torch.finfo(logits.dtype).max
    return torch.nan_to_num(logits, nan=-top, posinf=top, neginf=float("-inf")).clamp(min=-top)
