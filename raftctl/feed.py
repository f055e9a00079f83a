"""``raftctl watch``'s feed: events in time order, with repeats collapsed into one counting line.

A partitioned node asks for pre-votes every election timeout ("pre-vote for term 2", several
times a second); one line per attempt would push the faults and leader changes out of view. So
an event whose node, kind and detail equal those of a line shown within the last
``COALESCE_SECONDS`` does not add a line: that line's ``count`` grows and it moves to the
bottom with the new time ("pre-vote for term 2 ×37"). Anything else is inserted at its place
in time order (sources deliver late: the status poller, the nodes, the audit log).

For a stream of records (``watch`` into a file or a pipe, ``watch -o jsonl``, ``events -f``),
:class:`FeedStream` says which lines to print and when: the first of a run, then the run again
when its count reaches 2, 10, 100, 1000..., and its final count once the run is over (a later
event shows its window passed, or the stream ends). Every record carries ``count`` (occurrences
so far, cumulative: a record with a count replaces the earlier ones of its run) and ``first``
(the time of the run's first occurrence); ``time`` is its latest.
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
            line = {**shown, "time": max(shown["time"], event["time"]), "count": shown.get("count", 1) + 1,
                    "first": shown.get("first", shown["time"])}
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


class FeedStream:
    """The records a stream prints for a sequence of events (see the module docstring)."""

    def __init__(self, feed: Feed | None = None) -> None:
        self.feed = feed if feed is not None else Feed()
        #: Each open run's latest line and the count last printed of it.
        self._open: dict[tuple[Any, ...], tuple[Event, int]] = {}

    def offer(self, event: Event) -> list[Event]:
        """Add ``event``; returns the records to print now, oldest first: the final counts of
        runs its time shows are over, then its own line if it deserves one."""
        out = self._closed_before(event["time"])
        line, new = self.feed.add(event)
        key = _repeat_key(line)
        previous = self._open.pop(key, None)
        printed = 0
        if previous is not None and new:  # a run that scrolled away, or an event delivered late
            out += _final(*previous)
        elif previous is not None:
            printed = previous[1]
        count = line.get("count", 1)
        if worth_a_line(count):
            out.append(_record(line))
            printed = count
        self._open[key] = (line, printed)
        return out

    def close(self) -> list[Event]:
        """The stream ends: the final counts not printed yet, oldest first."""
        return self._closed_before(float("inf"))

    def _closed_before(self, now: float) -> list[Event]:
        over = [key for key, (line, _) in self._open.items() if now - line["time"] > self.feed.coalesce_seconds]
        finals = [record for key in over for record in _final(*self._open.pop(key))]
        return sorted(finals, key=lambda line: line["time"])


def _final(line: Event, printed: int) -> list[Event]:
    """The final record of a run that is over, unless its count was printed already."""
    return [_record(line)] if line.get("count", 1) > printed else []


def _record(line: Event) -> Event:
    """The printed form of a feed line: with ``count`` and ``first`` always present."""
    return {**line, "count": line.get("count", 1), "first": line.get("first", line["time"])}
