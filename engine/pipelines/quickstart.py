"""The quickstart: embedded stdlib corpus → tokenizer → dataset → pretrain → evaluate → generate, and with
``chat`` a LoRA adapter fine-tuned on the embedded instruction set answering a held-out instruction."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.data.binary import TokenDataset
from engine.data.meta import is_prepared_dataset
from engine.data.prepare import prepare_dataset
from engine.data.stdlib_corpus import build_stdlib_corpus
from engine.data.tokenizer_training import train_tokenizer
from engine.evaluation.in_training import task_evaluators
from engine.generation import SamplingParams, generate
from engine.model import ModelConfig
from engine.runs.events import Event
from engine.runs.loading import load_for_inference
from engine.specs.quickstart import (
    CHAT_ADAPTER,
    QuickstartOptions,
)
from engine.tokenizer import Tokenizer
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer
from engine.workspace import new_run_id

if TYPE_CHECKING:
    from engine.evaluation.runner import TaskReport

SAMPLE_PROMPTS = ("def ", "The ")

StageContext = Callable[[str], AbstractContextManager[Callable[[int, int], None]]]


@dataclass
class QuickstartResult:
    run_dir: Path
    tokenizer_dir: Path
    dataset_dir: Path
    val_loss: float
    unigram_entropy: float
    samples: list[str]
    status: str
    chat: dict[str, Any] | None = None  # the chat stage's answer and held-out scores (:func:`_chat_stage`)


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy (nats/token) of the token frequency distribution: the loss of a model that ignores context."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@contextmanager
def _noop_stage(_: str) -> Iterator[Callable[[int, int], None]]:
    yield lambda done, total: None


@contextmanager
def _no_display() -> Iterator[Callable[[Event], None]]:
    yield lambda event: None


def run_quickstart(
    workspace: Path,
    options: QuickstartOptions | None = None,
    *,
    run_dir: Path | None = None,
    stage: StageContext = _noop_stage,
    log: Callable[[str], None] = lambda _: None,
    training_display: Callable[[], AbstractContextManager[Callable[[Event], None]]] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> QuickstartResult:
    """Run the whole pipeline inside ``workspace``; finished stages are reused on a second run, and with
    ``chat`` so is a completed quickstart model of the same settings (only the adapter is fine-tuned then)."""
    opts = options or QuickstartOptions()
    tag = "stdlib" if opts.corpus_bytes is None else f"stdlib-{opts.corpus_bytes}"
    corpus = workspace / "corpora" / f"{tag}.jsonl"
    tokenizer_dir = workspace / "tokenizers" / f"{tag}-{opts.vocab_size}"
    dataset_dir = workspace / "datasets" / f"{tag}-{opts.vocab_size}"

    if not corpus.is_file():
        with stage("building the corpus from the Python standard library"):
            info = build_stdlib_corpus(corpus, max_bytes=opts.corpus_bytes)
        log(f"corpus: {info.files:,} files, {info.bytes / 1e6:.1f} MB")
    if not (tokenizer_dir / "tokenizer.model").is_file():
        with stage(f"training a {opts.vocab_size}-token BPE tokenizer") as progress:
            train_tokenizer([corpus], tokenizer_dir, opts.vocab_size, progress=progress, log=log)
    tokenizer = Tokenizer.load(tokenizer_dir)
    if not is_prepared_dataset(dataset_dir):
        with stage("tokenizing the corpus") as progress:
            prepare_dataset(
                [corpus],
                tokenizer_dir,
                dataset_dir,
                val_fraction=opts.val_fraction,
                seed=opts.seed,
                progress=progress,
                log=log,
            )

    model_config = ModelConfig.from_dict(
        {**opts.model, "vocab_size": tokenizer.vocab_size, "name": "quickstart"}, source="quickstart model"
    )
    train_config = TrainConfig.from_dict({**opts.training, "seed": opts.seed}, source="quickstart training")
    model_config.save(workspace / "configs" / "quickstart.json")
    run_dir = run_dir or workspace / "runs" / new_run_id("quickstart")
    reused = completed_quickstart(workspace, model_config, train_config, dataset_dir) if opts.chat else None
    if reused is not None:
        base_run, status, val_loss = reused.path, "completed", reused.val_loss
        log(
            f"reusing the completed quickstart model {base_run.name}: it has these settings, so only the chat "
            "adapter is fine-tuned"
        )
    else:
        with (training_display or _no_display)() as on_event:
            trainer = Trainer(
                model_config,
                train_config,
                dataset_dir,
                run_dir,
                tokenizer_path=tokenizer_dir,
                evaluators=task_evaluators(train_config, run_dir),
                on_event=on_event,
                should_stop=should_stop,
            )
            result = trainer.run()
        base_run, status = run_dir, result.status
        val_loss = result.final_metrics.get("val_loss", math.nan)

    entropy = unigram_entropy(TokenDataset(dataset_dir / "train").tokens, tokenizer.vocab_size)
    loaded = load_for_inference(base_run, device=train_config.device)
    params = SamplingParams(
        max_new_tokens=opts.sample_tokens, temperature=0.7, top_k=40, repetition_penalty=1.1, seed=opts.seed
    )
    replies = generate(loaded.model, loaded.tokenizer, list(SAMPLE_PROMPTS), params)
    samples = [prompt + reply.text for prompt, reply in zip(SAMPLE_PROMPTS, replies, strict=True)]
    chat = None
    if opts.chat and status == "completed":
        chat = _chat_stage(workspace, base_run, run_dir / "chat", opts, stage, log, should_stop)
        chat["reused"] = base_run.name if reused is not None else None
    return QuickstartResult(
        run_dir=base_run,
        tokenizer_dir=tokenizer_dir,
        dataset_dir=dataset_dir,
        val_loss=val_loss,
        unigram_entropy=entropy,
        samples=samples,
        status=status,
        chat=chat,
    )


@dataclass
class CompletedRun:
    path: Path
    val_loss: float


def completed_quickstart(
    workspace: Path, model_config: ModelConfig, train_config: TrainConfig, dataset_dir: Path
) -> CompletedRun | None:
    """The newest run in ``workspace`` that completed training this very model (the same model and training
    settings on the same dataset) and left a checkpoint that verifies; None if there is none."""
    import json

    from engine.runs.checkpoint import latest_checkpoint

    wanted = json.loads(
        json.dumps(
            {
                "model_config": model_config.to_dict(),
                "train_config": train_config.to_dict(),
                "dataset": str(dataset_dir),
            }
        )
    )
    found: list[tuple[float, CompletedRun]] = []
    for run_json in (workspace / "runs").glob("*/run.json"):
        try:
            record = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("status") != "completed":
            continue
        if any(record.get(key) != value for key, value in wanted.items()):
            continue
        if latest_checkpoint(run_json.parent / "checkpoints") is None:
            continue
        val_loss = (record.get("metrics") or {}).get("val_loss", math.nan)
        found.append((run_json.stat().st_mtime, CompletedRun(run_json.parent, float(val_loss))))
    return max(found, key=lambda item: item[0])[1] if found else None


def _chat_stage(
    workspace: Path,
    base_run: Path,
    chat_dir: Path,
    opts: QuickstartOptions,
    stage: StageContext,
    log: Callable[[str], None],
    should_stop: Callable[[], bool] | None,
) -> dict[str, Any]:
    """Fine-tune a LoRA adapter on the embedded instruction set (into ``chat_dir``), ask it a held-out instruction
    and score it and the base model on every held-out instruction (exact match and BLEU)."""
    import json

    from engine.data.stdlib_corpus import EMBEDDED_INSTRUCTIONS, build_stdlib_instructions
    from engine.evaluation.metrics import exact_match
    from engine.evaluation.requests import ModelScorer
    from engine.evaluation.runner import run_task
    from engine.evaluation.settings import EvalSettings
    from engine.evaluation.tasks import resolve_task
    from engine.finetune.config import FinetuneSettings
    from engine.finetune.run import FinetuneJob

    directory = workspace / EMBEDDED_INSTRUCTIONS
    if not (directory / "instructions.heldout.jsonl").is_file():
        with stage("building the instruction set from the standard library"):
            built = build_stdlib_instructions(directory)
        log(f"instruction set: {built.train_items:,} training and {built.heldout_items:,} held-out pairs")
    with stage("fine-tuning a chat adapter (LoRA) on the instruction set"):
        finetuned = FinetuneJob(
            base=str(base_run),
            data_paths=[str(directory / "instructions.train.jsonl")],
            run_dir=chat_dir,
            settings=FinetuneSettings(
                method="lora", packing=True, adapter_name=CHAT_ADAPTER, lora_dropout=0.0
            ),
            train_config=TrainConfig.from_dict(
                {**opts.chat_training, "seed": opts.seed}, source="chat training"
            ),
            adapters_dir=workspace / "adapters",
            should_stop=should_stop,
        ).run()
    log(
        f"chat adapter: {finetuned.get('data')}; validation loss {finetuned['metrics'].get('val_loss', math.nan):.3f}"
    )
    device = opts.training.get("device", "auto")
    # The held-out instructions are the stdlib-signatures task's documents: the answer shown is asked as it asks,
    # and the task scores the adapter and the base model on all of them.
    task = dataclasses.replace(resolve_task("stdlib-signatures"), metrics=("exact_match", "bleu"))
    first = json.loads((directory / "instructions.heldout.jsonl").read_text(encoding="utf-8").splitlines()[0])
    adapted = load_for_inference(base_run, adapter=finetuned["adapter"], device=device)
    params = SamplingParams(max_new_tokens=task.max_tokens, do_sample=False, stop=list(task.until))
    reply = generate(adapted.model, adapted.tokenizer, task.prompt(first), params)[0].text.strip()
    with stage("scoring the adapter and the base model on the held-out instructions"):
        scores = {
            name: _scores(run_task(task, ModelScorer(loaded.model, loaded.tokenizer), EvalSettings()))
            for name, loaded in (("adapter", adapted), ("base", load_for_inference(base_run, device=device)))
        }
    return {
        "instruction": first["instruction"],
        "reply": reply,
        "expected": first["output"],
        "matched": exact_match([reply], [first["output"]]).value == 1.0,
        "adapter": CHAT_ADAPTER,
        "heldout": {"task": task.name, **scores},
    }


def _scores(report: TaskReport) -> dict[str, float]:
    """Exact match and BLEU of a task's report, and the number of documents they cover."""
    found = {score.metric: score for score in report.scores}
    return {
        "exact_match": found["exact_match"].value,
        "bleu": found["bleu"].value,
        "documents": found["exact_match"].n,
    }
