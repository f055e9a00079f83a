"""A seeded in-memory network with faults, for deterministic simulation.

Messages sent at tick ``t`` are due at ``t + delay`` (0 by default: delivered within the same
tick, in send order). Faults act per directed link and are set symmetrically by the helpers:
blocked links drop everything, including what was in flight when the block began; ``drop`` loses a fraction; ``delay`` adds ticks plus random
jitter (which also reorders); ``duplicate`` delivers a fraction twice. All randomness comes from
the seeded ``random.Random`` handed in.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from ..core.messages import Message


@dataclass(slots=True)
class LinkFaults:
    blocked: bool = False
    drop: float = 0.0
    delay: int = 0
    jitter: int = 0
    duplicate: float = 0.0



@dataclass
class SimNetwork:
    rng: random.Random
    links: dict[tuple[str, str], LinkFaults] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {"sent": 0, "delivered": 0, "dropped": 0, "duplicated": 0})
    _queue: list[tuple[int, int, Message]] = field(default_factory=list)
    _seq: int = 0

    def link(self, src: str, dst: str) -> LinkFaults:
        faults = self.links.get((src, dst))
        if faults is None:
            faults = self.links[(src, dst)] = LinkFaults()
        return faults

    def send(self, m: Message, now: int) -> None:
        self.stats["sent"] += 1
        faults = self.links.get((m.src, m.dst))
        if faults is None:
            self._push(now, m)
            return
        if faults.blocked or (faults.drop and self.rng.random() < faults.drop):
            self.stats["dropped"] += 1
            return
        copies = 2 if faults.duplicate and self.rng.random() < faults.duplicate else 1
        if copies == 2:
            self.stats["duplicated"] += 1
        for _ in range(copies):
            jitter = self.rng.randint(0, faults.jitter) if faults.jitter else 0
            self._push(now + faults.delay + jitter, m)

    def _push(self, due: int, m: Message) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (due, self._seq, m))

    def pop_due(self, now: int) -> Message | None:
        """The next message due at or before ``now``, or None. A link blocked meanwhile loses it."""
        queue = self._queue
        while queue and queue[0][0] <= now:
            m = heapq.heappop(queue)[2]
            faults = self.links.get((m.src, m.dst))
            if faults is not None and faults.blocked:
                self.stats["dropped"] += 1
                continue
            self.stats["delivered"] += 1
            return m
        return None

    def heal(self) -> None:
        """Clear every fault (messages already in flight keep their delivery time)."""
        self.links.clear()
