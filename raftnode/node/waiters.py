"""How callers of a node wait for what only the node's task can tell them.

:class:`Waiter` wakes a task; :class:`Callback` calls a function instead (``submit_command``);
:class:`MembershipWaiters` holds the callers of ``add_node`` / ``remove_node`` until their change
takes effect, fails or runs out of time (checked after every turn of the node).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..core.commands import CommandResult
from ..core.errors import MembershipError

if TYPE_CHECKING:
    from ..core.raft import Raft

#: Looks at the core: None while the change is pending, "" once done, else why it failed.
MembershipCheck = Callable[["Raft"], "str | None"]


def is_voter(node: str) -> MembershipCheck:
    """The check of ``add_node(node)``: done once ``node`` is a voter in the committed
    configuration; failed if the leader gave up catching it up (and dropped it)."""

    def check(raft: Raft) -> str | None:
        if node in raft.committed_configuration().voters:
            return ""
        failure = raft.catchup_failures.get(node)
        return failure if failure is not None and node not in raft.configuration.members() else None

    return check


def is_removed(node: str) -> MembershipCheck:
    """The check of ``remove_node(node)``: done once the committed configuration lacks ``node``."""
    return lambda raft: "" if node not in raft.committed_configuration().members() else None


class Waiter:
    """Where the node's task leaves the answer for a caller waiting on it."""

    __slots__ = ("event", "result", "error")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def set(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.event.set()

    def applied(self, result: Any, error: str | None, index: int) -> None:
        """The command this waits for was applied at ``index`` with this outcome."""
        self.set(CommandResult(result=result, error=error, index=index))


class Callback:
    """A waiter that calls ``fn(result)`` instead of waking a task (``submit_command``): once.

    A subclass may answer an applied command without a CommandResult by overriding ``applied``
    (the client service formats its answer straight from the outcome)."""

    __slots__ = ("fn", "done")

    def __init__(self, fn: Callable[[CommandResult], None]) -> None:
        self.fn = fn
        self.done = False

    def set(self, result: Any = None, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self.fn(result)

    def applied(self, result: Any, error: str | None, index: int) -> None:
        """The command this waits for was applied at ``index`` with this outcome."""
        self.set(CommandResult(result=result, error=error, index=index))


class Positions:
    """Where a batch's answers go by position (``submit_commands``): ``fn(position, result)``;
    a subclass may take an applied command's outcome without a CommandResult (``applied``)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[int, CommandResult], None]) -> None:
        self.fn = fn

    def set(self, position: int, result: CommandResult) -> None:
        self.fn(position, result)

    def applied(self, position: int, result: Any, error: str | None, index: int) -> None:
        self.set(position, CommandResult(result=result, error=error, index=index))


class BatchCallback(Callback):
    """The ``Callback`` of one batch entry (``submit_commands``): its commands are the ``at``
    positions of ``positions``, in entry order. ``set`` gives each the same answer (a redirect,
    a retry, a timeout); ``applied`` gives each its own outcome (``Applier``'s tuple of
    ``BatchOutcome``, or the error of a damaged entry). Once."""

    __slots__ = ("at",)

    def __init__(self, positions: Positions, at: list[int]) -> None:
        self.fn = positions  # type: ignore[assignment]
        self.done = False
        self.at = at

    def set(self, result: Any = None, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            answer = self.fn.set  # type: ignore[attr-defined]
            for position in self.at:
                answer(position, result)

    def applied(self, result: Any, error: str | None, index: int) -> None:
        if self.done:
            return
        self.done = True
        positions = self.fn
        if error is not None:  # a damaged entry: nothing of it was applied
            for position in self.at:
                positions.set(position, CommandResult(error=error, index=index))  # type: ignore[attr-defined]
            return
        answer = positions.applied  # type: ignore[attr-defined]
        for position, outcome in zip(self.at, result):
            answer(position, outcome[0], outcome[1], index)

    def refuse(self, refused: list[tuple[int, str]]) -> None:
        """Answer the commands at entry places ``refused`` (``(place, error)``) with their error:
        they leave the entry (validation refused them before the log)."""
        answer, at = self.fn.set, self.at  # type: ignore[attr-defined]
        for place, error in refused:
            answer(at[place], CommandResult(error=error))
        gone = {place for place, _ in refused}
        self.at = [position for place, position in enumerate(at) if place not in gone]


class MembershipWaiters:
    """Callers waiting for a membership change, each with its check and deadline."""

    def __init__(self) -> None:
        self._waiting: list[tuple[MembershipCheck, Waiter, float, str]] = []

    def __bool__(self) -> bool:
        return bool(self._waiting)

    async def wait(self, check: MembershipCheck, raft: Raft, timeout: float, pending: str) -> None:
        """Wait until ``check`` says done (returns) or failed (MembershipError), or ``timeout``
        seconds pass (TimeoutError naming ``pending``). ``check`` is asked of ``raft`` at once: the
        change may be done before its caller resumes after proposing it (a leader's own removal can
        commit, and stop the node, first)."""
        verdict = check(raft)
        if verdict is None:
            waiter = Waiter()
            entry = (check, waiter, trio.current_time() + timeout, f"{pending} after {timeout:g} s")
            self._waiting.append(entry)
            try:
                await waiter.event.wait()
            finally:
                if entry in self._waiting:  # cancelled: stop checking for it
                    self._waiting.remove(entry)
            if waiter.error is not None:
                raise waiter.error
            verdict = waiter.result
        if verdict:
            raise MembershipError(verdict)

    def check(self, raft: Raft, now: float) -> None:
        """Answer the callers whose change is done, failed or out of time."""
        pending = []
        for item in self._waiting:
            check, waiter, deadline, late = item
            verdict = check(raft)
            if verdict is not None:
                waiter.set(verdict)
            elif now >= deadline:
                waiter.set(error=TimeoutError(late))
            else:
                pending.append(item)
        self._waiting = pending

    def fail(self, error: BaseException) -> None:
        """Answer every caller with ``error`` (the node stopped)."""
        for _, waiter, _, _ in self._waiting:
            waiter.set(error=error)
        self._waiting = []
