"""``raftctl watch``: a live view of the cluster, driven from trio.

Theory of operation
-------------------
Independent trio tasks keep a :class:`WatchState` current and one task draws it:

- the poller takes a status picture every ``interval`` and derives events the nodes cannot
  report themselves: a node died or came back, the cluster's leader changed, and the commit rate
  (from the highest commit index over the last seconds);
- one subscriber per node streams the node's own events (elections, role changes, faults,
  snapshots, apply errors); when the node dies the subscription ends and is retried every half
  second, so a node that comes back reappears by itself;
- the audit-log tailer picks up what other raftctl invocations do (kills, partitions...);
- membership changes: when ``add-node``/``remove-node`` rewrite the cluster file, the poller
  reads it again, the table shows the nodes it now names, a subscriber starts for each new node
  and the subscriber of a removed node stops (``raftctl.follow.Members``, which
  ``events --follow`` uses too);
- the drawer renders ``render.dashboard`` and hands it to ``rich.live.Live`` with
  ``refresh=True`` every ``interval`` (4 times a second by default). ``Live`` is created
  (``render.terminal.open_live``) with ``auto_refresh=False``, so no refresh thread competes
  with trio and a frame is drawn only when it is complete — no flicker.

A slow or hung node delays only its own status answer (bounded by a timeout), never the drawing.
Ctrl-C raises KeyboardInterrupt out of ``trio.run``; the ``Live`` context around it restores the
terminal and the CLI exits 0.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from rich.console import Console
from rich.live import Live

from raftnode.config import ClusterConfig

from . import events, follow, render, supervisor
from .feed import Feed, FeedStream
from .cluster import session
from .model import ClusterStatus

#: Seconds between two frames (and two status pictures): 4 frames a second.
DEFAULT_INTERVAL = 0.25
#: Node event kinds not worth a line in the feed (the header shows the commit rate).
QUIET_KINDS = frozenset({"commit"})


@dataclass
class WatchState:
    """What the screen shows; updated by the tasks, read by the drawer."""

    status: ClusterStatus | None = None
    feed: Feed = field(default_factory=Feed)
    commit_samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))
    frames: int = 0

    def commit_rate(self, window: float = 2.0) -> float | None:
        """Commits per second over the last ``window`` seconds, None until two samples exist."""
        if len(self.commit_samples) < 2:
            return None
        newest_at, newest = self.commit_samples[-1]
        oldest_at, oldest = next(
            ((at, idx) for at, idx in self.commit_samples if newest_at - at <= window), self.commit_samples[-2]
        )
        if newest_at <= oldest_at:
            return 0.0
        return max(0, newest - oldest) / (newest_at - oldest_at)


def derive_events(before: ClusterStatus | None, after: ClusterStatus, *, at: float) -> list[dict[str, Any]]:
    """Events the difference between two pictures shows: deaths, returns, leader changes."""
    found = []
    if before is not None:
        old_rows = {row.id: row for row in before.nodes}  # by id: a membership change alters the list
        for new in after.nodes:
            old = old_rows.get(new.id)
            if old is None:
                continue
            if old.alive and not new.alive:
                found.append(events.make_event("died", f"stopped answering (was {old.role})", node=new.id, source="watch", at=at))
            elif new.alive and not old.alive:
                found.append(events.make_event("returned", f"answering again as {new.role} in term {new.term}", node=new.id, source="watch", at=at))
    old_leader = before.leader_row if before is not None else None
    new_leader = after.leader_row
    old_id = old_leader.id if old_leader else None
    new_id = new_leader.id if new_leader else None
    if old_id != new_id and (before is not None or new_id is not None):
        if before is None:
            detail = f"leader is {new_id} (term {new_leader.term})"
        elif new_leader is not None:
            detail = f"leader {old_id or 'none'} -> {new_id} (term {new_leader.term})"
        else:
            detail = f"leader {old_id} lost; no leader"
        found.append(events.make_event("leader-change", detail, node=new_id or old_id, source="watch", at=at))
    return found


class Watcher:
    """Keeps a WatchState current (see the module docstring); ``on_event`` sees the records of a
    stream (``feed.FeedStream``: repeats collapsed, each with its ``count``); ``close`` hands it
    the final counts not yet seen."""

    def __init__(self, config: ClusterConfig, *, interval: float = DEFAULT_INTERVAL,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.interval = interval
        self.state = WatchState()
        self.on_event = on_event
        self.stream = FeedStream(self.state.feed) if on_event is not None else None
        self.started_at = time.time()
        self._seen = follow.RecentKeys()
        #: The cluster file's nodes, one event subscriber each (``follow.Members``).
        self.members = follow.Members(config, self._add_new)

    @property
    def config(self) -> ClusterConfig:
        """The cluster file as last read."""
        return self.members.config

    @property
    def _subscriptions(self) -> dict[str, trio.CancelScope]:
        """The node ids followed now, each with its subscriber's scope."""
        return self.members.subscriptions

    def add(self, event: dict[str, Any]) -> None:
        if not self._seen.fresh(event):
            return
        if event.get("kind") in QUIET_KINDS and event.get("source") == "node":
            return
        if self.stream is None or self.on_event is None:
            self.state.feed.add(event)
            return
        for record in self.stream.offer(event):
            self.on_event(record)

    def close(self) -> None:
        """The watch ends: hand ``on_event`` the final counts of runs it has not seen."""
        if self.stream is not None and self.on_event is not None:
            for record in self.stream.close():
                self.on_event(record)

    def _add_new(self, event: events.Event) -> None:
        """A node's event, if it happened since the watch began (a re-subscription replays none)."""
        if event["time"] >= self.started_at:
            self.add(event)

    async def run(self) -> None:
        """Run the poller, subscribers and tailer until cancelled."""
        async with trio.open_nursery() as nursery:
            self.members.start(nursery)
            nursery.start_soon(self._poll)
            audit_log = events.LogFollower(supervisor.StatePaths.of(self.config).events, from_end=True)
            nursery.start_soon(follow.tail_audit_log, audit_log, self.add, self.interval)

    async def _poll(self) -> None:
        while True:
            # Until the file read last (by us; None at first) is the file on disk: a change made
            # before the first look, or while a reload failed, is still picked up.
            async with session(self.config, connect_timeout=min(0.5, self.interval * 2)) as s:
                while self.members.stamp() == self.members.loaded:
                    began = trio.current_time()
                    status = await s.status(timeout=max(0.3, self.interval * 2))
                    now = time.time()
                    for event in derive_events(self.state.status, status, at=now):
                        self.add(event)
                    self.state.status = status
                    commits = [r.commit_index for r in status.alive if r.commit_index is not None]
                    if commits:
                        self.state.commit_samples.append((now, max(commits)))
                    await trio.sleep_until(began + self.interval)
            if not self.members.reload():
                await trio.sleep(self.interval)


