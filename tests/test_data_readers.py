"""Readers: text, JSONL, chat JSONL and HF inputs become documents; bad lines are named by file and line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from engine.data.readers import detect_format, iter_chat_conversations, iter_documents, resolve_sources
from engine.errors import DataError


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_a_text_file_is_one_document_by_default(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("line one\n\n    indented\n")
    assert list(iter_documents([path])) == ["line one\n\n    indented\n"]


def test_text_unit_line_makes_each_non_blank_line_a_document(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("first\n\n   \nsecond  \n")
    assert list(iter_documents([path], text_unit="line")) == ["first", "second  "]


def test_a_directory_is_read_recursively_in_sorted_order_skipping_hidden_and_binary_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.py").write_text("print('z')\n")
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "from jsonl"}) + "\n")
    (tmp_path / ".hidden.txt").write_text("secret\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\x00\xff")
    (tmp_path / "b" / "__pycache__").mkdir()
    (tmp_path / "b" / "__pycache__" / "z.txt").write_text("cached\n")
    assert list(iter_documents([tmp_path])) == ["alpha\n", "print('z')\n", "from jsonl"]


def test_jsonl_uses_text_then_content_then_prompt_and_response(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "plain", "content": "ignored"},
            {"content": "from content"},
            {"prompt": "Q?", "response": "A."},
            {"text": ""},
        ],
    )
    assert list(iter_documents([path])) == ["plain", "from content", "<|user|>\nQ?\n<|assistant|>\nA.\n"]
    assert detect_format(path) == "jsonl"


def test_chat_jsonl_is_detected_and_rendered_with_the_chat_template(tmp_path: Path) -> None:
    conversation = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    path = write_jsonl(tmp_path / "lmsys.jsonl", [{"conversation_id": "x", "conversation": conversation}])
    assert detect_format(path) == "chat"
    assert list(iter_documents([path])) == ["<|system|>\nBe kind.\n<|user|>\nHi\n<|assistant|>\nHello!\n"]


def test_sharegpt_style_roles_are_normalised_in_conversations(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "share.jsonl",
        [{"messages": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}],
    )
    assert list(iter_chat_conversations([path])) == [
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    ]


def test_malformed_jsonl_line_is_reported_with_file_and_line_number_and_skipped(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"text": "ok 1"}, "{not json", "", {"title": "no text"}, {"text": "ok 2"}]
    )
    reported: list[str] = []
    assert list(iter_documents([path], on_bad_line=reported.append)) == ["ok 1", "ok 2"]
    assert len(reported) == 2
    assert reported[0].startswith(f"{path}:2: malformed JSON (") and reported[0].endswith("; skipped")
    assert reported[1].startswith(f"{path}:4: record has no 'text'")
    assert all("\n" not in message for message in reported)


def test_strict_mode_raises_on_the_first_malformed_line_with_file_and_line_number(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok"}, {"text": 42}])
    with pytest.raises(
        DataError, match=r"d\.jsonl:2: 'text' is int, not a string; fix the line, or run without --strict"
    ):
        list(iter_documents([path], strict=True))


def test_chat_record_with_an_unknown_role_is_a_bad_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"conversation": [{"role": "wizard", "content": "hi"}]}])
    with pytest.raises(DataError, match=r"c\.jsonl:1: 'conversation'\[0\]: unknown chat role 'wizard'"):
        list(iter_documents([path], input_format="chat", strict=True))


def test_invalid_utf8_text_file_is_reported_not_crashed_on(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\n".encode("latin-1"))
    reported: list[str] = []
    assert list(iter_documents([path], on_bad_line=reported.append)) == []
    assert reported and "not valid UTF-8" in reported[0]
    with pytest.raises(DataError, match="convert the file to UTF-8"):
        list(iter_documents([path], strict=True))


def test_a_json_array_file_is_read_record_by_record(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"text": "one"}, {"content": "two"}, 7]))
    reported: list[str] = []
    assert list(iter_documents([path], on_bad_line=reported.append)) == ["one", "two"]
    assert reported == [f"{path}[2]: expected a JSON object, got int; skipped"]


def test_missing_path_raises_data_error_before_reading_anything(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    with pytest.raises(DataError, match=r"missing\.txt: no such file or directory"):
        iter_documents([tmp_path / "ok.txt", tmp_path / "missing.txt"])


def test_unknown_input_format_and_text_unit_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="unknown input format 'csv'"):
        iter_documents([tmp_path / "a.txt"], input_format="csv")
    with pytest.raises(DataError, match="unknown text unit 'word'"):
        iter_documents([tmp_path / "a.txt"], text_unit="word")


def test_a_directory_without_readable_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x00")
    with pytest.raises(DataError, match="no text, JSONL or dataset files inside"):
        iter_documents([tmp_path])


def test_saved_hf_dataset_directory_is_detected(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_info.json").write_text("{}")
    (tmp_path / "ds" / "state.json").write_text("{}")
    assert detect_format(tmp_path / "ds") == "hf"
    if importlib.util.find_spec("datasets") is not None:
        assert resolve_sources([tmp_path])[0].format == "hf"


def test_hf_dataset_without_the_datasets_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dataset_dict.json").write_text('{"splits": ["train"]}')
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match=r"pip install 'llmodel\[datasets\]'"):
        iter_documents([tmp_path])


def test_plain_text_cannot_be_read_as_conversations(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(DataError, match="plain text has no conversations"):
        iter_chat_conversations([tmp_path / "a.txt"])


def test_a_saved_hugging_face_dataset_is_read_like_jsonl(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    plain = datasets.Dataset.from_dict({"text": ["first document", "second document"]})
    plain.save_to_disk(str(tmp_path / "plain"))
    chat = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {
                    "conversation": [
                        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
                    ]
                }
            )
        }
    )
    chat.save_to_disk(str(tmp_path / "chat"))
    assert list(iter_documents([tmp_path / "plain"])) == ["first document", "second document"]
    (document,) = list(iter_documents([tmp_path / "chat"]))
    assert "hi" in document and "hello" in document and "<|assistant|>" in document
