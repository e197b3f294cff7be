"""What the run launcher says a pretraining run will cost, before it is submitted."""

from __future__ import annotations

import pytest

from engine.model.config import ModelConfig
from llmodel_app.tui.components.job_launcher import measured_flops, run_cost

NANO = {"vocab_size": 512, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "max_len": 128}
SETTINGS = {"batch_size": 8, "seq_len": None, "max_steps": 300, "gradient_accumulation_steps": 2}


def test_tokens_per_step_count_batch_context_and_accumulation():
    cost = run_cost(NANO, SETTINGS, runs=[])
    assert cost.startswith("2,048 tokens/step (8 × 128) · 614,400 tokens in all")
    assert "known once a first run has measured" in cost


def test_time_comes_from_the_speed_the_newest_measured_run_reached():
    runs = [
        {"id": "new-unmeasured", "info": {}, "metrics": {"loss": 3.0}},
        {"id": "older", "info": {"flops_per_token": 2_000_000}, "metrics": {"tokens_per_s": 5_000}},
        {"id": "oldest", "info": {"flops_per_token": 1}, "metrics": {"tokens_per_s": 1}},
    ]
    assert measured_flops(runs) == (1e10, "older")
    seconds = 614_400 * ModelConfig.from_dict(NANO).flops_per_token(128) / 1e10
    expected = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
    assert run_cost(NANO, SETTINGS, runs).endswith(f"about {expected} at 10 GFLOP/s (measured by older)")


def test_a_bad_config_is_a_one_line_error():
    with pytest.raises(Exception, match="n_heads"):
        run_cost({**NANO, "n_heads": 5}, SETTINGS, runs=[])
