"""An in-process network of transports, for runtime tests (under trio's MockClock) and embedding."""

from __future__ import annotations

import math
from typing import Any

import trio

from ..core.messages import Message
from . import Deliver


class MemoryNetwork:
    """Connects the :class:`MemoryTransport` of several nodes living in one trio program."""

    def __init__(self) -> None:
        self._inboxes: dict[str, trio.MemorySendChannel[Message]] = {}

    def transport(self, node_id: str, *, queue_size: int = 4096) -> MemoryTransport:
        return MemoryTransport(self, node_id, queue_size)

    def _route(self, message: Message) -> bool:
        inbox = self._inboxes.get(message.dst)
        if inbox is None:
            return False
        try:
            inbox.send_nowait(message)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True


class MemoryTransport:
    def __init__(self, network: MemoryNetwork, node_id: str, queue_size: int):
        self.network = network
        self.node_id = node_id
        self._queue_size = queue_size
        self._stats = {"sent": 0, "dropped": 0, "received": 0}

    def send(self, message: Message) -> None:
        self._stats["sent"] += 1
        if not self.network._route(message):
            self._stats["dropped"] += 1

    async def run(self, deliver: Deliver, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[Message](self._queue_size or math.inf)
        self.network._inboxes[self.node_id] = send
        task_status.started()
        try:
            async for message in receive:
                self._stats["received"] += 1
                deliver(message)
        finally:
            if self.network._inboxes.get(self.node_id) is send:
                del self.network._inboxes[self.node_id]

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)
