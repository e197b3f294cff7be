"""Evaluation tasks during training: a run's ``eval_tasks`` scored at every validation, handed to the trainer as
evaluators (so the training loop never imports evaluation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.evaluation.requests import ModelScorer
from engine.evaluation.runner import EvalSettings, run_task
from engine.evaluation.tasks import Task, resolve_task
from engine.model import Transformer
from engine.runs.events import EventLog
from engine.tokenizer import Tokenizer
from engine.training.config import TrainConfig
from engine.training.setup import Evaluator


@dataclass
class TaskEvaluator:
    """Scores the model on ``tasks``: each task's metrics as ``task/metric`` curves, and its report recorded as a
    ``result`` event (an evaluation of the run at that step). A run without a tokenizer has nothing to score."""

    tasks: list[Task]
    run_dir: Path
    limit: int | None = None

    def __call__(
        self, model: Transformer, tokenizer: Tokenizer | None, step: int, events: EventLog
    ) -> dict[str, float]:
        if tokenizer is None:
            return {}
        scorer = ModelScorer(model, tokenizer)
        scores: dict[str, float] = {}
        for task in self.tasks:
            report = run_task(task, scorer, EvalSettings(limit=self.limit))
            scores |= {f"{report.task}/{s.metric}": s.value for s in report.scores}
            events.emit("result", model=str(self.run_dir), step=step, **report.to_dict())
        return scores


def task_evaluators(train_config: TrainConfig, run_dir: Path) -> list[Evaluator]:
    """The evaluators the ``eval_tasks`` of a run's training config ask for (none for none); an unknown task
    fails here, before the run starts."""
    if not train_config.eval_tasks:
        return []
    tasks = [resolve_task(name) for name in train_config.eval_tasks]
    return [TaskEvaluator(tasks, run_dir, train_config.eval_task_limit)]
