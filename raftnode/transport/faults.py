"""Fault injection around any transport: partitions, loss, delay with jitter, duplication.

Each node applies its own faults to both directions of its links, so ``slow n2`` needs only n2
to be told: n2 delays what it sends and what it receives. A partition is a set of peers this
node neither sends to nor accepts from; the admin endpoint sets it on every node of a side.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from ..core.messages import Message
from . import Deliver, Transport


@dataclass
class Faults:
    """The faults on this node's links (percentages are 0..100)."""

    partitioned_from: set[str] = field(default_factory=set)
    drop_pct: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    duplicate_pct: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["partitioned_from"] = sorted(self.partitioned_from)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Faults:
        """Validate an admin request; raises ValueError naming the bad field."""
        unknown = set(d) - {"partitioned_from", "drop_pct", "delay_ms", "jitter_ms", "duplicate_pct"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        faults = cls()
        peers = d.get("partitioned_from", [])
        if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
            raise ValueError("partitioned_from must be a list of node ids")
        faults.partitioned_from = set(peers)
        for name in ("drop_pct", "duplicate_pct"):
            value = d.get(name, 0)
            if not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise ValueError(f"{name} must be a number from 0 to 100, got {value!r}")
            setattr(faults, name, float(value))
        for name in ("delay_ms", "jitter_ms"):
            value = d.get(name, 0)
            if not isinstance(value, (int, float)) or not 0 <= value <= 60_000:
                raise ValueError(f"{name} must be a number of milliseconds from 0 to 60000, got {value!r}")
            setattr(faults, name, float(value))
        return faults

    def any(self) -> bool:
        return self != Faults()


class FaultyTransport:
    """Wraps ``inner``; faults start clear and change at run time through ``faults``."""

    def __init__(self, inner: Transport, *, rng: random.Random | None = None):
        self.inner = inner
        self.faults = Faults()
        self._rng = rng or random.Random()
        self._nursery: trio.Nursery | None = None
        self._stats = {"fault_dropped": 0, "fault_duplicated": 0, "fault_delayed": 0}
        self._inner_cork = getattr(inner, "cork", None)  # looked up once: the inner transport is fixed
        self._inner_uncork = getattr(inner, "uncork", None)

    def send(self, message: Message) -> None:
        self._through(message, self.inner.send, message.dst)

    def cork(self) -> None:
        """Passed on to the inner transport, if it gathers sends (see ``TcpTransport.cork``)."""
        if self._inner_cork is not None:
            self._inner_cork()

    def uncork(self) -> None:
        if self._inner_uncork is not None:
            self._inner_uncork()

    def add_peers(self, peers: dict[str, Any]) -> None:
        """Passed on to the inner transport, if its peers can grow (see ``TcpTransport.add_peers``)."""
        add_peers = getattr(self.inner, "add_peers", None)
        if add_peers is not None:
            add_peers(peers)

    async def run(self, deliver: Deliver, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.inner.run, lambda m: self._through(m, deliver, m.src))
            task_status.started()

    def stats(self) -> dict[str, Any]:
        return {**self.inner.stats(), **self._stats}

    def _through(self, message: Message, forward: Deliver, peer: str) -> None:
        faults, rng = self.faults, self._rng
        if not (faults.partitioned_from or faults.drop_pct or faults.duplicate_pct or faults.delay_ms or faults.jitter_ms):
            forward(message)  # no faults (the usual case): read afresh each time, they change in place
            return
        if peer in faults.partitioned_from or (faults.drop_pct and rng.random() * 100 < faults.drop_pct):
            self._stats["fault_dropped"] += 1
            return
        copies = 1
        if faults.duplicate_pct and rng.random() * 100 < faults.duplicate_pct:
            copies = 2
            self._stats["fault_duplicated"] += 1
        for _ in range(copies):
            delay = faults.delay_ms + (rng.uniform(0, faults.jitter_ms) if faults.jitter_ms else 0.0)
            if delay > 0 and self._nursery is not None:
                self._stats["fault_delayed"] += 1
                self._nursery.start_soon(_later, delay / 1000, forward, message)
            else:
                forward(message)


async def _later(seconds: float, forward: Deliver, message: Message) -> None:
    await trio.sleep(seconds)
    forward(message)
