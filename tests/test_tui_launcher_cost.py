"""What the run launcher says a pretraining run will cost, before it is submitted."""

from __future__ import annotations

import pytest

from engine.model.config import ModelConfig
from llmodel_app.tui.components.job_launcher import evaluations, measured_speed, run_cost

NANO = {"vocab_size": 512, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "max_len": 128}
SETTINGS = {"batch_size": 8, "seq_len": None, "max_steps": 300, "gradient_accumulation_steps": 2,
            "eval_interval": 100, "eval_batches": 50}  # fmt: skip
MEASURED = [
    {"id": "new-unmeasured", "info": {}, "metrics": {"loss": 3.0}},
    {
        "id": "older",
        "info": {"flops_per_token": 2_000_000, "device": "cpu"},
        "metrics": {"tokens_per_s": 5_000},
    },
    {"id": "oldest", "info": {"flops_per_token": 1}, "metrics": {"tokens_per_s": 1}},
]


def test_tokens_per_step_count_batch_context_and_accumulation():
    cost = run_cost(NANO, SETTINGS, runs=[])
    assert cost.startswith("2,048 tokens/step (8 × 128) · 614,400 tokens in all")
    assert "known once a first run has measured" in cost


def test_evaluations_are_counted_every_interval_and_at_a_last_odd_step():
    assert evaluations({"max_steps": 300, "eval_interval": 100}) == 3
    assert evaluations({"max_steps": 301, "eval_interval": 100}) == 4  # the final step evaluates too
    cost = run_cost(NANO, SETTINGS, runs=[])
    assert "3 evaluations × 50 batches: 153,600 tokens, forward only" in cost  # 3 × 50 × 8 × 128


def test_time_counts_training_and_evaluation_at_the_newest_measured_speed_and_names_it():
    assert measured_speed(MEASURED) == {
        "run": "older",
        "device": "cpu",
        "tokens_per_s": 5_000.0,
        "flops": 1e10,
    }
    flops_per_token = ModelConfig.from_dict(NANO).flops_per_token(128)
    train_s = 614_400 * flops_per_token / 1e10
    eval_s = 153_600 * flops_per_token / 3 / 1e10  # forward passes cost a third of a training step
    cost = run_cost(NANO, SETTINGS, MEASURED)
    assert f"time ≈ {train_s + eval_s:.0f} s ({train_s:.0f} s training + {eval_s:.0f} s evaluating)" in cost
    assert "assuming the 5,000 tokens/s that older reached on cpu (10 GFLOP/s;" in cost
    assert f"≈ {1e10 / flops_per_token:,.0f} tokens/s on this model)" in cost


def test_a_bad_config_is_a_one_line_error():
    with pytest.raises(Exception, match="n_heads"):
        run_cost({**NANO, "n_heads": 5}, SETTINGS, runs=[])
