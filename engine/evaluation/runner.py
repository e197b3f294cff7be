"""Running tasks against a model: documents → requests → the one scoring core → metrics, one task at a time.

Each task's scores are handed to ``on_result`` as soon as the task ends, so a task that fails later never takes
the earlier results with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from engine.errors import DataError, LLModelError
from engine.evaluation import metrics
from engine.evaluation.metrics import Score
from engine.evaluation.requests import ModelScorer
from engine.evaluation.settings import EvalSettings
from engine.evaluation.tasks import Doc, Task
from engine.generation import SamplingParams

Progress = Callable[[int, int], None]


@dataclass
class TaskReport:
    """What one task measured, with how a guess does beside it."""

    task: str
    kind: str
    scores: list[Score]
    chance: str
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "scores": [asdict(s) for s in self.scores]}


def run_task(
    task: Task, scorer: ModelScorer, settings: EvalSettings, progress: Progress | None = None
) -> TaskReport:
    """Run one task; a task with no documents, or whose data is missing, is one DataError."""
    started = time.perf_counter()
    data = settings.data_paths.get(task.name)
    limit = settings.limit or task.default_limit
    docs = list(islice(task.load(Path(data) if data else None), limit))
    if not docs:
        raise DataError(f"task {task.name} found no documents{f' in {data}' if data else ''}")
    runner = {
        "perplexity": _perplexity,
        "multiple_choice": _multiple_choice,
        "generate": _generate,
        "code": _code,
    }
    scores, baseline = runner[task.kind](task, scorer, docs, settings, progress or (lambda done, total: None))
    recorded: dict[str, Any] = {"limit": limit, "documents": len(docs), "data_path": data}
    if task.kind == "perplexity":
        recorded["stride"] = settings.stride or scorer.max_len
    if task.kind in ("generate", "code"):
        recorded |= {
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
            "max_tokens": task.max_tokens,
            "until": task.until,
        }
    return TaskReport(
        task.name, task.kind, scores, task.chance, time.perf_counter() - started, recorded, baseline
    )


def _perplexity(task: Task, scorer: ModelScorer, docs: list[Doc], settings: EvalSettings, progress: Progress):
    texts = [task.text(doc) for doc in docs]
    results = []
    for done, text in enumerate(texts, start=1):
        results.extend(scorer.loglikelihood_rolling([text], stride=settings.stride))
        progress(done, len(texts))
    scores = metrics.language_modelling(
        [r.logprob for r in results],
        [r.tokens for r in results],
        [len(t.encode("utf-8")) for t in texts],
        sum(r.correct for r in results),
    )
    vocab = scorer.model.config.vocab_size
    return scores, {"perplexity": float(vocab), "cross_entropy": math.log(vocab)}


def _multiple_choice(
    task: Task, scorer: ModelScorer, docs: list[Doc], settings: EvalSettings, progress: Progress
):
    prompts = [task.prompt(doc) for doc in docs]
    choices = [task.choices(doc) for doc in docs]
    requests = [
        (prompt, " " + choice) for prompt, options in zip(prompts, choices, strict=True) for choice in options
    ]
    lls: list[float] = []
    step = max(1, len(requests) // 20)
    for start in range(0, len(requests), step):
        lls.extend(r.logprob for r in scorer.loglikelihood(requests[start : start + step]))
        progress(min(start + step, len(requests)), len(requests))
    per_doc, position = [], 0
    for options in choices:
        per_doc.append(lls[position : position + len(options)])
        position += len(options)
    chance = sum(1 / len(options) for options in choices) / len(choices)
    if "mc2" in task.metrics:
        assert task.labels is not None
        mass = [_true_mass(doc_lls, task.labels(doc)) for doc_lls, doc in zip(per_doc, docs, strict=True)]
        return [metrics.mean_score("mc2", mass)], {"mc2": chance}
    gold = [task.gold(doc) for doc in docs]
    return metrics.multiple_choice(per_doc, choices, gold), {"acc": chance, "acc_norm": chance}


def _true_mass(lls: list[float], labels: list[int]) -> float:
    """TruthfulQA MC2: the probability mass on the true answers, normalised over all answers."""
    top = max(lls)
    probs = [math.exp(ll - top) for ll in lls]
    return sum(p for p, label in zip(probs, labels, strict=True) if label) / sum(probs)


def _sampling(task: Task, settings: EvalSettings, context: int) -> SamplingParams:
    """The task's generation settings; a small model's context keeps half of itself for the prompt (which is cut
    from the left if longer, as lm-evaluation-harness does)."""
    return SamplingParams(
        max_new_tokens=min(task.max_tokens, context // 2),
        temperature=settings.temperature,
        top_p=settings.top_p,
        do_sample=settings.temperature > 0,
        seed=settings.seed,
        stop=list(task.until),
    )


def _generations(
    task: Task, scorer: ModelScorer, docs: list[Doc], settings: EvalSettings, progress: Progress
) -> list[str]:
    params = _sampling(task, settings, scorer.max_len)
    outputs = []
    for done, doc in enumerate(docs, start=1):
        outputs.extend(scorer.generate_until([(task.prompt(doc), task.until)], params=params))
        progress(done, len(docs))
    return outputs


def _generate(task: Task, scorer: ModelScorer, docs: list[Doc], settings: EvalSettings, progress: Progress):
    outputs = _generations(task, scorer, docs, settings, progress)
    references = [task.reference(doc) for doc in docs]
    predictions = [(task.extract(o) or "") if task.extract else o.strip() for o in outputs]
    scores = generation_scores(task.metrics, predictions, references, outputs)
    baseline = {}
    if task.name == "stdlib-signatures":
        from engine.evaluation.suites import most_common_signature

        constant = [most_common_signature()] * len(references)
        baseline = {
            s.metric: s.value
            for s in generation_scores(("exact_match", "bleu", "chrf"), constant, references, constant)
        }
    return scores, baseline


def generation_scores(
    names: tuple[str, ...], predictions: list[str], references: list[str], raw: list[str]
) -> list[Score]:
    """The generation metrics a task asks for, in a fixed order."""
    scores: list[Score] = []
    if "exact_match" in names:
        scores.append(metrics.exact_match(predictions, references))
    if "bleu" in names or "chrf" in names:
        scores += [s for s in metrics.bleu_and_chrf(predictions, references) if s.metric in names]
    if "rouge" in names:
        scores += metrics.rouge(predictions, references)
    if "distinct" in names:
        scores += [metrics.distinct_n(raw, 1), metrics.distinct_n(raw, 2)]
    if "f1" in names:  # the answers are labels: accuracy and macro F1 over them
        scores += metrics.classification([p.strip() for p in predictions], [r.strip() for r in references])
    return scores


def _code(task: Task, scorer: ModelScorer, docs: list[Doc], settings: EvalSettings, progress: Progress):
    from engine.evaluation.code_exec import humaneval_program, run_program

    completions = _generations(task, scorer, docs, settings, progress)
    passed = [
        1.0 if run_program(humaneval_program(doc, c)).passed else 0.0
        for doc, c in zip(docs, completions, strict=True)
    ]
    return [metrics.mean_score("pass@1", passed)], {"pass@1": 0.0}


def run_tasks(
    tasks: list[Task],
    scorer: ModelScorer,
    settings: EvalSettings,
    *,
    on_result: Callable[[TaskReport], None],
    stage: Callable[[str], Progress] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[TaskReport]:
    """Run every task in turn, each result handed on at once; failures are collected and raised at the end."""
    reports, failures = [], []
    for task in tasks:
        if should_stop is not None and should_stop():
            raise LLModelError(f"evaluation cancelled before {task.name}; the tasks before it are recorded")
        try:
            report = run_task(task, scorer, settings, stage(task.name) if stage else None)
        except LLModelError as error:
            failures.append(str(error))
            continue
        reports.append(report)
        on_result(report)
    if failures:
        done = f"; the other {len(reports)} task(s) are recorded" if reports else ""
        raise LLModelError(f"{failures[0]}{done}")
    return reports
