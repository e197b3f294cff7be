"""Fine-tuning as specified: assistant-only labels in every format, packing, LoRA/QLoRA layers, adapter files,
and resumes that repeat an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from engine.adapters.files import load_adapter, save_adapter
from engine.adapters.lora import (
    LoRALinear,
    adapter_state,
    apply_lora,
    load_adapter_state,
    merge_lora,
)
from engine.adapters.settings import LoraSettings
from engine.errors import CheckpointError, ConfigError, DataError
from engine.finetune.batches import SFTBatches, pack
from engine.finetune.config import FinetuneSettings
from engine.finetune.run import FinetuneJob
from engine.finetune.sft_data import IGNORE, encode_conversation, load_sft_data
from engine.model import ModelConfig, Transformer
from engine.runs import checkpoint as ckpt
from engine.runs.events import read_events
from engine.tokenizer import ROLE_MARKERS, Tokenizer
from engine.training.config import TrainConfig
from tests.model_fixtures import context_sensitive_model

SHAPE = {"vocab_size": 512, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 64}
TURNS = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What does len do?"},
    {"role": "assistant", "content": "It counts items."},
    {"role": "user", "content": "And abs?"},
    {"role": "assistant", "content": "The absolute value."},
]
FORMATS = {
    "prompt-response": ({"prompt": "Q?", "response": "A."}, [("user", "Q?"), ("assistant", "A.")]),
    "prompt-completion": ({"prompt": "Q?", "completion": "A."}, [("user", "Q?"), ("assistant", "A.")]),
    "alpaca": (
        {"instruction": "Add.", "input": "1 2", "output": "3"},
        [("user", "Add.\n\n1 2"), ("assistant", "3")],
    ),
    "openai-messages": ({"messages": TURNS}, [(m["role"], m["content"]) for m in TURNS]),
    "lmsys-conversation": ({"conversation": TURNS[1:3]}, [(m["role"], m["content"]) for m in TURNS[1:3]]),
    "sharegpt": (
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
        [("user", "Hi"), ("assistant", "Hello.")],
    ),
}


@pytest.fixture
def tokenizer(tokenizer_dir) -> Tokenizer:
    return Tokenizer.load(tokenizer_dir)


@pytest.fixture
def config() -> ModelConfig:
    return ModelConfig.from_dict(SHAPE)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def expected_targets(turns: list[tuple[str, str]], tokenizer: Tokenizer, config: ModelConfig) -> list[int]:
    """An independent statement of what an assistant-only loss trains on: each reply's tokens and its line end,
    then whatever ends it — the next turn's role marker, or EOS after the last reply."""
    targets: list[int] = []
    for index, (role, content) in enumerate(turns):
        if role != "assistant":
            continue
        targets += tokenizer.encode(content + "\n")
        following = turns[index + 1][0] if index + 1 < len(turns) else None
        targets.append(tokenizer.piece_to_id(ROLE_MARKERS[following]) if following else config.eos_token_id)
    return targets


# -- data -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_labels_are_minus_100_everywhere_but_the_assistant_turns_in_every_format(
    name, tmp_path, tokenizer, config
):
    record, turns = FORMATS[name]
    data = load_sft_data([write_jsonl(tmp_path / "d.jsonl", [record])], tokenizer, config, seq_len=255)
    (example,) = data.train
    assert data.truncated == 0
    labelled = [label for label in example.labels if label != IGNORE]
    assert labelled == expected_targets(turns, tokenizer, config)
    # Wherever a label is kept it is the token at that position; the prompt (BOS, markers, user text) is masked.
    assert all(label in (IGNORE, token) for token, label in zip(example.ids, example.labels, strict=True))
    rendered = "".join(f"<|{role}|>\n{content}\n" for role, content in turns)
    assert tokenizer.decode(example.ids) == rendered.replace(
        ROLE_MARKERS["assistant"] + "\n", "<|assistant|>\n"
    )


