"""One typed spec per job kind, and one builder each that every front end calls (CLI flags, workbench forms).

The engine checks a posted spec on arrival (:func:`parse_spec`: unknown key, wrong type, missing field or file →
one line naming the field), before any run folder or process exists; the job's process reads it back typed.
"""

from __future__ import annotations

from typing import Any

from engine.specs.base import JobSpec, SpecError
from engine.specs.data import DatasetSpec, TokenizerSpec, dataset_spec, tokenizer_spec
from engine.specs.evaluation import BenchmarkSpec, EvaluateSpec, benchmark_spec, evaluate_spec, task_order
from engine.specs.evolve import EvolveSpec, join_study_spec, study_spec, trial_training
from engine.specs.quickstart import QuickstartOptions, QuickstartSpec, quickstart_spec
from engine.specs.training import FinetuneSpec, PretrainSpec, finetune_spec, pretrain_spec

SPECS: dict[str, type[JobSpec]] = {
    spec.kind: spec
    for spec in (
        TokenizerSpec,
        DatasetSpec,
        PretrainSpec,
        FinetuneSpec,
        QuickstartSpec,
        EvaluateSpec,
        BenchmarkSpec,
        EvolveSpec,
    )
}


def parse_spec(kind: str, data: Any) -> JobSpec:
    """The typed spec of a job of ``kind`` from its JSON object; raises :class:`SpecError` naming the field."""
    if kind not in SPECS:
        raise SpecError(f"unknown job kind {kind!r}; choose one of: {', '.join(SPECS)}")
    return SPECS[kind].from_dict(data)


def checked_spec(kind: str, data: Any) -> JobSpec:
    """:func:`parse_spec`, then the files and checkpoints it names checked: what the engine accepts."""
    spec = parse_spec(kind, data)
    spec.check()
    return spec


__all__ = [
    "SPECS",
    "BenchmarkSpec",
    "DatasetSpec",
    "EvaluateSpec",
    "EvolveSpec",
    "FinetuneSpec",
    "JobSpec",
    "PretrainSpec",
    "QuickstartOptions",
    "QuickstartSpec",
    "SpecError",
    "TokenizerSpec",
    "benchmark_spec",
    "checked_spec",
    "dataset_spec",
    "evaluate_spec",
    "finetune_spec",
    "join_study_spec",
    "parse_spec",
    "pretrain_spec",
    "quickstart_spec",
    "study_spec",
    "task_order",
    "tokenizer_spec",
    "trial_training",
]
