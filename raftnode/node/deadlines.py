"""The deadlines of ``submit_command`` callers: answered ``timeout_expired`` once they pass.

Deadlines are kept in one queue per timeout value in whole ticks (submission order is deadline
order within it) and checked whenever the node counts ticks (``Ticker``); the answered ones at
the front are dropped then.
"""

from __future__ import annotations

import math
from collections import deque

import trio

from ..core.commands import CommandResult
from .waiters import Callback


class CommandDeadlines:
    """Callbacks waiting for an answer, each until its deadline; true while any wait.

    ``next`` is the earliest deadline at the queues' fronts (math.inf: none), kept by
    :meth:`expire_after` and :meth:`expire`, so the ticker knows when to wake next.
    """

    __slots__ = ("tick_seconds", "_waiting", "next", "_last_timeout", "_last_ticks")

    def __init__(self, tick_seconds: float) -> None:
        self.tick_seconds = tick_seconds
        self._waiting: dict[int, deque[tuple[float, Callback]]] = {}  # timeout in ticks -> (deadline, caller)
        self.next = math.inf
        self._last_timeout, self._last_ticks = math.nan, 1  # the last timeout given, in whole ticks

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def expire_after(self, callback: Callback, timeout: float) -> None:
        """Answer ``callback`` with ``timeout_expired`` if nothing else did within ``timeout`` s."""
        # One queue per timeout in whole ticks (clients send their remaining time, a new float each
        # time): each queue stays in deadline order and a command expires at most a tick late.
        if timeout == self._last_timeout:  # most callers give the same timeout, command after command
            ticks = self._last_ticks
        else:
            ticks = self._last_ticks = max(1, math.ceil(timeout / self.tick_seconds))
            self._last_timeout = timeout
        waiting = self._waiting.get(ticks)
        if waiting is None:
            waiting = self._waiting[ticks] = deque()
        deadline = trio.current_time() + ticks * self.tick_seconds
        waiting.append((deadline, callback))
        if deadline < self.next:
            self.next = deadline

    def expire(self) -> None:
        """Answer the callers whose deadline passed (``timeout_expired``); forget the answered ones
        at the front of each queue (answers come mostly in submission order)."""
        now = trio.current_time()
        emptied = []
        for timeout, waiting in list(self._waiting.items()):
            while waiting and (waiting[0][1].done or waiting[0][0] <= now):
                callback = waiting.popleft()[1]
                if not callback.done:
                    callback.set(CommandResult(timeout_expired=True))
            if not waiting:
                emptied.append(timeout)
        for timeout in emptied:
            del self._waiting[timeout]
        self.next = min((waiting[0][0] for waiting in self._waiting.values()), default=math.inf)
