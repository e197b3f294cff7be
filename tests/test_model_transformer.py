"""Specification of the Transformer: shapes, loss, attention paths, KV cache, padding, layout, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.errors import LLModelError
from engine.model import IGNORE_INDEX, ModelConfig, ModelOutput, Transformer
from engine.model.layers import alibi_slopes
from tests.model_fixtures import context_sensitive_model

POS_TYPES = ["rope", "absolute", "sinusoidal", "alibi"]
VOCAB = 64
ATOL = 1e-5


def make_config(**overrides) -> ModelConfig:
    base = {
        "vocab_size": VOCAB,
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 4,
        "d_ff": 64,
        "max_len": 32,
        "pad_token_id": 0,
    }
    return ModelConfig.from_dict({**base, **overrides})


def make_model(seed: int = 0, **overrides) -> Transformer:
    """A nano model in eval mode with deterministic weights."""
    torch.manual_seed(seed)
    return Transformer(make_config(**overrides)).eval()


def sensitive_model(**overrides) -> Transformer:
    """A model whose outputs depend on the whole context (tests/model_fixtures.py), for equality tests."""
    return context_sensitive_model(make_config(**overrides))


def twin(model: Transformer, **overrides) -> Transformer:
    """A model with the same weights as ``model`` but a different (weight-compatible) config."""
    config = ModelConfig.from_dict({**model.config.to_dict(), **overrides})
    other = Transformer(config)
    other.load_state_dict(model.state_dict())
    return other.train(model.training)


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    """Random ids that avoid the pad id 0, so padding is never confused with content."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, length), generator=generator)


# -- shapes and loss ----------------------------------------------------------------------------------


def test_forward_returns_logits_of_shape_batch_by_time_by_vocab():
    model = make_model()
    out = model(tokens(3, 10))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 10, VOCAB)
    assert out.hidden_states.shape == (3, 10, 32)
    assert out.loss is None
    assert out.attentions is None
    assert torch.isfinite(out.logits).all()


def test_logits_for_last_keeps_only_the_final_position():
    model = make_model()
    ids = tokens(2, 9)
    full = model(ids).logits
    last = model(ids, logits_for="last").logits
    assert last.shape == (2, 1, VOCAB)
    torch.testing.assert_close(last, full[:, -1:], atol=ATOL, rtol=0)


def test_loss_with_labels_equals_cross_entropy_and_ignores_minus_100():
    model = make_model()
    ids = tokens(2, 12)
    labels = tokens(2, 12, seed=2)
    labels[0, :5] = IGNORE_INDEX
    labels[1, -3:] = IGNORE_INDEX
    out = model(ids, labels=labels)
    assert IGNORE_INDEX == -100
    expected = F.cross_entropy(out.logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    # Only the kept positions count: the same mean over the non-ignored entries.
    keep = labels != IGNORE_INDEX
    manual = F.cross_entropy(out.logits[keep], labels[keep])
    torch.testing.assert_close(out.loss, manual)
    # Ignoring really drops positions: labelling them instead changes the loss.
    relabelled = torch.where(keep, labels, tokens(2, 12, seed=4))
    assert model(ids, labels=relabelled).loss.item() != pytest.approx(out.loss.item())


def test_labels_are_not_shifted_by_the_model():
    # The caller aligns labels with logits (labels[t] is the target for logits[t]).
    model = make_model()
    ids = tokens(1, 8)
    labels = tokens(1, 8, seed=3)
    out = model(ids, labels=labels)
    expected = F.cross_entropy(out.logits[0], labels[0])
    torch.testing.assert_close(out.loss, expected)


# -- explicit attention vs SDPA -----------------------------------------------------------------------


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("pos_type", POS_TYPES)
def test_standard_and_flash_attention_give_the_same_logits(pos_type, n_kv_heads):
    standard = make_model(pos_type=pos_type, n_kv_heads=n_kv_heads, attention_type="standard")
    flash = twin(standard, attention_type="flash")
    ids = tokens(2, 16)
    torch.testing.assert_close(flash(ids).logits, standard(ids).logits, atol=ATOL, rtol=1e-4)
    # With a padding mask too (SDPA then takes an explicit additive mask).
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    torch.testing.assert_close(
        flash(ids, attention_mask=mask).logits,
        standard(ids, attention_mask=mask).logits,
        atol=ATOL,
        rtol=1e-4,
    )


def test_attention_type_does_not_change_the_weights_layout():
    standard = make_model(attention_type="standard")
    flash = make_model(attention_type="flash")
    assert standard.state_dict().keys() == flash.state_dict().keys()


# -- attention weights --------------------------------------------------------------------------------


@pytest.mark.parametrize("attention_type", ["standard", "flash"])
@pytest.mark.parametrize("pos_type", ["rope", "alibi"])
def test_return_attention_gives_causal_row_stochastic_weights_per_layer(pos_type, attention_type):
    model = make_model(pos_type=pos_type, attention_type=attention_type, n_kv_heads=2)
    B, T = 2, 10
    out = model(tokens(B, T), return_attention=True)
    assert isinstance(out.attentions, list)
    assert len(out.attentions) == model.config.n_layers
    upper = torch.ones(T, T, dtype=torch.bool).triu(1)
    for weights in out.attentions:
        assert weights.shape == (B, model.config.n_heads, T, T)
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, model.config.n_heads, T))
        assert (weights[..., upper] == 0).all(), "a query attends to a future key"
        # The first query can only see itself.
        torch.testing.assert_close(weights[..., 0, 0], torch.ones(B, model.config.n_heads))


