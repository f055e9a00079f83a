"""The network-fault verbs of the simulated cluster's scenario vocabulary.

``cut``, ``isolate``, ``partition``, ``drop``, ``delay``, ``reorder``, ``duplicate`` and
``heal`` set the faults of the directed links of :class:`SimNetwork`, both directions at once,
and trace what they did. A mixin of :class:`SimCluster`: it needs ``network``, ``ids`` and
``_log``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from .network import SimNetwork

if TYPE_CHECKING:
    from .node import SimNode


class NetworkFaults:
    """Faults on the links between simulated nodes."""

    network: SimNetwork
    ids: tuple[str, ...]

    _log: Callable[[SimNode | None, str], None]

    def _links(self, a: str, b: str | None) -> Iterable[tuple[str, str]]:
        others = [b] if b is not None else [n for n in self.ids if n != a]
        for other in others:
            yield a, other
            yield other, a

    def cut(self, a: str, b: str) -> None:
        """Block both directions between ``a`` and ``b``."""
        for src, dst in self._links(a, b):
            self.network.link(src, dst).blocked = True
        self._log(None, f"cut {a} <-> {b}")

    def isolate(self, node_id: str) -> None:
        """Block every link of ``node_id``."""
        for src, dst in self._links(node_id, None):
            self.network.link(src, dst).blocked = True
        self._log(None, f"isolate {node_id}")

    def partition(self, *groups: Sequence[str]) -> None:
        """Blockade semantics: nodes in different groups cannot talk; unnamed nodes form one more group."""
        named = {n for g in groups for n in g}
        all_groups = [set(g) for g in groups] + [set(self.ids) - named]
        side = {n: i for i, g in enumerate(all_groups) for n in g}
        for a in self.ids:
            for b in self.ids:
                if a != b and side[a] != side[b]:
                    self.network.link(a, b).blocked = True
        self._log(None, f"partition {' | '.join(','.join(sorted(g)) for g in all_groups if g)}")

    def drop(self, a: str, b: str | None = None, rate: float = 0.5) -> None:
        """Lose ``rate`` of the messages on the links between ``a`` and ``b`` (all of ``a``'s if None)."""
        for src, dst in self._links(a, b):
            self.network.link(src, dst).drop = rate
        self._log(None, f"drop {rate:.0%} {a} <-> {b or '*'}")

    def delay(self, a: str, b: str | None = None, ticks: int = 3, jitter: int = 0) -> None:
        for src, dst in self._links(a, b):
            faults = self.network.link(src, dst)
            faults.delay, faults.jitter = ticks, jitter
        self._log(None, f"delay {ticks}+{jitter} ticks {a} <-> {b or '*'}")

    def reorder(self, a: str, b: str | None = None, jitter: int = 3) -> None:
        """Deliver messages on these links out of order (random jitter of up to ``jitter`` ticks)."""
        for src, dst in self._links(a, b):
            self.network.link(src, dst).jitter = jitter
        self._log(None, f"reorder (jitter {jitter}) {a} <-> {b or '*'}")

    def duplicate(self, a: str, b: str | None = None, rate: float = 0.5) -> None:
        for src, dst in self._links(a, b):
            self.network.link(src, dst).duplicate = rate
        self._log(None, f"duplicate {rate:.0%} {a} <-> {b or '*'}")

    def heal(self) -> None:
        """Remove every network fault (crashed nodes stay crashed)."""
        self.network.heal()
        self._log(None, "heal")
