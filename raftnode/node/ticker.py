"""A node's sense of time: lazy ticks, and heartbeats while its task waits on the disk.

Ticks are counted lazily: the ticker wakes the node's task only when a timer is due
(``Raft.ticks_until_timer``, command deadlines, apply retries, membership waiters), and each
turn gives the core the ticks that passed (:meth:`Ticker.catch_up`), the one that fires a timer
only after the turn's waiting input.

While the node's task waits on the disk thread for longer than a heartbeat interval (a slow
fsync or snapshot write), the ticker sends a leader's heartbeats itself (``_keepalive``), so a
stalled disk does not look like a dead leader.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from ..core.messages import Message
from ..core.raft import Raft
from ..core.ready import Role

if TYPE_CHECKING:
    from .deadlines import CommandDeadlines
    from .nodedisk import NodeDisk
    from .waiters import MembershipWaiters


class Ticker:
    """The ticks of one node's core, counted in the node's task and woken by :meth:`run`.

    ``raft`` is set once the core exists (before :meth:`run`). ``wake`` puts a tick item in the
    node's urgent inbox; ``send`` hands the keepalive heartbeats to the transport; ``retry_apply``
    runs the applier again once ``apply_retry_at`` (in ticks) has come. ``deadlines``,
    ``membership`` and ``disk`` are read only: when commands expire, whether membership
    waiters wait, whether the task waits on the disk (``disk.since``).
    """

    def __init__(
        self,
        tick_seconds: float,
        heartbeat_interval: int,
        stats: dict[str, Any],
        *,
        deadlines: CommandDeadlines,
        membership: MembershipWaiters,
        disk: NodeDisk,
        wake: Callable[[], None],
        send: Callable[[Sequence[Message]], None],
        retry_apply: Callable[[], None],
    ) -> None:
        self.tick_seconds = tick_seconds
        self._heartbeat_interval = heartbeat_interval
        self._stats = stats
        self._deadlines = deadlines
        self._membership = membership
        self._disk = disk
        self._wake = wake
        self._send = send
        self._retry_apply = retry_apply
        self.raft: Raft | None = None
        self.ticks = 0
        self.apply_retry_at: int | None = None  # the tick at which a failed apply is tried again
        self._keepalive_at = float("-inf")
        self._scope: trio.CancelScope | None = None  # the ticker's sleep
        self._last = 0.0  # when the last tick delivered was due
        self._held = False  # a timer's tick waits for this turn's input (catch_up)
        self._clock: trio.abc.Clock | None = None  # the run's clock, looked up once (start)

    def start(self, raft: Raft) -> None:
        """The core exists: count from now."""
        self.raft = raft
        self._clock = trio.lowlevel.current_clock()
        self._last = self._clock.current_time()

    async def run(self) -> None:
        """Wake the node's task when a tick is due to do something, not every tick: an idle
        follower wakes about once per election timeout, a leader once per heartbeat interval (a
        wake-up costs 100-200 us of CPU on a small VM). The node's task counts the ticks that
        passed at the start of each turn (``catch_up``)."""
        tick = self.tick_seconds
        woke = trio.current_time()
        while True:
            # Until the node's task has counted the ticks and set the next wake-up (rearm),
            # wake every tick: a task stuck on a slow disk still gets its keepalives.
            deadline = max(self._next_tick_at(), woke + tick)
            with trio.CancelScope(deadline=deadline) as self._scope:
                await trio.sleep_forever()
            woke = trio.current_time()
            if not self._wake_due(woke):
                continue  # turns since pushed the timer back (rearm only brings it forward)
            self._stats["ticker_wakeups"] += 1
            self._wake()
            if self._disk.since is not None:
                self._keepalive()

    def _wake_due(self, woke: float) -> bool:
        """Wake the node's task at ``woke``: a timer is due, or the task waits on the disk (keepalives)."""
        return self._disk.since is not None or self._next_tick_at() <= woke

    def catch_up(self, *, input_waits: bool) -> None:
        """Give the core the whole ticks that passed since the last ones; called at the start of a
        turn (``input_waits``: the turn has input, which may have come before a timer was due) and
        again after its input.

        Ticks that fire nothing are counted at once. The tick that fires a timer waits for the
        input and comes only if the timer is still due after it: a heartbeat that waited in the
        queue resets an election timer first, as it would have with a tick every 10 ms. Time
        overslept beyond one fired timer (a stalled loop) is dropped.
        """
        held, self._held = self._held, False
        assert self._clock is not None  # started
        now = self._clock.current_time()
        elapsed = int((now - self._last) / self.tick_seconds + 1e-9)
        if elapsed < 1:
            return
        due = self._ticks_due()
        if elapsed < due:
            self._give_ticks(elapsed)
        elif input_waits:
            self._give_ticks(due - 1)
            self._held = True
        elif held and due > 1:  # the input pushed the timer out: what it waited for was there all along
            self._last = now
        else:
            self._give_ticks(due)  # a timer fires
            rest = elapsed - due
            due = self._ticks_due()
            if rest < due:
                self._give_ticks(rest)
            else:
                self._give_ticks(due - 1)
                self._last = now

    def _give_ticks(self, count: int) -> None:
        if count < 1:
            return
        raft = self.raft
        assert raft is not None
        self._last += count * self.tick_seconds
        self.ticks += count
        for _ in range(count):
            raft.tick()
        if self._deadlines:
            self._deadlines.expire()
        if self.apply_retry_at is not None and self.ticks >= self.apply_retry_at:
            self.apply_retry_at = None
            self._retry_apply()

    def _ticks_due(self) -> int:
        """Ticks from the last one delivered until the core, a command deadline, an apply retry
        or a membership waiter needs the next."""
        raft = self.raft
        assert raft is not None  # the ticker starts once the core exists
        if self._membership:
            return 1
        due = raft.ticks_until_timer()
        if self.apply_retry_at is not None:
            due = min(due, self.apply_retry_at - self.ticks)
        if self._deadlines:
            due = min(due, math.ceil((self._deadlines.next - self._last) / self.tick_seconds - 1e-9))
        return max(1, due)

    def rearm(self) -> None:
        """After a turn: bring the ticker's wake-up forward if a timer now comes sooner (a new
        leader heartbeats sooner than a follower times out; an earlier command deadline). One
        that moved later — a heartbeat reset the election timer, as nearly every turn of a
        follower does — is left for the ticker, which then finds nothing due and sleeps on (run):
        moving trio's deadline costs more than that once per timeout."""
        scope = self._scope
        if scope is not None:
            at = self._next_tick_at()
            if at < scope.deadline:
                scope.deadline = at

    def _next_tick_at(self) -> float:
        return self._last + self._ticks_due() * self.tick_seconds

    def _keepalive(self) -> None:
        """The node's task has waited on the disk for a heartbeat interval (a slow fsync or
        snapshot): a leader sends its followers a heartbeat from here, so a disk stall does not
        look like a dead leader (``Raft.heartbeats``: read-only, safe in the middle of a turn)."""
        raft = self.raft
        since = self._disk.since
        if raft is None or raft.role is not Role.LEADER or since is None:
            return
        now = trio.current_time()
        interval = self._heartbeat_interval * self.tick_seconds
        if now - since < interval or now - self._keepalive_at < interval:
            return
        self._keepalive_at = now
        beats = raft.heartbeats()
        if beats:
            self._stats["keepalive_heartbeats"] += len(beats)
            self._send(beats)