def frame(watcher: Watcher, console: Console) -> Any:
    """The renderable for the current state, sized to the console."""
    state = watcher.state
    nodes = len(watcher.config.nodes)
    feed_lines = max(3, (console.size.height or 40) - nodes - 12)
    problem = None
    if state.status is not None and not state.status.any_alive:
        problem = "no node answers: the cluster is not running (start it with `raftctl up`)"
    return render.dashboard(
        state.status,
        state.feed,
        commit_rate=state.commit_rate(),
        clock=time.strftime("%H:%M:%S"),
        feed_lines=feed_lines,
        problem=problem,
    )


async def watch(config: ClusterConfig, live: Live, *, interval: float = DEFAULT_INTERVAL, duration: float | None = None) -> int:
    """Draw the dashboard into ``live`` every ``interval`` until cancelled or ``duration`` passes.

    Returns the number of frames drawn.
    """
    watcher = Watcher(config, interval=interval)
    with trio.move_on_after(duration if duration is not None else float("inf")):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run)
            while True:
                live.update(frame(watcher, live.console), refresh=True)
                watcher.state.frames += 1
                await trio.sleep(interval)
    live.update(frame(watcher, live.console), refresh=True)
    return watcher.state.frames


async def watch_stream(config: ClusterConfig, emit: Callable[[dict[str, Any]], None], *,
                       interval: float = DEFAULT_INTERVAL, duration: float | None = None) -> None:
    """``watch`` as a stream of records (``-o json``/``jsonl``, or into a file or pipe): ``emit``
    each feed line as it happens, repeats collapsed with their ``count`` (``feed.FeedStream``);
    at the end (``duration``, Ctrl-C) the final counts not yet emitted."""
    watcher = Watcher(config, interval=interval, on_event=emit)
    try:
        with trio.move_on_after(duration if duration is not None else float("inf")):
            await watcher.run()
    finally:
        watcher.close()