def test_returning_attention_does_not_change_the_logits():
    model = make_model(attention_type="flash")
    ids = tokens(2, 12)
    torch.testing.assert_close(model(ids, return_attention=True).logits, model(ids).logits, atol=ATOL, rtol=0)


def test_future_tokens_do_not_change_past_logits():
    model = make_model()
    ids = tokens(1, 12)
    changed = ids.clone()
    changed[0, 8:] = (changed[0, 8:] % (VOCAB - 1)) + 1
    assert not torch.equal(ids, changed)
    torch.testing.assert_close(model(changed).logits[:, :8], model(ids).logits[:, :8], atol=ATOL, rtol=0)
    assert not torch.allclose(model(changed).logits[:, 8:], model(ids).logits[:, 8:])


@pytest.mark.parametrize(
    ("n_heads", "exponents"),
    [(4, [2, 4, 6, 8]), (8, [1, 2, 3, 4, 5, 6, 7, 8]), (6, [2, 4, 6, 8, 1, 3])],
)
def test_alibi_slopes_follow_press_et_al(n_heads, exponents):
    expected = torch.tensor([2.0**-e for e in exponents])
    torch.testing.assert_close(alibi_slopes(n_heads), expected)


def test_alibi_bias_penalises_each_key_by_slope_times_distance_and_masks_the_future():
    model = make_model(pos_type="alibi")
    T = 5
    bias = model._attention_bias(T, 0, None, torch.device("cpu"))
    assert bias.shape == (1, 4, T, T)
    slopes = alibi_slopes(4)
    for i in range(T):
        for j in range(T):
            if j > i:
                assert torch.isinf(bias[0, :, i, j]).all() and (bias[0, :, i, j] < 0).all()
            else:
                torch.testing.assert_close(bias[0, :, i, j], -slopes * (i - j))


# -- KV cache -----------------------------------------------------------------------------------------


def test_new_kv_cache_is_preallocated_for_the_kv_heads():
    model = make_model(n_kv_heads=2)
    cache = model.new_kv_cache(batch_size=3)
    assert len(cache.layers) == 2
    assert cache.length == 0
    assert cache.max_len == 32
    assert cache.layers[0].k.shape == (3, 2, 32, 8)
    assert cache.layers[0].v.dtype == model.lm_head.weight.dtype
    model(tokens(3, 5), kv_cache=cache)
    assert cache.length == 5
    cache.reset()
    assert cache.length == 0
    assert model.new_kv_cache(1, max_len=16).layers[1].k.shape[2] == 16


@pytest.mark.parametrize("attention_type", ["flash", "standard"])
@pytest.mark.parametrize("pos_type", POS_TYPES)
def test_incremental_decoding_with_kv_cache_matches_full_forward(pos_type, attention_type):
    model = sensitive_model(pos_type=pos_type, attention_type=attention_type, n_kv_heads=2)
    ids = tokens(2, 14)
    full = model(ids).logits
    cache = model.new_kv_cache(batch_size=2)
    steps = [model(ids[:, t : t + 1], kv_cache=cache).logits for t in range(ids.shape[1])]
    assert cache.length == ids.shape[1]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("pos_type", POS_TYPES)
def test_chunked_prefill_with_kv_cache_matches_full_forward(pos_type):
    model = sensitive_model(pos_type=pos_type, n_kv_heads=1)
    ids = tokens(2, 20)
    full = model(ids).logits
    cache = model.new_kv_cache(batch_size=2)
    chunks, start = [], 0
    for size in (6, 1, 5, 8):
        chunks.append(model(ids[:, start : start + size], kv_cache=cache).logits)
        start += size
    assert start == ids.shape[1] and cache.length == start
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=ATOL, rtol=1e-4)


