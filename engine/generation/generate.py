"""Autoregressive generation with a KV cache: batched prompts, stop conditions, token streaming."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from engine.errors import LLModelError
from engine.generation.detokenize import IncrementalDetokenizer
from engine.generation.sampling import SamplingParams, next_tokens
from engine.model import Transformer
from engine.model.decode_step import DecodeStep, cache_arrays, supports_decode_step
from engine.tokenizer import Tokenizer

# (row index, token id, decoded text of the new token) for every token produced.
TokenCallback = Callable[[int, int, str], None]


@dataclass
class GenerationResult:
    prompt_tokens: list[int]
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"  # "length" | "eos" | "stop"
    truncated_prompt: bool = False


def fit_prompt(
    ids: list[int], max_len: int, max_new_tokens: int, *, truncate: bool = True
) -> tuple[list[int], bool]:
    """Keep the prompt within the context, leaving room for the new tokens; drop its oldest tokens if allowed."""
    room = max_len - max_new_tokens
    if room < 1:
        raise LLModelError(
            f"max tokens {max_new_tokens} leaves no room for a prompt in the context of {max_len}"
        )
    if len(ids) <= room:
        return ids, False
    if not truncate:
        raise LLModelError(
            f"prompt of {len(ids)} tokens plus {max_new_tokens} new tokens exceeds the context of {max_len}; "
            "shorten the prompt or lower max tokens"
        )
    return ids[-room:], True


@torch.inference_mode()
def generate_ids(
    model: Transformer,
    prompts: Sequence[list[int]],
    params: SamplingParams,
    *,
    eos_id: int | None = None,
    on_token: Callable[[int, int], bool | None] | None = None,
) -> list[list[int]]:
    """Generate up to ``params.max_new_tokens`` ids per prompt (left-padded batch, shared KV cache).

    A row ends at the model's ``eos_token_id`` (or ``eos_id`` when given) unless ``params.stop_at_eos`` is
    false. ``on_token(row, token)`` is called for each new token; returning True stops that row.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise LLModelError("every prompt needs at least one token")
    model.eval()
    device = model.lm_head.weight.device
    batch, longest = len(prompts), max(len(p) for p in prompts)
    if longest + params.max_new_tokens > model.config.max_len:
        raise LLModelError(
            f"prompt of {longest} tokens plus {params.max_new_tokens} new tokens exceeds the context of "
            f"{model.config.max_len}; shorten the prompt or lower max tokens"
        )
    pad = model.config.pad_token_id
    input_ids = torch.full((batch, longest), pad, dtype=torch.long, device=device)
    mask = torch.zeros((batch, longest + params.max_new_tokens), dtype=torch.long, device=device)
    for row, ids in enumerate(prompts):
        input_ids[row, longest - len(ids) :] = torch.tensor(ids, device=device)
        mask[row, longest - len(ids) : longest] = 1
    padded = any(len(p) != longest for p in prompts)
    seen = torch.zeros((batch, model.config.vocab_size), dtype=torch.bool, device=device)
    for row, ids in enumerate(prompts):
        seen[row, ids] = True
    generator = None
    if params.seed is not None:
        generator = torch.Generator(device=device).manual_seed(params.seed)
    cache = model.new_kv_cache(batch, longest + params.max_new_tokens)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    # Per-token bookkeeping uses Python lists (indexing a tensor row by row costs microseconds per call);
    # ``seen`` is only kept up to date when the repetition penalty reads it.
    done = [False] * batch
    track_seen = params.repetition_penalty != 1.0
    stop_id = (model.config.eos_token_id if eos_id is None else eos_id) if params.stop_at_eos else None
    # One sequence on a CPU model in the decode layout: tokens after the prompt take the compiled decoding step.
    decode_step = DecodeStep(model) if batch == 1 and supports_decode_step(model) else None
    if decode_step is not None:
        arrays = cache_arrays([layer.k for layer in cache.layers], [layer.v for layer in cache.layers])
    tokens: list[int] = []
    step_ids, length = input_ids, longest
    for _ in range(params.max_new_tokens):
        if decode_step is not None and tokens:
            logits = decode_step(tokens, [cache.length], arrays, [0])
            cache.advance()
        else:
            attention_mask = mask[:, :length] if padded else None
            out = model(step_ids, kv_cache=cache, attention_mask=attention_mask, logits_for="last")
            logits = out.logits[:, -1]
        chosen = next_tokens(logits, params, seen, generator)
        tokens = chosen.tolist()
        for row, token in enumerate(tokens):
            if done[row]:
                continue
            if token == stop_id:
                done[row] = True
                continue
            outputs[row].append(token)
            if track_seen:
                seen[row, token] = True
            if on_token is not None and on_token(row, token):
                done[row] = True
        if all(done):
            break
        if padded:
            mask[:, length] = 1
        length += 1
        step_ids = chosen.unsqueeze(1)
    return outputs


def prompt_ids(
    model: Transformer, tokenizer: Tokenizer, text: str, *, add_bos: bool = True, parse_special: bool = False
) -> list[int]:
    """``text``'s token ids, after the model's ``bos_token_id`` when ``add_bos``; never empty.

    ``parse_special`` turns special tokens written in the text into their ids (what API clients expect).
    """
    ids = tokenizer.encode(text, parse_special=parse_special)
    bos = [model.config.bos_token_id]
    return bos + ids if add_bos or not ids else ids


def generate(
    model: Transformer,
    tokenizer: Tokenizer,
    prompts: str | Sequence[str],
    params: SamplingParams,
    *,
    on_text: TokenCallback | None = None,
    add_bos: bool = True,
    truncate_prompt: bool = True,
) -> list[GenerationResult]:
    """Generate text for one or more prompts; ``on_text`` streams each token's text as it comes."""
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise LLModelError(
            f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {model.config.vocab_size}; "
            "use the tokenizer the model was trained with"
        )
    results = []
    for text in texts:
        ids = prompt_ids(model, tokenizer, text, add_bos=add_bos)
        ids, truncated = fit_prompt(
            ids, model.config.max_len, params.max_new_tokens, truncate=truncate_prompt
        )
        results.append(GenerationResult(prompt_tokens=ids, truncated_prompt=truncated))
    detokenizers = [IncrementalDetokenizer(tokenizer, params.stop) for _ in texts]

    def on_token(row: int, token: int) -> bool:
        result, detokenizer = results[row], detokenizers[row]
        result.tokens.append(token)
        text = detokenizer.push(token)
        if text and on_text is not None:
            on_text(row, token, text)
        if detokenizer.stopped:
            result.finish_reason = "stop"
        return detokenizer.stopped

    generate_ids(model, [r.prompt_tokens for r in results], params, on_token=on_token)
    for row, (result, detokenizer) in enumerate(zip(results, detokenizers, strict=True)):
        rest = detokenizer.finish()
        if rest and on_text is not None:
            on_text(row, result.tokens[-1], rest)
        result.text = detokenizer.final_text
        if result.finish_reason == "length" and len(result.tokens) < params.max_new_tokens:
            result.finish_reason = "eos"
    return results
