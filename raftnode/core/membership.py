"""Membership changes (thesis §4), one server at a time, and the catch-up of new servers (§4.2.1).

A configuration is a log entry (``EntryKind.CONFIG``) and takes effect on every node as soon as
it is appended — and is rolled back if that entry is truncated —, so the configuration a node uses
is always the latest one in its log, else its snapshot's, else the bootstrap one
(``RaftConfig.voters``). ``add_node`` adds a learner and catches it up in rounds before promoting
it; ``remove_node`` may remove the leader itself, which keeps leading until the change commits,
then hands over and steps down (§4.2.2). A leader accepts a change only once it has committed an
entry of its own term and no other change is pending. A removed follower keeps receiving entries
until it holds its removal, then is told the commit, so it applies its own removal and stops.

Every lookup of a configuration goes through ``Raft._configuration_at``, a seam for test engines.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import MembershipError, NotLeader, UnknownNode
from .messages import Entry, EntryKind, SnapshotMeta
from .quorum import Configuration
from .ready import Role

_CONFIG = EntryKind.CONFIG
_kind_of = operator.attrgetter("kind")

if TYPE_CHECKING:
    from .raft import Raft


@dataclass(slots=True)
class CatchUp:
    """A learner the leader is catching up (§4.2.1): each round replicates up to ``target``."""

    node: str
    added_at: int  # index of the configuration entry that made it a learner
    target: int
    round: int
    round_start: int  # tick the round began


class Membership:
    """A node's configurations (one per CONFIG entry in its log) and a leader's change in progress."""

    def __init__(self, node: Raft, meta: SnapshotMeta, contexts: dict[str, str] | None):
        self.node = node
        # The configuration at the log's offset, and the indexes of configuration entries after it.
        self.base = meta.configuration or Configuration(
            voters=frozenset(node.config.voters), contexts=dict(contexts or {})
        )
        log = node.log
        self.indexes = [e.index for e in log.slice(meta.index + 1, log.last_index + 1) if e.kind == EntryKind.CONFIG]
        self._decoded: dict[int, tuple[Entry, Configuration]] = {}  # config index -> (its entry, decoded)
        self.catchup_failures: dict[str, str] = {}  # learner -> why the leader gave up on it
        self.was_member = node.id in self.base.members()
        self.removed = False  # set once this node applies a configuration that removes it
        self.catchup: CatchUp | None = None
        self.leaving: dict[str, tuple[int, int]] = {}  # removed node -> (its removal's index, give-up tick)

    def reset(self) -> None:
        """A new term or role: no change is being driven from here any more."""
        self.catchup = None
        self.leaving = {}

    # -- the configuration in effect -----------------------------------------------------------

    def configuration_at(self, index: int) -> Configuration:
        """The configuration in effect once the log up to ``index`` is appended."""
        for config_index in reversed(self.indexes):
            if config_index <= index:
                entry = self.node.log.entry(config_index)
                cached = self._decoded.get(config_index)
                if cached is None or cached[0] is not entry:  # a truncated entry's index may come back
                    cached = self._decoded[config_index] = (entry, Configuration.decode(entry.data))
                return cached[1]
        return self.base

    def rebase(self, index: int, configuration: Configuration) -> None:
        """The log now starts after ``index`` (a snapshot), where ``configuration`` was in effect."""
        self.base = configuration
        self.indexes = [i for i in self.indexes if i > index]
        self._decoded = {i: c for i, c in self._decoded.items() if i > index}

    def installed_snapshot(self, meta: SnapshotMeta, kept_log: bool) -> None:
        """A follower installed a snapshot (keeping the log after it, or not)."""
        if meta.configuration is not None:
            self.applied_configuration(meta.configuration)
        if not kept_log:
            self.indexes = []
        self.rebase(meta.index, meta.configuration or self.base)
        self.changed()

    def track(self, entries: Sequence[Entry], truncated_from: int | None) -> None:
        """Follower append: forget configurations truncated away, take up newly appended ones."""
        indexes = self.indexes
        changed = False
        if truncated_from is not None and indexes and indexes[-1] >= truncated_from:
            indexes[:] = [i for i in indexes if i < truncated_from]
            changed = True
        if _CONFIG in map(_kind_of, entries):  # a C-speed look first: most batches carry none
            for entry in entries:
                if entry.kind == _CONFIG and entry.index > self.node.log.offset and (
                    not indexes or entry.index > indexes[-1]
                ):
                    indexes.append(entry.index)
                    changed = True
        if changed:
            self.changed()

    def changed(self) -> None:
        """The latest configuration in the log may have changed: take it up (a leader replicates
        to new members at once; removed ones keep their progress until the change commits)."""
        node = self.node
        configuration = node._configuration_at(node.log.last_index)
        if configuration == node.configuration:
            return
        node.configuration = configuration
        node._event(
            "membership",
            f"configuration: voters {','.join(sorted(configuration.voters)) or '-'}"
            + (f", learners {','.join(sorted(configuration.learners))}" if configuration.learners else ""),
        )
        if node.role is Role.LEADER:
            for member in sorted(configuration.members()):
                node._replication.add_member(member)

    def committed_through(self, before: int, commit: int) -> None:
        """The leader's commit index moved from ``before`` to ``commit``."""
        if self.indexes and before < self.indexes[-1] <= commit:
            self._committed()

    def _committed(self) -> None:
        """The leader's latest configuration committed: let go of removed nodes; step down if removed."""
        node = self.node
        progress = node._replication.progress
        members = node.configuration.members()
        removal = self.indexes[-1]
        for member in [n for n in progress if n not in members and n != node.id]:
            # Keep replicating to it until it holds its removal, then tell it the commit: it
            # applies its own removal and stops. Give up after two election timeouts.
            self.leaving[member] = (removal, node._ticks + 2 * node.config.election_timeout[1])
            self._release_if_informed(member)
        if self.catchup is not None:
            self._check_catchup()
        if node.id not in node.configuration.voters:
            successor = max(
                (n for n in node.configuration.voters if n in progress),
                key=lambda n: (progress[n].match, n),
                default=None,
            )
            if successor is not None and progress[successor].match == node.log.last_index:
                node._transfer.send_timeout_now(successor)
            node._roles.become_follower(node.term, None, reason="removed from the configuration")

    def applied(self, before: int, applied: int) -> None:
        """The shell applied entries ``before + 1 .. applied``: note the configurations among them."""
        if self.indexes and self.indexes[-1] > before:
            for index in self.indexes:
                if before < index <= applied:
                    self.applied_configuration(self.node._configuration_at(index))

    def applied_configuration(self, configuration: Configuration) -> None:
        """A committed configuration was applied: a node it leaves out, having been in, is removed."""
        if self.node.id in configuration.members():
            self.was_member = True
        elif self.was_member and not self.removed:
            self.removed = True
            self.node._event("removed", "applied a configuration without this node: it is no longer a member")

    # -- removed nodes leaving -----------------------------------------------------------------

    def release_if_leaving(self, member: str) -> None:
        if member in self.leaving:
            self._release_if_informed(member)

    def _release_if_informed(self, member: str) -> None:
        if self.node._replication.progress[member].match >= self.leaving[member][0]:
            self.node._send(self.node._replication.heartbeat(member))
            self._forget(member)

    def _forget(self, member: str) -> None:
        del self.leaving[member]
        self.node._replication.forget(member)

    def give_up_on_leaving(self) -> None:
        """Stop replicating to removed nodes that did not get their removal in time."""
        for member, (_, give_up) in list(self.leaving.items()):
            if self.node._ticks >= give_up:
                self._forget(member)

    def ticks_until_timer(self) -> int | None:
        """Ticks until a catch-up round or a leaving node's deadline needs a look (None: nothing waits)."""
        if self.catchup is not None:
            return 1  # a catch-up round is checked every tick
        if not self.leaving:
            return None
        return min((give_up - self.node._ticks for _, give_up in self.leaving.values()), default=None)

    # -- changes -------------------------------------------------------------------------------

    def pending_change(self) -> str | None:
        """The membership change in progress, described (None: none is)."""
        if self.indexes and self.indexes[-1] > self.node.commit:
            return f"the configuration change at index {self.indexes[-1]} is not committed yet"
        if self.catchup is not None:
            return f"{self.catchup.node} is still catching up as a learner (round {self.catchup.round})"
        return None

    def add_node(self, member: str, context: str) -> int:
        """Add ``member`` as a learner and start catching it up; see ``Raft.add_node``."""
        node = self.node
        self._check_can_change(member)
        if member in node.configuration.members():
            kind = "voter" if member in node.configuration.voters else "learner"
            raise MembershipError(f"cannot add {member}: it is already a {kind}")
        self._refuse_if_pending(f"add {member}")
        self.catchup_failures.pop(member, None)
        index = self._append(node.configuration.with_learner(member, context))
        self.catchup = CatchUp(member, added_at=index, target=index, round=1, round_start=node._ticks)
        node._event("membership", f"adding {member}: catching up as a learner (entry {index})")
        return index

    def remove_node(self, member: str) -> int:
        """Remove ``member``; see ``Raft.remove_node``."""
        node = self.node
        self._check_can_change(member)
        members = node.configuration.members()
        if member not in members:
            raise UnknownNode(member, list(members))
        if node.configuration.voters == {member}:
            raise MembershipError(f"cannot remove {member}: it is the last voter")
        if self.catchup is not None and self.catchup.node == member:
            if node.commit < self.catchup.added_at:
                raise MembershipError(f"cannot remove {member} yet: the entry adding it is not committed; retry")
            self.catchup = None  # removing the learner we were catching up ends that change
        self._refuse_if_pending(f"remove {member}")
        index = self._append(node.configuration.without(member))
        node._event("membership", f"removing {member} (entry {index})")
        return index

    def _check_can_change(self, member: str) -> None:
        if self.node.role is not Role.LEADER:
            raise NotLeader(self.node.leader)
        if not member:
            raise MembershipError("a node id must not be empty")

    def _refuse_if_pending(self, what: str) -> None:
        node = self.node
        reason = self.pending_change()
        if reason is None and node.log.term(node.commit) != node.term:
            reason = "the leader has not committed an entry of its term yet; retry shortly"
        if reason is None and node.transferee is not None:
            reason = f"leadership transfer to {node.transferee} in progress"
        if reason is not None:
            raise MembershipError(f"cannot {what}: {reason}")

    def _append(self, configuration: Configuration) -> int:
        node = self.node
        index = node.log.last_index + 1
        node.log.append(Entry(node.term, index, configuration.encode(), EntryKind.CONFIG))
        self.indexes.append(index)
        self.changed()
        node._replication.send_to_all()
        return index

    # -- catching up a learner (§4.2.1) --------------------------------------------------------

    def resume_catchup(self, next_index: int) -> None:
        """A new leader resumes catching up a learner the previous leader left; its promotion
        (or removal) waits for our no-op at ``next_index`` to commit, like any change we start."""
        learner = min(self.node.configuration.learners, default=None)
        if learner is not None:
            self.catchup = CatchUp(learner, added_at=next_index, target=next_index, round=1,
                                   round_start=self.node._ticks)
            self.node._event("membership", f"resuming the catch-up of learner {learner}")

    def replicated(self, member: str) -> None:
        """``member`` acknowledged more entries: if it is the learner being caught up, look again."""
        if self.catchup is not None and self.catchup.node == member:  # None if we stepped down
            self._check_catchup()

    def tick(self) -> None:
        if self.catchup is not None:
            self._check_catchup()

    def _check_catchup(self) -> None:
        """Run the catch-up rounds of §4.2.1 for the learner being added: promote or give up."""
        node, cu = self.node, self.catchup
        assert cu is not None
        pr = node._replication.progress.get(cu.node)
        if pr is None or cu.node not in node.configuration.learners:
            self.catchup = None
            return
        elapsed = node._ticks - cu.round_start
        if pr.match >= cu.target:
            if elapsed < node.config.election_timeout[0]:
                if node.commit >= cu.added_at and node.transferee is None:
                    self.catchup = None
                    index = self._append(node.configuration.promoted(cu.node))
                    node._event("membership", f"promoting {cu.node} to voter after {cu.round} round(s) (entry {index})")
                return
            if cu.round < node.config.catchup_rounds:
                cu.round += 1
                cu.target = node.log.last_index
                cu.round_start = node._ticks
                return
            reason = (f"{cu.node} did not catch up: round {cu.round} of {node.config.catchup_rounds} still took "
                      f"{elapsed} ticks, more than an election timeout")
        elif elapsed > node.config.catchup_round_limit:
            reason = (f"{cu.node} did not catch up: round {cu.round} made it to index {pr.match} of {cu.target} "
                      f"in {elapsed} ticks")
        else:
            return
        if node.commit < cu.added_at:
            return  # give up once the entry adding it has committed (one change at a time)
        self.catchup = None
        self.catchup_failures[cu.node] = reason
        node._event("membership", f"gave up adding {cu.node}: {reason}")
        self._append(node.configuration.without(cu.node))
