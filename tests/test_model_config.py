"""Specification of ModelConfig: presets, JSON round trip, one-line errors, size and cost estimates."""

from __future__ import annotations

import json

import pytest

from engine.errors import ConfigError
from engine.model import PRESETS, ModelConfig, Transformer

ALL_PRESETS = ["nano", "tiny", "small", "base", "large", "xl"]


def nano(**overrides) -> ModelConfig:
    """A very small config for building real models in tests."""
    base = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 32}
    return ModelConfig.from_dict({**base, **overrides})


def assert_one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message, "error message must not be empty"
    assert "\n" not in message, f"error message spans several lines: {message!r}"
    return message


# -- presets ------------------------------------------------------------------------------------------


# The sizes the README documents: layers x d_model.
DOCUMENTED = {
    "tiny": (8, 512),
    "small": (12, 1024),
    "base": (24, 2048),
    "large": (32, 2560),
    "xl": (64, 4096),
}


def test_presets_are_exactly_the_documented_sizes():
    assert list(PRESETS) == ALL_PRESETS
    for name, (layers, width) in DOCUMENTED.items():
        config = ModelConfig.from_preset(name)
        assert (config.n_layers, config.d_model) == (layers, width), name
        assert config.head_dim in (64, 128) and config.d_ff % 256 == 0, name


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_every_preset_builds_validates_and_keeps_its_name(name):
    config = ModelConfig.from_preset(name)
    config.validate()
    assert config.name == name
    for key, value in PRESETS[name].items():
        assert getattr(config, key) == value
    assert config.n_kv_heads == PRESETS[name].get("n_kv_heads", config.n_heads)
    assert config.n_heads % config.n_kv_heads == 0
    assert config.pos_type == "rope" and config.use_rope is True
    assert config.d_model % config.n_heads == 0
    assert config.num_parameters() > 0


def test_presets_grow_monotonically_in_parameter_count():
    counts = [ModelConfig.from_preset(name).num_parameters() for name in ALL_PRESETS]
    assert counts == sorted(counts)
    assert len(set(counts)) == len(counts)


def test_preset_overrides_are_applied_and_checked():
    config = ModelConfig.from_preset("nano", n_layers=1, pos_type="alibi")
    assert config.n_layers == 1
    assert config.pos_type == "alibi" and config.use_rope is False
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_preset("nano", d_model="abc")
    assert "d_model" in assert_one_line(err)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_preset("gigantic")
    message = assert_one_line(err)
    assert "gigantic" in message
    for name in ALL_PRESETS:
        assert name in message


def test_nano_preset_builds_a_model_with_the_predicted_size():
    config = ModelConfig.from_preset("nano")
    assert Transformer(config).num_parameters() == config.num_parameters()


# -- JSON round trip ----------------------------------------------------------------------------------


def test_save_then_load_round_trips_every_field(tmp_path):
    config = nano(
        n_kv_heads=2,
        pos_type="alibi",
        ffn_type="gelu",
        norm_type="layernorm",
        norm_first=False,
        dropout=0.1,
        tie_word_embeddings=False,
        attention_type="standard",
        name="my-model",
    )
    path = tmp_path / "sub" / "config.json"
    config.save(path)
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["pos_type"] == "alibi" and on_disk["n_kv_heads"] == 2
    loaded = ModelConfig.load(path)
    assert loaded == config
    assert loaded.to_dict() == config.to_dict()  # includes the name, which == ignores


def test_load_accepts_a_training_config_with_a_nested_model_section(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"lr": 3e-4, "model": nano(n_layers=1).to_dict()}), encoding="utf-8")
    assert ModelConfig.load(path) == nano(n_layers=1)


def test_load_of_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        ModelConfig.load(tmp_path / "nope.json")
    assert "nope.json" in assert_one_line(err)


def test_malformed_json_reports_the_file_and_line_number(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "d_model": 64,\n  "n_layers": 2\n  "n_heads": 4\n}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        ModelConfig.load(path)
    message = assert_one_line(err)
    assert f"{path}:4:" in message
    assert "malformed JSON" in message


def test_a_json_file_that_is_not_an_object_is_rejected(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        ModelConfig.load(path)
    assert "object" in assert_one_line(err)


# -- key and type checking ----------------------------------------------------------------------------


def test_unknown_key_is_named_in_the_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_dict({"d_model": 64, "n_layer": 2})
    message = assert_one_line(err)
    assert "'n_layer'" in message
    assert "n_layers" in message  # the valid keys are listed so the typo is easy to fix

    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"hidden_size": 64}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        ModelConfig.load(path)
    message = assert_one_line(err)
    assert "hidden_size" in message and str(path) in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("d_model", "abc"),
        ("n_layers", 2.5),
        ("n_heads", True),
        ("dropout", "0.1"),
        ("use_rope", "yes"),
        ("tie_word_embeddings", 1),
        ("pos_type", "learned"),
        ("ffn_type", "relu"),
        ("n_kv_heads", "2"),
    ],
)
def test_wrong_type_or_choice_is_a_one_line_config_error_naming_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_dict({key: value})
    message = assert_one_line(err)
    assert key in message
    assert repr(value) in message


