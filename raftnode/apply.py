"""Applying committed entries to the state machine, with a policy for failures.

A :class:`CommandError` is a deterministic refusal: the entry counts as applied with an error
outcome, the same on every node. Any other exception is a failure to apply (the pathological
case the seed leaves undetected): the entry is retried on later calls, up to ``max_attempts``;
after that the applier halts — it applies nothing more and says why — rather than let this
node diverge in silence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .core.messages import Entry, EntryKind
from .statemachines import CommandError, StateMachine


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """The outcome of applying one entry (a no-op has neither result nor error)."""

    entry: Entry
    result: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyFailure:
    """Applying ``index`` raised unexpectedly; ``halted`` once the attempts are used up."""

    index: int
    attempt: int
    reason: str
    halted: bool


class Applier:
    """Feeds committed entries, in order, to a state machine."""

    def __init__(self, state_machine: StateMachine, *, max_attempts: int = 3):
        self.state_machine = state_machine
        self.max_attempts = max_attempts
        self.applied_index = 0
        self.halted: ApplyFailure | None = None
        self._queue: deque[Entry] = deque()
        self._attempts = 0

    def restore(self, index: int, data: bytes) -> None:
        """Replace the state with a snapshot taken at ``index``; queued entries up to it are dropped."""
        self.state_machine.restore(data)
        self.applied_index = index
        while self._queue and self._queue[0].index <= index:
            self._queue.popleft()
        self._attempts = 0

    def submit(self, entries: Iterable[Entry]) -> None:
        """Queue committed entries; they must follow on from what was queued before."""
        self._queue.extend(entries)

    def run(self) -> tuple[list[Applied], ApplyFailure | None]:
        """Apply queued entries until the queue empties or one fails; returns outcomes and the failure."""
        done: list[Applied] = []
        if self.halted is not None:
            return done, None
        queue = self._queue
        process = self.state_machine.process_command
        while queue:
            entry = queue[0]
            if entry.kind is EntryKind.COMMAND:
                try:
                    outcome = Applied(entry=entry, result=process(entry.data.decode()))
                except CommandError as exc:
                    outcome = Applied(entry=entry, error=str(exc))
                except Exception as exc:  # noqa: BLE001 - the policy below decides
                    self._attempts += 1
                    failure = ApplyFailure(
                        index=entry.index,
                        attempt=self._attempts,
                        reason=f"{type(exc).__name__}: {exc}",
                        halted=self._attempts >= self.max_attempts,
                    )
                    if failure.halted:
                        self.halted = failure
                    return done, failure
            else:
                outcome = Applied(entry=entry)
            queue.popleft()
            self._attempts = 0
            self.applied_index = entry.index
            done.append(outcome)
        return done, None
