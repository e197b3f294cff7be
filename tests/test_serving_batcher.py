"""Continuous batching: each request gets exactly what it would get alone, however many others share the steps."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
import torch

from engine.errors import LLModelError
from engine.generation import SamplingParams, generate_ids
from engine.generation.detokenize import IncrementalDetokenizer
from engine.generation.scoring import score_tokens
from engine.model import ModelConfig, Transformer
from engine.server.batcher import ContinuousBatcher, QueueFull
from engine.server.slot_cache import SlotKVCache
from engine.tokenizer import Tokenizer

WAIT = 20.0  # seconds any single wait may take before a test fails instead of hanging

# Eight prompts of different lengths, each with its own max tokens (prompt + max tokens fits max_len 64).
LENGTHS = [3, 9, 1, 14, 6, 20, 2, 11]
MAX_TOKENS = [12, 5, 20, 8, 16, 3, 10, 7]


def greedy(max_new_tokens: int, **kwargs: object) -> SamplingParams:
    return SamplingParams(max_new_tokens=max_new_tokens, do_sample=False, stop_at_eos=False, **kwargs)


def make_prompts(lengths: list[int], seed: int = 0) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(5, 500, (n,), generator=gen).tolist() for n in lengths]


@pytest.fixture
def model(nano_config: ModelConfig) -> Transformer:
    # Untied, wide-initialised weights: a freshly initialised tied model just repeats its last token, which
    # would let a cache that mixes up rows pass unnoticed; this one's greedy output depends on the whole prompt.
    torch.manual_seed(0)
    overrides = {"dropout": 0.0, "tie_word_embeddings": False, "initializer_range": 0.3}
    return Transformer(ModelConfig.from_dict({**nano_config.to_dict(), **overrides})).eval()


@pytest.fixture
def tokenizer(tokenizer_dir) -> Tokenizer:
    return Tokenizer.load(tokenizer_dir)


@pytest.fixture
def make_batcher(model, tokenizer):
    made: list[ContinuousBatcher] = []

    def make(max_batch: int = 8, max_queue: int = 64, tok: object = None) -> ContinuousBatcher:
        batcher = ContinuousBatcher(model, tok or tokenizer, max_batch=max_batch, max_queue=max_queue)
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.stop()


def alone(
    model: Transformer, prompt: list[int], params: SamplingParams, eos_id: int | None = None
) -> list[int]:
    return generate_ids(model, [prompt], params, eos_id=eos_id)[0]


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the batcher"
        time.sleep(0.002)


class StepGate:
    """Lets the batcher take a decode step only when the test says so (prefills still run freely)."""

    def __init__(self, batcher: ContinuousBatcher) -> None:
        self._allowed = threading.Semaphore(0)
        self._decode = batcher.cache.decode
        batcher.cache.decode = self._gated  # type: ignore[method-assign]

    def _gated(self, slots, tokens, adapters):
        assert self._allowed.acquire(timeout=WAIT), "the test never let the step run"
        return self._decode(slots, tokens, adapters)

    def step(self, n: int = 1) -> None:
        self._allowed.release(n)

    def open(self) -> None:
        self._allowed.release(100_000)


# -- batching never changes what a request gets --------------------------------------------------------


def test_each_of_eight_requests_gets_the_greedy_output_it_gets_alone(model, make_batcher):
    prompts = make_prompts(LENGTHS)
    expected = [alone(model, p, greedy(n)) for p, n in zip(prompts, MAX_TOKENS, strict=True)]
    batcher = make_batcher(max_batch=8)
    handles = [batcher.submit(p, greedy(n)) for p, n in zip(prompts, MAX_TOKENS, strict=True)]
    batcher.start()
    results = [h.result(WAIT) for h in handles]
    assert [r.tokens for r in results] == expected
    assert all(r.finish_reason == "length" for r in results)
    assert [r.prompt_tokens for r in results] == prompts


def test_requests_that_join_while_others_are_mid_generation_get_their_own_output(model, make_batcher):
    prompts = make_prompts(LENGTHS, seed=1)
    params = [greedy(n) for n in MAX_TOKENS]
    expected = [alone(model, p, q) for p, q in zip(prompts, params, strict=True)]
    batcher = make_batcher(max_batch=8)
    gate = StepGate(batcher)
    handles = [batcher.submit(prompts[i], params[i]) for i in range(3)]
    batcher.start()
    wait_for(lambda: batcher.stats()["active"] == 3)
    gate.step(3)
    wait_for(lambda: batcher.stats()["steps"] == 3)
    handles += [batcher.submit(prompts[i], params[i]) for i in range(3, 5)]
    gate.step(2)
    wait_for(lambda: batcher.stats()["steps"] == 5)
    handles += [batcher.submit(prompts[i], params[i]) for i in range(5, 8)]
    gate.open()
    assert [h.result(WAIT).tokens for h in handles] == expected


def test_finished_requests_free_their_slots_so_more_than_max_batch_requests_complete(model, make_batcher):
    prompts = make_prompts([4, 7, 2, 9, 5, 3, 8], seed=2)
    tokens = [6, 2, 9, 4, 7, 3, 5]
    batcher = make_batcher(max_batch=2)
    handles = [batcher.submit(p, greedy(n)) for p, n in zip(prompts, tokens, strict=True)]
    batcher.start()
    results = [h.result(WAIT) for h in handles]
    assert [r.tokens for r in results] == [
        alone(model, p, greedy(n)) for p, n in zip(prompts, tokens, strict=True)
    ]
    stats = batcher.stats()
    assert stats["active"] == 0 and stats["queue_depth"] == 0
    assert stats["tokens_generated"] == sum(tokens)
    assert batcher.cache.free_slots == 2


def test_each_row_samples_with_its_own_params(model, make_batcher):
    prompts = make_prompts([5, 3, 8, 2, 6], seed=3)
    params = [
        greedy(10),
        greedy(10, repetition_penalty=1.8),
        SamplingParams(max_new_tokens=10, temperature=0.8, top_k=20, seed=7, stop_at_eos=False),
        SamplingParams(max_new_tokens=10, temperature=1.3, top_p=0.9, seed=11, stop_at_eos=False),
        SamplingParams(max_new_tokens=10, temperature=1.0, repetition_penalty=1.3, seed=5, stop_at_eos=False),
    ]
    expected = [alone(model, p, q) for p, q in zip(prompts, params, strict=True)]
    batcher = make_batcher()
    handles = [batcher.submit(p, q) for p, q in zip(prompts, params, strict=True)]
    batcher.start()
    assert [h.result(WAIT).tokens for h in handles] == expected


def test_sampling_with_a_seed_is_reproducible_whatever_runs_beside_it(model, make_batcher):
    prompt = make_prompts([4], seed=4)[0]
    seeded = SamplingParams(max_new_tokens=15, temperature=1.0, seed=123, stop_at_eos=False)
    batcher = make_batcher()
    batcher.start()
    first = batcher.submit(prompt, seeded).result(WAIT).tokens
    crowd = [batcher.submit(p, greedy(12)) for p in make_prompts([3, 7, 5], seed=5)]
    again = batcher.submit(prompt, seeded)
    other = batcher.submit(
        prompt, SamplingParams(max_new_tokens=15, temperature=1.0, seed=124, stop_at_eos=False)
    )
    assert again.result(WAIT).tokens == first
    assert other.result(WAIT).tokens != first
    assert all(h.result(WAIT).finish_reason == "length" for h in crowd)


def test_eight_concurrent_requests_take_about_as_many_steps_as_the_longest_not_the_sum(make_batcher):
    batcher = make_batcher(max_batch=8)
    handles = [batcher.submit(p, greedy(n)) for p, n in zip(make_prompts(LENGTHS), MAX_TOKENS, strict=True)]
    batcher.start()
    for h in handles:
        h.result(WAIT)
    steps = batcher.stats()["steps"]
    # Each prompt's first token comes from its prefill; every later token of all eight shares one step.
    assert max(MAX_TOKENS) - 1 <= steps <= max(MAX_TOKENS)
    assert steps < sum(MAX_TOKENS) / 4
    assert batcher.stats()["tokens_generated"] == sum(MAX_TOKENS)


# -- ending a request -------------------------------------------------------------------------------------


def test_a_stop_string_ends_the_request_and_cuts_the_text_before_it(make_batcher, tokenizer):
    prompt = make_prompts([6], seed=6)[0]
    batcher = make_batcher()
    batcher.start()
    full = batcher.submit(prompt, greedy(30)).result(WAIT).text
    assert len(full) >= 8, "the test needs some generated text to cut"
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    result = batcher.submit(prompt, greedy(30, stop=["never appears", stop])).result(WAIT)
    assert result.finish_reason == "stop"
    assert result.text == full[: full.find(stop)]
    assert len(result.tokens) < 30
    assert stop in tokenizer.decode(result.tokens), "the token that completed the stop string is kept"


def with_eos(model: Transformer, eos_id: int) -> Transformer:
    """The same weights, with ``eos_id`` as the config's end-of-sequence token."""
    config = ModelConfig.from_dict({**model.config.to_dict(), "eos_token_id": eos_id})
    other = Transformer(config).eval()
    other.load_state_dict(model.state_dict())
    return other