# -- padding ------------------------------------------------------------------------------------------


def left_pad(rows: list[torch.Tensor], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    return ids, mask


@pytest.mark.parametrize("attention_type", ["flash", "standard"])
@pytest.mark.parametrize("pos_type", POS_TYPES)
def test_left_padded_batch_matches_each_row_run_alone(pos_type, attention_type):
    model = sensitive_model(pos_type=pos_type, attention_type=attention_type)
    rows = [tokens(1, n, seed=n)[0] for n in (11, 4, 7)]
    ids, mask = left_pad(rows)
    batched = model(ids, attention_mask=mask).logits[:, -1]
    assert torch.isfinite(model(ids, attention_mask=mask).logits).all()
    for i, row in enumerate(rows):
        alone = model(row.unsqueeze(0)).logits[0, -1]
        torch.testing.assert_close(batched[i], alone, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("pos_type", ["rope", "alibi"])
def test_left_padded_decoding_with_kv_cache_matches_each_row_run_alone(pos_type):
    model = sensitive_model(pos_type=pos_type, n_kv_heads=2)
    rows = [tokens(1, n, seed=10 + n)[0] for n in (9, 3)]
    ids, mask = left_pad(rows)
    cache = model.new_kv_cache(batch_size=2)
    step_logits = [model(ids, attention_mask=mask, kv_cache=cache).logits[:, -1]]
    extra = tokens(2, 3, seed=99)
    for t in range(extra.shape[1]):
        mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], dim=1)
        step_logits.append(model(extra[:, t : t + 1], attention_mask=mask, kv_cache=cache).logits[:, -1])
    for i, row in enumerate(rows):
        alone = model(torch.cat([row, extra[i]]).unsqueeze(0)).logits[0, -(extra.shape[1] + 1) :]
        torch.testing.assert_close(torch.stack([s[i] for s in step_logits]), alone, atol=ATOL, rtol=1e-4)


def test_an_all_ones_attention_mask_changes_nothing():
    model = make_model(pos_type="alibi")
    ids = tokens(2, 10)
    torch.testing.assert_close(
        model(ids, attention_mask=torch.ones_like(ids)).logits, model(ids).logits, atol=ATOL, rtol=0
    )


# -- gradient checkpointing ---------------------------------------------------------------------------


@pytest.mark.parametrize(("pos_type", "padded"), [("rope", False), ("alibi", True)])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(pos_type, padded):
    plain = make_model(pos_type=pos_type, n_kv_heads=2).train()
    ckpt = twin(plain, use_gradient_checkpointing=True).train()
    assert ckpt.gradient_checkpointing and not plain.gradient_checkpointing
    ids, labels = tokens(2, 12), tokens(2, 12, seed=5)
    mask = None
    if padded:  # an explicit attention bias must reach the checkpointed layers too
        mask = torch.ones_like(ids)
        mask[1, :4] = 0
        labels[1, :4] = IGNORE_INDEX
    calls = {"plain": 0, "ckpt": 0}
    plain.model.layers[0].register_forward_pre_hook(lambda *_: calls.__setitem__("plain", calls["plain"] + 1))
    ckpt.model.layers[0].register_forward_pre_hook(lambda *_: calls.__setitem__("ckpt", calls["ckpt"] + 1))
    loss_plain = plain(ids, labels=labels, attention_mask=mask).loss
    loss_ckpt = ckpt(ids, labels=labels, attention_mask=mask).loss
    loss_plain.backward()
    loss_ckpt.backward()
    torch.testing.assert_close(loss_ckpt, loss_plain)
    grads_plain = dict(plain.named_parameters())
    for name, param in ckpt.named_parameters():
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, grads_plain[name].grad, atol=1e-6, rtol=1e-4, msg=name)
    # Checkpointing is really on: the layer runs again during the backward pass.
    assert calls == {"plain": 1, "ckpt": 2}


def test_gradient_checkpointing_is_off_in_eval_and_with_a_kv_cache():
    model = make_model(use_gradient_checkpointing=True).eval()
    ids = tokens(1, 6)
    full = model(ids).logits
    cache = model.new_kv_cache(1)
    model.train()
    torch.testing.assert_close(model(ids, kv_cache=cache).logits, full, atol=ATOL, rtol=0)
    assert cache.length == 6


