"""Dataset preparation: deterministic content-based split, workers match in-process, metadata and vocab checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.data import tokenize_pool
from engine.data.binary import TokenDataset
from engine.data.meta import DatasetMeta, check_tokenizer, check_vocab, load_dataset_meta
from engine.data.prepare import prepare_dataset, prepared_dataset_for
from engine.data.stdlib_corpus import build_stdlib_corpus
from engine.data.tokenizer_training import train_tokenizer
from engine.errors import DataError, VocabMismatchError
from engine.tokenizer import Tokenizer

OUTPUT_FILES = ("train.bin", "train.idx", "val.bin", "val.idx")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "stdlib.jsonl"
    build_stdlib_corpus(path, max_bytes=60_000)
    return path


@pytest.fixture(scope="module")
def tokenizer(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return train_tokenizer([corpus], tmp_path_factory.mktemp("tok"), vocab_size=400)


def many_docs(directory: Path, count: int = 40) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"document {i}: " + "word " * (i % 7 + 1)}) + "\n" for i in range(count))
    )
    return path


def all_documents(directory: Path, tokenizer: Tokenizer, split: str) -> list[str]:
    ds = TokenDataset(directory / split)
    return [tokenizer.decode(ds.document(i).tolist()) for i in range(ds.num_documents)]


def test_preparing_twice_gives_byte_identical_files(
    corpus: Path, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        prepare_dataset([corpus], tokenizer.path, tmp_path / name, val_fraction=0.1, num_workers=0)
    for file in OUTPUT_FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


@pytest.mark.slow
def test_worker_processes_give_the_same_files_as_in_process(
    corpus: Path, tokenizer: Tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        tokenize_pool, "_CHUNK_DOCS", 2
    )  # many small chunks, so ordering across workers matters
    prepare_dataset([corpus], tokenizer.path, tmp_path / "serial", val_fraction=0.1, num_workers=1)
    prepare_dataset([corpus], tokenizer.path, tmp_path / "pool", val_fraction=0.1, num_workers=2)
    for file in OUTPUT_FILES:
        assert (tmp_path / "serial" / file).read_bytes() == (tmp_path / "pool" / file).read_bytes()


def test_documents_decode_back_to_the_input_text(corpus: Path, tokenizer: Tokenizer, tmp_path: Path) -> None:
    prepare_dataset([corpus], tokenizer.path, tmp_path / "d", val_fraction=0.2, num_workers=0)
    texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    prepared = all_documents(tmp_path / "d", tokenizer, "train") + all_documents(
        tmp_path / "d", tokenizer, "val"
    )
    assert sorted(prepared) == sorted(texts)


def test_split_depends_on_content_not_on_input_order(tokenizer: Tokenizer, tmp_path: Path) -> None:
    source = many_docs(tmp_path / "in")
    lines = source.read_text().splitlines()
    reversed_source = tmp_path / "in" / "reversed.jsonl"
    reversed_source.write_text("\n".join(reversed(lines)) + "\n")
    prepare_dataset([source], tokenizer.path, tmp_path / "fwd", val_fraction=0.2, num_workers=0)
    prepare_dataset([reversed_source], tokenizer.path, tmp_path / "rev", val_fraction=0.2, num_workers=0)
    forward = all_documents(tmp_path / "fwd", tokenizer, "val")
    assert forward and sorted(forward) == sorted(all_documents(tmp_path / "rev", tokenizer, "val"))


def test_a_different_seed_gives_a_different_split(tokenizer: Tokenizer, tmp_path: Path) -> None:
    source = many_docs(tmp_path / "in")
    splits = []
    for seed in (1, 2):
        prepare_dataset(
            [source], tokenizer.path, tmp_path / str(seed), val_fraction=0.3, seed=seed, num_workers=0
        )
        splits.append(sorted(all_documents(tmp_path / str(seed), tokenizer, "val")))
    assert splits[0] != splits[1]


def test_a_tiny_corpus_still_gets_one_validation_document(tokenizer: Tokenizer, tmp_path: Path) -> None:
    source = many_docs(tmp_path / "in", count=3)
    meta = prepare_dataset([source], tokenizer.path, tmp_path / "d", val_fraction=0.0001, num_workers=0)
    assert (meta.train.documents, meta.val.documents) == (2, 1)


def test_a_single_document_gives_its_tail_to_validation(tokenizer: Tokenizer, tmp_path: Path) -> None:
    text = tmp_path / "book.txt"
    text.write_text("It was a dark and stormy night. " * 40)
    messages: list[str] = []
    meta = prepare_dataset([text], tokenizer.path, tmp_path / "d", val_fraction=0.1, log=messages.append)
    assert meta.train.documents == meta.val.documents == 1
    assert 0 < meta.val.tokens < meta.train.tokens
    assert any("only one document" in m for m in messages)
    train, val = (all_documents(tmp_path / "d", tokenizer, s)[0] for s in ("train", "val"))
    assert train + val == text.read_text()


def test_meta_json_describes_the_dataset_and_loads_back(
    corpus: Path, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    meta = prepare_dataset([corpus], tokenizer.path, tmp_path / "d", val_fraction=0.1, seed=7, num_workers=0)
    raw = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert raw["format_version"] == 1
    assert raw["tokenizer"] == str(tokenizer.path) and raw["tokenizer_sha256"] == tokenizer.sha256
    assert raw["vocab_size"] == 400 and raw["dtype"] == "uint16"
    assert (
        raw["val_fraction"] == 0.1 and raw["seed"] == 7 and raw["sources"] == [str(corpus)] and raw["created"]
    )
    assert load_dataset_meta(tmp_path / "d") == meta
    for split in ("train", "val"):
        ds = TokenDataset(tmp_path / "d" / split)
        assert raw[split] == {"documents": ds.num_documents, "tokens": ds.num_tokens}


def test_progress_counts_documents_up_to_the_total(tokenizer: Tokenizer, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    source = many_docs(tmp_path / "in", count=10)
    prepare_dataset(
        [source], tokenizer.path, tmp_path / "d", num_workers=0, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (10, 10)


def test_empty_corpus_raises_data_error_and_writes_nothing(tokenizer: Tokenizer, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"text": ""}) + "\n")
    with pytest.raises(DataError, match="no documents found in"):
        prepare_dataset([empty], tokenizer.path, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_strict_mode_stops_at_a_malformed_line(tokenizer: Tokenizer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        prepare_dataset([bad], tokenizer.path, tmp_path / "d", strict=True)


def test_a_folder_without_meta_json_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is not a prepared dataset .*llmodel data prepare"):
        DatasetMeta.load(tmp_path)


def test_vocab_mismatch_names_the_dataset_both_sizes_and_the_fix() -> None:
    check_vocab(8000, 8000, 8000, dataset="datasets/x")
    with pytest.raises(VocabMismatchError) as err:
        check_vocab(8000, 32000, dataset="datasets/x")
    assert str(err.value) == (
        "dataset datasets/x was tokenized with vocab 8000 but the model config has vocab_size 32000; "
        "set vocab_size to 8000 or re-run `llmodel data prepare`"
    )
    with pytest.raises(VocabMismatchError, match="vocab 8000 but the tokenizer has 500"):
        check_vocab(8000, 8000, 500, dataset="datasets/x")


def test_a_dataset_made_with_another_tokenizer_is_detected(
    corpus: Path, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    meta = prepare_dataset([corpus], tokenizer.path, tmp_path / "d", num_workers=0)
    check_tokenizer(meta, tokenizer.sha256)
    with pytest.raises(VocabMismatchError, match="made with another tokenizer"):
        check_tokenizer(meta, "0" * 64, dataset=tmp_path / "d")


def test_raw_inputs_are_prepared_once_and_reused_until_they_change(
    tokenizer: Tokenizer, tmp_path: Path
) -> None:
    source = many_docs(tmp_path / "in", count=5)
    first = prepared_dataset_for([source], tokenizer.path, tmp_path / "cache", num_workers=0)
    assert (first / "meta.json").is_file()
    stamp = (first / "train.bin").stat().st_mtime_ns
    messages: list[str] = []
    assert prepared_dataset_for([source], tokenizer.path, tmp_path / "cache", log=messages.append) == first
    assert (first / "train.bin").stat().st_mtime_ns == stamp and "cached" in messages[0]
    source.write_text(source.read_text() + json.dumps({"text": "a new document"}) + "\n")
    os.utime(source, ns=(stamp + 10**9, stamp + 10**9))
    changed = prepared_dataset_for([source], tokenizer.path, tmp_path / "cache", num_workers=0)
    assert (
        changed != first
        and load_dataset_meta(changed).train.documents + load_dataset_meta(changed).val.documents == 6
    )
