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
"""

from __future__ import annotations

from typing import Any


class ReadGroups:
    """The queries read from one connection and not yet handed to the node, by (command, timeout)."""

    __slots__ = ("_groups", "_last")

    def __init__(self) -> None:
        self._groups: dict[tuple[str, float], list[Any]] = {}
        self._last: tuple[str, float, list[Any]] | None = None  # the group added to last

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

    def take(self) -> list[tuple[str, float, list[Any]]]:
        """Every group, as (command, timeout, request ids in arrival order); none is kept."""
        groups = [(command, timeout, ids) for (command, timeout), ids in self._groups.items()]
        self._groups = {}
        self._last = None
        return groups
