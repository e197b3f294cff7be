"""What the run launcher says a run will cost before it is submitted, and the sizes it rests on, checked against
counts done by hand."""

from __future__ import annotations

import pytest

from engine.finetune.sizing import finetune_size
from engine.model.config import ModelConfig
from llmodel_app.tui.launch_cost import closest_speed, evaluations, run_cost

# A model small enough to count by hand: 512 tokens, d 64, 2 layers of 4 heads, a SwiGLU of 128, tied weights.
NANO = {"vocab_size": 512, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "max_len": 128}
# Per layer: q, k, v, o are 4 × 64 × 64 = 16,384; gate, up, down 3 × 64 × 128 = 24,576; two RMSNorms 128.
PER_LAYER = 16_384 + 24_576 + 128
WEIGHTS = 2 * PER_LAYER + 64 + 512 * 64  # the layers, the final norm, the (tied) embedding: 115,008
SETTINGS = {
    "batch_size": 8,
    "seq_len": None,
    "max_steps": 300,
    "gradient_accumulation_steps": 2,
    "eval_interval": 100,
    "eval_batches": 50,
}


def measured(run_id: str, flops_per_token: float, tokens_per_s: float, **info: object) -> dict[str, object]:
    return {
        "id": run_id,
        "info": {"flops_per_token": flops_per_token, "device": "cpu", **info},
        "metrics": {"tokens_per_s": tokens_per_s},
    }


def test_the_nano_config_counts_its_weights_flops_and_memory_as_by_hand():
    model = ModelConfig.from_dict(NANO)
    assert model.num_parameters() == WEIGHTS == 115_008
    # 6 FLOPs per weight per token (the output projection counts, the input embedding does not), plus
    # attention's 12 · layers · d · context.
    assert model.flops_per_token(128) == 6 * WEIGHTS + 12 * 2 * 64 * 128
    memory = model.estimate_memory(batch_size=1, training=True)
    assert memory["weights"] == 4 * WEIGHTS  # float32
    assert memory["gradients"] == 4 * WEIGHTS
    assert memory["optimizer"] == 8 * WEIGHTS  # AdamW: two float32 moments per weight
    assert model.estimate_memory(batch_size=1, training=False)["optimizer"] == 0


def test_lora_trains_rank_times_in_plus_out_per_targeted_projection_and_layer():
    size = finetune_size(NANO, "lora", rank=8, targets=["q_proj", "v_proj"])
    assert size.trainable == 2 * 2 * 8 * (64 + 64) == 4_096
    assert size.total == WEIGHTS
    assert finetune_size(NANO, "full").trainable == WEIGHTS


def test_tokens_per_step_count_batch_context_and_accumulation():
    cost = run_cost(NANO, SETTINGS, runs=[])
    assert cost.startswith("2,048 tokens/step (8 × 128) · 614,400 tokens in all")
    assert "known once a first run has measured" in cost


def test_evaluations_are_counted_every_interval_and_at_a_last_odd_step():
    assert evaluations({"max_steps": 300, "eval_interval": 100}) == 3
    assert evaluations({"max_steps": 301, "eval_interval": 100}) == 4  # the final step evaluates too
    cost = run_cost(NANO, SETTINGS, runs=[])
    assert "3 evaluations × 50 batches: 153,600 tokens, forward only" in cost  # 3 × 50 × 8 × 128


def test_the_time_comes_from_the_measured_run_closest_in_shape_not_the_newest():
    flops_per_token = ModelConfig.from_dict(NANO).flops_per_token(128)
    runs = [
        {"id": "new-unmeasured", "info": {}, "metrics": {"loss": 3.0}},
        measured("newest-big", flops_per_token * 40, 2_000, tokens_per_step=2_048),
        measured("older-alike", flops_per_token * 1.1, 5_000, tokens_per_step=2_048),
        measured("oldest-tiny", flops_per_token / 50, 90_000, tokens_per_step=2_048),
    ]
    speed = closest_speed(runs, flops_per_token, 2_048)
    assert speed is not None and speed.run == "older-alike"
    # 10 % more FLOPs per token than this model at 5,000 tokens/s: 5,500 tokens/s here, so 614,400 tokens train
    # in 112 s (2 min) and 153,600 evaluate (forward only: a third of the work) in 9 s.
    cost = run_cost(NANO, SETTINGS, runs)
    assert "time ≈ 2 min (2 min training + 9 s evaluating)" in cost
    assert "scaled by FLOPs per token from older-alike, the measured run closest in shape" in cost
    assert "assuming the 5,000 tokens/s it reached on cpu" in cost
    assert "≈ 5,500 tokens/s on this model" in cost


def test_the_batch_shape_counts_too_and_an_adapter_run_times_an_adapter_run():
    runs = [
        measured("same-model-tiny-batch", 1e6, 1_000, tokens_per_step=16),
        measured("same-model-same-batch", 1e6, 8_000, tokens_per_step=2_048),
        measured("lora-run", 1e6, 12_000, tokens_per_step=2_048, adapter={"rank": 8}),
    ]
    full = closest_speed(runs, 1e6, 2_048)
    assert full is not None and full.run == "same-model-same-batch"
    adapter = closest_speed(runs, 1e6, 2_048, adapter=True)
    assert adapter is not None and adapter.run == "lora-run"
    only_full = closest_speed(runs[:2], 1e6, 2_048, adapter=True)
    assert only_full is not None and only_full.run == "same-model-same-batch"  # the best there is


def test_a_bad_config_is_a_one_line_error():
    with pytest.raises(Exception, match="n_heads"):
        run_cost({**NANO, "n_heads": 5}, SETTINGS, runs=[])
