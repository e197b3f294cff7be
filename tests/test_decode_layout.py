"""Specification of the decode layout: the same model, re-laid for fast decoding, computes the same thing."""

from __future__ import annotations

import pytest
import torch

from engine.generation import SamplingParams, generate_ids
from engine.model import Transformer
from engine.model.decode_layout import few_row_product, prepare_for_decoding
from tests.model_fixtures import context_sensitive_model

ATOL = 1e-5
SHAPES = {
    "llama": {},
    "gelu-layernorm": {"ffn_type": "gelu", "norm_type": "layernorm"},
    "gqa-untied": {"n_kv_heads": 2, "tie_word_embeddings": False},
    "alibi": {"pos_type": "alibi"},
}


def make_model(**overrides) -> Transformer:
    base = {"vocab_size": 96, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 48}
    return context_sensitive_model(base, **overrides)


def prefill_then_step(model: Transformer, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a full forward pass, and of the last position decoded one step after a prefill."""
    with torch.inference_mode():
        full = model(ids).logits
        cache = model.new_kv_cache(ids.shape[0], ids.shape[1])
        model(ids[:, :-1], kv_cache=cache)
        step = model(ids[:, -1:], kv_cache=cache).logits
    return full, step


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_few_row_product_equals_a_plain_product_for_any_thread_count(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        weight_t = torch.randn(48, 20)
        for rows in (1, 5):
            x = torch.randn(rows, 1, 48)
            torch.testing.assert_close(few_row_product(x, weight_t), x @ weight_t, atol=ATOL, rtol=1e-5)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("overrides", SHAPES.values(), ids=SHAPES.keys())
def test_a_prepared_model_gives_the_same_logits_full_and_step_by_step(overrides):
    model = make_model(**overrides)
    ids = torch.randint(5, 96, (3, 12), generator=torch.Generator().manual_seed(1))
    full, step = prefill_then_step(model, ids)
    prepare_for_decoding(model)
    prepared_full, prepared_step = prefill_then_step(model, ids)
    torch.testing.assert_close(prepared_full, full, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(prepared_step, step, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(prepared_step[:, -1], full[:, -1], atol=ATOL, rtol=1e-5)


def test_preparing_keeps_the_state_dict_and_loading_writes_through_to_the_fused_weights():
    model = make_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    prepare_for_decoding(model)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], before[name]) for name in before)

    other = make_model()
    with torch.no_grad():
        for param in other.parameters():
            param.mul_(-1.5)
    model.load_state_dict(other.state_dict())  # loads into the views of the fused storage
    ids = torch.randint(5, 96, (1, 9), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        prefill_then_step(model, ids)[1], prefill_then_step(other, ids)[1], atol=ATOL, rtol=1e-5
    )


def test_a_prepared_model_moved_to_another_dtype_falls_back_to_the_plain_path():
    model = make_model()
    ids = torch.randint(5, 96, (2, 10), generator=torch.Generator().manual_seed(3))
    reference = prefill_then_step(model.double(), ids)[1]
    prepare_for_decoding(model.float())
    model.double()  # new tensors: the fused storage is stale and must not be used
    torch.testing.assert_close(prefill_then_step(model, ids)[1], reference)


def test_greedy_generation_is_identical_before_and_after_preparing():
    model = make_model()
    prompts = [[5, 6, 7, 8], [9, 10]]
    params = SamplingParams(max_new_tokens=12, do_sample=False)
    expected = generate_ids(model, prompts, params)
    assert generate_ids(prepare_for_decoding(model), prompts, params) == expected


def test_a_prepared_model_still_trains_through_its_parameters():
    model = prepare_for_decoding(make_model()).train()
    ids = torch.randint(5, 96, (2, 10), generator=torch.Generator().manual_seed(4))
    model(ids, labels=ids).loss.backward()
    assert all(param.grad is not None and param.grad.abs().sum() > 0 for param in model.parameters())
