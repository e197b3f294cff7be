"""The trainable-parameter count the workbench shows before a fine-tuning run equals what the run trains: the
torch-free sizing against the real model with LoRA applied, counting the parameters that require grad."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.adapters.lora import apply_lora
from engine.adapters.settings import LoraSettings
from engine.errors import ConfigError
from engine.finetune.sizing import finetune_size, projection_shapes
from engine.model import ModelConfig, Transformer

SMALL = {"vocab_size": 96, "d_model": 48, "n_layers": 3, "n_heads": 6, "d_ff": 80, "max_len": 32}
GELU_MULTI_QUERY = {**SMALL, "ffn_type": "gelu", "n_kv_heads": 1}
SHAPES = {
    "swiglu, multi-head": {**SMALL, "ffn_type": "swiglu"},
    "gelu, multi-head": {**SMALL, "ffn_type": "gelu"},
    "swiglu, grouped-query": {**SMALL, "n_kv_heads": 2},
    "gelu, multi-query, untied, layernorm, absolute positions": {
        **GELU_MULTI_QUERY,
        "tie_word_embeddings": False,
        "norm_type": "layernorm",
        "pos_type": "absolute",
    },
}
TARGET_SETS = (
    ["q_proj", "v_proj"],
    ["k_proj", "o_proj"],
    ["up_proj", "down_proj"],
    ["q_proj", "up_proj", "q_proj"],
)


def trained_by_torch(config: ModelConfig, method: str, rank: int, targets: list[str]) -> tuple[int, int]:
    """(parameters that require grad, all parameters) of the model as the fine-tuning run builds it."""
    model = Transformer(config)
    if method != "full":
        apply_lora(model, LoraSettings(rank=rank, target_modules=targets))
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("targets", TARGET_SETS, ids=",".join)
@pytest.mark.parametrize("rank", [1, 4])
def test_lora_trains_rank_times_in_plus_out_of_each_targeted_projection_in_every_layer(shape, targets, rank):
    config = ModelConfig.from_dict(SHAPES[shape])
    trainable, _ = trained_by_torch(config, "lora", rank, targets)
    size = finetune_size(config, "lora", rank=rank, targets=targets)
    assert size.trainable == trainable
    assert size.total == config.num_parameters()
    assert finetune_size(config, "qlora", rank=rank, targets=targets).trainable == trainable


@pytest.mark.parametrize("shape", list(SHAPES))
def test_full_fine_tuning_trains_every_parameter(shape):
    config = ModelConfig.from_dict(SHAPES[shape])
    trainable, total = trained_by_torch(config, "full", 0, [])
    assert finetune_size(config.to_dict(), "full") == finetune_size(config, "full")
    assert finetune_size(config, "full").trainable == trainable == total


def test_all_linear_adapts_all_seven_projections_of_a_swiglu_model():
    config = ModelConfig.from_dict(SHAPES["swiglu, grouped-query"])
    trainable, _ = trained_by_torch(config, "lora", 8, ["all-linear"])
    assert finetune_size(config, "lora", rank=8, targets=["all-linear"]).trainable == trainable


def test_all_linear_on_a_gelu_model_adapts_the_six_projections_it_has():
    config = ModelConfig.from_dict(SHAPES["gelu, multi-head"])
    trainable, _ = trained_by_torch(config, "lora", 8, ["all-linear"])
    assert finetune_size(config, "lora", rank=8, targets=["all-linear"]).trainable == trainable
    assert trainable == config.n_layers * 8 * sum(a + b for a, b in projection_shapes(config).values())
    assert "gate_proj" not in projection_shapes(config)


def test_a_target_the_model_lacks_or_an_unknown_one_fails_as_applying_lora_does():
    gelu = ModelConfig.from_dict(SHAPES["gelu, multi-head"])
    for targets in (["gate_proj"], ["qkv"]):
        with pytest.raises(ConfigError) as ours:
            finetune_size(gelu, "lora", rank=4, targets=targets)
        with pytest.raises(ConfigError) as theirs:
            apply_lora(Transformer(gelu), LoraSettings(rank=4, target_modules=targets))
        assert str(ours.value) == str(theirs.value)


@pytest.mark.slow
def test_the_sizing_never_imports_torch():
    probe = "import sys, engine.finetune.sizing; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