def test_integral_floats_and_ints_are_coerced_to_the_field_type():
    config = ModelConfig.from_dict(
        {"vocab_size": 64, "d_model": 32.0, "n_heads": 4, "d_ff": 64, "dropout": 0}
    )
    assert config.d_model == 32 and type(config.d_model) is int
    assert config.dropout == 0.0 and type(config.dropout) is float


@pytest.mark.parametrize("key", ["vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len"])
def test_sizes_must_be_positive(key):
    with pytest.raises(ConfigError) as err:
        nano(**{key: 0})
    assert key in assert_one_line(err)


# -- consistency checks -------------------------------------------------------------------------------


def test_n_heads_that_does_not_divide_d_model_is_rejected_naming_both():
    with pytest.raises(ConfigError) as err:
        nano(d_model=48, n_heads=5)
    message = assert_one_line(err)
    assert "5" in message and "48" in message
    assert "n_heads" in message and "d_model" in message


def test_n_kv_heads_that_does_not_divide_n_heads_is_rejected_naming_both():
    with pytest.raises(ConfigError) as err:
        nano(d_model=48, n_heads=6, n_kv_heads=4)
    message = assert_one_line(err)
    assert "n_kv_heads=4" in message and "n_heads=6" in message


def test_n_kv_heads_defaults_to_n_heads_and_accepts_gqa_and_mqa():
    assert nano().n_kv_heads == 4
    assert nano(n_kv_heads=None).n_kv_heads == 4
    assert nano(n_kv_heads=2).n_kv_heads == 2
    assert nano(n_kv_heads=1).n_kv_heads == 1


def test_rope_needs_an_even_head_size_but_other_positions_do_not():
    with pytest.raises(ConfigError) as err:
        nano(d_model=36, n_heads=4)  # head_dim 9
    assert "9" in assert_one_line(err)
    assert nano(d_model=36, n_heads=4, pos_type="alibi").head_dim == 9


@pytest.mark.parametrize(
    ("use_rope", "pos_type"),
    [(True, "alibi"), (True, "absolute"), (True, "sinusoidal"), (False, "rope")],
)
def test_use_rope_contradicting_pos_type_is_an_error(use_rope, pos_type):
    with pytest.raises(ConfigError) as err:
        nano(use_rope=use_rope, pos_type=pos_type)
    message = assert_one_line(err)
    assert "use_rope" in message and pos_type in message


def test_seed_style_config_with_only_use_rope_false_means_absolute_positions():
    config = nano(use_rope=False)
    assert config.pos_type == "absolute"
    assert nano(use_rope=True).pos_type == "rope"


def test_pos_type_alone_sets_use_rope():
    assert nano(pos_type="sinusoidal").use_rope is False
    assert nano(pos_type="rope").use_rope is True


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"initializer_range": 0.0}, "initializer_range"),
        ({"pad_token_id": 64}, "pad_token_id"),
        ({"eos_token_id": -1}, "eos_token_id"),
    ],
)
def test_out_of_range_values_are_one_line_config_errors(overrides, needle):
    with pytest.raises(ConfigError) as err:
        nano(**overrides)
    assert needle in assert_one_line(err)


# -- parameter count ----------------------------------------------------------------------------------

PARAM_GRID = [
    {},
    {"ffn_type": "gelu"},
    {"norm_type": "layernorm"},
    {"pos_type": "absolute"},
    {"pos_type": "sinusoidal"},
    {"pos_type": "alibi"},
    {"tie_word_embeddings": False},
    {"n_kv_heads": 2},
    {"n_kv_heads": 1},
    {
        "n_kv_heads": 1,
        "ffn_type": "gelu",
        "norm_type": "layernorm",
        "pos_type": "absolute",
        "tie_word_embeddings": False,
        "norm_first": False,
    },
    {"n_layers": 1, "d_model": 48, "n_heads": 6, "n_kv_heads": 3, "d_ff": 80},
]


