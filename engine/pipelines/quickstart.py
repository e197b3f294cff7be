"""The quickstart: embedded stdlib corpus → tokenizer → dataset → pretrain → evaluate → generate, and with
``chat`` a LoRA adapter fine-tuned on the embedded instruction set answering a held-out instruction."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    chat: dict[str, str] | None = None  # instruction, reply, expected, adapter — when the chat stage ran


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
    """Run the whole pipeline inside ``workspace``; finished stages are reused on a second run."""
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

    entropy = unigram_entropy(TokenDataset(dataset_dir / "train").tokens, tokenizer.vocab_size)
    loaded = load_for_inference(run_dir, device=train_config.device)
    params = SamplingParams(
        max_new_tokens=opts.sample_tokens, temperature=0.7, top_k=40, repetition_penalty=1.1, seed=opts.seed
    )
    replies = generate(loaded.model, loaded.tokenizer, list(SAMPLE_PROMPTS), params)
    samples = [prompt + reply.text for prompt, reply in zip(SAMPLE_PROMPTS, replies, strict=True)]
    chat = None
    if opts.chat and result.status == "completed":
        chat = _chat_stage(workspace, run_dir, opts, stage, log, should_stop)
    return QuickstartResult(
        run_dir=run_dir,
        tokenizer_dir=tokenizer_dir,
        dataset_dir=dataset_dir,
        val_loss=result.final_metrics.get("val_loss", math.nan),
        unigram_entropy=entropy,
        samples=samples,
        status=result.status,
        chat=chat,
    )


def _chat_stage(
    workspace: Path,
    base_run: Path,
    opts: QuickstartOptions,
    stage: StageContext,
    log: Callable[[str], None],
    should_stop: Callable[[], bool] | None,
) -> dict[str, str]:
    """Fine-tune a LoRA adapter on the embedded instruction set, then ask it a held-out instruction."""
    import json

    from engine.data.stdlib_corpus import EMBEDDED_INSTRUCTIONS, build_stdlib_instructions
    from engine.finetune.config import FinetuneSettings
    from engine.finetune.run import FinetuneJob
    from engine.tokenizer import ROLE_MARKERS, render_chat

    directory = workspace / EMBEDDED_INSTRUCTIONS
    if not (directory / "instructions.heldout.jsonl").is_file():
        with stage("building the instruction set from the standard library"):
            built = build_stdlib_instructions(directory)
        log(f"instruction set: {built.train_items:,} training and {built.heldout_items:,} held-out pairs")
    with stage("fine-tuning a chat adapter (LoRA) on the instruction set"):
        finetuned = FinetuneJob(
            base=str(base_run),
            data_paths=[str(directory / "instructions.train.jsonl")],
            run_dir=base_run / "chat",
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
    first = json.loads((directory / "instructions.heldout.jsonl").read_text(encoding="utf-8").splitlines()[0])
    loaded = load_for_inference(
        base_run, adapter=finetuned["adapter"], device=opts.training.get("device", "auto")
    )
    prompt = render_chat([{"role": "user", "content": first["instruction"]}])
    params = SamplingParams(max_new_tokens=48, do_sample=False, stop=list(ROLE_MARKERS.values()))
    reply = generate(loaded.model, loaded.tokenizer, prompt, params)[0].text.strip()
    return {
        "instruction": first["instruction"],
        "reply": reply,
        "expected": first["output"],
        "adapter": CHAT_ADAPTER,
    }
