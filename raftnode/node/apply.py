"""Applying committed entries to the state machine, with a policy for failures.

A :class:`CommandError` is a deterministic refusal: the entry counts as applied with an error
outcome, the same on every node. Any other exception is a failure to apply (the pathological
case the seed leaves undetected): the entry is retried on later calls, up to ``max_attempts``;
after that the applier halts — it applies nothing more and says why — rather than let this
node diverge in silence.

Session entries (``EntryKind.SESSION``, see ``raftnode.wire.sessions``) go through the applier's
:class:`~raftnode.wire.sessions.SessionTable` first: a registration opens a session, a command applied
before is answered with its saved outcome (``Applied.duplicate``) and never reaches the state
machine again, and a refused one (expired session, stale sequence) is an error outcome. The
table is part of the applier's snapshots (``snapshot``/``restore``).

Batch entries (``EntryKind.BATCH``, see ``raftnode.wire.batches``) hold many commands, applied
in order, each as a plain or a session entry's command would be: the entry's outcome is a tuple
of :class:`BatchOutcome`, one per command, in order (a damaged entry's is an error, the same on
every node). A command that fails to apply (not a CommandError) stops the entry there: a retry
goes on from that command, never applying the ones before it again, and no snapshot is taken
while an entry is applied in part (``mid_entry``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..core.messages import Entry, EntryKind
from ..wire.batches import BatchEntryError, decode_batch_entry
from ..wire.sessions import SessionEntryError, SessionRefused, SessionStamp, SessionTable, decode_session_entry
from .statemachines import CommandError, StateMachine

#: Starts a snapshot that carries the session table before the state machine's own bytes:
#: ``MAGIC, u32 length of the table, the table, the state machine's snapshot``. A snapshot
#: without it is the state machine's alone (a cluster that never used sessions writes those).
SNAPSHOT_MAGIC = b"\x00raftnode-sessions-1\x00"


@dataclass(slots=True, kw_only=True)  # not frozen: a frozen dataclass's __init__ costs ~2x, once per entry
class Applied:
    """The outcome of applying one entry (a no-op has neither result nor error); read, never changed.

    ``duplicate``: a session command applied before, answered with its saved outcome and not
    applied again. A batch entry's ``result`` is a tuple of :class:`BatchOutcome`, one per
    command, in order (``error``: the entry is damaged, none of it applied). ``stamp``: the
    session stamp of a session command the state machine applied here (None for a duplicate or a
    refusal).
    """

    entry: Entry
    result: Any = None
    error: str | None = None
    duplicate: bool = False
    stamp: SessionStamp | None = None


class BatchOutcome(NamedTuple):
    """The outcome of one command of a batch entry, with ``Applied``'s meaning of each field."""

    result: Any
    error: str | None
    stamp: SessionStamp | None
    duplicate: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyFailure:
    """Applying ``index`` raised unexpectedly; ``halted`` once the attempts are used up."""

    index: int
    attempt: int
    reason: str
    halted: bool


