"""The membership verbs of the simulated cluster: leadership transfer, adding and removing nodes.

A node added starts empty and joins with no configuration of its own; ids are never reused.
A mixin of :class:`SimCluster`: it needs ``nodes``, ``ids``, ``leader``, ``live``, ``node``,
``raft``, ``_boot``, ``_process`` and ``_log``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.quorum import Configuration
from ..core.raft import Raft
from .disk import SimDisk
from .node import SimNode


class Membership:
    """Changes of who leads and who belongs."""

    nodes: dict[str, SimNode]
    ids: tuple[str, ...]
    leader: Callable[[], str | None]
    live: Callable[[], list[SimNode]]
    node: Callable[[str], SimNode]
    raft: Callable[[str], Raft]
    _boot: Callable[[SimNode], None]
    _process: Callable[[SimNode], None]
    _log: Callable[..., None]  # (node, what, kind, about=())

    def transfer(self, target: str, *, leader: str | None = None) -> None:
        """Ask the leader (or ``leader``) to hand leadership to ``target``."""
        node = self._leader_node(leader)
        node.raft.transfer_leadership(target)  # type: ignore[union-attr]
        self._process(node)

    def add_node(self, node_id: str, *, leader: str | None = None) -> int:
        """Ask the leader to add a brand-new node ``node_id`` (started empty); returns the entry index.

        Raises the core's RaftError (NotLeader, MembershipError) when the leader refuses.
        """
        if node_id in self.nodes:
            raise ValueError(f"node {node_id} existed already; ids are never reused")
        node = self._leader_node(leader)
        index = node.raft.add_node(node_id, f"sim://{node_id}")  # type: ignore[union-attr]
        new = self.nodes[node_id] = SimNode(node_id, SimDisk())
        self.ids = (*self.ids, node_id)
        self._boot(new)
        self._log(new, "started empty, to join the cluster", "join")
        self._process(node)
        return index

    def remove_node(self, node_id: str, *, leader: str | None = None) -> int:
        """Ask the leader to remove ``node_id``; returns the entry index (raises RaftError if refused)."""
        node = self._leader_node(leader)
        index = node.raft.remove_node(node_id)  # type: ignore[union-attr]
        self._process(node)
        return index

    def _leader_node(self, leader: str | None) -> SimNode:
        leader_id = leader or self.leader()
        if leader_id is None:
            raise RuntimeError("no leader to ask")
        node = self.node(leader_id)
        if node.raft is None:
            raise RuntimeError(f"node {leader_id} is crashed")
        return node

    def configuration(self) -> Configuration:
        """The latest configuration: the leader's, else the one in the longest live log."""
        leader = self.leader()
        if leader is not None:
            return self.raft(leader).configuration
        live = [n.raft for n in self.live() if n.raft is not None]
        if not live:
            return Configuration(frozenset(self.ids))
        return max(live, key=lambda r: (r.log.last_term, r.log.last_index)).configuration

    def members(self) -> list[str]:
        """Ids of the latest configuration's voters and learners, in order."""
        return sorted(self.configuration().members())