def test_a_multi_turn_conversation_trains_every_assistant_turn_and_train_on_inputs_trains_all(
    tokenizer, config
):
    example = encode_conversation(TURNS, tokenizer, config)
    text = tokenizer.decode(
        [t for t, label in zip(example.ids, example.labels, strict=True) if label != IGNORE]
    )
    assert "It counts items." in text and "The absolute value." in text and "And abs?" not in text
    everything = encode_conversation(TURNS, tokenizer, config, train_on_inputs=True)
    assert everything.ids == example.ids and everything.labels[1:] == everything.ids[1:]


def test_examples_longer_than_the_context_are_cut_and_counted(tmp_path, tokenizer, config):
    long = {"prompt": "word " * 3, "response": "answer " * 80}
    data = load_sft_data(
        [write_jsonl(tmp_path / "d.jsonl", [long, *[FORMATS["alpaca"][0]] * 3])],
        tokenizer,
        config,
        seq_len=31,
    )
    assert data.truncated == 1 and max(len(e.ids) for e in [*data.train, *data.val]) == 32
    assert "1 longer than the context (32 tokens) were cut to fit" in data.summary(31)


def test_data_without_assistant_turns_is_one_line_naming_the_fix(tmp_path, tokenizer, config):
    only_users = [{"messages": [{"role": "user", "content": "hi"}]}] * 3
    with pytest.raises(DataError, match=r"no example .* has an assistant turn.*--train-on-inputs"):
        load_sft_data([write_jsonl(tmp_path / "d.jsonl", only_users)], tokenizer, config, seq_len=63)


def test_replies_cut_off_by_the_context_say_so(tmp_path, tokenizer, config):
    long_prompts = [{"prompt": "word " * 40, "response": "yes"}] * 3
    with pytest.raises(DataError, match="lies beyond the context of 16 tokens; raise --seq-len"):
        load_sft_data([write_jsonl(tmp_path / "d.jsonl", long_prompts)], tokenizer, config, seq_len=15)


def test_a_malformed_line_is_reported_with_file_and_line(tmp_path, tokenizer, config):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(FORMATS["alpaca"][0]) + "\n{not json\n" + json.dumps({"foo": 1}) + "\n")
    seen: list[str] = []
    data = load_sft_data([path], tokenizer, config, seq_len=63, log=seen.append)
    assert len(data.bad_records) == 2 and f"{path}:2: malformed JSON" in data.bad_records[0]
    with pytest.raises(DataError, match=f"{path}:2"):
        load_sft_data([path], tokenizer, config, seq_len=63, strict=True)


# -- packing ----------------------------------------------------------------------------------------------------


def test_a_packed_batch_gives_every_example_the_loss_it_has_alone(tokenizer, config):
    model = context_sensitive_model(config, max_len=128)
    examples = [
        encode_conversation([{"role": r, "content": c} for r, c in FORMATS[name][1]], tokenizer, config)
        for name in FORMATS
    ]
    cfg = TrainConfig(batch_size=2, seq_len=127)
    packed = SFTBatches(examples, [], seq_len=127, cfg=cfg, pad_id=0, packing=True)
    windows = pack(examples, 127)
    assert sum(len(w) for w in windows) == len(examples) and any(len(w) > 1 for w in windows)

    def losses(batch) -> torch.Tensor:
        with torch.no_grad():
            logits = model(batch.pop("input_ids"), **{k: v for k, v in batch.items() if k != "labels"}).logits
        per_token = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), batch["labels"], ignore_index=IGNORE, reduction="none"
        )
        return per_token

    for window_start in range(0, len(windows), 2):
        batch = packed._collate(windows[window_start : window_start + 2])
        per_token = losses(dict(batch))
        for row, window in enumerate(windows[window_start : window_start + 2]):
            start = 0
            for example in window:
                n = len(example.ids) - 1
                alone = losses(dict(packed._collate([[example]])))[0, :n]
                torch.testing.assert_close(per_token[row, start : start + n], alone, atol=1e-5, rtol=1e-5)
                start += n


