"""The equality tests' model fixture is not degenerate: what it generates depends on the whole prompt."""

from __future__ import annotations

import pytest

from engine.generation import SamplingParams, generate_ids
from tests.model_fixtures import context_sensitive_model

SHAPE = {"vocab_size": 96, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 48, "max_len": 48}
GREEDY = SamplingParams(max_new_tokens=12, do_sample=False, stop_at_eos=False)


@pytest.mark.parametrize("overrides", [{}, {"n_kv_heads": 2}, {"pos_type": "alibi"}, {"ffn_type": "gelu"}])
def test_changing_the_first_prompt_token_changes_the_greedy_continuation(overrides):
    model = context_sensitive_model(SHAPE, **overrides)
    prompt = [7, 21, 33, 40, 52, 61, 70, 85]
    changed = [8, *prompt[1:]]
    first, second = generate_ids(model, [prompt], GREEDY)[0], generate_ids(model, [changed], GREEDY)[0]
    assert first != second
    assert len(set(first)) > 2, "the continuation is not one token repeated"
