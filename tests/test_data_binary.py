"""The memory-mapped token format: round trips, document boundaries, atomic writes, corruption detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.binary import BinaryDatasetWriter, TokenDataset, token_dtype
from engine.errors import DataError
from engine.tokenizer import EOS_ID

DOCS = [[5, 6, 7], [8], [], [9, 10, 11, 12]]


def write(prefix: Path, docs: list[list[int]], vocab_size: int = 1000) -> None:
    with BinaryDatasetWriter(prefix, vocab_size) as writer:
        for doc in docs:
            writer.add_document(doc)


def test_documents_round_trip_and_each_is_followed_by_eos(tmp_path: Path) -> None:
    write(tmp_path / "train", DOCS)
    ds = TokenDataset(tmp_path / "train")
    assert ds.num_documents == len(ds) == 4
    assert ds.num_tokens == sum(len(d) + 1 for d in DOCS)
    assert [ds.document(i).tolist() for i in range(4)] == DOCS
    assert ds.document(-1).tolist() == DOCS[-1]
    assert ds.tokens.tolist() == [5, 6, 7, EOS_ID, 8, EOS_ID, EOS_ID, 9, 10, 11, 12, EOS_ID]
    assert isinstance(ds.tokens, np.memmap)


def test_bin_file_is_the_raw_id_stream_readable_without_llmodel(tmp_path: Path) -> None:
    write(tmp_path / "x", DOCS)
    raw = np.fromfile(tmp_path / "x.bin", dtype="<u2")
    assert raw.tolist() == TokenDataset(tmp_path / "x").tokens.tolist()


def test_ids_are_uint16_up_to_65536_and_uint32_above(tmp_path: Path) -> None:
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    write(tmp_path / "big", [[70_000, 1]], vocab_size=100_000)
    ds = TokenDataset(tmp_path / "big.bin")
    assert ds.dtype == np.uint32 and ds.document(0).tolist() == [70_000, 1]


def test_truncated_bin_file_is_detected_on_open(tmp_path: Path) -> None:
    write(tmp_path / "t", DOCS)
    data = (tmp_path / "t.bin").read_bytes()
    (tmp_path / "t.bin").write_bytes(data[:-2])
    with pytest.raises(DataError, match=r"t\.bin: 22 bytes but its index expects 24 .*llmodel data prepare"):
        TokenDataset(tmp_path / "t")


def test_index_with_bad_magic_or_truncated_offsets_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "t", DOCS)
    idx = (tmp_path / "t.idx").read_bytes()
    (tmp_path / "t.idx").write_bytes(b"NOTMAGIC" + idx[8:])
    with pytest.raises(DataError, match="bad magic"):
        TokenDataset(tmp_path / "t")
    (tmp_path / "t.idx").write_bytes(idx[:-3])
    with pytest.raises(DataError, match="truncated index"):
        TokenDataset(tmp_path / "t")


def test_missing_files_name_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing\.bin: missing; re-run `llmodel data prepare`"):
        TokenDataset(tmp_path / "nothing")


def test_a_failed_write_leaves_the_previous_files_untouched_and_no_temp_files(tmp_path: Path) -> None:
    write(tmp_path / "d", DOCS)
    before = (tmp_path / "d.bin").read_bytes(), (tmp_path / "d.idx").read_bytes()
    with pytest.raises(RuntimeError), BinaryDatasetWriter(tmp_path / "d", 1000) as writer:
        writer.add_document([1, 2, 3])
        raise RuntimeError("crash mid-write")
    assert ((tmp_path / "d.bin").read_bytes(), (tmp_path / "d.idx").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.bin", "d.idx"]


def test_ids_outside_the_vocabulary_are_refused(tmp_path: Path) -> None:
    with (
        BinaryDatasetWriter(tmp_path / "v", 10) as writer,
        pytest.raises(ValueError, match=r"outside 0\.\.9"),
    ):
        writer.add_document([3, 10])


def test_an_empty_dataset_opens_with_no_documents(tmp_path: Path) -> None:
    write(tmp_path / "e", [])
    ds = TokenDataset(tmp_path / "e")
    assert ds.num_documents == 0 and ds.num_tokens == 0 and ds.tokens.size == 0
