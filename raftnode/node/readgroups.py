"""The queries one client connection sent together, asked of the node as one read per group.

A connection's reader gathers the well-formed queries of the frames it has just read, grouped by
(command, timeout); it then hands each group to the node as a single read (``submit_query``), and
the one answer goes out to every request of the group, each under its own id. The node then
spends one proposal, one deadline, one read index and one wake-up per group instead of per
request: the client endpoint's reads cost little more than decoding the request and writing the
answer.

Linearizable all the same: a group is handed over only after all of its requests arrived, so
the read index the node takes for it (at or after the hand-over) covers every write acknowledged
before any of them was sent. A group handed over is never joined again: a query that arrives
later goes into a new group (``tests/runtime/test_read_groups.py`` plants that bug and shows a
stale read).

A ``query_many`` request's queries join the same groups (``add_batch``): each distinct command
of the frame once, with the positions it holds, under the request's ``BatchReads``, which sends
one answer frame when every position has its outcome. The same rule keeps them linearizable:
the whole frame arrived before its groups are handed over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class ReadGroups:
    """The queries read from one connection and not yet handed to the node, by (command, timeout)."""

    __slots__ = ("_groups", "_last", "_batched")

    def __init__(self) -> None:
        self._groups: dict[tuple[str, float], list[Any]] = {}
        self._last: tuple[str, float, list[Any]] | None = None  # the group added to last
        self._batched: dict[tuple[str, float], list[tuple[BatchReads, Sequence[int]]]] = {}

    def __bool__(self) -> bool:
        return bool(self._groups)

    def add(self, command: str, timeout: float, request_id: Any) -> None:
        """Queue the query ``command`` (its client's ``timeout`` in seconds) answered under ``request_id``."""
        last = self._last
        if last is not None and last[0] == command and last[1] == timeout:  # most often: the same as before
            last[2].append(request_id)
            return
        ids = self._groups.get((command, timeout))
        if ids is None:
            ids = self._groups[command, timeout] = [request_id]
        else:
            ids.append(request_id)
        self._last = (command, timeout, ids)

    def add_batch(self, command: str, timeout: float, batch: BatchReads, positions: Sequence[int]) -> None:
        """Queue the query ``command`` of a query_many, answered at ``positions`` of ``batch``."""
        key = (command, timeout)
        waiting = self._batched.get(key)
        if waiting is None:
            self._batched[key] = [(batch, positions)]
            self._groups.setdefault(key, [])
        else:
            waiting.append((batch, positions))

    def take(self) -> list[tuple[str, float, list[Any], list[tuple[BatchReads, Sequence[int]]]]]:
        """Every group, as (command, timeout, request ids in arrival order, the query_many
        batches and positions it answers); none is kept."""
        batched = self._batched
        groups = [(command, timeout, ids, batched.get((command, timeout), _NONE))
                  for (command, timeout), ids in self._groups.items()]
        self._groups = {}
        self._batched = {}
        self._last = None
        return groups


_NONE: list[Any] = []  # a group with no query_many in it (never appended to)


class BatchReads:
    """The outcomes of one query_many's queries, gathered until each has one; then
    ``on_done(results)`` is called, once."""

    __slots__ = ("results", "waiting", "on_done")

    def __init__(self, count: int, on_done: Callable[[list[Any]], None]) -> None:
        self.results: list[Any] = [None] * count
        self.waiting = count
        self.on_done = on_done

    def fill(self, positions: Sequence[int], result: Any) -> None:
        """``result`` is the outcome of the queries at ``positions`` (each filled once)."""
        results = self.results
        for position in positions:
            results[position] = result
        self.waiting -= len(positions)
        if not self.waiting:
            self.on_done(results)
