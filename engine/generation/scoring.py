"""Log-probabilities of tokens: the one scoring function behind generated-token logprobs, ``echo`` scoring of
prompts, and log-likelihood evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from engine.model import Transformer


@dataclass(frozen=True)
class TokenScore:
    """One token's log-probability given what came before it, whether it was the most likely choice, and the
    ``top`` most likely tokens at its position (id → log-probability; empty unless asked for)."""

    token: int
    logprob: float
    greedy: bool
    top: dict[int, float] = field(default_factory=dict)


def score_rows(logits: torch.Tensor, targets: Sequence[int] | torch.Tensor, top: int = 0) -> list[TokenScore]:
    """Score ``targets[i]`` under row ``i`` of ``logits`` (N, V), computed in float32 from the raw logits."""
    logprobs = logits.float().log_softmax(-1)
    target = torch.as_tensor(targets, dtype=torch.long, device=logprobs.device).view(-1, 1)
    chosen = logprobs.gather(1, target).squeeze(1).tolist()
    greedy = (logprobs.argmax(-1) == target.squeeze(1)).tolist()
    best: list[dict[int, float]] = [{} for _ in chosen]
    if top:
        values, indices = torch.topk(logprobs, min(top, logprobs.shape[-1]), dim=-1)
        best = [dict(zip(i, v, strict=True)) for i, v in zip(indices.tolist(), values.tolist(), strict=True)]
    return [
        TokenScore(int(t), lp, g, b)
        for t, lp, g, b in zip(target.squeeze(1).tolist(), chosen, greedy, best, strict=True)
    ]


@torch.inference_mode()
def score_tokens(model: Transformer, ids: Sequence[int], top: int = 0) -> list[TokenScore | None]:
    """Every token of ``ids`` scored given the ones before it (None for the first, which has no context)."""
    if not ids:
        return []
    model.eval()
    x = torch.tensor([list(ids)], dtype=torch.long, device=model.lm_head.weight.device)
    logits = model(x).logits[0, :-1]
    return [None, *score_rows(logits, x[0, 1:], top)]
