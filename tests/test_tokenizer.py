"""The SentencePiece BPE tokenizer: exact round trips, fixed special ids, training edge cases, save/load."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import sentencepiece as spm

from engine.data.stdlib_corpus import build_stdlib_corpus
from engine.data.tokenizer_training import train_tokenizer
from engine.errors import ConfigError, DataError, LLModelError, VocabMismatchError
from engine.tokenizer import (
    BOS_ID,
    EOS_ID,
    GENERATION_PROMPT,
    MASK_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
)

CODE = (
    "class Stack:\n"
    '    """A LIFO stack."""\n'
    "\n"
    "    def push(self, item):\n"
    "        if item is None:\n"
    "\t\traise ValueError('no None')  \n"
    "        self._items.append(item)\n"
    "\n\n"
    "x = [1, 22, 333]   # trailing spaces   \n"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "stdlib.jsonl"
    build_stdlib_corpus(path, max_bytes=40_000)
    return path


@pytest.fixture(scope="module")
def tokenizer(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return train_tokenizer([corpus], tmp_path_factory.mktemp("tok"), vocab_size=500)


def test_special_tokens_have_fixed_ids_0_to_4(tokenizer: Tokenizer) -> None:
    assert [tokenizer.id_to_piece(i) for i in range(5)] == list(SPECIAL_TOKENS)
    assert (
        (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.mask_id)
        == (
            PAD_ID,
            UNK_ID,
            BOS_ID,
            EOS_ID,
            MASK_ID,
        )
        == (0, 1, 2, 3, 4)
    )
    assert tokenizer.piece_to_id("<mask>") == MASK_ID


def test_python_source_with_indentation_tabs_and_blank_lines_round_trips_exactly(
    tokenizer: Tokenizer,
) -> None:
    for text in (CODE, "a\n    b\n", "  leading and trailing  ", "\n\n\nx\n", ""):
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_emoji_chinese_and_unseen_characters_round_trip_through_byte_fallback(tokenizer: Tokenizer) -> None:
    text = "def 问候():\n    return '你好, 世界 😀🚀' + 'Ωμέγα' + '\u200b'\n"
    ids = tokenizer.encode(text)
    assert UNK_ID not in ids
    assert tokenizer.decode(ids) == text


def test_newline_and_chat_role_markers_are_single_pieces(tokenizer: Tokenizer) -> None:
    for piece in ("\n", "<|system|>", "<|user|>", "<|assistant|>"):
        assert tokenizer.encode(piece) == [tokenizer.piece_to_id(piece)]
        assert tokenizer.piece_to_id(piece) != UNK_ID


def test_encode_adds_bos_and_eos_only_on_request(tokenizer: Tokenizer) -> None:
    plain = tokenizer.encode("hello")
    assert tokenizer.encode("hello", add_bos=True, add_eos=True) == [BOS_ID, *plain, EOS_ID]
    assert BOS_ID not in plain and EOS_ID not in plain


def test_decode_skips_pad_bos_eos_and_mask(tokenizer: Tokenizer) -> None:
    ids = [PAD_ID, BOS_ID, *tokenizer.encode("x = 1"), MASK_ID, EOS_ID, PAD_ID]
    assert tokenizer.decode(ids) == "x = 1"


def test_encode_batch_matches_encode_one_by_one(tokenizer: Tokenizer) -> None:
    texts = ["import os\n", CODE, "", "😀"]
    assert tokenizer.encode_batch(texts, add_eos=True) == [tokenizer.encode(t, add_eos=True) for t in texts]


def test_decoding_an_id_outside_the_vocabulary_raises_vocab_mismatch(tokenizer: Tokenizer) -> None:
    with pytest.raises(VocabMismatchError, match="outside the tokenizer's vocabulary of 500"):
        tokenizer.decode([5, tokenizer.vocab_size])


def test_save_then_load_from_directory_or_model_file_encodes_identically(
    tokenizer: Tokenizer, tmp_path: Path
) -> None:
    tokenizer.save(tmp_path / "copy")
    assert tokenizer.path == tmp_path / "copy"
    for source in (tmp_path / "copy", tmp_path / "copy" / "tokenizer.model"):
        loaded = Tokenizer.load(source)
        assert loaded.sha256 == tokenizer.sha256
        assert loaded.vocab_size == tokenizer.vocab_size
        assert loaded.encode(CODE) == tokenizer.encode(CODE)
        assert loaded.path == source


def test_meta_json_records_vocab_sources_counts_and_model_sha256(tokenizer: Tokenizer, corpus: Path) -> None:
    directory = tokenizer.path
    assert directory is not None
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["vocab_size"] == 500 and meta["model_type"] == "bpe"
    assert meta["special_tokens"] == {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "<mask>": 4}
    assert meta["sources"] == [corpus.name]
    assert meta["documents"] > 0 and meta["characters"] > 10_000
    assert meta["created"]
    assert meta["sha256"] == hashlib.sha256((directory / "tokenizer.model").read_bytes()).hexdigest()
    vocab_lines = (directory / "tokenizer.vocab").read_text().splitlines()
    assert len(vocab_lines) == 500 and vocab_lines[8].startswith("\\n\t")


def test_too_large_vocab_for_a_small_corpus_is_lowered_with_a_message(tmp_path: Path) -> None:
    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 20)
    messages: list[str] = []
    tok = train_tokenizer(text, tmp_path / "tok", vocab_size=5000, log=messages.append)  # a lone path is fine
    assert 300 < tok.vocab_size < 5000
    assert any("vocab_size 5000 is too large" in m and str(tok.vocab_size) in m for m in messages)
    assert Tokenizer.load(tmp_path / "tok").vocab_size == tok.vocab_size


def test_too_small_vocab_raises_config_error_naming_the_minimum(tmp_path: Path) -> None:
    text = tmp_path / "tiny.txt"
    text.write_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\n" * 5)
    with pytest.raises(ConfigError, match=r"vocab_size 270 is too small .* at least \d+"):
        train_tokenizer([text], tmp_path / "tok", vocab_size=270)


def test_empty_corpus_raises_a_one_line_data_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n\n")
    with pytest.raises(DataError, match="no text found in") as err:
        train_tokenizer([empty], tmp_path / "tok", vocab_size=400)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "tok").exists()


def test_missing_input_file_raises_data_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        train_tokenizer([tmp_path / "nope.txt"], tmp_path / "tok", vocab_size=400)


def test_load_without_a_model_names_the_expected_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"expected .*tokenizer\.model"):
        Tokenizer.load(tmp_path)


def test_load_rejects_a_sentencepiece_model_with_other_special_ids(tmp_path: Path) -> None:
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["hello world, hello there\n"] * 50),
        model_writer=proto,
        vocab_size=30,
        model_type="bpe",
        minloglevel=2,
    )
    (tmp_path / "tokenizer.model").write_bytes(proto.getvalue())
    with pytest.raises(LLModelError, match="not an LLModel tokenizer"):
        Tokenizer.load(tmp_path)


def test_trains_on_chat_jsonl_and_keeps_role_markers_whole(tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    record = {
        "conversation": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello!"}]
    }
    chat.write_text("\n".join(json.dumps(record) for _ in range(30)) + "\n{broken\n")
    messages: list[str] = []
    tok = train_tokenizer([chat], tmp_path / "tok", vocab_size=300, log=messages.append)
    rendered = tok.apply_chat_template(record["conversation"], add_generation_prompt=False)
    assert tok.decode(tok.encode(rendered)) == rendered
    assert tok.piece_to_id("<|assistant|>") in tok.encode(rendered)
    assert sum("chat.jsonl:31" in m for m in messages) == 1  # reported once, not once per pass


def test_input_sentence_size_caps_the_lines_sampled(corpus: Path, tmp_path: Path) -> None:
    tok = train_tokenizer([corpus], tmp_path / "tok", vocab_size=400, input_sentence_size=100)
    assert tok.meta["sentences"] <= 100


def test_progress_reports_done_and_total_ending_complete(corpus: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    train_tokenizer([corpus], tmp_path / "tok", vocab_size=400, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] > 0
    assert all(d <= t for d, t in calls)


def test_chat_template_renders_each_role_and_opens_an_assistant_turn(tokenizer: Tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What does len do?"},
    ]
    assert tokenizer.apply_chat_template(messages) == (
        "<|system|>\nBe brief.\n<|user|>\nWhat does len do?\n<|assistant|>\n"
    )
    assert tokenizer.apply_chat_template(messages).endswith(GENERATION_PROMPT)
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=False).endswith("len do?\n")


def test_chat_template_rejects_an_unknown_role_with_the_accepted_ones(tokenizer: Tokenizer) -> None:
    with pytest.raises(DataError, match="unknown chat role 'wizard'; use one of system, user, assistant"):
        tokenizer.apply_chat_template([{"role": "wizard", "content": "hi"}])


def test_a_tokenizer_trains_on_documents_in_memory_and_names_their_sources(tmp_path: Path) -> None:
    lines = [f"def handler_{i}(request):\n    return request.reply({i})\n" for i in range(200)]
    passes: list[int] = []

    def documents() -> list[str]:
        passes.append(1)
        return lines

    tok = Tokenizer.train(documents, tmp_path / "tok", vocab_size=300, sources=["handlers.py"])
    assert len(passes) >= 2  # counted once, then read again to train
    assert tok.meta["sources"] == ["handlers.py"] and tok.decode(tok.encode(lines[7])) == lines[7]
    with pytest.raises(DataError, match=r"no text found in memory\.txt"):
        Tokenizer.train(lambda: [], tmp_path / "none", vocab_size=300, sources=["memory.txt"])
