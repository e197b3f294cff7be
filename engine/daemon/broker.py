"""In-process fan-out of workspace events to SSE subscribers, with a short replay buffer."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from typing import Any

Event = dict[str, Any]
CLOSED: Event = {
    "type": "closed"
}  # the last item of every queue once the broker is closed (compare by identity)


class Broker:
    """Publishes events from any thread to asyncio subscribers; each event gets a sequence number."""

    def __init__(self, history: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = set()
        self.closed = False

    def close(self) -> None:
        """End every subscription: each subscriber's queue gets :data:`CLOSED`, and so does any later one."""
        with self._lock:
            self.closed = True
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(_wake, queue)

    def publish(self, event: Event) -> Event:
        """Number the event, keep it for replay and hand it to every subscriber."""
        with self._lock:
            event = {**event, "seq": next(self._seq)}
            self._history.append(event)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(_offer, queue, event)
        return event

    def subscribe(self, since: int = 0) -> tuple[list[Event], asyncio.Queue[Event]]:
        """Events after sequence ``since`` still in the buffer, and a queue of everything after them."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)
        with self._lock:
            backlog = [e for e in self._history if e["seq"] > since]
            self._subscribers.add((asyncio.get_running_loop(), queue))
            if self.closed:
                queue.put_nowait(CLOSED)
        return backlog, queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        with self._lock:
            self._subscribers = {(loop, q) for loop, q in self._subscribers if q is not queue}


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    if not queue.full():  # a stalled subscriber misses events rather than stalling the engine
        queue.put_nowait(event)


def _wake(queue: asyncio.Queue[Event]) -> None:
    if queue.full():  # make room: the subscriber is ending anyway
        queue.get_nowait()
    queue.put_nowait(CLOSED)
