"""The embedded default corpus and chat set: built from this interpreter's stdlib, deterministic, non-trivial."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from engine.data.readers import iter_chat_conversations, iter_documents
from engine.data.stdlib_corpus import build_stdlib_chat_set, build_stdlib_corpus, iter_stdlib_sources


@pytest.fixture(scope="module")
def full_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    path = tmp_path_factory.mktemp("corpus") / "stdlib.jsonl"
    info = build_stdlib_corpus(path)
    return path, info.files, info.bytes


def test_the_full_corpus_is_megabytes_of_real_code_and_english(full_corpus: tuple[Path, int, int]) -> None:
    path, files, size = full_corpus
    assert files > 300 and size > 5_000_000
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == files
    sources = [r["source"] for r in records]
    assert sources == sorted(sources) and "json/decoder.py" in sources
    assert sum(len(r["text"].encode("utf-8")) for r in records) == size
    assert any("Return" in r["text"] and "def " in r["text"] for r in records)


def test_test_suites_and_site_packages_are_left_out(full_corpus: tuple[Path, int, int]) -> None:
    sources = [json.loads(line)["source"] for line in full_corpus[0].read_text(encoding="utf-8").splitlines()]
    for part in ("test", "tests", "idle_test", "site-packages"):
        assert not any(part in source.split("/")[:-1] for source in sources)


def test_building_twice_gives_identical_bytes(tmp_path: Path) -> None:
    build_stdlib_corpus(tmp_path / "a.jsonl", max_bytes=50_000)
    build_stdlib_corpus(tmp_path / "b.jsonl", max_bytes=50_000)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_max_bytes_takes_a_prefix_cut_at_a_line_end(
    tmp_path: Path, full_corpus: tuple[Path, int, int]
) -> None:
    info = build_stdlib_corpus(tmp_path / "small.jsonl", max_bytes=30_000)
    assert 20_000 < info.bytes <= 30_000 and info.files >= 1
    small = [json.loads(line) for line in (tmp_path / "small.jsonl").read_text().splitlines()]
    full = [json.loads(line) for line in full_corpus[0].read_text(encoding="utf-8").splitlines()]
    assert small[:-1] == full[: len(small) - 1]
    assert small[-1]["text"].endswith("\n") and full[len(small) - 1]["text"].startswith(small[-1]["text"])


def test_the_corpus_is_readable_by_the_data_readers(tmp_path: Path) -> None:
    build_stdlib_corpus(tmp_path / "c.jsonl", max_bytes=20_000)
    documents = list(iter_documents([tmp_path / "c.jsonl"], strict=True))
    assert documents and all(isinstance(d, str) and d.strip() for d in documents)


def test_sources_are_listed_in_sorted_order() -> None:
    names = [relative for relative, _ in itertools.islice(iter_stdlib_sources(), 50)]
    assert names == sorted(names)


@pytest.mark.slow
def test_chat_set_pairs_pydoc_questions_with_docstring_summaries(tmp_path: Path) -> None:
    info = build_stdlib_chat_set(tmp_path / "chat.jsonl")
    assert info.items > 1000
    conversations = list(iter_chat_conversations([tmp_path / "chat.jsonl"], strict=True))
    assert len(conversations) == info.items
    assert all([m["role"] for m in c] == ["user", "assistant"] for c in conversations)
    answers = {c[0]["content"]: c[1]["content"] for c in conversations}
    assert answers["What does json.dumps do?"] == "Serialize ``obj`` to a JSON formatted ``str``."
    assert "What is the json module for?" in answers
    assert not any(
        question.split()[2].startswith("_") for question in answers if question.startswith("What does")
    )


def test_chat_set_is_deterministic_and_honours_max_items(tmp_path: Path) -> None:
    first = build_stdlib_chat_set(tmp_path / "a.jsonl", max_items=25)
    build_stdlib_chat_set(tmp_path / "b.jsonl", max_items=25)
    assert first.items == 25
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
