"""Background feeds: daemon threads that read endless streams (SSE) and queue what they read for the UI.

Textual's thread workers run in the event loop's executor, which is joined when the app exits; a worker blocked
on a quiet SSE stream would hold up quitting. A feed's thread is a daemon, so quitting never waits for the
engine to say something. The UI drains a feed from a timer, which also batches redraws.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from engine.client import EngineClient

Item = tuple[str, Any]
F = TypeVar("F", bound="Feed")
ClientFactory = Callable[[Path, bool], "EngineClient"]


def connect_engine(workspace: Path, start: bool) -> EngineClient:
    """The default client factory: the workspace's engine, started on demand when ``start``."""
    from engine.client import EngineClient

    return EngineClient.connect(workspace, start=start)


class Feed:
    """Runs ``produce(emit, stopped)`` on a daemon thread; ``drain()`` returns what it emitted since last time."""

    def __init__(
        self, produce: Callable[[Callable[[str, Any], None], Callable[[], bool]], None], name: str
    ) -> None:
        self._produce = produce
        self._items: deque[Item] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.finished = False

    def start(self: F) -> F:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def drain(self) -> list[Item]:
        items = []
        while self._items:
            items.append(self._items.popleft())
        return items

    def _emit(self, kind: str, payload: Any = None) -> None:
        if not self._stop.is_set():
            self._items.append((kind, payload))

    def _run(self) -> None:
        try:
            self._produce(self._emit, self._stop.is_set)
        except Exception as error:  # every failure reaches the UI as an item, never a traceback
            self._emit("error", f"{error}" or type(error).__name__)
        finally:
            self.finished = True


class EngineLink(Feed):
    """Keeps a connection to the workspace's engine and its event stream; reconnects when the engine is back.

    Emits ``("connected", client)``, ``("event", event)`` and ``("lost", reason)``.
    """

    RETRY_SECONDS = 1.0

    def __init__(self, workspace: Path, factory: ClientFactory, *, start: bool = True) -> None:
        super().__init__(self._link, name="llmodel-engine-link")
        self.workspace, self.factory = workspace, factory
        self._start_next = start
        self._wake = threading.Event()

    def start_engine(self) -> None:
        """Start the engine at the next attempt (and make that attempt now)."""
        self._start_next = True
        self._wake.set()

    def _link(self, emit: Callable[[str, Any], None], stopped: Callable[[], bool]) -> None:
        lost_reported = False
        while not stopped():
            start, self._start_next = self._start_next, False
            try:
                client = self.factory(self.workspace, start)
            except Exception as error:
                if not lost_reported:
                    emit("lost", str(error) or type(error).__name__)
                    lost_reported = True
                self._wake.wait(self.RETRY_SECONDS)
                self._wake.clear()
                continue
            lost_reported = False
            emit("connected", client)
            reason = "the engine closed its event stream"
            try:
                for event in client.workspace_events(0):
                    if stopped():
                        return
                    emit("event", event)
            except Exception as error:
                reason = f"lost the engine ({type(error).__name__}: {error})"
            if stopped():
                return
            emit("lost", reason)
            lost_reported = True
            time.sleep(0.2)


def follow_run(client: EngineClient, run_id: str, names: list[str] | None, max_points: int = 2000) -> Feed:
    """A feed of one run: ``("loaded", snapshot)`` with its recorded history first (the curves ``names``; None:
    all of them), then ``("event", e)`` live."""

    def produce(emit: Callable[[str, Any], None], stopped: Callable[[], bool]) -> None:
        # Logs and samples before the run's offset, so the live events after it add to them without repeats
        # (a line written in between may be missed); the curves drop repeated steps themselves.
        logs = client.logs(run_id, tail=300)
        samples = client.samples(run_id, limit=10)
        run = client.run(run_id)
        history = client.metrics(run_id, names, max_points=max_points)
        emit("loaded", {"run": run, "history": history, "logs": logs.get("lines", []), "samples": samples})
        events: Iterator[dict[str, Any]] = client.follow(run_id, offset=run.get("event_offset", 0))
        for event in events:
            if stopped():
                return
            emit("event", event)
        emit("ended", None)

    return Feed(produce, name=f"llmodel-follow-{run_id}")
