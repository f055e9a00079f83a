"""The audit log: what raftctl did to the cluster, merged with what the nodes report.

Theory of operation
-------------------
Two sources feed ``raftctl events``:

- raftctl's own actions — processes started, stopped and killed, faults injected and cleared,
  leadership transfers, snapshots — which every invocation appends to ``<state_dir>/events.jsonl``
  as one JSON object per line (one ``write`` on a file opened for appending, so concurrent
  invocations do not interleave within a line). They survive node restarts and ``down``; only
  ``down --purge`` deletes them.
- the nodes' own events — elections, role and leader changes, commit rates, faults as the node saw
  them, snapshots, apply errors — fetched from every running node (the ``recent_events`` op, the
  last 200 per node) or, with ``--follow``, streamed (the ``events`` op) from every node the
  cluster file names as ``add-node``/``remove-node`` change it (``raftctl.follow``). A node keeps
  them in memory, so a node that is down contributes nothing and a restarted one starts afresh;
  what raftctl did to it is still in the file.

Every event is a dict ``{"time", "node", "kind", "detail", "source"}`` with ``source`` ``raftctl``
or ``node``; ``node`` is None for cluster-wide actions (``heal``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .supervisor import StatePaths

Event = dict[str, Any]


def make_event(kind: str, detail: str, *, node: str | None = None, source: str = "raftctl", at: float | None = None) -> Event:
    return {"time": time.time() if at is None else at, "node": node, "kind": kind, "detail": detail, "source": source}


def record(paths: StatePaths, kind: str, detail: str, *, node: str | None = None) -> Event:
    """Append one of raftctl's actions to the audit log; returns the event."""
    event = make_event(kind, detail, node=node)
    paths.root.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(event) + "\n").encode()
    fd = os.open(paths.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return event


def read_log(path: Path) -> list[Event]:
    """Every well-formed event in the audit log file (none if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return list(parse_lines(text.splitlines()))


def parse_lines(lines: Iterable[str]) -> Iterator[Event]:
    """The events among ``lines`` of the audit log; a torn or foreign line is skipped."""
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "time" in event and "kind" in event:
            event.setdefault("source", "raftctl")
            event.setdefault("node", None)
            event.setdefault("detail", "")
            yield event


def from_node(document: dict[str, Any], node: str) -> Event:
    """A node's event (``NodeEvent.to_dict()``) as an audit-log event."""
    return make_event(
        str(document.get("kind", "?")),
        str(document.get("detail", "")),
        node=str(document.get("node") or node),
        source="node",
        at=float(document.get("time") or 0.0),
    )


def key(event: Event) -> tuple[Any, ...]:
    """Identity of an event, to drop the copies a re-subscription replays."""
    return (event["time"], event.get("node"), event["kind"], event.get("detail"), event.get("source"))


def merge(*sources: Iterable[Event]) -> list[Event]:
    """All events of ``sources`` without duplicates, oldest first."""
    seen = {}
    for source in sources:
        for event in source:
            seen.setdefault(key(event), event)
    return sorted(seen.values(), key=lambda e: (e["time"], e.get("source") != "raftctl"))


def format_time(at: float) -> str:
    """``2026-11-29 06:39:50.155`` in local time."""
    seconds, millis = divmod(round(at * 1000), 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{millis:03d}"


class LogFollower:
    """Reads the lines appended to a file since the last call (handles truncation and creation)."""

    def __init__(self, path: Path, *, from_end: bool = True) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._inode: int | None = None
        if from_end:
            try:
                stat = path.stat()
                self._offset, self._inode = stat.st_size, stat.st_ino
            except FileNotFoundError:
                pass

    def read_new(self) -> list[str]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._offset, self._partial, self._inode = 0, b"", stat.st_ino  # replaced or truncated
        if stat.st_size == self._offset:
            return []
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [line.decode(errors="replace") for line in lines]
