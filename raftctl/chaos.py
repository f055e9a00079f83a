"""Fault injection across the cluster: partitions with blockade semantics and per-node link faults.

Theory of operation
-------------------
Every node applies its own faults to both directions of its links (``raftnode.transport.faults``),
and its admin endpoint's ``set_faults`` replaces the whole record. raftctl keeps the *wanted*
faults of every node in ``<state_dir>/faults.json``:

- the partition: a list of groups (each a list of node ids) that together name every node; a
  node is cut from every node outside its group. ``partition n1,n2 n3`` names groups; nodes not
  named form one more group; a new partition replaces the old one; ``heal`` removes it.
- per-node link faults: ``delay_ms``, ``jitter_ms``, ``drop_pct``, ``duplicate_pct``, set by
  ``slow``, ``flaky`` and ``duplicate`` (they add up) and cleared by ``fast``.

Every change is pushed to every live node as its complete record (``node_faults``), and a node
that starts later (``start``, ``restart``, ``up``) is given its record as soon as it answers, so
a partition outlives the restart of a node, as a network partition would. ``down`` forgets the
wanted faults: a cluster that comes back up starts healthy.

The planning functions (``plan_partition``, ``node_faults``) are pure; ``push`` talks to nodes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageProblem

LINK_KEYS = ("delay_ms", "jitter_ms", "drop_pct", "duplicate_pct")


@dataclass
class WantedFaults:
    """The faults raftctl wants on the cluster (persisted in ``faults.json``)."""

    partition: list[list[str]] = field(default_factory=list)
    links: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WantedFaults:
        try:
            document = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return cls()
        partition = [list(map(str, group)) for group in document.get("partition", [])]
        links = {
            str(node): {k: float(v) for k, v in spec.items() if k in LINK_KEYS}
            for node, spec in document.get("links", {}).items()
        }
        return cls(partition=partition, links=links)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"partition": self.partition, "links": self.links}, indent=1))
        os.replace(tmp, path)

    def node_faults(self, node_id: str) -> dict[str, Any]:
        """The complete ``set_faults`` record for ``node_id``."""
        record: dict[str, Any] = {"partitioned_from": partitioned_from(self.partition, node_id)}
        links = self.links.get(node_id, {})
        record.update({key: links.get(key, 0.0) for key in LINK_KEYS})
        return record

    def set_links(self, node_id: str, **values: float) -> None:
        links = self.links.setdefault(node_id, {})
        links.update(values)
        if not any(links.values()):
            self.links.pop(node_id, None)


def parse_groups(groups: Sequence[str]) -> list[list[str]]:
    """``["n1,n2", "n3"]`` -> ``[["n1", "n2"], ["n3"]]``; raises UsageProblem on an empty name."""
    parsed = []
    for text in groups:
        names = [name.strip() for name in text.split(",")]
        if not all(names):
            raise UsageProblem(f"bad group {text!r}: expected node ids separated by commas, e.g. n1,n2")
        parsed.append(names)
    if not parsed:
        raise UsageProblem("name at least one group, e.g. `raftctl partition n1` or `partition n1,n2 n3`")
    return parsed


def plan_partition(groups: Iterable[Iterable[str]], all_nodes: Sequence[str]) -> list[list[str]]:
    """The full partition for the named ``groups`` of node ids: nodes not named form one more group.

    Groups come out in the order named, each in file order; empty groups are dropped.

    Raises:
        UsageProblem: A node is named twice, or every node is in one group (no partition).
    """
    order = {node: i for i, node in enumerate(all_nodes)}
    seen: dict[str, int] = {}
    plan = []
    for index, group in enumerate(groups):
        members = []
        for node in group:
            if node in seen:
                where = "twice in one group" if seen[node] == index else "in two groups"
                raise UsageProblem(f"node {node} is named {where}; a node belongs to one side")
            seen[node] = index
            members.append(node)
        if members:
            plan.append(sorted(members, key=order.__getitem__))
    rest = [node for node in all_nodes if node not in seen]
    if rest:
        plan.append(rest)
    if len(plan) < 2:
        raise UsageProblem(
            "that partition puts every node on one side; name a subset, e.g. `raftctl partition "
            f"{all_nodes[0]}` (use `raftctl heal` to remove partitions)"
        )
    return plan


def partitioned_from(partition: Sequence[Sequence[str]], node_id: str) -> list[str]:
    """The nodes ``node_id`` is cut from under ``partition`` (none if it is not in it)."""
    mine = next((group for group in partition if node_id in group), None)
    if mine is None:
        return []
    return [node for group in partition if group is not mine for node in group]


def describe_partition(partition: Sequence[Sequence[str]]) -> str:
    """``"n1,n2 | n3,n4,n5"``; ``"none"`` for no partition."""
    return " | ".join(",".join(group) for group in partition) or "none"


def describe_links(values: Mapping[str, float]) -> str:
    parts = []
    if values.get("delay_ms") or values.get("jitter_ms"):
        parts.append(f"delay {values.get('delay_ms', 0):g}ms ± {values.get('jitter_ms', 0):g}ms")
    if values.get("drop_pct"):
        parts.append(f"drop {values['drop_pct']:g}%")
    if values.get("duplicate_pct"):
        parts.append(f"duplicate {values['duplicate_pct']:g}%")
    return ", ".join(parts) or "no link faults"
