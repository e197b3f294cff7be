"""``tokenizer train|encode`` and ``data prepare``: engine jobs followed with live progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.data.split import SPLIT_SEED, VAL_FRACTION
from engine.specs import dataset_spec, tokenizer_spec
from engine.tokenizer import DEFAULT_VOCAB_SIZE, Tokenizer
from engine.tokenizer.trainer import CHARACTER_COVERAGE, INPUT_SENTENCE_SIZE
from llmodel_app.cli.console import info, success
from llmodel_app.cli.jobs import DetachOption, WorkspaceOption, check_outcome, run_job

tokenizer_app = typer.Typer(help="Train and inspect SentencePiece tokenizers.", no_args_is_help=True)
data_app = typer.Typer(
    help="Turn text, JSONL and chat files into binary training datasets.", no_args_is_help=True
)

InputFormat = Annotated[str, typer.Option(help="auto, text, jsonl, chat or hf.")]
TextUnit = Annotated[str, typer.Option(help="For plain text: 'file' (one document per file) or 'line'.")]
Inputs = Annotated[
    list[Path], typer.Option("--input", "-i", help="Text, JSONL, chat JSONL or dataset paths (repeatable).")
]


@tokenizer_app.command("train")
def tokenizer_train(
    input_: Inputs,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for tokenizer.model, vocab and meta.json.")
    ],
    vocab_size: Annotated[
        int, typer.Option(help="Vocabulary size; lowered automatically for small corpora.")
    ] = DEFAULT_VOCAB_SIZE,
    input_format: InputFormat = "auto",
    character_coverage: Annotated[
        float, typer.Option(help="Share of characters covered by pieces; the rest use bytes.")
    ] = CHARACTER_COVERAGE,
    input_sentence_size: Annotated[
        int, typer.Option(help="At most this many lines are sampled for training.")
    ] = INPUT_SENTENCE_SIZE,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Train a SentencePiece BPE tokenizer with <pad> <unk> <s> </s> <mask> and byte fallback."""
    spec = tokenizer_spec(
        input_,
        output,
        vocab_size=vocab_size,
        input_format=input_format,
        character_coverage=character_coverage,
        input_sentence_size=input_sentence_size,
    )
    result = check_outcome(run_job(workspace, spec, detach=detach))
    if result:
        success(f"tokenizer with {result['vocab_size']:,} tokens saved to {output}")


@tokenizer_app.command("encode")
def tokenizer_encode(
    tokenizer_path: Annotated[Path, typer.Option(help="Tokenizer directory.")],
    text: Annotated[str, typer.Argument(help="Text to encode.")],
) -> None:
    """Show how a text is split into tokens."""
    tokenizer = Tokenizer.load(tokenizer_path)
    ids = tokenizer.encode(text)
    typer.echo(" ".join(f"{tokenizer.id_to_piece(i)}({i})" for i in ids))
    info(f"{len(ids)} tokens")


@data_app.command("prepare")
def data_prepare(
    input_: Inputs,
    tokenizer_path: Annotated[Path, typer.Option(help="Tokenizer directory.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Dataset directory (train/val .bin + .idx, meta.json).")
    ],
    val_fraction: Annotated[
        float, typer.Option(help="Share of documents held out for validation.")
    ] = VAL_FRACTION,
    seed: Annotated[int, typer.Option(help="Seed of the deterministic train/val split.")] = SPLIT_SEED,
    num_workers: Annotated[
        int | None, typer.Option(help="Tokenizer worker processes (default: CPU count, at most 4).")
    ] = None,
    input_format: InputFormat = "auto",
    text_unit: TextUnit = "file",
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first malformed line instead of skipping it.")
    ] = False,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Tokenize a corpus into the memory-mapped binary format with a deterministic train/val split."""
    spec = dataset_spec(
        input_,
        tokenizer_path,
        output,
        val_fraction=val_fraction,
        seed=seed,
        num_workers=num_workers,
        input_format=input_format,
        text_unit=text_unit,
        strict=strict,
    )
    result = check_outcome(run_job(workspace, spec, detach=detach))
    if result:
        meta = result["meta"]
        success(
            f"dataset saved to {output}: {meta['train']['tokens']:,} train tokens ({meta['train']['documents']:,} "
            f"documents), {meta['val']['tokens']:,} val tokens ({meta['val']['documents']:,} documents), "
            f"vocab {meta['vocab_size']:,}"
        )
