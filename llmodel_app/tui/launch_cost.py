"""What a training run will cost before it starts: tokens, evaluations, and the time at a speed this machine
measured, scaled by FLOPs per token from the measured run closest in shape."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.model.config import ModelConfig
from engine.training.config import TrainConfig

DEFAULT_TRAIN = TrainConfig()


@dataclass(frozen=True)
class MeasuredSpeed:
    """A finished or running run's speed: its training FLOPs per token and the tokens per second it reached."""

    run: str
    device: str | None
    flops_per_token: float
    tokens_per_step: float | None
    tokens_per_s: float
    adapter: bool  # whether it trained an adapter (LoRA, QLoRA) rather than every weight

    @property
    def flops(self) -> float:
        """The training FLOP/s it reached."""
        return self.flops_per_token * self.tokens_per_s


def measured_speeds(runs: list[dict[str, Any]]) -> list[MeasuredSpeed]:
    """Every run that recorded its speed (``info.flops_per_token`` and ``metrics.tokens_per_s``)."""
    speeds = []
    for run in runs:
        info, metrics = run.get("info") or {}, run.get("metrics") or {}
        if info.get("flops_per_token") and metrics.get("tokens_per_s"):
            per_step = info.get("tokens_per_step")
            speeds.append(
                MeasuredSpeed(
                    run=str(run["id"]),
                    device=info.get("device"),
                    flops_per_token=float(info["flops_per_token"]),
                    tokens_per_step=float(per_step) if per_step else None,
                    tokens_per_s=float(metrics["tokens_per_s"]),
                    adapter=bool(info.get("adapter")),
                )
            )
    return speeds


def closest_speed(
    runs: list[dict[str, Any]], flops_per_token: float, tokens_per_step: float, *, adapter: bool = False
) -> MeasuredSpeed | None:
    """The measured run closest in shape to the one planned: the nearest FLOPs per token and tokens per step
    (on a log scale: twice as big is as far as half as big), among runs that train as it will (every weight, or
    an adapter) when there are any. A tiny model reaches a small share of the machine's FLOP/s and a large one
    most of it, so the newest run's speed whatever its shape can be 10× off."""
    speeds = measured_speeds(runs)
    alike = [s for s in speeds if s.adapter == adapter] or speeds

    def distance(speed: MeasuredSpeed) -> float:
        apart = abs(math.log(speed.flops_per_token / flops_per_token))
        if speed.tokens_per_step:
            apart += abs(math.log(speed.tokens_per_step / tokens_per_step))
        return apart

    return min(alike, key=distance, default=None)


def evaluations(settings: dict[str, Any]) -> int:
    """How many times the trainer evaluates: every ``eval_interval`` steps, and once more at a last odd step."""
    return -(-settings["max_steps"] // settings.get("eval_interval", DEFAULT_TRAIN.eval_interval))


def run_cost(
    config: dict[str, Any], settings: dict[str, Any], runs: list[dict[str, Any]], *, adapter: bool = False
) -> str:
    """What a training run will cost: tokens per step, in all and for its evaluations, and the time at the speed
    of the measured run closest in shape (which run, and what it reached)."""
    model = ModelConfig.from_dict(config, source="the chosen config")
    seq_len = settings.get("seq_len") or model.max_len
    batch = settings["batch_size"]
    per_step = batch * seq_len * settings.get("gradient_accumulation_steps", 1)
    total = per_step * settings["max_steps"]
    count, batches = evaluations(settings), settings.get("eval_batches", DEFAULT_TRAIN.eval_batches)
    eval_tokens = count * batches * batch * seq_len
    cost = (
        f"{per_step:,} tokens/step ({batch} × {seq_len}) · {total:,} tokens in all · "
        f"{count} evaluation{'s' * (count != 1)} × {batches} batches: {eval_tokens:,} tokens, forward only"
    )
    training_flops = model.flops_per_token(seq_len)
    speed = closest_speed(runs, training_flops, per_step, adapter=adapter)
    if speed is None:
        return cost + "\ntime: known once a first run has measured this machine's speed"
    train_s = total * training_flops / speed.flops
    eval_s = eval_tokens * training_flops / 3 / speed.flops  # a forward pass: a third of a training step
    on = f" on {speed.device}" if speed.device else ""
    return cost + (
        f"\ntime ≈ {duration(train_s + eval_s)} ({duration(train_s)} training + {duration(eval_s)} evaluating), "
        f"scaled by FLOPs per token from {speed.run}, the measured run closest in shape "
        f"({speed.flops_per_token / 1e6:,.2f} MFLOP/token vs {training_flops / 1e6:,.2f} here): "
        f"assuming the {speed.tokens_per_s:,.0f} tokens/s it reached{on} ({speed.flops / 1e9:.1f} GFLOP/s; "
        f"≈ {speed.flops / training_flops:,.0f} tokens/s on this model)"
    )


def finetune_cost(
    config: dict[str, Any], settings: dict[str, Any], runs: list[dict[str, Any]], *, adapter: bool
) -> str:
    """What a fine-tuning run will cost: as a pretraining run's with ``max_steps``; without it the steps come from
    the epochs over the data, which only the job counts."""
    if settings.get("max_steps"):
        return run_cost(config, settings, runs, adapter=adapter)
    model = ModelConfig.from_dict(config, source="the base's model config")
    seq_len = min(settings.get("seq_len") or model.max_len, model.max_len)
    batch = settings["batch_size"]
    per_step = batch * seq_len * settings.get("gradient_accumulation_steps", 1)
    epochs = settings.get("epochs", 1.0)
    return (
        f"{per_step:,} tokens/step at most ({batch} × {seq_len}) · {epochs:g} epoch{'s' * (epochs != 1)} over the "
        "data: the job counts its steps once it has read the data (give max_steps to see the time now)"
    )


def duration(seconds: float) -> str:
    """``under 1 s``, ``42 s``, ``12 min``, ``2.5 h``."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
