"""Cluster configurations and the majority arithmetic over them.

A configuration is the set of voters and the learners that replicate but never count (a new
node catching up before it votes, §4.2.1). Single-server changes (§4.1) keep one voter set at a
time. ``contexts`` carries what the shell needs to reach each member (its addresses); the core
stores and replicates it without reading it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Configuration:
    voters: frozenset[str]
    learners: frozenset[str] = field(default_factory=frozenset)
    contexts: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.voters & self.learners:
            raise ValueError(f"{sorted(self.voters & self.learners)} cannot be both voter and learner")

    def __repr__(self) -> str:
        return f"Configuration(voters={sorted(self.voters)}, learners={sorted(self.learners)})"

    # -- changes (each returns a new configuration) ----------------------------------------------

    def with_learner(self, node: str, context: str = "") -> Configuration:
        return Configuration(self.voters, self.learners | {node}, {**self.contexts, node: context})

    def promoted(self, node: str) -> Configuration:
        return Configuration(self.voters | {node}, self.learners - {node}, self.contexts)

    def without(self, node: str) -> Configuration:
        contexts = {n: c for n, c in self.contexts.items() if n != node}
        return Configuration(self.voters - {node}, self.learners - {node}, contexts)

    # -- encoding (the data of a configuration log entry) ----------------------------------------

    def encode(self) -> bytes:
        """Deterministic bytes: the same configuration always encodes the same."""
        document = {
            "voters": sorted(self.voters),
            "learners": sorted(self.learners),
            "contexts": {n: self.contexts[n] for n in sorted(self.contexts)},
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Configuration:
        """Raises ValueError naming what is wrong with ``data``."""
        try:
            document = json.loads(data)
            voters = frozenset(_ids(document["voters"]))
            learners = frozenset(_ids(document.get("learners", [])))
            contexts = {str(n): str(c) for n, c in dict(document.get("contexts", {})).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"bad configuration entry: {exc}") from None
        return cls(voters, learners, contexts)

    # -- arithmetic ------------------------------------------------------------------------------

    @property
    def quorum(self) -> int:
        """Votes needed for a majority of the voters."""
        return len(self.voters) // 2 + 1

    def members(self) -> frozenset[str]:
        return self.voters | self.learners

    def committed_index(self, match: Mapping[str, int]) -> int:
        """The highest index stored on a majority of voters, given each node's match index."""
        indexes = [match.get(v, 0) for v in self.voters]  # asked at every acknowledgement: no generator
        indexes.sort(reverse=True)
        return indexes[len(indexes) // 2]  # the quorum-th highest: quorum - 1 == len(voters) // 2

    def vote_result(self, votes: Mapping[str, bool]) -> VoteResult:
        granted = sum(1 for v in self.voters if votes.get(v) is True)
        rejected = sum(1 for v in self.voters if votes.get(v) is False)
        if granted >= self.quorum:
            return VoteResult.WON
        if rejected > len(self.voters) - self.quorum:
            return VoteResult.LOST
        return VoteResult.PENDING

    def has_quorum(self, active: Iterable[str]) -> bool:
        return len(self.voters.intersection(active)) >= self.quorum


def _ids(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of node ids, got {value!r}")
    return value