def test_eos_ends_the_request_with_finish_reason_stop_and_is_not_part_of_the_output(
    model, tokenizer, make_batcher
):
    prompt = make_prompts([5], seed=7)[0]
    free_run = alone(model, prompt, greedy(20))
    eos = next(t for t in free_run if free_run.index(t) >= 2)
    batcher = ContinuousBatcher(with_eos(model, eos), tokenizer)
    batcher.start()
    result = batcher.submit(prompt, SamplingParams(max_new_tokens=20, do_sample=False)).result(WAIT)
    assert result.finish_reason == "stop"
    assert result.tokens == free_run[: free_run.index(eos)]
    assert result.tokens == alone(
        model, prompt, SamplingParams(max_new_tokens=20, do_sample=False), eos_id=eos
    )
    assert result.text == tokenizer.decode(result.tokens)
    # Text held back for a stop string that never came is released by a last, token-less delta.
    held = SamplingParams(max_new_tokens=20, do_sample=False, stop=[result.text[-1] + "\x00"])
    handle = batcher.submit(prompt, held)
    deltas = list(handle.stream(timeout=WAIT))
    assert "".join(d.text for d in deltas) == handle.result(WAIT).text == result.text
    assert deltas[-1].token_id is None and deltas[-1].text == result.text[-1]
    batcher.stop()