# -- block structure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_type", ["rmsnorm", "layernorm"])
@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
def test_block_applies_its_norms_before_or_after_each_residual_sublayer(norm_first, norm_type):
    model = make_model(norm_first=norm_first, norm_type=norm_type, n_layers=1)
    block = model.model.layers[0]
    with torch.no_grad():  # non-trivial norm scales so that every norm placement matters
        for norm in (block.input_layernorm, block.post_attention_layernorm):
            norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(3))
    rope = model.rope(torch.arange(7).expand(2, 7))
    out, _ = block(x, rope, None)

    def attn(h):
        return block.self_attn(h, rope, None)[0]

    ln1, ln2, mlp = block.input_layernorm, block.post_attention_layernorm, block.mlp
    if norm_first:
        h = x + attn(ln1(x))
        expected = h + mlp(ln2(h))
    else:
        h = ln1(x + attn(x))
        expected = ln2(h + mlp(h))
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_grouped_kv_heads_serve_consecutive_query_heads_like_llama():
    # GQA equals MHA whose k/v projections repeat each KV head for its group of consecutive query heads.
    gqa = make_model(n_kv_heads=2, attention_type="standard")
    mha = make_model(seed=1, n_kv_heads=4, attention_type="standard")
    state = gqa.state_dict()
    for key in list(state):
        if key.endswith(("k_proj.weight", "v_proj.weight")):
            per_head = state[key].view(2, 8, 32)  # (kv heads, head_dim, d_model)
            state[key] = per_head.repeat_interleave(2, dim=0).reshape(32, 32)
    mha.load_state_dict(state)
    ids = tokens(2, 10)
    torch.testing.assert_close(gqa(ids).logits, mha(ids).logits, atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(
        twin(gqa, attention_type="flash")(ids).logits, mha(ids).logits, atol=ATOL, rtol=1e-4
    )


# -- weight tying and layout --------------------------------------------------------------------------


def test_tied_embeddings_share_storage_with_the_output_head():
    model = make_model(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    with torch.no_grad():
        model.model.embed_tokens.weight[5, 0] = 123.0
    assert model.lm_head.weight[5, 0].item() == 123.0


def test_untied_embeddings_are_separate_tensors():
    model = make_model(tie_word_embeddings=False)
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        model.model.embed_tokens.weight[5, 0] = 123.0
    assert model.lm_head.weight[5, 0].item() != 123.0


def llama_keys(n_layers: int, *, swiglu: bool = True) -> set[str]:
    keys = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for i in range(n_layers):
        p = f"model.layers.{i}."
        keys |= {p + f"self_attn.{n}_proj.weight" for n in "qkvo"}
        keys |= {p + "mlp.up_proj.weight", p + "mlp.down_proj.weight"}
        if swiglu:
            keys.add(p + "mlp.gate_proj.weight")
        keys |= {p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
    return keys


@pytest.mark.parametrize("tie", [True, False])
def test_state_dict_keys_follow_the_llama_layout(tie):
    model = make_model(tie_word_embeddings=tie, n_kv_heads=2)
    state = model.state_dict()
    assert set(state) == llama_keys(2)
    # No position tables (rope cos/sin) are saved: they are derived from the config.
    assert not any("cos" in k or "sin" in k for k in state)
    assert state["model.layers.0.self_attn.q_proj.weight"].shape == (32, 32)
    assert state["model.layers.0.self_attn.k_proj.weight"].shape == (16, 32)  # 2 kv heads x 8
    assert state["model.layers.1.mlp.gate_proj.weight"].shape == (64, 32)
    assert state["model.layers.1.mlp.down_proj.weight"].shape == (32, 64)
    assert state["lm_head.weight"].shape == (VOCAB, 32)


def test_state_dict_layout_of_the_other_variants():
    gelu = make_model(ffn_type="gelu", n_layers=1)
    assert set(gelu.state_dict()) == llama_keys(1, swiglu=False)

    layernorm = make_model(norm_type="layernorm", n_layers=1)
    expected = llama_keys(1) | {
        "model.norm.bias",
        "model.layers.0.input_layernorm.bias",
        "model.layers.0.post_attention_layernorm.bias",
    }
    assert set(layernorm.state_dict()) == expected

    absolute = make_model(pos_type="absolute", n_layers=1)
    assert set(absolute.state_dict()) == llama_keys(1) | {"model.embed_positions.weight"}
    assert absolute.state_dict()["model.embed_positions.weight"].shape == (32, 32)

    for pos_type in ("sinusoidal", "alibi"):
        assert set(make_model(pos_type=pos_type, n_layers=1).state_dict()) == llama_keys(1)


def test_state_dict_round_trip_reproduces_the_logits():
    source = make_model(seed=0, pos_type="alibi")
    target = make_model(seed=1, pos_type="alibi")
    ids = tokens(2, 8)
    assert not torch.allclose(source(ids).logits, target(ids).logits)
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(ids).logits, source(ids).logits, atol=0, rtol=0)


# -- variants train -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"norm_first": False},
        {"norm_type": "layernorm"},
        {"norm_type": "layernorm", "norm_first": False, "ffn_type": "gelu", "pos_type": "absolute"},
        {"pos_type": "sinusoidal", "tie_word_embeddings": False, "n_kv_heads": 1},
    ],
    ids=["pre-rmsnorm", "post-rmsnorm", "pre-layernorm", "post-layernorm-gelu-absolute", "sinusoidal-mqa"],
)
def test_model_variant_can_overfit_a_fixed_tiny_batch(overrides):
    model = make_model(n_layers=1, **overrides).train()
    ids = tokens(2, 16, seed=7)
    labels = torch.roll(ids, shifts=-1, dims=1)
    labels[:, -1] = IGNORE_INDEX
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(30):
        loss = model(ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] == pytest.approx(torch.log(torch.tensor(float(VOCAB))).item(), rel=0.1)
    assert losses[-1] < 0.5 * losses[0], losses