@pytest.mark.parametrize(
    "overrides", PARAM_GRID, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_num_parameters_equals_the_built_models_parameter_count(overrides):
    config = nano(**overrides)
    model = Transformer(config)
    actual = sum(p.numel() for p in model.parameters())  # shared (tied) tensors are yielded once
    assert config.num_parameters() == actual
    assert model.num_parameters() == actual


def test_num_parameters_without_embeddings_drops_input_embeddings_but_keeps_the_output_projection():
    tied, untied = nano(), nano(tie_word_embeddings=False)
    embed = tied.vocab_size * tied.d_model
    assert tied.num_parameters(include_embeddings=False) == tied.num_parameters()
    assert untied.num_parameters(include_embeddings=False) == untied.num_parameters() - embed
    absolute = nano(pos_type="absolute")
    assert absolute.num_parameters(include_embeddings=False) == tied.num_parameters()


# -- cost estimates -----------------------------------------------------------------------------------


def test_nano_parameters_memory_and_flops_match_a_hand_count():
    config = ModelConfig.from_preset(
        "nano"
    )  # vocab 512, d 64, 2 layers, 4 heads of 16, d_ff 128, tied, SwiGLU
    attention = 2 * 64 * 64 + 2 * 64 * (4 * 16)  # q, o and k, v
    feed_forward = 3 * 64 * 128  # gate, up, down
    per_layer = attention + feed_forward + 2 * 64  # and two RMSNorm scales
    n = 2 * per_layer + 64 + 512 * 64  # the final norm and the (tied) embedding
    assert n == 115_008 == config.num_parameters()

    train = config.estimate_memory(batch_size=1, seq_len=128)
    assert train["weights"] == train["gradients"] == 4 * n  # fp32 weights and gradients
    assert train["optimizer"] == 8 * n  # AdamW's two fp32 moments
    # Per layer and token 34·d bytes of saved activations plus 5·heads·T of scores, and fp32 logits.
    assert train["activations"] == 2 * 128 * (34 * 64 + 5 * 4 * 128) + 128 * 512 * 4
    assert train["total"] == 16 * n + train["activations"]

    serve = config.estimate_memory(batch_size=2, seq_len=64, training=False, bytes_per_param=2)
    assert serve["weights"] == 2 * n
    assert (
        serve["kv_cache"] == 2 * 2 * 2 * 64 * 4 * 16 * 4
    )  # k and v · layers · batch · T · kv heads · hd · fp32
    assert config.flops_per_token(128) == 6 * n + 12 * 2 * 64 * 128  # 6N plus attention's 12·L·d·T


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_estimate_memory_is_positive_and_grows_with_batch_size(name):
    config = ModelConfig.from_preset(name)
    small = config.estimate_memory(batch_size=1, seq_len=128)
    large = config.estimate_memory(batch_size=8, seq_len=128)
    for key in ("weights", "gradients", "optimizer", "activations", "total"):
        assert small[key] > 0, key
    assert small["total"] == sum(v for k, v in small.items() if k != "total")
    assert large["activations"] > small["activations"]
    assert large["total"] > small["total"]
    assert large["weights"] == small["weights"]


def test_estimate_memory_for_inference_counts_kv_cache_not_optimizer():
    config = ModelConfig.from_preset("small")
    one = config.estimate_memory(batch_size=1, training=False, bytes_per_param=2)
    four = config.estimate_memory(batch_size=4, training=False, bytes_per_param=2)
    assert one["gradients"] == one["optimizer"] == one["activations"] == 0
    assert one["weights"] == 2 * config.num_parameters()
    assert 0 < one["kv_cache"] < four["kv_cache"]
    assert four["total"] > one["total"]
    assert config.estimate_memory(training=True)["total"] > one["total"]


def test_gradient_checkpointing_lowers_the_activation_estimate():
    plain = ModelConfig.from_preset("base")
    ckpt = ModelConfig.from_preset("base", use_gradient_checkpointing=True)
    assert (
        ckpt.estimate_memory(batch_size=4)["activations"] < plain.estimate_memory(batch_size=4)["activations"]
    )


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_flops_per_token_grows_with_sequence_length(name):
    config = ModelConfig.from_preset(name)
    short, long = config.flops_per_token(128), config.flops_per_token(1024)
    assert 0 < short < long
    assert short >= 6 * config.num_parameters(include_embeddings=False)
    assert config.flops_per_token() == config.flops_per_token(config.max_len)


def test_flops_per_token_grows_with_model_size():
    flops = [ModelConfig.from_preset(name).flops_per_token(512) for name in ALL_PRESETS]
    assert flops == sorted(flops)


def test_xl_preset_is_over_a_billion_parameters_and_training_needs_more_than_4x_its_weights():
    # Config-only: the xl preset is far too large to build here.
    config = ModelConfig.from_preset("xl")
    assert config.num_parameters() > 1_000_000_000
    assert config.estimate_memory(batch_size=1)["total"] > 4 * config.num_parameters()