def test_the_queue_limit_raises_queue_full_and_a_cancelled_waiter_leaves_the_queue(make_batcher):
    batcher = make_batcher(max_batch=1, max_queue=2)  # not started: one request will get the slot, two wait
    batcher.submit([5, 6], greedy(3))
    waiter = batcher.submit([7], greedy(3))
    batcher.submit([7, 8], greedy(3))
    with pytest.raises(QueueFull, match="max_queue=2"):
        batcher.submit([8], greedy(3))
    assert issubclass(QueueFull, LLModelError)
    waiter.cancel()
    assert waiter.result(WAIT).finish_reason == "cancelled"
    assert batcher.stats()["queue_depth"] == 2
    batcher.submit([8], greedy(3))


def test_a_prompt_that_does_not_fit_the_context_is_rejected_naming_both_numbers(make_batcher):
    batcher = make_batcher()
    with pytest.raises(
        LLModelError, match=r"prompt of 60 tokens plus 10 new tokens exceeds the context of 64"
    ):
        batcher.submit(list(range(5, 65)), greedy(10))


def test_cancel_frees_the_slot_for_the_next_request(model, make_batcher):
    batcher = make_batcher(max_batch=1)
    gate = StepGate(batcher)
    long, short = make_prompts([4, 6], seed=8)
    cancelled = batcher.submit(long, greedy(50))
    waiting = batcher.submit(short, greedy(5))
    batcher.start()
    next(iter(cancelled.stream(timeout=WAIT)))  # its first token came from the prefill
    assert batcher.stats()["queue_depth"] == 1
    cancelled.cancel()
    gate.open()
    result = cancelled.result(WAIT)
    assert result.finish_reason == "cancelled" and len(result.tokens) <= 2
    assert waiting.result(WAIT).tokens == alone(model, short, greedy(5))
    assert batcher.stats()["active"] == 0


def test_stopping_the_batcher_fails_the_requests_still_waiting(make_batcher):
    batcher = make_batcher()
    handle = batcher.submit([5, 6, 7], greedy(5))
    batcher.stop()
    with pytest.raises(LLModelError, match="stopped"):
        handle.result(WAIT)
    with pytest.raises(LLModelError, match="stopped"):
        batcher.submit([5], greedy(1))


# -- streaming and logprobs -------------------------------------------------------------------------------


