"""One trial: the sampled settings trained as an ordinary run (its own folder, events and checkpoints), then
measured for the study's objectives."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from engine.errors import LLModelError
from engine.evolve.study import StudySettings
from engine.evolve.worker import TrialPruned
from engine.model.config import ModelConfig
from engine.training.config import TrainConfig

LATENCY_TOKENS = 16


def trial_configs(settings: StudySettings, params: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of a trial: the study's base settings with the trial's values."""
    model, train = settings.search_space.split(params)
    model_config = ModelConfig.from_dict({**settings.base_model, **model}, source="trial model")
    steps = settings.budget_steps or 10**9  # a time budget stops the run by the clock instead
    train_config = TrainConfig.from_dict(
        {**settings.base_train, **train, "max_steps": steps, "seed": settings.base_train.get("seed", 1337)},
        source="trial training",
    )
    return model_config, train_config


def train_trial(
    settings: StudySettings, trial: optuna.Trial, run_dir: Path, should_stop: Callable[[], bool]
) -> list[float]:
    """Train the trial's run and return its objective values; pruning (single objective) stops it early."""
    from engine.evaluation.in_training import task_evaluators
    from engine.training.trainer import Trainer

    model_config, train_config = trial_configs(settings, trial.params)
    deadline = time.monotonic() + settings.budget_minutes * 60 if settings.budget_minutes else None
    prune = {"now": False}
    rates: list[float] = []

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "step":
            rates.append(float(event["tokens_per_s"]))
            if not math.isfinite(event["loss"]):
                raise LLModelError(f"the loss became {event['loss']} at step {event['step']}")
        intermediate = settings.budget_steps is None or event.get("step", 0) < settings.budget_steps
        if (
            event.get("type") == "eval"
            and len(settings.objectives) == 1
            and "val_loss" in event
            and intermediate
        ):
            # An intermediate validation: the pruner may stop a hopeless trial here (never at the end, whose
            # value is the trial's objective).
            trial.report(float(event["val_loss"]), int(event["step"]))
            prune["now"] = trial.should_prune()

    def stop() -> bool:
        return should_stop() or prune["now"] or (deadline is not None and time.monotonic() > deadline)

    trainer = Trainer(
        model_config,
        train_config,
        Path(settings.data_path),
        run_dir,
        tokenizer_path=Path(settings.tokenizer_path) if settings.tokenizer_path else None,
        evaluators=task_evaluators(train_config, run_dir),
        kind="trial",
        on_event=on_event,
        should_stop=stop,
    )
    result = trainer.run()
    if prune["now"]:
        raise TrialPruned()
    val_loss = result.final_metrics.get("val_loss", math.nan)
    if not math.isfinite(val_loss):
        raise LLModelError(f"validation loss {val_loss}: the trial diverged")
    values = {"val_loss": val_loss, "params": float(model_config.num_parameters())}
    if "latency" in settings.objectives:
        values["latency"] = _latency_ms(trainer.model)
    if "tokens_per_s" in settings.objectives:
        values["tokens_per_s"] = statistics.median(rates) if rates else 0.0
    return [values[name] for name in settings.objectives]


def _latency_ms(model: Any) -> float:
    """Milliseconds per generated token, greedy, batch 1."""
    from engine.generation import SamplingParams, generate_ids

    params = SamplingParams(max_new_tokens=LATENCY_TOKENS, do_sample=False, stop_at_eos=False)
    started = time.perf_counter()
    generate_ids(model.eval(), [[model.config.bos_token_id, 5, 6, 7]], params)
    return (time.perf_counter() - started) / LATENCY_TOKENS * 1e3
