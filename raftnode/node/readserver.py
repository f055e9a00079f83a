"""Linearizable reads served at a node without a log entry (ReadIndex, thesis §6.4).

A read is asked of the core under a token (``Raft.read_index``); the core answers with a read
index once a majority confirmed this leader's term (or refuses: redirect or retry); the read is
then served from the state machine's read-only ``query`` once it has applied through that
index — in order, one ``query`` per (command, index) however many callers share it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..core.commands import CommandResult
from ..core.errors import RaftError
from ..core.raft import Raft
from ..core.readindex import ReadState
from .apply import Applier
from .statemachines import CommandError


class ReadServer:
    """The reads of one node between the core and the state machine; waiters have ``set(result)``."""

    def __init__(self, applier: Applier, query: Callable[[str], Any]) -> None:
        self._applier = applier
        self._query = query
        self._last_token = 0  # the last token handed to Raft.read_index
        self._asked: dict[int, tuple[str, Any]] = {}  # token -> (command, waiter), until the core answers
        self._due: deque[tuple[int, str, Any]] = deque()  # (read index, command, waiter), until applied

    @property
    def due(self) -> bool:
        """Some read waits for the state machine to apply its index."""
        return bool(self._due)

    def ask(self, raft: Raft, command: str, waiter: Any) -> None:
        """Ask the core for a read index for ``command``; a refusal answers ``waiter`` at once."""
        self._last_token += 1
        try:
            raft.read_index(self._last_token)
        except RaftError as exc:
            waiter.set(CommandResult.from_refusal(exc))
            return
        self._asked[self._last_token] = (command, waiter)

    def answered(self, states: Sequence[ReadState], leader: str | None) -> None:
        """The core's answers: a read index to wait for, or a refusal (redirect to ``leader``)."""
        for state in states:
            asked = self._asked.pop(state.request, None)
            if asked is None:
                continue  # answered already (the node is stopping)
            command, waiter = asked
            if state.index is None:
                waiter.set(CommandResult.not_leader_any_more(leader))
            else:
                self._due.append((state.index, command, waiter))

    def serve(self) -> None:
        """Answer the reads whose read index the state machine has applied, in order."""
        due, applier = self._due, self._applier
        if applier.halted is not None:  # the state will never catch up: say so rather than wait
            answer = CommandResult(error=f"apply halted at index {applier.halted.index}: no reads served")
            while due:
                due.popleft()[2].set(answer)
            return
        applied = applier.applied_index
        answers: dict[tuple[str, int], CommandResult] = {}  # the state does not change between these reads
        while due and due[0][0] <= applied:
            index, command, waiter = due.popleft()
            answer = answers.get((command, index))
            if answer is None:
                answer = answers[command, index] = self._run_query(command, index)
            waiter.set(answer)

    def _run_query(self, command: str, index: int) -> CommandResult:
        try:
            return CommandResult(result=self._query(command), index=index)
        except CommandError as exc:
            return CommandResult(error=str(exc), index=index)
        except Exception as exc:  # noqa: BLE001 - a failing read is the caller's answer, never the node's end
            return CommandResult(error=f"query failed: {type(exc).__name__}: {exc}", index=index)

    def refuse(self, answer: CommandResult) -> None:
        """Answer every read still waiting for its index or its apply (the node stops)."""
        for _, waiter in self._asked.values():
            waiter.set(answer)
        for _, _, waiter in self._due:
            waiter.set(answer)
        self._asked.clear()
        self._due.clear()
