"""``raftctl watch``'s feed: events in time order, with repeats collapsed into one counting line.

A partitioned node asks for pre-votes every election timeout ("pre-vote for term 2", several
times a second); one line per attempt would push the faults and leader changes out of view. So
an event whose node, kind and detail equal those of a line shown within the last
``COALESCE_SECONDS`` does not add a line: that line's ``count`` grows and it moves to the
bottom with the new time ("pre-vote for term 2 ×37"). Anything else is inserted at its place
in time order (sources deliver late: the status poller, the nodes, the audit log).

For a stream of plain lines (``watch`` into a file or a pipe) :meth:`Feed.add` tells whether an
event deserves a line: the first of a run, then when the count reaches 2, 10, 100, 1000...
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any

#: Repeats within this many seconds of the last shown line join it.
COALESCE_SECONDS = 30.0
#: Lines the feed keeps.
FEED_LINES = 500

Event = dict[str, Any]


def _repeat_key(event: Event) -> tuple[Any, ...]:
    return (event.get("node"), event.get("kind"), event.get("detail"), event.get("source"))


def worth_a_line(count: int) -> bool:
    """For plain streams: print the 1st, 2nd, 10th, 100th, ... occurrence of a repeat."""
    if count <= 2:
        return True
    while count % 10 == 0:
        count //= 10
    return count == 1


class Feed:
    """The lines of the feed, oldest first (iterate, ``len``); see the module docstring."""

    def __init__(self, maxlen: int = FEED_LINES, coalesce_seconds: float = COALESCE_SECONDS) -> None:
        self.lines: deque[Event] = deque(maxlen=maxlen)
        self.coalesce_seconds = coalesce_seconds
        self._last: dict[tuple[Any, ...], Event] = {}

    def add(self, event: Event) -> tuple[Event, bool]:
        """Add ``event``; returns the line that shows it and whether it is a new line."""
        key = _repeat_key(event)
        shown = self._last.get(key)
        if shown is not None and event["time"] - shown["time"] <= self.coalesce_seconds and self._remove(shown):
            line = {**shown, "time": max(shown["time"], event["time"]), "count": shown.get("count", 1) + 1}
            self._insert(line)
            self._last[key] = line
            return line, False
        line = dict(event)
        self._insert(line)
        self._last[key] = line
        if len(self._last) > 4 * self.lines.maxlen:  # type: ignore[operator]
            self._last = {_repeat_key(e): e for e in self.lines}
        return line, True

    def _remove(self, line: Event) -> bool:
        """Take ``line`` (this very object) out; False if it already scrolled away."""
        for i, existing in enumerate(self.lines):
            if existing is line:
                del self.lines[i]
                return True
        return False

    def _insert(self, line: Event) -> None:
        """Put ``line`` at its place in time order (the oldest line goes when the feed is full)."""
        if not self.lines or self.lines[-1]["time"] <= line["time"]:
            self.lines.append(line)
            return
        if len(self.lines) == self.lines.maxlen:
            self.lines.popleft()
        times = [e["time"] for e in self.lines]
        self.lines.insert(bisect.bisect_right(times, line["time"]), line)

    def __iter__(self) -> Any:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, index: int) -> Event:
        return self.lines[index]
