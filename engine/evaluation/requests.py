"""The three kinds of evaluation request, answered by one model: log-likelihood of a continuation, rolling
log-likelihood of a whole text, and generation until a stop.

They follow lm-evaluation-harness's definitions so numbers compare: a pair is encoded as the whole text, then
split after the context's tokens (trailing spaces of the context move to the continuation); an empty context
conditions on BOS; a long text is scored in windows of the context length, each token once, with ``stride``
letting windows overlap to give every token more context. Every forward pass goes through
:func:`engine.generation.scoring.score_rows`, the scoring function the model server uses too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from engine.generation import SamplingParams, generate
from engine.generation.scoring import score_rows
from engine.model import Transformer
from engine.tokenizer import Tokenizer


@dataclass(frozen=True)
class Loglikelihood:
    """The summed log-probability of a continuation's tokens, its token count, and whether greedy decoding
    would have produced exactly it."""

    logprob: float
    tokens: int
    greedy: bool
    correct: int = 0  # tokens that were the most likely choice at their position


class ModelScorer:
    """Answers evaluation requests with a loaded model (eval mode, no autograd) and its tokenizer."""

    def __init__(self, model: Transformer, tokenizer: Tokenizer, *, batch_size: int = 8) -> None:
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.max_len = model.config.max_len
        self.prefix_id = model.config.bos_token_id
        self.device = model.lm_head.weight.device

    # -- token level --------------------------------------------------------------------------------------------

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation tokens as lm-evaluation-harness splits them."""
        if not context:
            ids = self.tokenizer.encode(continuation)
            return ([self.prefix_id], ids) if not ids or ids[0] != self.prefix_id else (ids[:1], ids[1:])
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tokenizer.encode(context + continuation)
        context_ids = self.tokenizer.encode(context)
        return context_ids, whole[len(context_ids) :]

    @torch.inference_mode()
    def score_pairs(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[Loglikelihood]:
        """Log-likelihood of each continuation after its context (the last ``max_len`` tokens are kept)."""
        results: list[Loglikelihood] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            rows = [(list(c) + list(x))[-(self.max_len + 1) :] for c, x in chunk]
            inputs = [row[:-1] for row in rows]
            width = max(len(row) for row in inputs)
            ids = torch.full((len(inputs), width), self.model.config.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(inputs), width), dtype=torch.long)
            for r, row in enumerate(inputs):
                ids[r, : len(row)] = torch.tensor(row)
                mask[r, : len(row)] = 1
            logits = self.model(ids.to(self.device), attention_mask=mask.to(self.device)).logits
            for r, ((_, continuation), row) in enumerate(zip(chunk, rows, strict=True)):
                n = len(continuation)
                first = len(row) - 1 - n  # the position whose logits predict the continuation's first token
                scores = score_rows(logits[r, first : first + n], row[-n:]) if n else []
                greedy = [s.greedy for s in scores]
                results.append(Loglikelihood(sum(s.logprob for s in scores), n, all(greedy), sum(greedy)))
        return results

    # -- the three request kinds ----------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        """``(context, continuation)`` → the continuation's log-likelihood given the context."""
        return self.score_pairs(
            [self.encode_pair(context, continuation) for context, continuation in requests]
        )

    def loglikelihood_rolling(
        self, texts: Sequence[str], *, stride: int | None = None
    ) -> list[Loglikelihood]:
        """Each whole text's log-likelihood, every token scored once: in disjoint windows of the context (as
        lm-evaluation-harness does), or with ``stride`` < context, windows that overlap so each new token
        sees up to ``max_len - stride`` earlier tokens of context."""
        results = []
        for text in texts:
            ids = self.tokenizer.encode(text)
            pairs = rolling_windows(ids, self.prefix_id, self.max_len, stride)
            scored = self.score_pairs(pairs)
            results.append(
                Loglikelihood(
                    sum(s.logprob for s in scored),
                    len(ids),
                    all(s.greedy for s in scored),
                    sum(s.correct for s in scored),
                )
            )
        return results

    def generate_until(
        self, requests: Sequence[tuple[str, list[str]]], *, params: SamplingParams
    ) -> list[str]:
        """Each context's continuation, cut at the first of its stop strings (greedy unless ``params`` sample)."""
        outputs = []
        for context, until in requests:
            settings = SamplingParams(**{**params.__dict__, "stop": list(until)})
            outputs.append(generate(self.model, self.tokenizer, context, settings)[0].text)
        return outputs


def rolling_windows(
    ids: Sequence[int], prefix_id: int, max_len: int, stride: int | None = None
) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) windows that score every token of ``ids`` exactly once.

    Without ``stride`` (or with ``stride >= max_len``) the windows are disjoint blocks of ``max_len`` tokens,
    the first conditioned on ``prefix_id``. With a smaller stride each window scores the next ``stride`` tokens
    after as much preceding text as fits.
    """
    if not ids:
        return []
    step = min(stride or max_len, max_len)
    tokens = [prefix_id, *ids]
    windows = []
    for start in range(0, len(ids), step):
        end = min(start + step, len(ids))
        first = max(0, end + 1 - (max_len + 1))  # the window holds at most max_len + 1 tokens
        window = tokens[first : end + 1]
        scored = end - start
        windows.append((window[:-scored], window[-scored:]))
    return windows


Progress = Callable[[int, int], None]
