"""Pretraining: the loop, its events, checkpoints and exact resumption."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from engine.errors import CheckpointError, ConfigError, VocabMismatchError
from engine.model import ModelConfig
from engine.runs import checkpoint as ckpt
from engine.runs.events import read_events
from engine.training.config import TrainConfig
from engine.training.optim import lr_multiplier
from engine.training.trainer import Trainer


def losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) of every step event in the order written: a repeated step would show twice."""
    return [(e["step"], e["loss"]) for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"]


def train(config, settings, dataset_dir, run_dir, tokenizer_dir=None, **kwargs):
    return Trainer(config, settings, dataset_dir, run_dir, tokenizer_path=tokenizer_dir, **kwargs).run()


@pytest.mark.slow
def test_training_lowers_the_validation_loss(nano_config, quick_train_config, dataset_dir, tmp_path):
    settings = dataclasses.replace(quick_train_config, max_steps=40, eval_interval=40, warmup_steps=5)
    result = train(nano_config, settings, dataset_dir, tmp_path / "run")
    assert result.status == "completed" and result.step == 40
    assert result.final_metrics["val_loss"] < math.log(nano_config.vocab_size) - 0.5


@pytest.mark.slow
def test_resume_after_interrupt_continues_the_same_loss_curve(
    nano_config, quick_train_config, dataset_dir, tmp_path
):
    straight = train(nano_config, quick_train_config, dataset_dir, tmp_path / "straight")
    assert straight.status == "completed"

    calls = {"n": 0}

    def stop_after_seven_steps() -> bool:
        calls["n"] += 1
        return calls["n"] >= 7

    interrupted_dir = tmp_path / "interrupted"
    first = train(
        nano_config, quick_train_config, dataset_dir, interrupted_dir, should_stop=stop_after_seven_steps
    )
    assert first.status == "cancelled" and first.step == 7
    assert (first.last_checkpoint / ckpt.MARKER).is_file()

    resumed = train(
        nano_config, quick_train_config, dataset_dir, interrupted_dir, resume_from=interrupted_dir
    )
    assert resumed.status == "completed" and resumed.step == 12

    expected, got = losses(tmp_path / "straight"), losses(interrupted_dir)
    assert [step for step, _ in got] == list(range(1, 13)), "each step appears exactly once, without a gap"
    assert got == expected, "a resumed run repeats the uninterrupted losses exactly"


@pytest.mark.slow
def test_events_file_records_steps_evaluations_samples_and_checkpoints(
    nano_config, quick_train_config, dataset_dir, tokenizer_dir, tmp_path
):
    train(nano_config, quick_train_config, dataset_dir, tmp_path / "run", tokenizer_dir)
    events = list(read_events(tmp_path / "run" / "events.jsonl"))
    kinds = {e["type"] for e in events}
    assert {"status", "step", "eval", "sample", "checkpoint", "log"} <= kinds
    step = next(e for e in events if e["type"] == "step")
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "memory", "tokens"} <= set(step)
    evaluation = next(e for e in events if e["type"] == "eval")
    assert evaluation["val_ppl"] == pytest.approx(math.exp(evaluation["val_loss"]))
    assert 0.0 <= evaluation["val_accuracy"] <= 1.0
    sample = next(e for e in events if e["type"] == "sample")
    assert sample["text"].startswith(quick_train_config.sample_prompt)
    assert "step 12/12" in (tmp_path / "run" / "train.log").read_text()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "completed" and run["step"] == 12


