"""A node's story as it happens: elections, step-downs, transfers, disk trouble, faults.

:class:`EventBus` keeps the recent events (bounded), calls handlers inline (the durable event
file, logs) and feeds trio subscribers (the client service's ``events`` stream). A subscriber
that cannot keep up loses events, counted in the node's ``events_dropped`` stat: it never slows
or stops the node.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import trio

log = logging.getLogger("raftnode")

RECENT_EVENTS = 200  # kept for `recent_events` and replayed to a new subscriber


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeEvent:
    """Something that happened on a node, for event handlers, the events stream and logs."""

    time: float
    node: str
    kind: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventBus:
    """Publishes one node's events; ``stats`` is the node's counter dict (``events_dropped``)."""

    def __init__(self, node_id: str, stats: dict[str, Any]) -> None:
        self.node_id = node_id
        self._stats = stats
        self._subscribers: list[trio.MemorySendChannel[NodeEvent]] = []
        self._handlers: list[Callable[[NodeEvent], None]] = []
        self._recent: deque[NodeEvent] = deque(maxlen=RECENT_EVENTS)
        self._last_commit: tuple[int, float] | None = None  # (commit index, trio time) of the last commit event

    def add_handler(self, handler: Callable[[NodeEvent], None]) -> None:
        """Call ``handler(event)`` for every event (from the node's task: keep it quick)."""
        self._handlers.append(handler)

    def subscribe(self, max_buffer: int = 1000) -> trio.MemoryReceiveChannel[NodeEvent]:
        """A channel of events from now on, the recent ones (as many as fit) first."""
        send, receive = trio.open_memory_channel[NodeEvent](max_buffer)
        for event in list(self._recent)[-max_buffer:] if max_buffer else ():
            send.send_nowait(event)
        self._subscribers.append(send)
        return receive

    def recent(self) -> list[NodeEvent]:
        return list(self._recent)

    def emit(self, kind: str, detail: str) -> NodeEvent:
        """Tell everyone of an event of this node now; returns it."""
        event = NodeEvent(time=time.time(), node=self.node_id, kind=kind, detail=detail)
        self._recent.append(event)
        log.info("%s %s: %s", self.node_id, kind, detail)
        for handler in self._handlers:
            handler(event)
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                self._stats["events_dropped"] += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)
        return event

    def commit_progress(self, commit: int) -> None:
        """The commit index moved to ``commit``: a ``commit`` event (with the rate since the
        last) at most once a second."""
        now = trio.current_time()
        last = self._last_commit
        if last is None or now - last[1] >= 1.0:
            rate = f" ({(commit - last[0]) / (now - last[1]):.0f}/s)" if last is not None else ""
            self.emit("commit", f"commit index {commit}{rate}")
            self._last_commit = (commit, now)

    def close(self) -> None:
        """End every subscriber's stream (the node stopped)."""
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()
