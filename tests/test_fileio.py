"""Atomic writes: a reader sees the old file or directory or the new one, never half of either."""

from __future__ import annotations

import subprocess

import pytest

from engine.fileio import atomic_dir


def test_a_directory_appears_whole_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as staging:
        (staging / "a.txt").write_text("a")
        assert not (target / "a.txt").exists(), "nothing shows before the block ends"
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no temporary directory left"


def test_a_failure_leaves_the_old_directory_untouched(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.slow
def test_the_temporary_directory_of_a_dead_process_is_cleared_next_time(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / f".out.tmp-{dead.pid}"
    leftover.mkdir()
    (leftover / "half.bin").write_bytes(b"\0" * 10)
    with atomic_dir(tmp_path / "out") as staging:
        (staging / "whole.bin").write_bytes(b"1")
    assert not leftover.exists()