class Applier:
    """Feeds committed entries, in order, to a state machine."""

    def __init__(self, state_machine: StateMachine, *, max_attempts: int = 3, sessions: SessionTable | None = None):
        self.state_machine = state_machine
        self.sessions = sessions if sessions is not None else SessionTable()
        self.max_attempts = max_attempts
        self.applied_index = 0
        self.halted: ApplyFailure | None = None
        self._queue: deque[Entry] = deque()
        self._attempts = 0
        # The batch entry applied in part: (index, leader time, its commands, their stamps, the outcomes so far).
        self._partial: tuple[int, float, list[str], list[SessionStamp | None] | None, list[BatchOutcome]] | None = None

    @property
    def mid_entry(self) -> bool:
        """A batch entry is applied in part (a command of it failed): the state machine holds
        more than ``applied_index``, so it must not be snapshotted now."""
        return self._partial is not None

    def restore(self, index: int, data: bytes) -> None:
        """Replace the state with a ``snapshot()`` taken at ``index``; queued entries up to it are dropped.

        Raises ValueError if the session table in it is malformed.
        """
        if data.startswith(SNAPSHOT_MAGIC):
            start = len(SNAPSHOT_MAGIC) + 4
            size = int.from_bytes(data[start - 4 : start], "big")
            if len(data) < start + size:
                raise ValueError(f"the snapshot at index {index} is cut short inside its session table")
            self.sessions.restore(data[start : start + size])
            data = data[start + size :]
        else:
            self.sessions.clear()
        self.state_machine.restore(data)
        self.applied_index = index
        while self._queue and self._queue[0].index <= index:
            self._queue.popleft()
        self._attempts = 0
        self._partial = None

    def snapshot(self) -> bytes:
        """The state to restore from: the state machine's snapshot, with the session table if used."""
        data = self.state_machine.snapshot()
        if not self.sessions.used:
            return data
        table = self.sessions.encode()
        return b"".join((SNAPSHOT_MAGIC, len(table).to_bytes(4, "big"), table, data))

    def submit(self, entries: Iterable[Entry]) -> None:
        """Queue committed entries; they must follow on from what was queued before."""
        self._queue.extend(entries)

    def run(self) -> tuple[list[Applied], ApplyFailure | None]:
        """Apply queued entries until the queue empties or one fails; returns outcomes and the failure."""
        done: list[Applied] = []

        def gather(entry: Entry, result: Any, error: str | None, stamp: SessionStamp | None, duplicate: bool) -> None:
            done.append(Applied(entry=entry, result=result, error=error, duplicate=duplicate, stamp=stamp))

        return done, self.apply_each(gather)

    def apply_each(self, sink: Callable[[Entry, Any, str | None, SessionStamp | None, bool], None]) -> ApplyFailure | None:
        """``run`` without an ``Applied`` per entry: ``sink(entry, result, error, stamp, duplicate)``
        (``Applied``'s fields) is called for each entry once it counts as applied (an exception
        from ``sink`` leaves the applier consistent: that entry is not applied again). Returns the
        failure, if one stopped it."""
        if self.halted is not None:
            return None
        queue = self._queue
        process = self.state_machine.process_command
        apply_session_entry, apply_batch_entry = self._apply_session_entry, self._apply_batch_entry
        command_kind, session_kind, batch_kind = EntryKind.COMMAND, EntryKind.SESSION, EntryKind.BATCH
        while queue:
            entry = queue[0]
            kind = entry.kind
            result = error = stamp = None
            duplicate = False
            if kind is session_kind or kind is command_kind or kind is batch_kind:
                try:
                    if kind is batch_kind:
                        result = apply_batch_entry(entry)
                    elif kind is session_kind:
                        result, error, stamp, duplicate = apply_session_entry(entry)
                    else:
                        result = process(entry.data.decode())
                except (CommandError, BatchEntryError) as exc:
                    error = str(exc)
                except Exception as exc:  # noqa: BLE001 - the policy below decides
                    return self._failed(entry, exc)
            queue.popleft()
            self._attempts = 0
            self.applied_index = entry.index
            sink(entry, result, error, stamp, duplicate)
        return None

    def _failed(self, entry: Entry, exc: Exception) -> ApplyFailure:
        self._attempts += 1
        failure = ApplyFailure(
            index=entry.index,
            attempt=self._attempts,
            reason=f"{type(exc).__name__}: {exc}",
            halted=self._attempts >= self.max_attempts,
        )
        if failure.halted:
            self.halted = failure
        return failure

    def _apply_session_entry(self, entry: Entry) -> tuple[Any, str | None, SessionStamp | None, bool]:
        """A registration, or a command through the session table (raises what the state machine
        raises): ``(result, error, stamp, duplicate)`` as in ``Applied``."""
        try:
            time, stamp, command = decode_session_entry(entry.data)
        except SessionEntryError as exc:
            return None, str(exc), None, False
        if stamp is None:
            return self.sessions.register(entry.index, time), None, None, False
        return self._apply_stamped(stamp, time, command)

    def _apply_batch_entry(self, entry: Entry) -> tuple[BatchOutcome, ...]:
        """Each command of a batch entry, in order, from where a failed attempt stopped; raises
        BatchEntryError for a damaged entry, and what the state machine raises (not CommandError)."""
        partial = self._partial
        if partial is None or partial[0] != entry.index:
            time, commands, stamps = decode_batch_entry(entry.data)
            partial = self._partial = (entry.index, time, commands, stamps, [])
        _, time, commands, stamps, outcomes = partial
        process, apply_stamped, append = self.state_machine.process_command, self._apply_stamped, outcomes.append
        for position in range(len(outcomes), len(commands)):
            stamp = stamps[position] if stamps is not None else None
            if stamp is None:
                try:
                    append(_new_outcome(BatchOutcome, (process(commands[position]), None, None, False)))
                except CommandError as exc:
                    append(_new_outcome(BatchOutcome, (None, str(exc), None, False)))
            else:
                append(_new_outcome(BatchOutcome, apply_stamped(stamp, time, commands[position])))
        self._partial = None
        return tuple(outcomes)

    def _apply_stamped(
        self, stamp: SessionStamp, time: float, command: str
    ) -> tuple[Any, str | None, SessionStamp | None, bool]:
        """A session command through the session table: ``(result, error, stamp, duplicate)``
        as in ``Applied`` (raises what the state machine raises, but CommandError)."""
        try:
            saved = self.sessions.lookup(stamp, time)
        except SessionRefused as exc:
            return None, str(exc), None, False
        if saved is not None:
            return saved[0], saved[1], None, True
        try:
            result = self.state_machine.process_command(command)
        except CommandError as exc:
            error = str(exc)
            self.sessions.record(stamp, None, error)
            return None, error, stamp, False
        self.sessions.record(stamp, result, None)
        return result, None, stamp, False


_new_outcome = tuple.__new__  # a BatchOutcome without its Python-level __new__ (one per command)