def test_streamed_deltas_concatenate_to_the_final_text(make_batcher, tokenizer):
    prompts = make_prompts([5, 9, 3], seed=9)
    batcher = make_batcher()
    batcher.start()
    full = batcher.submit(prompts[0], greedy(25)).result(WAIT).text
    # A stop string that starts like the text's end but never completes: that end is held back, then released.
    runs = [
        greedy(25, stop=[full[len(full) // 2 : len(full) // 2 + 2]]),
        greedy(25, stop=[full[-1] + "\x00"]),
        greedy(18),
    ]
    for prompt, params in zip(prompts, runs, strict=True):
        handle = batcher.submit(prompt, params)
        deltas = list(handle.stream(timeout=WAIT))
        result = handle.result(WAIT)
        assert "".join(d.text for d in deltas) == result.text
        assert [d.token_id for d in deltas if d.token_id is not None] == result.tokens
        assert [d.logprob for d in deltas if d.token_id is not None] == result.token_logprobs
    assert result.text == tokenizer.decode(result.tokens)


def test_the_async_stream_feeds_an_event_loop_and_closing_it_early_cancels(make_batcher):
    batcher = make_batcher(max_batch=2)
    gate = StepGate(batcher)
    batcher.start()

    async def consume(handle, limit: int | None = None) -> str:
        text, stream = "", handle.astream()
        async for delta in stream:
            text += delta.text
            if limit is not None and (limit := limit - 1) == 0:
                await stream.aclose()  # what a disconnected SSE client's task does
                break
        return text

    whole = batcher.submit([5, 9, 14], greedy(12))
    gate.step(11)  # the first token comes from the prefill
    assert asyncio.run(consume(whole)) == whole.result(WAIT).text
    left = batcher.submit([5, 9, 14], greedy(50))
    asyncio.run(consume(left, limit=1))
    gate.open()
    result = left.result(WAIT)
    assert result.finish_reason == "cancelled" and len(result.tokens) <= 2
    wait_for(lambda: batcher.stats()["active"] == 0)


def test_incomplete_characters_and_possible_stop_strings_are_held_back_until_settled(tokenizer):
    text = "déjà vu ✓ 🙂 done"  # é, à, ✓ and 🙂 arrive as several byte tokens each
    ids = tokenizer.encode(text)
    stream = IncrementalDetokenizer(tokenizer, ["vu ✓ 🙂 x"])
    deltas = [stream.push(i) for i in ids] + [stream.finish()]
    assert "".join(deltas) == stream.final_text == text
    assert not any("\ufffd" in d for d in deltas)
    stopped = IncrementalDetokenizer(tokenizer, ["✓"])
    for i in ids:
        stopped.push(i)
        if stopped.stopped:
            break
    assert stopped.final_text == "déjà vu "


def test_token_logprobs_are_at_most_zero_and_match_a_manual_log_softmax(model, make_batcher):
    prompt = make_prompts([7], seed=10)[0]
    batcher = make_batcher()
    batcher.start()
    params = SamplingParams(
        max_new_tokens=8, temperature=1.5, repetition_penalty=1.4, seed=3, stop_at_eos=False
    )
    result = batcher.submit(prompt, params).result(WAIT)
    assert all(lp <= 0 for lp in result.token_logprobs)
    ids = prompt + result.tokens
    with torch.inference_mode():
        raw = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    # Scored on the raw logits: before the penalty and the temperature changed them.
    manual = [raw[len(prompt) - 1 + i, t].item() for i, t in enumerate(result.tokens)]
    assert result.token_logprobs == pytest.approx(manual, abs=1e-4)


def test_prompt_scores_give_every_token_but_the_first_its_log_probability(model):
    ids = make_prompts([9], seed=11)[0]
    scores = score_tokens(model, ids, top=3)
    assert scores[0] is None and len(scores) == len(ids)
    with torch.inference_mode():
        raw = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    assert [s.logprob for s in scores[1:]] == pytest.approx(
        [raw[i - 1, ids[i]].item() for i in range(1, len(ids))], abs=1e-5
    )
    assert all(s.logprob <= 0 for s in scores[1:])
    for i, score in enumerate(scores[1:], start=1):
        best = raw[i - 1].topk(3)
        assert list(score.top) == best.indices.tolist() and score.greedy == (best.indices[0].item() == ids[i])


# -- the slot cache ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("pos_type", ["rope", "alibi", "absolute"])
def test_a_decode_step_over_scattered_slots_matches_each_sequence_run_in_full(pos_type):
    torch.manual_seed(0)
    config = ModelConfig.from_dict(
        {"vocab_size": 128, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64,
         "max_len": 48, "pos_type": pos_type, "use_rope": pos_type == "rope"}
    )  # fmt: skip
    model = Transformer(config).eval()
    cache = SlotKVCache(model, 4)
    for _ in range(4):  # leave stale keys behind in every slot
        cache.prefill(cache.allocate(), list(range(5, 35)))
    for slot in range(4):
        cache.release(slot)
    sequences = {}
    for ids in make_prompts([7, 3, 12, 5], seed=12):
        ids = [i % 128 for i in ids]
        slot = cache.allocate()
        cache.prefill(slot, ids)
        sequences[slot] = ids
    gen = torch.Generator().manual_seed(0)
    for step in range(4):
        slots = [0, 2, 3] if step % 2 else [0, 1, 2, 3]
        tokens = torch.randint(5, 128, (len(slots),), generator=gen).tolist()
        logits = cache.decode(slots, tokens)
        for row, (slot, token) in enumerate(zip(slots, tokens, strict=True)):
            sequences[slot].append(token)
            with torch.inference_mode():
                full = model(torch.tensor([sequences[slot]])).logits[0, -1]
            torch.testing.assert_close(logits[row], full, atol=1e-5, rtol=1e-4)
    assert cache.lengths == [len(sequences[s]) for s in range(4)]
