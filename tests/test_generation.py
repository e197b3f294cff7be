"""Generation: sampling rules, the KV-cached loop, batching, stop conditions and streaming."""

from __future__ import annotations

import pytest
import torch

from engine.errors import LLModelError
from engine.generation import SamplingParams, generate, generate_ids
from engine.generation.sampling import apply_repetition_penalty, filter_top_k, filter_top_p
from engine.model import ModelConfig, Transformer
from engine.tokenizer import Tokenizer
from tests.model_fixtures import context_sensitive_model


@pytest.fixture
def model(nano_config: ModelConfig) -> Transformer:
    return context_sensitive_model(nano_config)


@pytest.fixture
def tokenizer(tokenizer_dir) -> Tokenizer:
    return Tokenizer.load(tokenizer_dir)


GREEDY = SamplingParams(max_new_tokens=10, do_sample=False, stop_at_eos=False)


def greedy_without_cache(model: Transformer, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    for _ in range(steps):
        logits = model(torch.tensor([ids])).logits[0, -1]
        ids.append(int(logits.argmax()))
    return ids[len(prompt) :]


def test_greedy_decoding_with_the_kv_cache_matches_recomputing_everything(model):
    prompt = [5, 17, 42, 9]
    assert generate_ids(model, [prompt], GREEDY)[0] == greedy_without_cache(model, prompt, 10)


def test_a_batch_of_prompts_of_different_lengths_gives_each_prompt_its_own_greedy_output(model):
    prompts = [[5, 17, 42, 9, 11, 12, 13], [7], [100, 200, 300]]
    batched = generate_ids(model, prompts, GREEDY)
    for prompt, output in zip(prompts, batched, strict=True):
        assert output == generate_ids(model, [prompt], GREEDY)[0]


def test_sampling_with_a_seed_is_reproducible_and_seeds_differ(model):
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=123, stop_at_eos=False)
    first = generate_ids(model, [[5, 6]], params)[0]
    assert first == generate_ids(model, [[5, 6]], params)[0]
    other = SamplingParams(max_new_tokens=12, temperature=1.0, seed=124, stop_at_eos=False)
    assert first != generate_ids(model, [[5, 6]], other)[0]


def test_top_k_of_one_is_greedy(model):
    params = SamplingParams(max_new_tokens=10, top_k=1, seed=1, stop_at_eos=False)
    assert generate_ids(model, [[3, 4, 5]], params) == generate_ids(model, [[3, 4, 5]], GREEDY)


def test_top_k_keeps_exactly_the_k_largest_logits():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(filter_top_k(logits, 2))
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(filter_top_p(probs.log(), 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_top_p(probs.log(), 0.1)).sum() == 1, "the top token always stays"


def test_repetition_penalty_lowers_seen_tokens_only():
    logits = torch.tensor([[2.0, -2.0, 2.0]])
    seen = torch.tensor([[True, True, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -4.0, 2.0]]


def test_generation_stops_at_eos(model):
    eos = generate_ids(model, [[1, 2, 3]], GREEDY)[0][3]
    out = generate_ids(model, [[1, 2, 3]], SamplingParams(max_new_tokens=10, do_sample=False), eos_id=eos)[0]
    assert eos not in out and len(out) <= 3


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": -1.0},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"repetition_penalty": 0.0},
        {"max_new_tokens": -1},
    ],
)
def test_invalid_sampling_settings_are_refused(params):
    with pytest.raises(LLModelError):
        SamplingParams(**params)


def test_text_generation_streams_exactly_the_final_text(model, tokenizer):
    pieces: list[str] = []
    params = SamplingParams(max_new_tokens=20, temperature=1.0, seed=7, stop_at_eos=False)
    result = generate(
        model, tokenizer, "def main():", params, on_text=lambda row, tok, text: pieces.append(text)
    )[0]
    assert "".join(pieces) == result.text
    assert len(result.tokens) == 20 and result.finish_reason == "length"


def test_a_stop_string_ends_generation_and_is_cut_from_the_text(model, tokenizer):
    params = SamplingParams(max_new_tokens=30, temperature=1.0, seed=3, stop_at_eos=False)
    full = generate(model, tokenizer, "x", params)[0].text
    stop = full[5:7]
    assert stop, "the model produced some text"
    stopped = generate(model, tokenizer, "x", SamplingParams(**{**params.__dict__, "stop": [stop]}))[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full[: full.find(stop)]


def test_a_prompt_longer_than_the_context_is_truncated_or_refused(model, tokenizer):
    long_prompt = "print('hello world')\n" * 200
    params = SamplingParams(max_new_tokens=8, do_sample=False)
    result = generate(model, tokenizer, long_prompt, params)[0]
    assert result.truncated_prompt and len(result.prompt_tokens) == model.config.max_len - 8
    with pytest.raises(LLModelError, match="exceeds the context of 64"):
        generate(model, tokenizer, long_prompt, params, truncate_prompt=False)
