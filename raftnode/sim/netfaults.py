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

    _log: Callable[..., None]  # (node, what, kind, about=())

    def _links(self, a: str, b: str | None) -> Iterable[tuple[str, str]]:
        others = [b] if b is not None else [n for n in self.ids if n != a]
        for other in others:
            yield a, other
            yield other, a

    def _set(self, a: str, b: str | None, what: str, about: tuple[str, ...] | None = None, **faults: object) -> None:
        """Set ``faults`` (LinkFaults fields) on both directions of the links between ``a`` and
        ``b`` (all of ``a``'s if None), and trace ``what`` as touching ``about`` (default: the
        nodes at the ends of those links)."""
        for src, dst in self._links(a, b):
            link = self.network.link(src, dst)
            for name, value in faults.items():
                setattr(link, name, value)
        self._log(None, what, "network", about if about is not None else _pair(a, b, self.ids))

    def cut(self, a: str, b: str) -> None:
        """Block both directions between ``a`` and ``b``."""
        self._set(a, b, f"cut {a} <-> {b}", blocked=True)

    def isolate(self, node_id: str) -> None:
        """Block every link of ``node_id``."""
        self._set(node_id, None, f"isolate {node_id}", (node_id,), blocked=True)

    def partition(self, *groups: Sequence[str]) -> None:
        """Blockade semantics: nodes in different groups cannot talk; unnamed nodes form one more group."""
        named = {n for g in groups for n in g}
        all_groups = [set(g) for g in groups] + [set(self.ids) - named]
        side = {n: i for i, g in enumerate(all_groups) for n in g}
        for a in self.ids:
            for b in self.ids:
                if a != b and side[a] != side[b]:
                    self.network.link(a, b).blocked = True
        self._log(None, f"partition {' | '.join(','.join(sorted(g)) for g in all_groups if g)}", "network")

    def drop(self, a: str, b: str | None = None, rate: float = 0.5) -> None:
        """Lose ``rate`` of the messages on the links between ``a`` and ``b`` (all of ``a``'s if None)."""
        self._set(a, b, f"drop {rate:.0%} {a} <-> {b or '*'}", drop=rate)

    def delay(self, a: str, b: str | None = None, ticks: int = 3, jitter: int = 0) -> None:
        """Deliver messages on these links ``ticks`` later, plus a random jitter of up to ``jitter``."""
        self._set(a, b, f"delay {ticks}+{jitter} ticks {a} <-> {b or '*'}", delay=ticks, jitter=jitter)

    def reorder(self, a: str, b: str | None = None, jitter: int = 3) -> None:
        """Deliver messages on these links out of order (random jitter of up to ``jitter`` ticks)."""
        self._set(a, b, f"reorder (jitter {jitter}) {a} <-> {b or '*'}", jitter=jitter)

    def duplicate(self, a: str, b: str | None = None, rate: float = 0.5) -> None:
        """Deliver ``rate`` of the messages on these links twice."""
        self._set(a, b, f"duplicate {rate:.0%} {a} <-> {b or '*'}", duplicate=rate)

    def heal(self) -> None:
        """Remove every network fault (crashed nodes stay crashed)."""
        self.network.heal()
        self._log(None, "heal", "network")


def _pair(a: str, b: str | None, ids: Sequence[str]) -> tuple[str, ...]:
    """The nodes a link fault between ``a`` and ``b`` (every peer of ``a`` if None) touches."""
    return tuple(ids) if b is None else (a, b)
