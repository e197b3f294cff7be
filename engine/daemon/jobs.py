"""Job kinds: what each one runs in its child process, and how its spec is written to the run folder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import LLModelError
from engine.fileio import write_json_atomic
from engine.kinds import JOB_KINDS
from engine.runs.events import EventLog

JOB_FILE = "job.json"


def write_job(run_dir: Path, kind: str, spec: dict[str, Any]) -> None:
    """Record what the job will run; the child reads nothing else."""
    if kind not in JOB_KINDS:
        raise LLModelError(f"unknown job kind {kind!r}; choose one of: {', '.join(JOB_KINDS)}")
    write_json_atomic(run_dir / JOB_FILE, {"kind": kind, "spec": spec, "written": time.time()})


def read_job(run_dir: Path) -> tuple[str, dict[str, Any]]:
    data = json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    return data["kind"], data["spec"]


class JobCancelled(Exception):
    """Raised where a job checks for a cancel between two pieces of work; the job ends "cancelled"."""


class ProgressEvents:
    """Turns ``progress(done, total)`` callbacks into throttled ``progress`` events for one stage, and stops the
    stage (:class:`JobCancelled`) at the next callback once a cancel was asked for."""

    def __init__(
        self,
        events: EventLog,
        stage: str,
        should_stop: Callable[[], bool] | None = None,
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


def _given(spec: dict[str, Any], *names: str) -> dict[str, Any]:
    """The settings a job's spec names; the library's own defaults apply to the rest."""
    return {name: spec[name] for name in names if spec.get(name) is not None}


def run_job(run_dir: Path, should_stop: Callable[[], bool]) -> dict[str, Any]:
    """Run the job described in ``run_dir/job.json``; returns its result for the final status event."""
    kind, spec = read_job(run_dir)
    handler = {
        "tokenizer": _tokenizer,
        "dataset": _dataset,
        "pretrain": _pretrain,
        "finetune": _finetune,
        "quickstart": _quickstart,
        "evaluate": _evaluate,
        "evolve": _evolve,
        "benchmark": _benchmark,
    }[kind]
    return handler(run_dir, spec, should_stop)


def _tokenizer(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
    from engine.tokenizer import Tokenizer

    events = EventLog(run_dir)
    try:
        tokenizer = Tokenizer.train(
            [Path(p) for p in spec["inputs"]], Path(spec["output"]),
            **_given(spec, "vocab_size", "input_format", "character_coverage", "input_sentence_size"),
            progress=ProgressEvents(events, "reading corpus", should_stop), log=events.log,
        )  # fmt: skip
    finally:
        events.close()
    return {"output": spec["output"], "vocab_size": tokenizer.vocab_size, "sha256": tokenizer.sha256}


def _dataset(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
    from engine.data.prepare import prepare_dataset

    events = EventLog(run_dir)
    try:
        meta = prepare_dataset(
            [Path(p) for p in spec["inputs"]], Path(spec["tokenizer_path"]), Path(spec["output"]),
            **_given(spec, "val_fraction", "seed", "num_workers", "input_format", "text_unit", "strict"),
            progress=ProgressEvents(events, "tokenizing", should_stop), log=events.log,
        )  # fmt: skip
    finally:
        events.close()
    return {"output": spec["output"], "meta": meta.to_dict()}


def _pretrain(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
    from engine.model import ModelConfig
    from engine.training.config import TrainConfig
    from engine.training.trainer import Trainer

    data_dir, tokenizer_path = _training_data(run_dir, spec, should_stop)
    trainer = Trainer(
        ModelConfig.from_dict(spec["model_config"], source="model config"),
        TrainConfig.from_dict(spec["train_config"], source="training settings"),
        data_dir, run_dir, tokenizer_path=tokenizer_path,
        resume_from=Path(spec["resume_from"]) if spec.get("resume_from") else None,
        should_stop=should_stop,
    )  # fmt: skip
    result = trainer.run()
    return {
        "status": result.status, "step": result.step, "total_steps": result.total_steps,
        "metrics": result.final_metrics, "checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
    }  # fmt: skip


def _training_data(
    run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]
) -> tuple[Path, Path | None]:
    """The prepared dataset of ``spec["data_paths"]`` (raw files are prepared once and cached) and its tokenizer."""
    from engine.data.meta import is_prepared_dataset, load_dataset_meta
    from engine.data.prepare import prepared_dataset_for

    data_paths = [Path(p) for p in spec["data_paths"]]
    tokenizer_path = Path(spec["tokenizer_path"]) if spec.get("tokenizer_path") else None
    if len(data_paths) == 1 and is_prepared_dataset(data_paths[0]):
        data_dir = data_paths[0]
    else:
        if tokenizer_path is None:
            raise LLModelError(
                "raw --data-path needs --tokenizer-path to tokenize it (or pass a prepared dataset)"
            )
        events = EventLog(run_dir)
        try:
            data_dir = prepared_dataset_for(
                data_paths, tokenizer_path, Path(spec["cache_root"]),
                progress=ProgressEvents(events, "preparing dataset", should_stop), log=events.log,
            )  # fmt: skip
        finally:
            events.close()
    if tokenizer_path is None:
        recorded = load_dataset_meta(data_dir).tokenizer
        tokenizer_path = Path(recorded) if recorded and Path(recorded).exists() else None
    return data_dir, tokenizer_path


def _finetune(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
    from engine.data.stdlib_corpus import workspace_instructions
    from engine.finetune.run import FinetuneJob

    if not spec.get(
        "data_paths"
    ):  # no data given: the embedded instruction set, built into the workspace once
        events = EventLog(run_dir)
        try:
            spec = {**spec, "data_paths": [str(workspace_instructions(run_dir.parent.parent, events.log))]}
        finally:
            events.close()
    return FinetuneJob.from_spec(run_dir, spec, should_stop).run()


def _evaluate(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
    from engine.evaluation.evaluate import evaluate_model
    from engine.evaluation.runner import EvalSettings

    events = EventLog(run_dir)
    try:
        reports = evaluate_model(
            spec["model_path"], list(spec["tasks"]), EvalSettings(**spec.get("settings", {})),
            adapter=spec.get("adapter"), device=spec.get("device", "auto"), batch_size=spec.get("batch_size", 8),
            results_dir=run_dir, on_result=lambda row: events.emit("result", **row),
            stage=lambda task: ProgressEvents(events, task, should_stop), should_stop=should_stop,
        )  # fmt: skip
    finally:
        events.close()
    return {"tasks": [r.task for r in reports], "results": str(run_dir / "results.json")}


def _evolve(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
    from engine.data.meta import load_dataset_meta
    from engine.evolve.run import run_evolve

    if spec.get("data_paths"):  # a new or resumed study, or a worker whose machine keeps the data elsewhere
        data_dir, tokenizer_path = _training_data(run_dir, spec, should_stop)
        spec = {
            **spec,
            "data_path": str(data_dir),
            "tokenizer_path": str(tokenizer_path) if tokenizer_path else None,
        }
        if "settings" in spec:
            base_model = {
                **spec["settings"].get("base_model", {}),
                "vocab_size": load_dataset_meta(data_dir).vocab_size,
            }
            spec["settings"] = {**spec["settings"], "data_path": spec["data_path"],
                                "tokenizer_path": spec["tokenizer_path"], "base_model": base_model}  # fmt: skip
    events = EventLog(run_dir)
    try:
        return run_evolve(run_dir, spec, should_stop, events)
    finally:
        events.close()


def _benchmark(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
    from engine.evaluation.efficiency import benchmark_model

    events = EventLog(run_dir)
    try:
        report = benchmark_model(
            spec["model_path"], adapter=spec.get("adapter"), device=spec.get("device", "auto"),
            new_tokens=spec.get("new_tokens", 64), progress=ProgressEvents(events, "measuring", should_stop),
        )  # fmt: skip
        events.emit("result", **report)
    finally:
        events.close()
    return {"figures": report}


def _quickstart(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
    from contextlib import contextmanager

    from engine.pipelines.quickstart import QuickstartOptions, run_quickstart

    events = EventLog(run_dir)

    @contextmanager
    def stage(description: str):  # type: ignore[no-untyped-def]
        events.emit("progress", stage=description, done=0, total=0)
        if should_stop():
            raise JobCancelled(f"cancelled before {description}")
        yield ProgressEvents(events, description, should_stop)

    try:
        result = run_quickstart(
            Path(spec["workspace"]), QuickstartOptions(**spec.get("options", {})), run_dir=run_dir,
            stage=stage, log=events.log, should_stop=should_stop,
        )  # fmt: skip
    finally:
        events.close()
    return {
        "status": result.status, "val_loss": result.val_loss, "unigram_entropy": result.unigram_entropy,
        "samples": result.samples, "run_dir": str(result.run_dir), "chat": result.chat,
    }  # fmt: skip
