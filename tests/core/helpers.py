"""Helpers shared by the core simulation tests."""

from __future__ import annotations

from collections.abc import Sequence

from raftnode.core.messages import Entry, EntryKind
from raftnode.node.statemachines import Counter
from raftnode.sim.cluster import SimCluster

ELECTION_TIMEOUT_MAX = 20  # SimCluster's default election timeout range is [10, 20) ticks


def prefix_values(entries: Sequence[Entry]) -> dict[int, int]:
    """The counter's value right after each command entry, replaying ``entries`` from scratch."""
    counter = Counter()
    out = {}
    for entry in entries:
        if entry.kind is EntryKind.COMMAND:
            try:
                counter.process_command(entry.data.decode())
            except Exception:  # noqa: BLE001 - a refused command leaves the value unchanged
                pass
            out[entry.index] = counter.value
    return out


def assert_no_acknowledged_command_lost(cluster: SimCluster, context: str) -> None:
    """Every acknowledged command is at its index on every disk, applied everywhere, and the
    result its client got is what the final history gives at that index."""
    # Followers learn the last commits from the next heartbeat: let the cluster settle first.
    assert cluster.stabilize(max_ticks=200), f"{context}: the cluster did not settle"
    acked = cluster.acknowledged()
    reference = cluster.node(cluster.ids[0]).disk
    values = prefix_values(reference.entries) if reference.offset == 0 else {}
    for req in acked:
        index = req.result.index
        for node in cluster.nodes.values():
            disk = node.disk
            # An index inside the snapshot is covered by it (snapshots hold only committed entries).
            held = index <= disk.offset or (
                index <= disk.last_index and disk.entries[index - disk.offset - 1].data == req.command.encode()
            )
            assert held, f"{context}: acknowledged {req.command!r} at index {index} lost on {node.id}"
            assert node.applier is not None and node.applier.applied_index >= index, f"{context}: {node.id}"
        if values:
            assert req.result.result == values[index], f"{context}: {req.command!r} got {req.result.result}"
    states = {cluster.state(n).value for n in cluster.ids}  # type: ignore[attr-defined]
    assert len(states) == 1, f"{context}: state machines differ: {states}"


class RecordingCounter(Counter):
    """The counter, remembering every command in the order it applied them."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[str] = []

    def process_command(self, command: str) -> int:
        self.history.append(command)
        return super().process_command(command)


def stable_cluster(size: int, seed: int, **config: object) -> tuple[SimCluster, str, int]:
    c = SimCluster(size, seed=seed, **config)
    assert c.stabilize(max_ticks=20 * ELECTION_TIMEOUT_MAX), f"seed {seed}: cluster did not stabilize"
    leader = c.leader()
    assert leader is not None
    return c, leader, c.raft(leader).term
