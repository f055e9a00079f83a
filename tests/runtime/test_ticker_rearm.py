"""The ticker's wake-up moves only forward after a turn (``Ticker.rearm``); one a turn pushed back
is found not due when it comes, and the ticker sleeps on without waking the node's task.

The core here is a stand-in whose timer is due ``due`` ticks after the last tick given (a
heartbeat resets it: ``due`` set again). Time is trio's MockClock.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from raftnode.node.deadlines import CommandDeadlines
from raftnode.node.ticker import Ticker
from raftnode.node.waiters import MembershipWaiters

pytestmark = pytest.mark.trio

TICK = 0.01


class _Core:
    """``ticks_until_timer`` is ``due``; each tick given brings it one closer; the tick that fires
    the timer starts it again (``RESTART`` ticks)."""

    RESTART = 10

    def __init__(self, due: int) -> None:
        self.due = due

    def ticks_until_timer(self) -> int:
        return self.due

    def tick(self) -> None:
        self.due -= 1
        if self.due == 0:
            self.due = self.RESTART


def _ticker(core: _Core, woke: list[float]) -> Ticker:
    """A ticker whose wake-ups are noted (in ticks) and each followed by the node's turn."""

    def wake() -> None:
        woke.append(round(trio.current_time() / TICK, 6))
        ticker.catch_up(input_waits=False)  # the turn of a tick item alone: the timer fires
        ticker.rearm()

    stats: dict[str, Any] = {"ticker_wakeups": 0}
    ticker = Ticker(
        TICK, 5, stats, deadlines=CommandDeadlines(TICK), membership=MembershipWaiters(),
        disk=SimpleNamespace(since=None),  # type: ignore[arg-type]
        wake=wake, send=lambda _: None, retry_apply=lambda: None,
    )
    ticker.start(core)  # type: ignore[arg-type]
    return ticker


def _turn(ticker: Ticker, core: _Core, due_after: int) -> None:
    """A turn whose input sets the core's timer to ``due_after`` ticks from now (as ReadyLoop.turn)."""
    ticker.catch_up(input_waits=True)
    core.due = due_after
    ticker.catch_up(input_waits=False)
    ticker.rearm()


async def _run(turns: dict[int, int], until: int, *, first_due: int = 10) -> list[float]:
    """Run a ticker from time 0 with a turn at each tick of ``turns`` (tick -> the timer's new due);
    the ticks at which it woke the node's task, until ``until``."""
    core, woke = _Core(first_due), []
    ticker = _ticker(core, woke)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker.run)
        for at, due_after in sorted(turns.items()):
            await trio.sleep_until(at * TICK)
            _turn(ticker, core, due_after)
        await trio.sleep_until(until * TICK)
        nursery.cancel_scope.cancel()
    return woke


async def test_a_turn_that_pushes_the_timer_back_leaves_the_wake_up_and_the_ticker_sleeps_on_until_it_is_due(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Heartbeats at ticks 1, 3, 6 each reset a 10-tick timer: due at 16, never before.
    assert await _run({1: 10, 3: 10, 6: 10}, until=20) == [16]


async def test_a_turn_that_brings_the_timer_forward_moves_the_wake_up_forward(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # At tick 3 the node becomes leader: a heartbeat is due 2 ticks later, not at the old 10.
    assert await _run({1: 10, 3: 2}, until=6) == [5]


def _planted(monkeypatch: pytest.MonkeyPatch, name: str, replacement: Callable[..., Any]) -> None:
    monkeypatch.setattr(Ticker, name, replacement)


async def test_planted_bug_a_rearm_that_never_moves_the_wake_up_wakes_a_new_leader_too_late(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _planted(monkeypatch, "rearm", lambda self: None)
    assert await _run({1: 10, 3: 2}, until=12) == [10]  # the heartbeat due at 5 waits for tick 10


async def test_planted_bug_a_ticker_that_wakes_at_a_stale_wake_up_wakes_the_node_for_nothing(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _planted(monkeypatch, "_wake_due", lambda self, woke: True)
    assert await _run({1: 10, 3: 10, 6: 10}, until=20) == [10, 16]  # woken at 10 with nothing due
