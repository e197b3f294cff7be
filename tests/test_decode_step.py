"""Specification of the compiled decoding step: one token of one sequence, the same logits as the forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import LLModelError
from engine.generation import SamplingParams, generate_ids
from engine.model import Transformer
from engine.model import decode_kernels as kernels
from engine.model.decode_layout import prepare_for_decoding
from engine.model.decode_step import DecodeStep, cache_arrays, supports_decode_step
from engine.server.slot_cache import SlotKVCache
from tests.model_fixtures import context_sensitive_model

ATOL = 1e-5
SHAPES = {
    "llama": {},
    "gqa-untied": {"n_kv_heads": 2, "tie_word_embeddings": False},
    "mqa": {"n_kv_heads": 1},
    "gelu-layernorm": {"ffn_type": "gelu", "norm_type": "layernorm"},
}


def make_model(**overrides) -> Transformer:
    base = {"vocab_size": 96, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 48, "max_len": 40}
    return context_sensitive_model(base, **overrides)


def tokens(n: int, seed: int = 1) -> list[int]:
    return torch.randint(5, 96, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("overrides", SHAPES.values(), ids=SHAPES.keys())
def test_each_step_after_a_prefill_gives_the_logits_of_a_full_forward_pass(overrides):
    model = prepare_for_decoding(make_model(**overrides))
    ids = tokens(20)
    step = DecodeStep(model)
    with torch.inference_mode():
        cache = model.new_kv_cache(1, 24)
        model(torch.tensor([ids[:6]]), kv_cache=cache)
        arrays = cache_arrays([layer.k for layer in cache.layers], [layer.v for layer in cache.layers])
        for end in range(7, len(ids) + 1):
            logits = step([ids[end - 1]], [cache.length], arrays, [0])[0]
            cache.advance()
            full = model(torch.tensor([ids[:end]])).logits[0, -1]
            torch.testing.assert_close(logits, full, atol=ATOL, rtol=1e-5)


def test_the_forward_pass_continues_from_what_the_step_wrote_to_the_cache():
    model = prepare_for_decoding(make_model(n_kv_heads=2))
    ids = tokens(12, seed=2)
    with torch.inference_mode():
        cache = model.new_kv_cache(1, 16)
        model(torch.tensor([ids[:5]]), kv_cache=cache)
        arrays = cache_arrays([layer.k for layer in cache.layers], [layer.v for layer in cache.layers])
        step = DecodeStep(model)
        for token in ids[5:10]:
            step([token], [cache.length], arrays, [0])
            cache.advance()
        continued = model(torch.tensor([ids[10:]]), kv_cache=cache).logits[0]
        full = model(torch.tensor([ids])).logits[0, 10:]
    torch.testing.assert_close(continued, full, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("overrides", [{}, {"n_kv_heads": 2, "ffn_type": "gelu"}], ids=["llama", "gqa-gelu"])
def test_greedy_generation_of_one_prompt_is_the_same_through_the_step(overrides):
    model = make_model(**overrides)
    params = SamplingParams(max_new_tokens=20, do_sample=False)
    expected = generate_ids(model, [[5, 6, 7, 8]], params)
    prepare_for_decoding(model)
    assert supports_decode_step(model)
    assert generate_ids(model, [[5, 6, 7, 8]], params) == expected


def test_models_the_step_does_not_cover_take_the_forward_pass():
    assert not supports_decode_step(make_model())  # not re-laid for decoding
    assert not supports_decode_step(prepare_for_decoding(make_model()).train())
    assert not supports_decode_step(prepare_for_decoding(make_model(pos_type="absolute")))
    assert not supports_decode_step(prepare_for_decoding(make_model(norm_first=False)))
    assert supports_decode_step(prepare_for_decoding(make_model()))
    with pytest.raises(LLModelError, match="decode layout"):
        DecodeStep(make_model())


def test_a_position_past_the_cache_is_a_clear_error():
    model = prepare_for_decoding(make_model())
    cache = model.new_kv_cache(1, 4)
    arrays = cache_arrays([layer.k for layer in cache.layers], [layer.v for layer in cache.layers])
    with pytest.raises(LLModelError, match="KV cache overflow"):
        DecodeStep(model)([5], [4], arrays, [0])
    with pytest.raises(LLModelError, match="1 to 1 sequences"):
        DecodeStep(model)([5, 6], [1, 1], arrays, [0, 0])


@pytest.mark.parametrize("overrides", [{}, {"n_kv_heads": 2, "ffn_type": "gelu"}], ids=["llama", "gqa-gelu"])
def test_the_server_cache_decodes_through_the_step_like_the_forward_pass_alone_or_batched(overrides):
    plain, prepared = make_model(**overrides), prepare_for_decoding(make_model(**overrides))
    caches = [SlotKVCache(plain, num_slots=4, max_len=32), SlotKVCache(prepared, num_slots=4, max_len=32)]
    assert caches[0]._decode_step is None and caches[1]._decode_step is not None
    prompts = {0: tokens(5, seed=4), 2: tokens(9, seed=5), 3: tokens(3, seed=6)}
    with torch.inference_mode():
        for slot, ids in prompts.items():  # 9 tokens: three chunks of up to 4 rows through the step
            expected, got = (cache.prefill(slot, ids) for cache in caches)
            torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)
        for step in range(6):
            slots = [2] if step < 2 else [0, 2, 3]  # one sequence alone, then a batch at different positions
            fed = [7 + step + slot for slot in slots]
            expected, got = (cache.decode(slots, fed) for cache in caches)
            torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)
        assert caches[0].lengths == caches[1].lengths == [9, 0, 15, 7]


def test_a_sequence_gets_the_same_logits_bit_for_bit_alone_or_in_a_batch():
    model = prepare_for_decoding(make_model(n_kv_heads=2))
    step = DecodeStep(model, max_rows=3)
    with torch.inference_mode():
        cache = SlotKVCache(model, num_slots=3, max_len=24)
        for slot in range(3):
            cache.prefill(slot, tokens(4 + 3 * slot, seed=slot))
        arrays = cache_arrays(cache.keys, cache.values)
        positions = list(cache.lengths)
        batched = step([11, 12, 13], positions, arrays, [0, 1, 2])
        alone = step([12], [positions[1]], arrays, [1])[0]
    assert torch.equal(alone, batched[1])


@pytest.mark.parametrize("blocks", [1, 2, 3])
@pytest.mark.parametrize(("n_in", "n_out"), [(7, 5), (32, 96), (45, 3)])
def test_the_parallel_product_equals_a_plain_one_for_any_split(blocks, n_in, n_out):
    rng = np.random.default_rng(n_in * n_out)
    x = rng.standard_normal((3, n_in), dtype=np.float32)
    weight_t = rng.standard_normal((n_in, n_out), dtype=np.float32)
    out = np.empty((3, n_out), dtype=np.float32)
    kernels.matmul(x, weight_t, np.zeros((blocks, 3, n_out), dtype=np.float32), out)
    np.testing.assert_allclose(out, x @ weight_t, atol=1e-4, rtol=1e-5)