# -- limits -------------------------------------------------------------------------------------------


def test_exceeding_max_len_raises_a_one_line_error():
    model = make_model()
    model(tokens(1, 32))  # exactly max_len is fine
    with pytest.raises(LLModelError) as err:
        model(tokens(1, 33))
    message = str(err.value)
    assert "\n" not in message
    assert "33" in message and "max_len=32" in message


def test_exceeding_max_len_through_the_kv_cache_raises_a_one_line_error():
    model = make_model()
    cache = model.new_kv_cache(batch_size=1)
    model(tokens(1, 30), kv_cache=cache)
    model(tokens(1, 2), kv_cache=cache)
    with pytest.raises(LLModelError) as err:
        model(tokens(1, 1), kv_cache=cache)
    assert "\n" not in str(err.value)
    assert cache.length == 32


# -- initialisation and dropout -----------------------------------------------------------------------


@pytest.mark.parametrize("initializer_range", [0.02, 0.05])
def test_initialisation_follows_initializer_range(initializer_range):
    torch.manual_seed(0)
    config = ModelConfig.from_dict(
        {
            "vocab_size": 512,
            "d_model": 64,
            "n_layers": 2,
            "n_heads": 4,
            "d_ff": 128,
            "max_len": 32,
            "initializer_range": initializer_range,
        }
    )
    model = Transformer(config)
    embed = model.model.embed_tokens.weight
    assert embed.mean().abs().item() < 0.1 * initializer_range
    assert embed.std().item() == pytest.approx(initializer_range, rel=0.05)
    q = model.model.layers[0].self_attn.q_proj.weight
    assert q.std().item() == pytest.approx(initializer_range, rel=0.1)
    # Residual output projections are scaled down by sqrt(2 * n_layers).
    o = model.model.layers[0].self_attn.o_proj.weight
    assert o.std().item() == pytest.approx(initializer_range / 2, rel=0.1)
    down = model.model.layers[1].mlp.down_proj.weight
    assert down.std().item() == pytest.approx(initializer_range / 2, rel=0.1)
    # Norms start as the identity scale.
    assert torch.equal(model.model.norm.weight, torch.ones(64))


def test_initial_loss_is_close_to_uniform():
    model = make_model()
    ids = tokens(4, 16)
    loss = model(ids, labels=tokens(4, 16, seed=2)).loss.item()
    assert loss == pytest.approx(torch.log(torch.tensor(float(VOCAB))).item(), rel=0.05)


def test_dropout_makes_training_outputs_random_but_eval_outputs_deterministic():
    model = make_model(dropout=0.2).train()
    ids = tokens(2, 12)
    assert not torch.allclose(model(ids).logits, model(ids).logits)
    model.eval()
    torch.testing.assert_close(model(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_without_dropout_training_mode_is_deterministic():
    model = make_model(dropout=0.0).train()
    ids = tokens(2, 12)
    torch.testing.assert_close(model(ids).logits, model(ids).logits, atol=0, rtol=0)


@pytest.mark.parametrize("attention_type", ["standard", "flash"])
def test_attention_dropout_is_active_in_training_in_both_attention_paths(attention_type):
    model = make_model(dropout=0.5, attention_type=attention_type).train()
    # Switch off every dropout except the one on the attention probabilities.
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    ids = tokens(2, 12)
    assert not torch.allclose(model(ids).logits, model(ids).logits)
    model.eval()
    torch.testing.assert_close(model(ids).logits, model(ids).logits, atol=0, rtol=0)
