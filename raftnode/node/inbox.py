"""The two inboxes of a node's task, and how callers are told when the proposals back up.

Everything the node's task does comes through here: the *urgent* inbox takes peer messages from
the transport, ticks and admin calls; the *proposals* take client commands and reads from
``run_command``, ``submit_command`` and their kin. Each turn the task takes everything urgent
that is waiting, then at most ``max_batch`` proposals (a batch submitted together is taken
whole, up to the high-water mark). A batch entry's proposal (:class:`BatchProposal`) counts as
its commands. A proposal that finds ``inbox_size`` commands waiting is answered ``retry`` at once; endpoints that read many commands stop reading while
:meth:`NodeInbox.backlogged` (``wait_for_room``), which pushes back on their clients through TCP.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from ..core.commands import CommandResult
from ..core.messages import EntryKind, Message
from ..wire.batches import encode_batch_entry
from ..wire.sessions import SessionStamp, encode_session_command

TICK, MESSAGE, CALL, SNAPSHOT = range(4)
"""The kinds of urgent items: ``(kind, payload, waiter)``."""
TICK_ITEM = (TICK, None, None)

#: (command or None for a session registration, the entry's data or None for a read served by
#: ``query``, its kind): what a caller proposes; the inbox adds the caller's waiter.
Proposal = tuple["str | None", "bytes | None", EntryKind]


def proposal_of(command: str, session: SessionStamp | None) -> tuple[str, bytes, EntryKind] | CommandResult:
    """The proposal of ``command``: the text, the entry's data and kind (a session command
    carries its stamp and this node's wall clock, ``raftnode.wire.sessions``); or the answer at
    once when the text is not Unicode."""
    try:
        data = command.encode()
    except UnicodeEncodeError:
        return CommandResult(error=f"command {command!r} is not valid Unicode text")
    if session is None:
        return command, data, _COMMAND
    return command, encode_session_command(session, _wall_clock(), data), _SESSION


_COMMAND, _SESSION, _BATCH = EntryKind.COMMAND, EntryKind.SESSION, EntryKind.BATCH  # read once (per command)
_wall_clock = time.time


class BatchProposal:
    """The commands of one batch entry (``raftnode.wire.batches``), as the caller gave them:
    ``commands`` (their text, for validation), ``encoded`` (utf-8), ``stamps`` (None: no
    session) and the wall clock of the proposing node (stamps the session commands); proposed
    as ``(batch, b"", EntryKind.BATCH)``. Its length is its commands'."""

    __slots__ = ("commands", "encoded", "stamps", "time")

    def __init__(self, commands: list[str], encoded: list[bytes], stamps: list[SessionStamp] | None) -> None:
        self.commands, self.encoded, self.stamps, self.time = commands, encoded, stamps, _wall_clock()

    def __len__(self) -> int:
        return len(self.commands)

    def data(self) -> bytes:
        return encode_batch_entry(self.time, self.encoded, self.stamps)

    def drop(self, places: set[int]) -> None:
        """Leave out the commands at ``places`` (validation refused them)."""
        keep = [place for place in range(len(self.commands)) if place not in places]
        self.commands = [self.commands[p] for p in keep]
        self.encoded = [self.encoded[p] for p in keep]
        if self.stamps is not None:
            self.stamps = [self.stamps[p] for p in keep]


