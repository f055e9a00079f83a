"""Majority arithmetic over a cluster configuration.

A configuration is the set of voters (and, once membership changes land, learners that
replicate but never count). Single-server changes (§4.1) keep one voter set at a time.
"""

from __future__ import annotations

import enum
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

    @property
    def quorum(self) -> int:
        """Votes needed for a majority of the voters."""
        return len(self.voters) // 2 + 1

    def members(self) -> frozenset[str]:
        return self.voters | self.learners

    def committed_index(self, match: Mapping[str, int]) -> int:
        """The highest index stored on a majority of voters, given each node's match index."""
        indexes = sorted((match.get(v, 0) for v in self.voters), reverse=True)
        return indexes[self.quorum - 1]

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
