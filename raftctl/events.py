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
  them, snapshots, apply errors — which each node appends to its own bounded, rotating file
  ``<state_dir>/events/<id>.jsonl`` (``raftnode.node.eventlog``), so a killed node's history stays;
  merged with what running nodes still hold in memory (the ``recent_events`` op, the last 200
  per node) or, with ``--follow``, streamed (the ``events`` op) from every node the cluster file
  names as ``add-node``/``remove-node`` change it (``raftctl.follow``).

Every event is a dict ``{"time", "node", "kind", "detail", "source"}`` with ``source`` ``raftctl``
or ``node``; ``node`` is None for cluster-wide actions (``heal``).
"""

from __future__ import annotations

import datetime
import json
import os
import re
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


def node_files(paths: StatePaths) -> list[Event]:
    """Every event the nodes wrote to their event files (killed and removed nodes included)."""
    from raftnode.node.eventlog import read_events

    found: list[Event] = []
    for path in sorted(paths.node_events.glob("*.jsonl")):
        found.extend(from_node(document, path.stem) for document in read_events(path))
    return found


def select(items: Iterable[Event], *, nodes: Iterable[str] | None = None, kinds: Iterable[str] | None = None,
           since: float | None = None) -> list[Event]:
    """The events of ``nodes`` (cluster-wide ones too), of ``kinds``, at ``since`` or later."""
    node_set = None if nodes is None else set(nodes)
    kind_set = None if kinds is None else set(kinds)
    return [
        e for e in items
        if (node_set is None or e.get("node") in node_set or e.get("node") is None)
        and (kind_set is None or e["kind"] in kind_set)
        and (since is None or e["time"] >= since)
    ]


_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """``--since``: ``90s``/``5m``/``2h``/``1d`` ago, or a local date and time
    (``2026-12-07 13:05``, ``2026-12-07T13:05:00``) as a POSIX time.

    Raises:
        ValueError: neither form.
    """
    ago = _AGO.match(text.strip())
    if ago:
        return now - float(ago.group(1)) * _UNITS[ago.group(2)]
    try:
        return datetime.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration ago (90s, 5m, 2h, 1d) nor a date and time "
                         "(2026-12-07 13:05)") from None


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
