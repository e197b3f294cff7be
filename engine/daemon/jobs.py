"""Job kinds: what each one runs in its child process, and how its spec is written to the run folder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.fileio import write_json_atomic
from engine.runs.events import EventLog
from engine.specs import (
    BenchmarkSpec,
    DatasetSpec,
    EvaluateSpec,
    EvolveSpec,
    FinetuneSpec,
    JobSpec,
    PretrainSpec,
    QuickstartSpec,
    TokenizerSpec,
    parse_spec,
)

JOB_FILE = "job.json"
StopCheck = Callable[[], bool]


def write_job(run_dir: Path, spec: JobSpec) -> None:
    """Record what the job will run; the child reads nothing else."""
    write_json_atomic(run_dir / JOB_FILE, {"kind": spec.kind, "spec": spec.to_dict(), "written": time.time()})


def read_job(run_dir: Path) -> JobSpec:
    """The typed spec ``run_dir/job.json`` records."""
    data = json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    return parse_spec(data["kind"], data["spec"])


class JobCancelled(Exception):
    """Raised where a job checks for a cancel between two pieces of work; the job ends "cancelled"."""


class ProgressEvents:
    """Turns ``progress(done, total)`` callbacks into throttled ``progress`` events for one stage, and stops the
    stage (:class:`JobCancelled`) at the next callback once a cancel was asked for."""

    def __init__(
        self,
        events: EventLog,
        stage: str,
        should_stop: StopCheck | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self.events, self.stage, self.min_interval = events, stage, min_interval
        self.should_stop = should_stop or (lambda: False)
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.should_stop():
            raise JobCancelled(f"cancelled while {self.stage}")
        now = time.monotonic()
        if now - self._last >= self.min_interval or (total and done >= total):
            self._last = now
            self.events.emit("progress", stage=self.stage, done=done, total=total)


def run_job(run_dir: Path, should_stop: StopCheck) -> dict[str, Any]:
    """Run the job described in ``run_dir/job.json``; returns its result for the final status event."""
    spec = read_job(run_dir)
    if isinstance(spec, TokenizerSpec):
        return _tokenizer(run_dir, spec, should_stop)
    if isinstance(spec, DatasetSpec):
        return _dataset(run_dir, spec, should_stop)
    if isinstance(spec, PretrainSpec):
        return _pretrain(run_dir, spec, should_stop)
    if isinstance(spec, FinetuneSpec):
        return _finetune(run_dir, spec, should_stop)
    if isinstance(spec, QuickstartSpec):
        return _quickstart(run_dir, spec, should_stop)
    if isinstance(spec, EvaluateSpec):
        return _evaluate(run_dir, spec, should_stop)
    if isinstance(spec, EvolveSpec):
        return _evolve(run_dir, spec, should_stop)
    if isinstance(spec, BenchmarkSpec):
        return _benchmark(run_dir, spec, should_stop)
    raise TypeError(f"no job runs a {type(spec).__name__}")


def _tokenizer(run_dir: Path, spec: TokenizerSpec, should_stop: StopCheck) -> dict[str, Any]:
    from engine.data.tokenizer_training import train_tokenizer

    with EventLog(run_dir) as events:
        tokenizer = train_tokenizer(
            [Path(p) for p in spec.inputs],
            Path(spec.output),
            spec.vocab_size,
            input_format=spec.input_format,
            character_coverage=spec.character_coverage,
            input_sentence_size=spec.input_sentence_size,
            progress=ProgressEvents(events, "reading corpus", should_stop),
            log=events.log,
        )
    return {"output": spec.output, "vocab_size": tokenizer.vocab_size, "sha256": tokenizer.sha256}


def _dataset(run_dir: Path, spec: DatasetSpec, should_stop: StopCheck) -> dict[str, Any]:
    from engine.data.prepare import prepare_dataset

    with EventLog(run_dir) as events:
        meta = prepare_dataset(
            [Path(p) for p in spec.inputs],
            Path(spec.tokenizer_path),
            Path(spec.output),
            val_fraction=spec.val_fraction,
            seed=spec.seed,
            num_workers=spec.num_workers,
            input_format=spec.input_format,
            text_unit=spec.text_unit,
            strict=spec.strict,
            progress=ProgressEvents(events, "tokenizing", should_stop),
            log=events.log,
        )
    return {"output": spec.output, "meta": meta.to_dict()}


def _pretrain(run_dir: Path, spec: PretrainSpec, should_stop: StopCheck) -> dict[str, Any]:
    from engine.evaluation.in_training import task_evaluators
    from engine.training.trainer import Trainer

    evaluators = task_evaluators(spec.train_config, run_dir)
    data_dir, tokenizer_path = _training_data(
        run_dir, spec.data_paths, spec.tokenizer_path, spec.cache_root, should_stop
    )
    trainer = Trainer(
        spec.model_config,
        spec.train_config,
        data_dir,
        run_dir,
        tokenizer_path=tokenizer_path,
        resume_from=Path(spec.resume_from) if spec.resume_from else None,
        evaluators=evaluators,
        should_stop=should_stop,
    )
    result = trainer.run()
    checkpoint = str(result.last_checkpoint) if result.last_checkpoint else None
    return {
        "status": result.status,
        "step": result.step,
        "total_steps": result.total_steps,
        "metrics": result.final_metrics,
        "checkpoint": checkpoint,
    }


def _training_data(
    run_dir: Path,
    data_paths: list[str],
    tokenizer: str | None,
    cache_root: str | None,
    should_stop: StopCheck,
) -> tuple[Path, Path | None]:
    """The prepared dataset of ``data_paths`` (raw files are prepared once and cached) and its tokenizer."""
    from engine.data.meta import is_prepared_dataset, load_dataset_meta
    from engine.data.prepare import prepared_dataset_for
    from engine.errors import LLModelError

    paths = [Path(p) for p in data_paths]
    tokenizer_path = Path(tokenizer) if tokenizer else None
    if len(paths) == 1 and is_prepared_dataset(paths[0]):
        data_dir = paths[0]
    else:
        if tokenizer_path is None or cache_root is None:
            raise LLModelError(
                "raw --data-path needs --tokenizer-path to tokenize it (or pass a prepared dataset)"
            )
        with EventLog(run_dir) as events:
            data_dir = prepared_dataset_for(
                paths,
                tokenizer_path,
                Path(cache_root),
                progress=ProgressEvents(events, "preparing dataset", should_stop),
                log=events.log,
            )
    if tokenizer_path is None:
        recorded = load_dataset_meta(data_dir).tokenizer
        tokenizer_path = Path(recorded) if recorded and Path(recorded).exists() else None
    return data_dir, tokenizer_path


def _finetune(run_dir: Path, spec: FinetuneSpec, should_stop: StopCheck) -> dict[str, Any]:
    from engine.finetune.run import FinetuneJob

    data_paths = spec.data_paths
    if not data_paths:  # no data given: the embedded instruction set, built into the workspace once
        from engine.data.stdlib_corpus import workspace_instructions

        with EventLog(run_dir) as events:
            data_paths = [str(workspace_instructions(run_dir.parent.parent, events.log))]
    job = FinetuneJob(
        base=spec.base,
        data_paths=data_paths,
        run_dir=run_dir,
        settings=spec.finetune,
        train_config=spec.train_config,
        tokenizer_path=spec.tokenizer_path,
        val_paths=spec.val_paths,
        resume_from=spec.resume_from,
        adapters_dir=Path(spec.adapters_dir),
        should_stop=should_stop,
    )
    return job.run()


def _evaluate(run_dir: Path, spec: EvaluateSpec, should_stop: StopCheck) -> dict[str, Any]:
    from engine.evaluation.evaluate import evaluate_model

    with EventLog(run_dir) as events:

        def on_result(row: dict[str, Any]) -> None:
            events.emit("result", **row)

        reports = evaluate_model(
            spec.model_path,
            spec.tasks,
            spec.settings,
            adapter=spec.adapter,
            device=spec.device,
            batch_size=spec.batch_size,
            results_dir=run_dir,
            on_result=on_result,
            stage=lambda task: ProgressEvents(events, task, should_stop),
            should_stop=should_stop,
        )
    return {"tasks": [r.task for r in reports], "results": str(run_dir / "results.json")}


def _evolve(run_dir: Path, spec: EvolveSpec, should_stop: StopCheck) -> dict[str, Any]:
    from engine.data.meta import load_dataset_meta
    from engine.evolve.run import run_evolve

    data_path, tokenizer = None, spec.tokenizer_path
    settings = None if spec.join else spec.study_settings()
    if spec.data_paths:  # a new or resumed study, or a worker whose machine keeps the data elsewhere
        data_dir, tokenizer_path = _training_data(
            run_dir, spec.data_paths, spec.tokenizer_path, spec.cache_root, should_stop
        )
        data_path, tokenizer = str(data_dir), str(tokenizer_path) if tokenizer_path else None
        if settings is not None:
            settings.data_path, settings.tokenizer_path = data_path, tokenizer
            settings.base_model = {
                **settings.base_model,
                "vocab_size": load_dataset_meta(data_dir).vocab_size,
            }
    with EventLog(run_dir) as events:
        return run_evolve(
            run_dir,
            spec.study,
            spec.storage,
            settings,
            should_stop,
            events,
            resume=spec.resume,
            data_path=data_path,
            tokenizer_path=tokenizer,
        )


def _benchmark(run_dir: Path, spec: BenchmarkSpec, should_stop: StopCheck) -> dict[str, Any]:
    from engine.evaluation.efficiency import benchmark_model

    with EventLog(run_dir) as events:
        report = benchmark_model(
            spec.model_path,
            adapter=spec.adapter,
            device=spec.device,
            new_tokens=spec.new_tokens,
            progress=ProgressEvents(events, "measuring", should_stop),
        )
        events.emit("result", **report)
    return {"figures": report}


def _quickstart(run_dir: Path, spec: QuickstartSpec, should_stop: StopCheck) -> dict[str, Any]:
    from engine.pipelines.quickstart import run_quickstart

    with EventLog(run_dir) as events:

        @contextmanager
        def stage(description: str) -> Iterator[ProgressEvents]:
            events.emit("progress", stage=description, done=0, total=0)
            if should_stop():
                raise JobCancelled(f"cancelled before {description}")
            yield ProgressEvents(events, description, should_stop)

        result = run_quickstart(
            Path(spec.workspace),
            spec.options,
            run_dir=run_dir,
            stage=stage,
            log=events.log,
            should_stop=should_stop,
        )
    return {
        "status": result.status,
        "val_loss": result.val_loss,
        "unigram_entropy": result.unigram_entropy,
        "samples": result.samples,
        "run_dir": str(result.run_dir),
        "chat": result.chat,
    }
