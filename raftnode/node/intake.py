"""How a caller's command or read reaches the node's task, and how its answer comes back.

:class:`CommandIntake` turns commands into proposals for the node's inbox (``raftnode.node.inbox``)
and either wakes the calling task with the answer (``run_command``, ``query``) or calls it back
from the node's task before a deadline (``submit_command`` and its kin, ``raftnode.node.deadlines``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import trio

from ..core.commands import CommandResult
from ..core.messages import EntryKind
from ..wire.batches import entry_runs
from ..wire.sessions import SessionStamp
from .deadlines import CommandDeadlines
from .inbox import BatchProposal, NodeInbox, Proposal, proposal_of
from .waiters import BatchCallback, Callback, Positions, Waiter

_BATCH = EntryKind.BATCH


class CommandIntake:
    """The callers' side of the proposals; ``reads_served``: reads are served by ReadIndex (the
    state machine has a read-only ``query``), not through the log."""

    __slots__ = ("_inbox", "_deadlines", "_reads_served")

    def __init__(self, inbox: NodeInbox, deadlines: CommandDeadlines, reads_served: bool) -> None:
        self._inbox = inbox
        self._deadlines = deadlines
        self._reads_served = reads_served

    async def wait(self, proposal: Proposal | CommandResult, timeout: float) -> CommandResult:
        """Propose and wait for the answer, or ``timeout_expired`` after ``timeout`` seconds."""
        waiter = Waiter()
        refused = self._inbox.put(proposal, waiter)
        if refused is not None:
            return refused
        with trio.move_on_after(timeout):
            await waiter.event.wait()
            return waiter.result
        return CommandResult(timeout_expired=True)

    def submit(
        self,
        proposal: Proposal | CommandResult,
        on_result: Callable[[CommandResult], None],
        timeout: float,
    ) -> None:
        """Propose; ``on_result(answer)`` is called once, at the latest at the deadline (a
        ``Callback`` is used as it is: its ``set`` answers)."""
        callback = on_result if isinstance(on_result, Callback) else Callback(on_result)
        refused = self._inbox.put(proposal, callback)
        if refused is not None:
            callback.set(refused)
            return
        self._deadlines.expire_after(callback, timeout)

    def submit_batch(
        self,
        commands: Sequence[str],
        on_result: Callable[[int, CommandResult], None],
        timeout: float,
        stamps: Sequence[SessionStamp] | None,
    ) -> None:
        """Propose ``commands`` as batch entries (``raftnode.wire.batches``: one, or a few when they
        would not fit in one), queued together (``NodeInbox.put_batch``); ``on_result(position,
        answer)`` (a ``Positions`` is used as it is: its ``set`` answers)."""
        positions = on_result if isinstance(on_result, Positions) else Positions(on_result)
        try:
            encoded = [command.encode() for command in commands]
            kept = None
        except UnicodeEncodeError:  # rare: answer the commands that are not text, propose the rest
            encoded, kept = [], []
            for position, command in enumerate(commands):
                proposal = proposal_of(command, None)
                if isinstance(proposal, CommandResult):
                    positions.set(position, proposal)
                else:
                    encoded.append(proposal[1])
                    kept.append(position)
            commands = [commands[p] for p in kept]
            stamps = None if stamps is None else [stamps[p] for p in kept]
        if not encoded:
            return
        runs = entry_runs(encoded, stamps is not None)
        proposals = []
        for run in runs:
            at = list(run) if kept is None else [kept[p] for p in run]
            part = slice(run.start, run.stop)
            batch = BatchProposal(list(commands[part]), encoded[part], None if stamps is None else list(stamps[part]))
            proposals.append((batch, b"", _BATCH, BatchCallback(positions, at)))
        if self._inbox.put_batch(proposals):
            for proposal in proposals:
                self._deadlines.expire_after(proposal[3], timeout)

    def read_proposal(self, command: str) -> tuple[str, bytes | None, EntryKind] | CommandResult:
        """The proposal of the read ``command``: no data (served by ReadIndex) when the state machine
        has a read-only ``query``, else a plain command through the log."""
        proposal = proposal_of(command, None)
        if not self._reads_served or isinstance(proposal, CommandResult):
            return proposal
        return command, None, EntryKind.COMMAND