class NodeInbox:
    """The urgent items and proposals waiting for the node's task, and the task's wake-up.

    ``open`` is true while the node serves: a proposal put into a closed inbox is answered
    ``retry``. ``stats`` is the node's counter dict (``inbox_dropped``, ``peer_dropped``).
    """

    def __init__(self, inbox_size: int, max_batch: int, stats: dict[str, Any]) -> None:
        if max_batch < 1 or inbox_size < 1:
            raise ValueError("max_batch and inbox_size must be positive")
        self.urgent: deque[tuple] = deque()  # (kind, payload, waiter): peer messages, ticks, calls
        self.proposals: deque[tuple[str | None, bytes | None, EntryKind, Any]] = deque()  # Proposal + waiter
        self.inbox_size = inbox_size
        self.max_batch = max_batch
        self.high_water = 4 * max_batch  # backlogged() above this
        self.queued = 0  # commands waiting in proposals (a batch entry's count as many)
        self.next_turn_takes = 0  # proposals the next turn takes at least (a client batch kept whole)
        self.open = False
        self._stats = stats
        self._task: Any = None  # the node's task while it waits for input
        self._room = trio.lowlevel.ParkingLot()  # endpoints waiting for proposals to drain

    def wake(self) -> None:
        """Input arrived: wake the node's task if it waits for some."""
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)

    async def wait_for_input(self) -> None:
        """Return once there is input; always a checkpoint (other tasks run between turns)."""
        if self.urgent or self.proposals:
            await trio.lowlevel.checkpoint()
            return
        self._task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def put_urgent(self, item: tuple) -> None:
        self.urgent.append(item)
        self.wake()

    def tick(self) -> None:
        """The ticker's item: a timer is due."""
        self.urgent.append(TICK_ITEM)
        self.wake()

    def deliver(self, message: Message) -> None:
        """A peer's message, from the transport (dropped beyond ``inbox_size``)."""
        if len(self.urgent) >= self.inbox_size:
            self._stats["peer_dropped"] += 1
            return
        self.urgent.append((MESSAGE, message, None))
        self.wake()

    def put(self, proposal: Proposal | CommandResult, waiter: Any) -> CommandResult | None:
        """Queue ``proposal`` for the node's task; or the answer at once when it is one already,
        the node is not running, or the inbox is full."""
        if isinstance(proposal, CommandResult):
            return proposal
        if not self.open:
            return CommandResult(retry=True)
        if self.queued >= self.inbox_size:
            self._stats["inbox_dropped"] += 1
            return CommandResult(retry=True)
        self.proposals.append((*proposal, waiter))
        self.queued += 1
        self.wake()
        return None

    def put_batch(self, proposals: list[tuple[BatchProposal, bytes, EntryKind, Any]]) -> bool:
        """Queue batch entries' ``proposals`` (each with its waiter) together, to be taken in one
        turn even beyond ``max_batch`` (up to the high-water mark); or answer them all ``retry``
        (False) when the node is not running or the inbox has no room for all their commands."""
        count = sum(len(proposal[0]) for proposal in proposals)
        if proposals and (not self.open or self.queued + count > self.inbox_size):
            self._stats["inbox_dropped"] += count if self.open else 0
            for proposal in proposals:
                proposal[3].set(CommandResult(retry=True))
            return False
        self.proposals.extend(proposals)
        self.queued += count
        # The next turn takes the whole batch even beyond max_batch (up to the high-water mark).
        self.next_turn_takes = max(self.next_turn_takes, min(self.queued, self.high_water))
        self.wake()
        return True

    def take(self, propose: Callable[..., None], raft: Any) -> None:
        """Hand this turn's proposals to ``propose(raft, *proposal, waiter)``: at least one, and
        while the commands taken are fewer than ``max_batch`` (or the batch kept whole)."""
        proposals = self.proposals
        limit = max(self.max_batch, self.next_turn_takes)
        taken = 0
        while proposals and taken < limit:
            proposal = proposals.popleft()
            taken += len(proposal[0]) if proposal[2] is _BATCH else 1
            propose(raft, *proposal)
        self.queued -= taken
        self.next_turn_takes = 0
        if self._room and self.queued < self.high_water:
            self._room.unpark_all()

    def backlogged(self) -> bool:
        """Enough commands wait for the next turns: an endpoint should stop reading commands."""
        return self.queued >= self.high_water

    async def wait_for_room(self) -> None:
        """Wait until ``backlogged()`` is no longer true (or the node stops)."""
        while self.open and self.queued >= self.high_water:
            await self._room.park()

    def refuse_proposals(self) -> None:
        """The node stopped (``open`` is false): answer the waiting proposals ``retry``."""
        while self.proposals:
            self.proposals.popleft()[3].set(CommandResult(retry=True))
        self.queued = 0

    def fail_calls(self, error: BaseException) -> None:
        """The node stopped: answer the waiting calls and snapshot requests with ``error``."""
        for kind, _, waiter in self.urgent:
            if kind in (CALL, SNAPSHOT):
                waiter.set(error=error)
        self.urgent.clear()

    def release_waiting_for_room(self) -> None:
        self._room.unpark_all()
