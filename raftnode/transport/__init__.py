"""How Raft messages travel between nodes: the contract, and the built-in implementations.

A transport is given to a node; the node calls ``send`` for every outgoing message and runs
``run(deliver)`` in its nursery, which calls ``deliver(message)`` for every message that arrives.
Delivery is best effort — Raft tolerates loss, duplication and reordering — so ``send`` never
blocks: when a peer's queue is full the message is dropped and counted.

Built in: :mod:`.tcp` (the default, between processes), :mod:`.memory` (in one trio program, for
tests and embedding), and :mod:`.faults`, a wrapper that injects partitions, loss, delay and
duplication on both directions of a node's links. An application may supply its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..core.messages import Message

Deliver = Callable[[Message], None]


@runtime_checkable
class Transport(Protocol):
    def send(self, message: Message) -> None:
        """Queue ``message`` for its ``dst``; never blocks, may drop."""

    async def run(self, deliver: Deliver, *, task_status: Any = ...) -> None:
        """Serve until cancelled, calling ``deliver`` for each message received.

        Calls ``task_status.started()`` once it accepts messages (use with ``nursery.start``).
        """

    def stats(self) -> dict[str, Any]:
        """Counters for status: messages sent, dropped, bad frames, connections..."""