def test_batches_depend_only_on_the_step_and_cover_each_example_once_an_epoch(tokenizer, config):
    examples = [
        encode_conversation(
            [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}], tokenizer, config
        )
        for i in range(10)
    ]
    cfg = TrainConfig(batch_size=3, seed=5)
    batches = SFTBatches(examples, [], seq_len=63, cfg=cfg, pad_id=0)
    again = SFTBatches(examples, [], seq_len=63, cfg=cfg, pad_id=0)
    assert batches.steps_per_epoch() == 4
    first_epoch = [batches.batch(step, 0)["input_ids"] for step in range(4)]
    seen = sorted(tuple(row[row != 0].tolist()) for b in first_epoch for row in b)
    assert seen == sorted(tuple(e.ids[:-1]) for e in examples)
    assert torch.equal(again.batch(6, 0)["input_ids"], batches.batch(6, 0)["input_ids"])


# -- LoRA -------------------------------------------------------------------------------------------------------


def adapted(config: ModelConfig, **settings) -> tuple[Transformer, Transformer]:
    base = context_sensitive_model(config)
    model = context_sensitive_model(config)
    apply_lora(model, LoraSettings(**settings))
    return base, model


def test_at_initialisation_the_adapted_model_gives_exactly_the_base_logits(config):
    base, model = adapted(config, rank=4, alpha=8, target_modules=["all-linear"])
    ids = torch.randint(5, 500, (2, 20), generator=torch.Generator().manual_seed(1))
    assert torch.equal(model(ids).logits, base(ids).logits)


def test_only_adapter_parameters_receive_gradients(config):
    _, model = adapted(config, rank=4, target_modules=["q_proj", "v_proj", "down_proj"])
    ids = torch.randint(5, 500, (2, 20))
    model.train()
    model(ids, labels=ids).loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {name for name in adapter_state(model)}
    assert len(with_grad) == 2 * 3 * config.n_layers


def test_a_merged_model_gives_the_logits_of_base_plus_adapter(config):
    _, model = adapted(config, rank=4, alpha=16, target_modules=["all-linear"])
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)  # a trained adapter: B is no longer zero
    ids = torch.randint(5, 500, (2, 16))
    unmerged = model(ids).logits
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(ids).logits, unmerged, atol=1e-5, rtol=1e-5)


def test_unknown_targets_and_a_bad_rank_are_one_line_errors(config):
    with pytest.raises(ConfigError, match="unknown target module 'qkv'; choose from q_proj, k_proj"):
        apply_lora(context_sensitive_model(config), LoraSettings(target_modules=["qkv"]))
    with pytest.raises(ConfigError, match="rank must be a positive integer, got 0"):
        LoraSettings(rank=0)
    with pytest.raises(ConfigError, match="has no gate_proj"):
        apply_lora(
            context_sensitive_model(config, ffn_type="gelu"), LoraSettings(target_modules=["gate_proj"])
        )


# -- adapter files ----------------------------------------------------------------------------------------------


@pytest.fixture
def base_checkpoint(tmp_path, config) -> ckpt.Checkpoint:
    model = context_sensitive_model(config)
    return ckpt.save_checkpoint(tmp_path / "base" / "checkpoints", step=1, model=model, model_config=config)


def trained_adapter(config: ModelConfig, base: ckpt.Checkpoint, **settings) -> Transformer:
    model = context_sensitive_model(config)
    ckpt.load_weights(base, model)
    apply_lora(model, LoraSettings(**settings))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.1)
    return model.eval()


