"""The run's event log: whole lines, straight to disk, a line torn by a kill closed off at the next open."""

from __future__ import annotations

from pathlib import Path

from engine.runs.events import EventLog, read_events


def test_a_line_torn_by_a_kill_is_skipped_alone_and_the_next_event_is_read(tmp_path: Path) -> None:
    with EventLog(tmp_path) as events:
        events.emit("step", step=1)
    with open(tmp_path / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"type":"step","st')  # what a process killed mid-write leaves
    with EventLog(tmp_path) as events:
        events.emit("status", status="running", step=1)
    assert [e["type"] for e in read_events(tmp_path / "events.jsonl")] == ["step", "status"]
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 3, "the torn line keeps its place"


def test_every_event_is_on_disk_before_emit_returns(tmp_path: Path) -> None:
    events = EventLog(tmp_path)
    events.log("hello")
    assert [e["message"] for e in read_events(tmp_path / "events.jsonl")] == ["hello"]
    assert (tmp_path / "train.log").read_text().endswith("INFO  hello\n")
    events.close()
    events.close()  # closing twice is harmless
