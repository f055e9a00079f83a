"""The one Ready loop: persist, send, apply, serve reads, advance — in the order the core states.

Both the trio runtime (``raftnode.node.runtime``) and the simulator (``raftnode.sim.cluster``) process
every Ready through :func:`drive`, so the order the simulator checks its invariants on is the
order that ships. The order itself is stated by the core in ``Ready`` (see ``core/ready.py``):
this module only follows it, over a shell's :class:`ReadyPorts`.

``drive`` is a coroutine because the runtime's persist waits for its disk thread; the simulator's
ports never suspend, and it runs ``drive`` with :func:`run_to_completion`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from ..core.messages import SENT_WITHOUT_LEADER_DISK, Message
from ..core.raft import Raft
from ..core.readindex import ReadState
from ..core.ready import Ready

T = TypeVar("T")


class ReadyPorts(Protocol):
    """What a shell plugs into the loop."""

    def send(self, messages: Sequence[Message]) -> None:
        """Hand ``messages`` (never empty) to the transport."""

    def report(self, ready: Ready) -> None:
        """Tell of ``ready``'s soft state, events and commit progress (logs, checkers, waiters)."""

    def apply(self, ready: Ready) -> None:
        """Restore the state machine from ``ready.snapshot`` if any, then apply ``ready.committed``
        in order and answer the callers whose commands they were."""

    def flush(self) -> None:
        """Let the answers produced so far go out now (before a persist that may take a while)."""

    async def persist(self, ready: Ready) -> bool:
        """Make ``ready``'s snapshot, hard state and entries durable. False: the Ready is dropped
        (a full disk, a write fault), nothing after it may happen and it is never advanced."""

    def serve_reads(self, reads: Sequence[ReadState]) -> None:
        """Take the core's read states, and serve the reads whose index has been applied."""

    async def advanced(self) -> None:
        """``ready`` was advanced: time for the shell's own follow-up (the snapshot policy)."""


async def process_ready(ready: Ready, ports: ReadyPorts) -> bool:
    """Carry out one Ready in the core's order (ready.py, steps 1-7). False if its persist failed."""
    if ready.messages_before_persist:
        ports.send(ready.messages_before_persist)
    ports.report(ready)
    applies = bool(ready.committed or ready.snapshot)
    if applies and ready.apply_before_persist:
        ports.apply(ready)
        if ready.entries:
            ports.flush()  # the answers go now, not after this Ready's fsync of newer entries
    if not await ports.persist(ready):
        return False
    if ready.messages_after_persist:
        ports.send(ready.messages_after_persist)
    if applies and not ready.apply_before_persist:
        ports.apply(ready)
    ports.serve_reads(ready.reads)
    return True


ReadyStep = Callable[[Ready, ReadyPorts], Awaitable[bool]]


async def drive(raft: Raft, ports: ReadyPorts, step: ReadyStep | None = None) -> bool:
    """Process every Ready ``raft`` has, advancing each; False if a persist failed (the rest waits).

    ``step`` replaces :func:`process_ready` — a seam for planting a reordering in tests.
    """
    step = step or process_ready  # looked up at each call, so a test may wrap it
    while raft.has_ready():
        ready = raft.ready()
        if not await step(ready, ports):
            if ready.apply_before_persist and ready.committed:
                _advance_unwritten(raft, ready)  # its committed entries were applied: never twice
            return False
        raft.advance(ready)
        await ports.advanced()
    return True


def hand_over(raft: Raft) -> None:
    """A leader whose disk is full hands leadership to its most caught-up follower (§3.10),
    unless a transfer is under way; called after its failed write and on each turn after."""
    target = raft.most_caught_up_follower()
    if target is not None and raft.transferee is None:
        raft.transfer_leadership(target)


def lead_without_disk(raft: Raft, ports: ReadyPorts) -> None:
    """One turn of a leader whose disk is full, while it hands leadership over: only what
    promises nothing about its own disk leaves (``SENT_WITHOUT_LEADER_DISK``); it applies and
    answers what a majority of the others made durable, and advances nothing it did not write
    (its entries and hard state are written again once there is room)."""
    if not raft.has_ready():
        return
    ready = raft.ready()
    ports.report(ready)
    sendable = [m for m in (*ready.messages_before_persist, *ready.messages_after_persist)
                if isinstance(m, SENT_WITHOUT_LEADER_DISK)]
    if sendable:
        ports.send(sendable)
    if ready.committed:
        ports.apply(replace(ready, snapshot=None))
    ports.serve_reads(ready.reads)
    _advance_unwritten(raft, ready)


def _advance_unwritten(raft: Raft, ready: Ready) -> None:
    """Advance ``ready`` as applied and sent, but with nothing of it written."""
    raft.advance(replace(ready, hard_state=None, entries=()))


class PortSuspended(RuntimeError):
    """A port of a synchronous shell suspended: it must never wait."""


def run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose awaits all complete at once (the simulator's ports) and return its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise PortSuspended("a port suspended: a synchronous shell's ports must finish at once")
