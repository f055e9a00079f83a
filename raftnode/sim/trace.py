"""The simulator's story of a run: one typed line per event, and the filter ``sim --trace`` applies.

A line carries its tick, the node it happened at (None for the network), its kind (one of
``TRACE_KINDS``) and the nodes a network fault touches, so a filter needs no parsing of text;
``str(line)`` is the column layout ``raftctl sim --trace`` prints.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

# The core's own event kinds (``Raft._event``), told as they happen at a node.
CORE_KINDS = ("election", "leader", "lost-entries", "membership", "pre-vote", "removed", "snapshot", "step-down",
              "transfer")
# What the simulator itself tells: faults it injects, client traffic, commits and applies.
SIM_KINDS = ("network", "crash", "restart", "join", "disk", "propose", "read", "answer", "commit", "apply")
TRACE_KINDS = tuple(sorted({*CORE_KINDS, *SIM_KINDS}))

TRACE_HEADER = f"{'tick':>6} {'node':<4} {'role':<13} {'term':<5} {'commit':<7} what"


@dataclass(frozen=True)
class TraceLine:
    """One event of a simulated run. ``state`` is the node's role/term/commit columns (blank for a
    down node or the network); ``about`` names the nodes a network fault touches (empty: all)."""

    tick: int
    node: str | None
    kind: str
    text: str
    state: str = ""
    about: tuple[str, ...] = ()

    def concerns(self, node_id: str) -> bool:
        """True if the event happened at ``node_id`` or is a network fault touching it."""
        if self.node is not None:
            return self.node == node_id
        return not self.about or node_id in self.about

    def __str__(self) -> str:
        return f"{self.tick:>6} {self.node or '-':<4} {self.state or '':<27} {self.text}"


@dataclass(frozen=True)
class TraceFilter:
    """Which lines ``sim --trace`` shows: any of ``nodes`` (none: all), any of ``kinds`` (none:
    all), ticks in ``from_tick..to_tick`` inclusive (None: unbounded)."""

    nodes: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    from_tick: int | None = None
    to_tick: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(self.kinds - set(TRACE_KINDS))
        if unknown:
            raise ValueError(f"unknown trace kind {unknown[0]!r}; kinds are {', '.join(TRACE_KINDS)}")
        if self.from_tick is not None and self.to_tick is not None and self.from_tick > self.to_tick:
            raise ValueError(f"--from-tick {self.from_tick} is after --to-tick {self.to_tick}")

    def check_nodes(self, known: Collection[str]) -> None:
        """Raise ValueError naming the first of ``nodes`` the run never had, and the ids it had."""
        unknown = sorted(self.nodes - set(known))
        if unknown:
            raise ValueError(f"unknown node {unknown[0]!r}; nodes are {', '.join(sorted(known))}")

    def __call__(self, line: TraceLine) -> bool:
        if self.from_tick is not None and line.tick < self.from_tick:
            return False
        if self.to_tick is not None and line.tick > self.to_tick:
            return False
        if self.kinds and line.kind not in self.kinds:
            return False
        return not self.nodes or any(line.concerns(n) for n in self.nodes)