@pytest.mark.slow
def test_checkpoints_keep_the_last_k_and_the_best(nano_config, quick_train_config, dataset_dir, tmp_path):
    train(nano_config, quick_train_config, dataset_dir, tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    names = [p.name for p in ckpt.list_checkpoints(checkpoints)]
    best = ckpt.read_pointer(checkpoints, "best")["checkpoint"]
    latest = ckpt.read_pointer(checkpoints, "latest")["checkpoint"]
    assert latest == ckpt.step_dir_name(12)
    assert set(names) == {ckpt.step_dir_name(8), ckpt.step_dir_name(12), best}
    meta = json.loads((checkpoints / latest / ckpt.META).read_text())
    assert meta["model_config"] == nano_config.to_dict()
    assert meta["data_position"]["step"] == 12 and meta["tokens_seen"] == 12 * 4 * 32


@pytest.mark.slow
def test_a_checkpoint_without_its_marker_is_never_used(
    nano_config, quick_train_config, dataset_dir, tmp_path
):
    train(nano_config, quick_train_config, dataset_dir, tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    (checkpoints / ckpt.step_dir_name(12) / ckpt.MARKER).unlink()  # as if killed mid-write
    found = ckpt.resolve_checkpoint(tmp_path / "run")
    assert found.step == 8


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_detected_and_the_previous_one_used(
    nano_config, quick_train_config, dataset_dir, tmp_path
):
    train(nano_config, quick_train_config, dataset_dir, tmp_path / "run")
    weights = tmp_path / "run" / "checkpoints" / ckpt.step_dir_name(12) / ckpt.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    messages: list[str] = []
    found = ckpt.resolve_checkpoint(tmp_path / "run", log=messages.append)
    assert found.step == 8
    assert any("corrupt" in m for m in messages)
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.verify_checkpoint(weights.parent)


@pytest.mark.slow
def test_a_checkpoint_refuses_a_config_of_another_shape(
    nano_config, quick_train_config, dataset_dir, tmp_path
):
    train(nano_config, dataclasses.replace(quick_train_config, max_steps=4), dataset_dir, tmp_path / "run")
    wider = ModelConfig.from_dict({**nano_config.to_dict(), "d_model": 64})
    with pytest.raises(CheckpointError, match="d_model=32") as err:
        train(wider, quick_train_config, dataset_dir, tmp_path / "run", resume_from=tmp_path / "run")
    assert "\n" not in str(err.value)


def test_vocab_mismatch_is_caught_before_training(nano_config, quick_train_config, dataset_dir, tmp_path):
    bigger = ModelConfig.from_dict({**nano_config.to_dict(), "vocab_size": 1024})
    with pytest.raises(VocabMismatchError, match="vocab_size to 512"):
        Trainer(bigger, quick_train_config, dataset_dir, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "lion"])
def test_both_optimizers_train(nano_config, quick_train_config, dataset_dir, tmp_path, optimizer):
    lr = 1e-3 if optimizer == "lion" else 3e-3
    settings = dataclasses.replace(
        quick_train_config, optimizer=optimizer, learning_rate=lr, max_steps=30, eval_interval=30
    )
    result = train(nano_config, settings, dataset_dir, tmp_path / "run")
    first = losses(tmp_path / "run")[0][1]
    assert result.final_metrics["loss"] < first - 0.3


@pytest.mark.slow
def test_gradient_accumulation_and_bf16_autocast_run_on_cpu(
    nano_config, quick_train_config, dataset_dir, tmp_path
):
    settings = dataclasses.replace(
        quick_train_config, gradient_accumulation_steps=2, precision="bf16", max_steps=4
    )
    result = train(nano_config, settings, dataset_dir, tmp_path / "run")
    assert result.status == "completed" and math.isfinite(result.final_metrics["loss"])
    status = next(e for e in read_events(tmp_path / "run" / "events.jsonl") if e["type"] == "status")
    assert status["precision"] == "bf16" and status["tokens_per_step"] == 4 * 32 * 2


@pytest.mark.parametrize("schedule", ["cosine", "linear", "polynomial", "constant"])
def test_learning_rate_warms_up_then_follows_its_schedule(schedule):
    cfg = TrainConfig(schedule=schedule, warmup_steps=10, min_lr_ratio=0.1, poly_power=2.0)
    warmup = [lr_multiplier(s, cfg, 100) for s in range(10)]
    assert warmup == sorted(warmup) and warmup[0] < 0.2
    assert lr_multiplier(10, cfg, 100) == pytest.approx(1.0)
    end = lr_multiplier(100, cfg, 100)
    assert end == pytest.approx(1.0 if schedule == "constant" else 0.1)
    middle = lr_multiplier(55, cfg, 100)
    assert 0.1 <= middle <= 1.0


def test_training_config_rejects_unknown_keys_in_one_line():
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown config key 'learning_rat'") as err:
        TrainConfig.from_dict({"learning_rat": 1e-3})
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_attention_snapshots_are_recorded_on_the_probe_text(
    nano_config, quick_train_config, dataset_dir, tokenizer_dir, tmp_path
):
    from engine.model.attention_maps import load_snapshot

    settings = dataclasses.replace(quick_train_config, attention_interval=6)
    train(nano_config, settings, dataset_dir, tmp_path / "run", tokenizer_dir)
    events = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["type"] == "attention"]
    assert [e["step"] for e in events] == [6, 12]
    weights, labels, step = load_snapshot(Path(events[-1]["path"]))
    side = len(labels)
    assert step == 12 and 1 < side <= 64
    assert weights.shape == (nano_config.n_layers, nano_config.n_heads, side, side)
    assert torch.allclose(weights.sum(-1), torch.ones(side), atol=1e-2), "each row is a distribution"
    assert torch.all(weights.triu(1) < 1e-3), "causal: no token attends to a later one"


def test_a_long_attention_map_is_pooled_to_64_by_64():
    from engine.model.attention_maps import downsample, token_labels

    weights = torch.softmax(torch.randn(2, 3, 100, 100), -1)
    pooled = downsample(weights, 64)
    assert pooled.shape == (2, 3, 64, 64)
    assert torch.allclose(pooled.sum(-1), torch.ones(2, 3, 64), atol=0.05)
    assert len(token_labels([str(i) for i in range(100)])) == 64


def test_eval_tasks_without_an_evaluator_are_refused_before_the_run_folder_exists(
    nano_config, quick_train_config, dataset_dir, tmp_path
):
    settings = dataclasses.replace(quick_train_config, eval_tasks=["stdlib-names"])
    with pytest.raises(ConfigError, match="eval_tasks stdlib-names need an evaluator"):
        Trainer(nano_config, settings, dataset_dir, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_injected_evaluators_score_every_validation_into_the_eval_events(
    nano_config, quick_train_config, dataset_dir, tmp_path
):
    seen = []

    def probe(model, tokenizer, step, events):
        seen.append((step, model.training))
        return {"probe/step": float(step)}

    settings = dataclasses.replace(quick_train_config, max_steps=4, eval_interval=2)
    result = train(nano_config, settings, dataset_dir, tmp_path / "run", evaluators=[probe])
    evals = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["type"] == "eval"]
    assert [(e["step"], e["probe/step"]) for e in evals] == [(2, 2.0), (4, 4.0)]
    assert seen == [(2, True), (4, True)] and result.final_metrics["probe/step"] == 4.0


@pytest.mark.slow
def test_the_set_up_and_step_api_trains_single_steps(nano_config, quick_train_config, dataset_dir, tmp_path):
    trainer = Trainer(nano_config, quick_train_config, dataset_dir, tmp_path / "run")
    try:
        assert trainer.set_up() == 0 and trainer.model.training
        first, tokens = trainer.train_step(0)
        later = [trainer.train_step(step)[0] for step in range(1, 6)]
    finally:
        trainer.close()
    per_step = quick_train_config.batch_size * quick_train_config.seq_len
    assert tokens == per_step and math.isfinite(first) and min(later) < first
    assert not (tmp_path / "run" / "checkpoints").exists()  # single steps save nothing