def test_an_adapter_saves_in_the_peft_layout_and_loads_back_to_the_same_logits(
    tmp_path, config, base_checkpoint
):
    settings = LoraSettings(rank=4, alpha=8, target_modules=["q_proj", "v_proj"])
    model = trained_adapter(config, base_checkpoint, **dataclasses.asdict(settings))
    adapter = save_adapter(
        model, tmp_path / "adapters" / "mine", settings, base_checkpoint, dataset="d.jsonl"
    )
    files = sorted(p.name for p in adapter.path.iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors", "llmodel_adapter.json"]
    peft_config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert peft_config["peft_type"] == "LORA" and peft_config["r"] == 4 and peft_config["lora_alpha"] == 8
    from safetensors import safe_open

    with safe_open(str(adapter.path / "adapter_model.safetensors"), "pt") as fh:
        assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in fh.keys()  # noqa: SIM118 - safe_open has no __contains__

    loaded = load_adapter(adapter.path)
    fresh = context_sensitive_model(config)
    ckpt.load_weights(base_checkpoint, fresh)
    apply_lora(fresh, loaded.settings)
    load_adapter_state(fresh, loaded.tensors(), str(loaded.path))
    ids = torch.randint(5, 500, (2, 16))
    torch.testing.assert_close(fresh.eval()(ids).logits, model(ids).logits)


def test_an_all_linear_adapter_of_a_gelu_model_names_the_projections_it_has_and_its_base_in_full(
    tmp_path, monkeypatch
):
    gelu = context_sensitive_model({**SHAPE, "ffn_type": "gelu"})
    monkeypatch.chdir(tmp_path)
    base = ckpt.save_checkpoint(Path("base") / "checkpoints", step=1, model=gelu, model_config=gelu.config)
    settings = LoraSettings(rank=4, target_modules=["all-linear"])
    model = trained_adapter(gelu.config, base, **dataclasses.asdict(settings))
    adapter = save_adapter(model, tmp_path / "gelu-adapter", settings, base)
    peft_config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert peft_config["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
    assert adapter.meta["targets"] == peft_config["target_modules"]
    assert adapter.meta["base_checkpoint"] == str((tmp_path / base.path).resolve()), (
        "typed relative, kept absolute"
    )


@pytest.mark.slow
def test_peft_loads_our_adapter_onto_our_model_and_gets_our_logits(tmp_path, config, base_checkpoint):
    peft = pytest.importorskip("peft")
    settings = LoraSettings(rank=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"])
    model = trained_adapter(config, base_checkpoint, **dataclasses.asdict(settings))
    adapter = save_adapter(model, tmp_path / "mine", settings, base_checkpoint)
    plain = context_sensitive_model(config)
    ckpt.load_weights(base_checkpoint, plain)
    # Our file says CAUSAL_LM (the contract for Hugging Face causal LMs); peft wraps a plain module like ours as
    # a generic PeftModel, so the test loads the same file with the task type left open.
    config_from_file = peft.LoraConfig.from_pretrained(str(adapter.path))
    assert config_from_file.task_type == "CAUSAL_LM" and config_from_file.r == 4
    config_from_file.task_type = None
    with_peft = peft.PeftModel.from_pretrained(plain, str(adapter.path), config=config_from_file).eval()
    ids = torch.randint(5, 500, (2, 16))
    with torch.no_grad():
        theirs = with_peft(ids).logits
    torch.testing.assert_close(theirs, model(ids).logits, atol=1e-5, rtol=1e-5)


def test_a_corrupt_adapter_or_one_for_another_base_is_refused_in_one_line(tmp_path, config, base_checkpoint):
    from engine.adapters.files import attach_adapter

    settings = LoraSettings(rank=4)
    model = trained_adapter(config, base_checkpoint, **dataclasses.asdict(settings))
    adapter = save_adapter(model, tmp_path / "mine", settings, base_checkpoint)
    other = ckpt.save_checkpoint(
        tmp_path / "other" / "checkpoints",
        step=1,
        model=context_sensitive_model(config, seed=9),
        model_config=config,
    )
    with pytest.raises(CheckpointError, match=f"trained on {base_checkpoint.path}, not on {other.path}"):
        attach_adapter(context_sensitive_model(config), load_adapter(adapter.path), other)
    (adapter.path / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"adapter_model\.safetensors is unreadable"):
        attach_adapter(context_sensitive_model(config), load_adapter(adapter.path), base_checkpoint)
    with pytest.raises(CheckpointError, match="no adapter at"):
        load_adapter(tmp_path / "nowhere")


# -- QLoRA ------------------------------------------------------------------------------------------------------


def test_nf4_round_trip_error_stays_within_the_block_quantization_bound():
    from engine.adapters.nf4 import BLOCK_SIZE, dequantize, to_nf4, weight_bytes

    weight = torch.randn(96, 64, generator=torch.Generator().manual_seed(0))
    restored = dequantize(to_nf4(weight))
    blocks = weight.reshape(-1, BLOCK_SIZE)
    error = (restored.reshape(-1, BLOCK_SIZE) - blocks).abs()
    # NF4's widest gap between neighbouring code values (-1 and -0.696) is 0.304 of a block's absmax: half of it
    # bounds the error, with a little room for the 8-bit double-quantized scales.
    assert (error <= 0.16 * blocks.abs().amax(1, keepdim=True)).all()
    assert error.mean() < 0.12 * weight.abs().mean()
    assert weight.numel() * 4 / weight_bytes(to_nf4(weight)) >= 3.5


def test_qlora_keeps_the_base_in_nf4_and_trains_the_adapter(config):
    from engine.adapters.nf4 import weight_bytes

    model = context_sensitive_model(config)
    before = sum(weight_bytes(linear.weight) for linear in _projections(model))
    apply_lora(model, LoraSettings(rank=4, target_modules=["q_proj"], quantize_base="nf4"))
    after = sum(weight_bytes(linear.weight) for linear in _projections(model))
    assert before / after >= 3.5
    ids = torch.randint(5, 500, (2, 12))
    model.train()
    model(ids, labels=ids).loss.backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == set(adapter_state(model))


def _projections(model: Transformer) -> list[torch.nn.Linear]:
    from engine.adapters.lora import projections

    return [linear for *_, linear in projections(model)]


def test_qlora_without_torchao_is_one_line_and_writes_nothing(tmp_path, monkeypatch, served_run_dir):
    import engine.adapters.nf4 as nf4

    def missing():
        raise ConfigError(
            "QLoRA needs torchao's NF4 tensor, which is not installed; `pip install -e '.[qlora]'`"
        )

    monkeypatch.setattr(nf4, "require_torchao", missing)
    job = FinetuneJob(
        base=str(served_run_dir),
        data_paths=["unused.jsonl"],
        run_dir=tmp_path / "run",
        settings=FinetuneSettings(method="qlora"),
        train_config=TrainConfig(),
    )
    with pytest.raises(ConfigError, match="QLoRA needs torchao"):
        job.run()
    assert not (tmp_path / "run").exists()


# -- whole runs -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory) -> Path:
    """Short question/answer pairs a nano model can learn something from in a few steps."""
    records = [{"prompt": f"{a} plus {b}?", "response": f"{a + b}"} for a in range(12) for b in range(10)]
    return write_jsonl(tmp_path_factory.mktemp("sft") / "sums.jsonl", records)


def run_finetune(
    base: Path,
    data: Path,
    run_dir: Path,
    *,
    method: str,
    stop_after: int | None = None,
    resume: bool = False,
    **train,
) -> dict:
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return stop_after is not None and calls["n"] >= stop_after

    settings = {
        "batch_size": 4,
        "seq_len": 48,
        "max_steps": 10,
        "warmup_steps": 2,
        "learning_rate": 3e-3,
        "eval_interval": 5,
        "eval_batches": 2,
        "checkpoint_interval": 5,
        "sample_interval": 10,
        "sample_tokens": 8,
        "attention_interval": 10**6,
        "device": "cpu",
        **train,
    }
    job = FinetuneJob(
        base=str(base),
        data_paths=[str(data)],
        run_dir=run_dir,
        settings=FinetuneSettings(method=method, lora_rank=4, target_modules=["all-linear"], packing=True),
        train_config=TrainConfig(**settings),
        resume_from=str(run_dir) if resume else None,
        adapters_dir=run_dir.parent / "adapters",
        should_stop=should_stop,
    )
    return job.run()


def step_losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_resumed_fine_tuning_run_repeats_the_uninterrupted_losses(
    tmp_path, served_run_dir, sft_file, method
):
    straight = run_finetune(served_run_dir, sft_file, tmp_path / "straight", method=method)
    assert straight["status"] == "completed" and straight["step"] == 10
    first = run_finetune(served_run_dir, sft_file, tmp_path / "resumed", method=method, stop_after=6)
    assert first["status"] == "cancelled" and first["step"] == 6
    resumed = run_finetune(served_run_dir, sft_file, tmp_path / "resumed", method=method, resume=True)
    assert resumed["status"] == "completed"
    got = step_losses(tmp_path / "resumed")
    assert [s for s, _ in got] == list(range(1, 11))
    assert got == step_losses(tmp_path / "straight")
    if method == "lora":
        assert straight["adapter"] and load_adapter(straight["adapter"]).settings.rank == 4
        saved = ckpt.latest_checkpoint(tmp_path / "straight" / "checkpoints")
        assert set(ckpt.load_tensors(saved)) == {k for k in ckpt.load_tensors(saved) if "lora_" in k}


@pytest.mark.slow
def test_a_lora_run_lowers_the_validation_loss_and_samples_in_the_chat_template(
    tmp_path, served_run_dir, sft_file
):
    result = run_finetune(
        served_run_dir, sft_file, tmp_path / "run", method="lora", max_steps=30, eval_interval=10
    )
    events = list(read_events(tmp_path / "run" / "events.jsonl"))
    evals = [e["val_loss"] for e in events if e["type"] == "eval"]
    assert result["status"] == "completed" and len(evals) == 3
    assert evals[-1] < evals[0], "the adapter learns the held-out sums' format"
    sample = next(e for e in events if e["type"] == "sample")
    assert sample["prompt"].startswith("<|user|>\n") and sample["prompt"].endswith("<|assistant|>\n")
    status = next(e for e in events if e["type"] == "status" and e.get("status") == "running")
    assert 0 < status["trainable_parameters"] < status["parameters"]


@pytest.mark.slow
def test_without_data_a_fine_tune_uses_the_embedded_instruction_set_built_once_in_the_workspace(tmp_path):
    from engine.data.stdlib_corpus import workspace_instructions

    path = workspace_instructions(tmp_path)
    assert path == tmp_path / "datasets" / "stdlib-instructions" / "instructions.train.jsonl"
    assert path.stat().st_size > 10_000 and (path.parent / "instructions.heldout.jsonl").is_file()
    built = path.stat().st_mtime_ns
    assert workspace_instructions(tmp_path) == path and path.stat().st_mtime_ns == built


def test_weights_that_do_not_fit_the_model_are_one_line_naming_them(tmp_path):
    tied = ModelConfig.from_dict({**SHAPE, "tie_word_embeddings": True})
    saved = ckpt.save_checkpoint(tmp_path / "checkpoints", step=1, model=Transformer(tied), model_config=tied)
    untied = ModelConfig.from_dict({**SHAPE, "tie_word_embeddings": False})
    with pytest.raises(ckpt.CheckpointError, match=r"does not fit the model: missing \S+\.weight"):
        ckpt.load_weights(saved, Transformer(untied))
    wider = ModelConfig.from_dict({**SHAPE, "d_model": 64})
    with pytest.raises(ckpt.CheckpointError, match=r"does not fit the model: .*shape"):
        ckpt.load_weights(saved, Transformer(wider))
