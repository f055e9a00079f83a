"""Replication and commit (thesis §3.5, §3.6): the "Replication and commit" section of scenarios.md.

Two levels, each where it is cheapest to show deterministically:

- ``SimCluster`` scenarios (the invariant checker watches every step) for end-to-end claims:
  commit on a majority and apply in order, overwriting an old leader's tail, a lagging follower
  catching up, batching and pipelining under a real shell loop, and message faults over seeds.
- ``Bench``, a few :class:`Raft` objects wired by hand, for claims that need exact message
  control: the Figure 8 sequence, conflict-hint probing over constructed divergent logs, and the
  batching / pipelining / batch-size caps of one leader.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence

import pytest

from raftnode.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from raftnode.core.progress import ProgressState
from raftnode.core.raft import Raft, RaftConfig
from raftnode.core.ready import HardState, Role
from raftnode.sim.cluster import ClientRequest, SimCluster

from .helpers import (
    RecordingCounter,
    assert_no_acknowledged_command_lost,
    prefix_values,
)

# ------------------------------------------------------------------------------------------------
# Bench: Raft objects driven by hand
# ------------------------------------------------------------------------------------------------


class Bench:
    """A handful of :class:`Raft` cores whose messages wait in ``outbox`` until the test moves them.

    Each node plays the shell's part like SimCluster does (persist, queue messages, apply,
    advance) after every input. ``crash`` forgets a node's memory; ``start`` rebuilds it from
    what it persisted. Nothing ticks unless the test ticks it, so no timer fires by surprise.
    PreVote and CheckQuorum are off by default: the scripted scenarios are about the log.
    """

    def __init__(
        self,
        ids: Sequence[str],
        *,
        logs: dict[str, list[Entry]] | None = None,
        hard_states: dict[str, HardState] | None = None,
        raft_class: type[Raft] = Raft,
        **overrides: object,
    ):
        self.ids = tuple(ids)
        self.raft_class = raft_class
        self.config = {"pre_vote": False, "check_quorum": False, **overrides}
        logs = logs or {}
        hard_states = hard_states or {}
        self.disk_log: dict[str, list[Entry]] = {i: list(logs.get(i, ())) for i in self.ids}
        self.disk_hs: dict[str, HardState] = {i: hard_states.get(i, HardState()) for i in self.ids}
        self.nodes: dict[str, Raft | None] = {}
        self.applied: dict[str, list[Entry]] = {}
        self.outbox: list[Message] = []
        self.sent: list[Message] = []  # every message ever emitted, in order
        self.readies: dict[str, int] = {i: 0 for i in self.ids}  # Ready bundles carrying entries (fsyncs)
        self.commit_history: dict[str, list[int]] = {i: [] for i in self.ids}
        for node_id in self.ids:
            self.start(node_id)

    def raft(self, node_id: str) -> Raft:
        raft = self.nodes[node_id]
        assert raft is not None, f"{node_id} is crashed"
        return raft

    def start(self, node_id: str) -> None:
        config = RaftConfig(node_id=node_id, voters=self.ids, **self.config)  # type: ignore[arg-type]
        self.nodes[node_id] = self.raft_class(
            config,
            rng=random.Random(node_id),
            hard_state=self.disk_hs[node_id],
            entries=list(self.disk_log[node_id]),
        )
        self.applied[node_id] = []
        self.process(node_id)

    def crash(self, node_id: str) -> None:
        self.nodes[node_id] = None

    def process(self, node_id: str) -> None:
        raft = self.raft(node_id)
        while raft.has_ready():
            ready = raft.ready()
            if ready.entries:
                self.readies[node_id] += 1
                first = ready.entries[0].index
                del self.disk_log[node_id][first - 1 :]
                self.disk_log[node_id].extend(ready.entries)
            if ready.hard_state is not None:
                self.disk_hs[node_id] = ready.hard_state
            self.outbox.extend(ready.messages)
            self.sent.extend(ready.messages)
            self.applied[node_id].extend(ready.committed)
            raft.advance(ready)
            self.commit_history[node_id].append(raft.commit)

    def tick(self, node_id: str, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.raft(node_id).tick()
            self.process(node_id)

    def propose(self, node_id: str, data: bytes) -> int:
        index = self.raft(node_id).propose(data)
        self.process(node_id)
        return index

    def deliver_one(self, pred: Callable[[Message], bool]) -> Message:
        """Deliver the oldest queued message matching ``pred`` (there must be one)."""
        for n, m in enumerate(self.outbox):
            if pred(m):
                del self.outbox[n]
                self._step(m)
                return m
        raise AssertionError(f"no queued message matches; queue: {self.outbox}")

    def deliver(self, pred: Callable[[Message], bool] = lambda m: True) -> list[Message]:
        """Deliver matching messages, and matching answers they provoke, until none is left."""
        delivered = []
        while True:
            for n, m in enumerate(self.outbox):
                if pred(m):
                    del self.outbox[n]
                    self._step(m)
                    delivered.append(m)
                    break
            else:
                return delivered

    def drop(self, pred: Callable[[Message], bool] = lambda m: True) -> list[Message]:
        dropped = [m for m in self.outbox if pred(m)]
        self.outbox = [m for m in self.outbox if not pred(m)]
        return dropped

    def _step(self, m: Message) -> None:
        raft = self.nodes[m.dst]
        if raft is None:
            return
        raft.step(m)
        self.process(m.dst)

    def elect(self, candidate: str, voters: Iterable[str], *, max_campaigns: int = 5) -> None:
        """Let ``candidate`` time out and campaign with only ``voters`` hearing it, until it wins."""
        voters = set(voters)

        def vote_traffic(m: Message) -> bool:
            if not isinstance(m, (RequestVote, RequestVoteResponse)):
                return False
            return (m.src == candidate and m.dst in voters) or (m.dst == candidate and m.src in voters)

        raft = self.raft(candidate)
        for _ in range(max_campaigns):
            term = raft.term
            for _ in range(100):
                if raft.term > term:
                    break
                self.tick(candidate)
            assert raft.term > term, f"{candidate} did not campaign"
            self.deliver(vote_traffic)
            self.drop(lambda m: isinstance(m, RequestVote) and m.src == candidate)
            if raft.role is Role.LEADER:
                return
        raise AssertionError(f"{candidate} did not win with voters {sorted(voters)}")

    def link(self, a: str, b: str) -> Callable[[Message], bool]:
        return lambda m: {m.src, m.dst} == {a, b}


def entries_of_terms(*runs: tuple[int, int], start: int = 1, tag: str = "") -> list[Entry]:
    """A log made of runs of (term, count), with distinct data per entry."""
    out: list[Entry] = []
    index = start
    for term, count in runs:
        for _ in range(count):
            out.append(Entry(term, index, f"{tag}t{term}i{index}".encode()))
            index += 1
    return out


def make_leader_with_replicating_followers(n: int = 3, **overrides: object) -> Bench:
    """A fresh cluster whose leader n1 has every follower in REPLICATE state and nothing queued."""
    ids = [f"n{i}" for i in range(1, n + 1)]
    bench = Bench(ids, **overrides)
    bench.elect("n1", ids[1:])
    bench.deliver()
    leader = bench.raft("n1")
    for follower in ids[1:]:
        pr = leader.progress(follower)
        assert pr is not None and pr.state is ProgressState.REPLICATE, pr
    assert leader.commit == leader.log.last_index
    return bench


# ------------------------------------------------------------------------------------------------
# SimCluster helpers
# ------------------------------------------------------------------------------------------------


def record_sends(cluster: SimCluster) -> list[tuple[int, Message]]:
    """Wrap the network so every message sent is recorded with the tick it was sent at."""
    sent: list[tuple[int, Message]] = []
    original = cluster.network.send

    def send(m: Message, now: int) -> None:
        sent.append((now, m))
        original(m, now)

    cluster.network.send = send  # type: ignore[method-assign]
    return sent


def after_each_delivery(cluster: SimCluster, hook: Callable[[], None]) -> None:
    """Run ``hook`` between any two message deliveries (and at the end of each tick's deliveries),
    that is right after the effects of every delivered message were processed."""
    pop_due = cluster.network.pop_due

    def hooked(now: int) -> Message | None:
        hook()
        return pop_due(now)

    cluster.network.pop_due = hooked  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------
# A command is replicated, committed on a majority, applied everywhere in the same order
# ------------------------------------------------------------------------------------------------


def test_a_command_proposed_at_the_leader_commits_on_a_majority_and_applies_everywhere_in_the_same_order():
    """§3.5: the leader appends, replicates, commits once a majority stores the entry, and every
    node applies the same commands in log order; the client gets the command's own result."""
    cluster = SimCluster(5, seed=11, state_machine=RecordingCounter)
    cluster.wait_leader()
    rng = random.Random(11)
    requests: list[ClientRequest] = []
    holders_when_answered: dict[int, int] = {}

    def count_holders_of_new_answers() -> None:
        for req in requests:
            if req.result is not None and req.id not in holders_when_answered:
                index = req.result.index
                holders_when_answered[req.id] = sum(
                    1 for node in cluster.nodes.values()
                    if len(node.disk.entries) >= index and node.disk.entries[index - 1].data == req.command.encode()
                )

    after_each_delivery(cluster, count_holders_of_new_answers)
    for n in range(40):
        verb = rng.choice(["incr", "decr"])
        requests.append(cluster.propose(cluster.leader(), f"{verb} {n}"))
        if rng.random() < 0.5:
            cluster.tick(rng.randint(1, 3))
    assert cluster.stabilize(max_ticks=200), "cluster did not converge"
    assert len(holders_when_answered) == len(requests)

    assert all(req.result is not None and req.result.ok for req in requests), [r.result for r in requests]
    quorum = len(cluster.ids) // 2 + 1
    assert all(holders >= quorum for holders in holders_when_answered.values()), holders_when_answered
    # Same order everywhere, and it is the order the leader proposed them in.
    histories = {n: cluster.state(n).history for n in cluster.ids}  # type: ignore[attr-defined]
    proposed = [req.command for req in requests]
    for node_id, history in histories.items():
        assert history == proposed, f"{node_id} applied {history[:5]}... not the proposal order"
    # Each client got its own command's result: the counter value right after its index.
    values = prefix_values(cluster.node(cluster.ids[0]).disk.entries)
    for req in requests:
        assert req.result.result == values[req.result.index], req
    assert len({cluster.state(n).value for n in cluster.ids}) == 1  # type: ignore[attr-defined]


def test_an_entry_stored_on_a_minority_is_not_committed_until_a_majority_stores_it():
    """§3.5/§3.6: a leader commits an entry only once it is stored on a majority of servers."""
    cluster = SimCluster(5, seed=5)
    leader = cluster.wait_leader()
    followers = [n for n in cluster.ids if n != leader]
    cut_off = followers[1:]  # the leader keeps only followers[0]: 2 of 5
    for f in cut_off:
        cluster.cut(leader, f)
    req = cluster.propose(leader, "incr 7")
    index = cluster.raft(leader).log.last_index
    cluster.tick(8)  # less than the minimum election timeout: nobody steps down or campaigns
    assert cluster.raft(leader).role is Role.LEADER
    stored_on = [n for n in cluster.ids if len(cluster.node(n).disk.entries) >= index]
    assert sorted(stored_on) == sorted([leader, followers[0]])
    assert cluster.raft(leader).commit < index
    assert req.result is None
    assert all(cluster.state(n).value == 0 for n in cluster.ids)  # type: ignore[attr-defined]

    cluster.heal()
    for f in cut_off[1:]:
        cluster.cut(leader, f)  # now 3 of 5 can store it: a majority
    result = cluster.wait_answered(req, max_ticks=20)
    assert result.ok and result.result == 7 and result.index == index
    assert cluster.raft(leader).commit >= index


# ------------------------------------------------------------------------------------------------
# Conflicting uncommitted entries are overwritten
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_old_leaders_uncommitted_tail_is_overwritten_on_it_and_its_follower_after_the_partition_heals(seed):
    """§3.5: the new leader forces followers' logs to match its own; conflicting uncommitted
    entries (here written by a deposed leader and copied to one follower) are deleted."""
    cluster = SimCluster(5, seed=seed)
    old = cluster.wait_leader()
    for n in range(5):
        assert cluster.wait_answered(cluster.propose(old, f"incr {n}")).ok
    assert cluster.stabilize(max_ticks=100)
    buddy = next(n for n in cluster.ids if n != old)
    majority = [n for n in cluster.ids if n not in (old, buddy)]
    cluster.partition([old, buddy], majority)
    committed_before = cluster.raft(old).commit
    stale = [cluster.propose(old, f"incr {1000 + n}", timeout=30) for n in range(6)]
    cluster.tick(2)
    tail = [e for e in cluster.node(buddy).disk.entries if e.index > committed_before]
    assert {e.data for e in tail} >= {r.command.encode() for r in stale}, "the follower lacks the old tail"

    def majority_side_elected() -> bool:
        leader = cluster.leader()
        return leader in majority and cluster.raft(leader).term > cluster.raft(buddy).term

    assert cluster.run_until(majority_side_elected, max_ticks=300), f"seed {seed}: no new leader on the majority side"
    new = cluster.leader()
    fresh = [cluster.propose(new, f"decr {n}") for n in range(4)]
    for req in fresh:
        assert cluster.wait_answered(req, max_ticks=200).ok, f"seed {seed}"

    cluster.heal()
    assert cluster.stabilize(max_ticks=300), f"seed {seed}: did not converge after heal"
    leader_log = cluster.node(cluster.leader()).disk.entries
    stale_data = {r.command.encode() for r in stale}
    for node_id in (old, buddy):
        log = cluster.node(node_id).disk.entries
        assert log == leader_log, f"seed {seed}: {node_id} still differs from the leader"
        assert not stale_data & {e.data for e in log}, f"seed {seed}: stale tail survives on {node_id}"
    for req in stale:
        assert req.result is not None and not req.result.ok, f"seed {seed}: stale command acknowledged {req}"
    values = {cluster.state(n).value for n in cluster.ids}  # type: ignore[attr-defined]
    assert values == {sum(range(5)) - sum(range(4))}, f"seed {seed}: {values}"


# ------------------------------------------------------------------------------------------------
# A lagging follower catches up in a few round trips
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["crash", "isolate"])
def test_a_follower_that_missed_500_commands_over_several_terms_catches_up_in_a_few_round_trips(how):
    """§3.5 (the conflict optimisation at the end of the section): the follower's hint tells the
    leader where its log ends, so catch-up costs one rejection, then full pipelined batches —
    not one round trip per missing entry."""
    max_msg_entries = 64
    cluster = SimCluster(5, seed=21, max_msg_entries=max_msg_entries)
    first = cluster.wait_leader()
    for n in range(3):
        assert cluster.wait_answered(cluster.propose(first, f"incr {n}")).ok
    lagger = next(n for n in cluster.ids if n != first)
    if how == "crash":
        cluster.crash(lagger)
    else:
        cluster.isolate(lagger)
    lag_start = len(cluster.node(lagger).disk.entries)

    others = [n for n in cluster.ids if n != lagger]
    terms_seen = {cluster.raft(first).term}
    for n in range(500):
        if n % 100 == 99:  # hand leadership on: the commands span several terms
            current = cluster.leader()
            target = others[(others.index(current) + 1) % len(others)]
            cluster.transfer(target)
            assert cluster.run_until(lambda: cluster.leader() == target, max_ticks=60)
            terms_seen.add(cluster.raft(target).term)
        cluster.propose(cluster.leader(), "incr 1")
        cluster.tick(1)
    assert cluster.stabilize(max_ticks=200, nodes=others)
    leader = cluster.leader()
    leader_raft = cluster.raft(leader)
    assert len(terms_seen) >= 5, terms_seen
    missing = leader_raft.log.last_index - lag_start
    assert missing >= 500

    sent = record_sends(cluster)
    healed_at = cluster.now
    if how == "crash":
        cluster.restart(lagger)
    else:
        cluster.heal()
    assert cluster.stabilize(max_ticks=200), f"{lagger} did not catch up"
    assert cluster.node(lagger).disk.entries == cluster.node(leader).disk.entries

    to_lagger = [m for _, m in sent if isinstance(m, AppendEntries) and m.dst == lagger]
    rejections = [m for _, m in sent if isinstance(m, AppendEntriesResponse) and m.src == lagger and not m.success]
    carrying = [m for m in to_lagger if m.entries]
    # One rejection tells the leader where the lagger's log ends (it holds a prefix of the leader's log).
    assert len(rejections) <= 1, rejections
    # Then full batches: about missing / max_msg_entries appends, far from one per entry.
    assert len(carrying) <= math.ceil(missing / max_msg_entries) + 2, len(carrying)
    assert sum(len(m.entries) for m in carrying) <= missing + max_msg_entries
    # And quickly in time too: within a couple of heartbeat intervals of the heal.
    caught_up_at = cluster.now
    assert caught_up_at - healed_at <= 2 * leader_raft.config.heartbeat_interval + 1, caught_up_at - healed_at
    assert cluster.state(lagger).value == cluster.state(leader).value  # type: ignore[attr-defined]


def _elect_and_probe(bench: Bench, leader: str, follower: str) -> tuple[list[AppendEntries], list[AppendEntriesResponse]]:
    """Elect ``leader``, deliver everything; return the appends it sent ``follower`` and the rejections."""
    start = len(bench.sent)
    bench.elect(leader, [n for n in bench.ids if n != leader])
    bench.deliver()
    assert bench.disk_log[follower] == bench.disk_log[leader], "follower did not converge"
    sent = bench.sent[start:]
    appends = [m for m in sent if isinstance(m, AppendEntries) and m.dst == follower]
    rejections = [m for m in sent if isinstance(m, AppendEntriesResponse) and m.src == follower and not m.success]
    return appends, rejections


def _first_index_of_each_term(log: Sequence[Entry]) -> dict[int, int]:
    firsts: dict[int, int] = {}
    for entry in log:
        firsts.setdefault(entry.term, entry.index)
    return firsts


def test_the_conflict_hint_lets_the_leader_skip_a_whole_conflicting_term_per_probe():
    """§3.5: a rejecting follower names the conflicting term and its first index there, so the
    leader backs up a whole term per round trip instead of one entry."""
    common = entries_of_terms((1, 10))
    leader_log = common + entries_of_terms((5, 90), (6, 100), start=11, tag="L")
    follower_log = common + entries_of_terms((2, 50), (3, 50), (4, 50), start=11, tag="F")
    bench = Bench(
        ["L", "X", "F"],
        logs={"L": leader_log, "X": leader_log, "F": follower_log},
        hard_states={"L": HardState(term=6), "X": HardState(term=6), "F": HardState(term=4)},
    )
    appends, rejections = _elect_and_probe(bench, "L", "F")

    divergent_terms = sorted({e.term for e in follower_log if e.index > len(common)})
    # One rejection because F's log is shorter, then one per divergent follower term: 4, not ~190.
    assert len(rejections) == 1 + len(divergent_terms), [(r.index, r.conflict_index, r.conflict_term) for r in rejections]
    # Each probe after the first lands just before the first entry of one of F's terms, newest first.
    firsts = _first_index_of_each_term(follower_log)
    probes = [a.prev_index for a in appends]
    expected_probes = [len(follower_log)] + [firsts[t] - 1 for t in reversed(divergent_terms)]
    assert probes[0] == len(leader_log)  # the leader starts optimistic, right after its log
    assert probes[1 : 1 + len(expected_probes)] == expected_probes, probes
    # Once matched, the rest goes in one batch (the default cap is far above 191 entries).
    assert len(appends) == 2 + len(divergent_terms), probes
    assert bench.raft("L").progress("F").match == bench.raft("L").log.last_index


def test_a_conflict_term_the_leader_also_holds_lets_it_resume_after_its_own_last_entry_of_that_term():
    """§3.5: when the leader has entries of the follower's conflicting term, it continues right
    after its own last entry of that term, skipping both the rest of that term and the entries
    both already share."""
    common = entries_of_terms((1, 10), (3, 20))  # indexes 1..30 shared
    leader_log = common + entries_of_terms((5, 70), start=31, tag="L")
    follower_log = common + entries_of_terms((3, 20), start=31, tag="F")  # an old term-3 leader's tail
    bench = Bench(
        ["L", "X", "F"],
        logs={"L": leader_log, "X": leader_log, "F": follower_log},
        hard_states={"L": HardState(term=5), "X": HardState(term=5), "F": HardState(term=3)},
    )
    appends, rejections = _elect_and_probe(bench, "L", "F")

    assert [r.conflict_term for r in rejections] == [None, 3], rejections
    last_term3_at_leader = max(e.index for e in leader_log if e.term == 3)
    accepted = appends[-1]
    assert accepted.prev_index == last_term3_at_leader, [a.prev_index for a in appends]
    # The hint's conflict_index (the follower's first term-3 index) would resend 20 shared entries.
    assert rejections[-1].conflict_index < last_term3_at_leader
    assert accepted.entries[0].index == last_term3_at_leader + 1
    assert len(appends) == 3


# ------------------------------------------------------------------------------------------------
# Figure 8: never commit an earlier term's entry by counting replicas
# ------------------------------------------------------------------------------------------------

FIG8 = ["s1", "s2", "s3", "s4", "s5"]


class CountingRaft(Raft):
    """A planted bug: commits any entry stored on a majority, whatever its term."""

    def _may_commit_by_counting(self, index: int) -> bool:
        return True


def _figure8_until_c(raft_class: type[Raft] = Raft) -> Bench:
    """Script thesis Figure 8 (a)-(c) with five cores.

    Every server starts with entry 1 of term 1, committed. Each new leader's first entry is its
    no-op, so the "entry of term 2 at index 2" of the figure is s1's term-2 no-op and s5's term-3
    entry at index 2 is s5's no-op; the timeline is the figure's. One batch holds one entry so
    the script can let the old entry through to s3 while holding back the current-term one.
    """
    first = [Entry(1, 1, b"x")]
    bench = Bench(
        FIG8,
        logs={s: list(first) for s in FIG8},
        hard_states={s: HardState(term=1, commit=1) for s in FIG8},
        raft_class=raft_class,
        max_msg_entries=1,
    )
    # (a) s1 leads term 2 and replicates its index-2 entry to s2 only.
    bench.elect("s1", ["s2", "s3", "s4", "s5"])
    s1 = bench.raft("s1")
    assert (s1.term, s1.log.last_index, s1.log.last_term) == (2, 2, 2)
    bench.deliver(bench.link("s1", "s2"))
    bench.drop(lambda m: m.src == "s1")
    # (b) s1 crashes; s5 wins term 3 with votes from s3, s4 and itself, appends its own index 2.
    bench.crash("s1")
    bench.elect("s5", ["s3", "s4"])
    s5 = bench.raft("s5")
    assert (s5.term, s5.log.last_index, s5.log.last_term) == (3, 2, 3)
    bench.drop(lambda m: m.src == "s5")
    # (c) s5 crashes; s1 restarts, wins term 4 (s2, s3, s4 vote) and continues replicating.
    bench.crash("s5")
    bench.start("s1")
    bench.elect("s1", ["s2", "s3", "s4"])
    s1 = bench.raft("s1")
    assert s1.term == 4 and s1.log.last_term == 4, (s1.term, s1.log.last_term)
    bench.drop(lambda m: m.dst in ("s4", "s5"))
    bench.deliver(bench.link("s1", "s2"))  # s2 already has index 2: it takes the term-4 entry too
    # s3: the optimistic probe is refused (no index 2), then index 2 alone goes through...
    refused = bench.deliver_one(lambda m: m.src == "s1" and m.dst == "s3")
    bench.deliver_one(lambda m: m.src == "s3" and m.dst == "s1")
    assert isinstance(refused, AppendEntries) and bench.disk_log["s3"] == first
    old_entry = bench.deliver_one(lambda m: m.src == "s1" and m.dst == "s3")
    assert isinstance(old_entry, AppendEntries) and [(e.index, e.term) for e in old_entry.entries] == [(2, 2)]
    bench.deliver_one(lambda m: m.src == "s3" and m.dst == "s1")
    # ...while the append carrying the term-4 entry to s3 stays in flight.
    held = [m for m in bench.outbox if m.dst == "s3"]
    assert len(held) == 1 and [e.term for e in held[0].entries] == [4], held
    return bench


def _holders(bench: Bench, index: int, term: int) -> list[str]:
    return [s for s in FIG8 if len(bench.disk_log[s]) >= index and bench.disk_log[s][index - 1].term == term]


def test_figure8_a_leader_never_commits_an_entry_from_an_earlier_term_by_counting_replicas():
    """§3.6.2, Figure 8 (c)-(d): the term-2 entry at index 2 is on a majority (s1, s2, s3) yet the
    term-4 leader must not commit it — a later leader (s5) may still legally overwrite it."""
    bench = _figure8_until_c()
    s1 = bench.raft("s1")
    assert _holders(bench, 2, 2) == ["s1", "s2", "s3"]  # a majority of five
    assert s1.progress("s3").match == 2 and s1.progress("s2").match == 3
    assert s1.commit == 1, f"leader of term 4 committed index {s1.commit} by counting term-2 replicas"
    assert max(bench.commit_history["s1"]) == 1
    assert [e.index for e in bench.applied["s1"]] == [1]
    # Heartbeats between s1 and s2 change nothing: no timer commits it either.
    for _ in range(3):
        bench.tick("s1", s1.config.heartbeat_interval)
        bench.deliver(bench.link("s1", "s2"))
    assert s1.commit == 1

    # (d) Why: s1 crashes, s5 comes back and wins (its last term 3 beats s3's and s4's 2 and 1)...
    bench.crash("s1")
    bench.outbox.clear()
    bench.start("s5")
    bench.elect("s5", ["s2", "s3", "s4"])
    assert bench.raft("s5").role is Role.LEADER
    bench.deliver()
    # ...and replaces the term-2 entry everywhere with its own term-3 entry, legitimately.
    assert _holders(bench, 2, 2) == ["s1"]
    assert _holders(bench, 2, 3) == ["s2", "s3", "s4", "s5"]
    assert bench.raft("s5").commit >= 2
    # Nobody ever applied the term-2 entry, so no state machine diverged.
    assert all(e.term != 2 for s in FIG8 for e in bench.applied[s])


def test_figure8_the_earlier_term_entry_commits_only_together_with_a_current_term_entry():
    """§3.6.2, Figure 8 (e): once an entry of the leader's own term is on a majority, it commits,
    and with it every entry before it; after that no other server can win an election."""
    bench = _figure8_until_c()
    s1 = bench.raft("s1")
    assert s1.commit == 1
    bench.deliver(bench.link("s1", "s3"))  # the held term-4 entry reaches s3: now on s1, s2, s3
    assert _holders(bench, 3, 4) == ["s1", "s2", "s3"]
    assert s1.commit == 3
    # The commit index jumped from 1 straight to 3: index 2 never committed on its own.
    assert 2 not in bench.commit_history["s1"]
    assert [(e.index, e.term) for e in bench.applied["s1"]] == [(1, 1), (2, 2), (3, 4)]

    # s5 can no longer win: s1 is down, but s2 and s3 hold a term-4 entry and refuse it.
    bench.crash("s1")
    bench.outbox.clear()
    bench.start("s5")
    with pytest.raises(AssertionError, match="did not win"):
        bench.elect("s5", ["s2", "s3", "s4"], max_campaigns=4)
    refusals = {m.src for m in bench.sent if isinstance(m, RequestVoteResponse) and m.dst == "s5"
                and not m.granted and m.term == bench.raft("s5").term}
    assert {"s2", "s3"} <= refusals
    assert _holders(bench, 2, 2) == ["s1", "s2", "s3"]


def test_figure8_script_catches_a_leader_that_commits_earlier_term_entries_by_counting():
    """Control for the two tests above: with the commit rule of §3.6.2 removed, the same script
    commits index 2 at (c), and s5 then overwrites a committed, applied entry (Figure 8 (d))."""
    bench = _figure8_until_c(CountingRaft)
    assert bench.raft("s1").commit == 2  # the planted bug commits by counting replicas
    assert (2, 2) in [(e.index, e.term) for e in bench.applied["s1"]]
    bench.crash("s1")
    bench.outbox.clear()
    bench.start("s5")
    bench.elect("s5", ["s2", "s3", "s4"])
    bench.deliver()
    applied_at_2 = {e.term for s in FIG8 for e in bench.applied[s] if e.index == 2}
    assert applied_at_2 == {2, 3}, "the committed entry was overwritten and applied differently"


# ------------------------------------------------------------------------------------------------
# Batching, pipelining, batch caps
# ------------------------------------------------------------------------------------------------


def test_commands_proposed_together_share_one_append_entries_per_follower_and_one_persist():
    """§10.2.1 / §3.5: proposals that arrive between two Ready bundles go out as one
    AppendEntries per follower, and the leader persists them with one write (group commit)."""
    bench = make_leader_with_replicating_followers(3)
    leader = bench.raft("n1")
    first = leader.log.last_index + 1
    readies_before = bench.readies["n1"]
    for n in range(100):
        leader.propose(f"incr {n}".encode())  # no Ready in between: they arrive "concurrently"
    start = len(bench.sent)
    bench.process("n1")
    appends = [m for m in bench.sent[start:] if isinstance(m, AppendEntries)]
    assert sorted(m.dst for m in appends) == ["n2", "n3"], appends
    for m in appends:
        assert [e.index for e in m.entries] == list(range(first, first + 100))
    assert bench.readies["n1"] == readies_before + 1  # one persist for the hundred entries
    follower_readies = {f: bench.readies[f] for f in ("n2", "n3")}
    bench.deliver()
    assert leader.commit == first + 99
    for follower, before in follower_readies.items():
        assert bench.readies[follower] == before + 1  # each follower persisted the batch at once too
        assert bench.disk_log[follower] == bench.disk_log["n1"]


def test_concurrent_commands_in_the_simulated_cluster_need_far_fewer_appends_than_commands():
    """With the shell processing each proposal at once, a full pipeline window makes the rest
    wait and travel together: far fewer AppendEntries than commands reach each follower."""
    cluster = SimCluster(3, seed=4, max_inflight=4, max_msg_entries=64)
    leader = cluster.wait_leader()
    cluster.tick(4)
    sent = record_sends(cluster)
    requests = [cluster.propose(leader, f"incr {n}") for n in range(200)]
    assert cluster.stabilize(max_ticks=50)
    assert all(r.result is not None and r.result.ok for r in requests)
    for follower in cluster.ids:
        if follower == leader:
            continue
        appends = [m for _, m in sent if isinstance(m, AppendEntries) and m.dst == follower and m.entries]
        carried = sum(len(m.entries) for m in appends)
        assert carried >= 200
        assert len(appends) <= 4 + math.ceil(200 / 64) + 1, len(appends)
        assert max(len(m.entries) for m in appends) > 1


def test_replication_to_a_follower_is_pipelined_up_to_max_inflight_appends():
    """§10.2.1: the leader keeps several appends in flight to a follower without waiting for
    answers, up to ``max_inflight``; then it waits, and one answer frees one slot."""
    max_inflight = 5
    bench = make_leader_with_replicating_followers(3, max_inflight=max_inflight)
    leader = bench.raft("n1")
    to_n2 = lambda m: isinstance(m, AppendEntries) and m.dst == "n2" and m.entries  # noqa: E731
    start = len(bench.sent)
    for n in range(max_inflight + 3):
        bench.propose("n1", f"incr {n}".encode())
    appends = [m for m in bench.sent[start:] if to_n2(m)]
    assert len(appends) == max_inflight, [len(m.entries) for m in appends]
    assert len(leader.progress("n2").inflight) == max_inflight
    assert [len(m.entries) for m in appends] == [1] * max_inflight  # sent before any answer came back
    # The window is full: three more proposals are queued at the leader, not sent.
    waiting = leader.log.last_index - appends[-1].entries[-1].index
    assert waiting == 3
    # One answer frees one slot, and the waiting entries leave together in one append.
    bench.deliver_one(to_n2)
    start = len(bench.sent)
    bench.deliver_one(lambda m: isinstance(m, AppendEntriesResponse) and m.src == "n2")
    more = [m for m in bench.sent[start:] if to_n2(m)]
    assert len(more) == 1 and len(more[0].entries) == waiting, more
    assert len(leader.progress("n2").inflight) == max_inflight
    bench.deliver()
    assert leader.progress("n2").match == leader.log.last_index == leader.commit


def test_a_cluster_with_slow_links_keeps_several_appends_in_flight_to_each_follower():
    """§10.2.1: with a 6-tick link delay and a command every tick, each follower has more than
    one append outstanding at once, never more than ``max_inflight``."""
    max_inflight = 4
    cluster = SimCluster(3, seed=8, max_inflight=max_inflight)
    leader = cluster.wait_leader()
    cluster.tick(4)
    for f in cluster.ids:
        if f != leader:
            cluster.delay(leader, f, ticks=6)
    peak = {f: 0 for f in cluster.ids if f != leader}
    requests = []
    for n in range(40):
        requests.append(cluster.propose(leader, f"incr {n}"))
        for f in peak:
            peak[f] = max(peak[f], len(cluster.raft(leader).progress(f).inflight))
        cluster.tick(1)
    cluster.heal()
    assert cluster.stabilize(max_ticks=100)
    assert all(r.result is not None and r.result.ok for r in requests)
    for f, most in peak.items():
        assert 1 < most <= max_inflight, f"{f}: at most {most} appends in flight"


def test_append_entries_batches_are_capped_by_max_msg_entries():
    """The leader never puts more than ``max_msg_entries`` entries in one AppendEntries; a long
    backlog goes out as consecutive full batches."""
    bench = make_leader_with_replicating_followers(3, max_msg_entries=10, max_inflight=64)
    leader = bench.raft("n1")
    first = leader.log.last_index + 1
    for n in range(95):
        leader.propose(f"incr {n}".encode())
    start = len(bench.sent)
    bench.process("n1")
    appends = [m for m in bench.sent[start:] if isinstance(m, AppendEntries) and m.dst == "n2"]
    assert [len(m.entries) for m in appends] == [10] * 9 + [5]
    indexes = [e.index for m in appends for e in m.entries]
    assert indexes == list(range(first, first + 95))  # contiguous, in order, nothing twice
    bench.deliver()
    assert bench.disk_log["n2"] == bench.disk_log["n1"]


def test_append_entries_batches_are_capped_by_max_msg_bytes_but_an_oversized_entry_still_goes_alone():
    """The leader keeps each batch's payload within ``max_msg_bytes``; an entry larger than the
    cap is still sent, alone, so replication never stalls."""
    bench = make_leader_with_replicating_followers(3, max_msg_bytes=350)
    leader = bench.raft("n1")
    for n in range(10):
        leader.propose(bytes([65 + n]) * 100)
    leader.propose(b"Z" * 1000)  # over the cap by itself
    for n in range(2):
        leader.propose(b"y" * 100)
    start = len(bench.sent)
    bench.process("n1")
    appends = [m for m in bench.sent[start:] if isinstance(m, AppendEntries) and m.dst == "n2"]
    sizes = [sum(len(e.data) for e in m.entries) for m in appends]
    for m, size in zip(appends, sizes):
        assert size <= 350 or len(m.entries) == 1, sizes
    assert [len(m.entries) for m in appends if sum(len(e.data) for e in m.entries) > 350] == [1]
    assert max(len(m.entries) for m in appends) > 1  # still batched within the cap
    assert sum(len(m.entries) for m in appends) == 13
    bench.deliver()
    assert bench.disk_log["n2"] == bench.disk_log["n1"] and leader.commit == leader.log.last_index


# ------------------------------------------------------------------------------------------------
# Message faults never break an invariant; the cluster converges once healed
# ------------------------------------------------------------------------------------------------


def _apply_faults(cluster: SimCluster, kind: str, rng: random.Random) -> None:
    ids = cluster.ids
    if kind == "drop":
        for node in ids:
            cluster.drop(node, rate=0.3)
    elif kind == "duplicate":
        for node in ids:
            cluster.duplicate(node, rate=0.5)
    elif kind == "delay":
        for node in ids:
            cluster.delay(node, ticks=rng.randint(1, 4), jitter=rng.randint(0, 3))
    elif kind == "reorder":
        for node in ids:
            cluster.reorder(node, jitter=5)
    else:  # all of them on different links at once
        a, b, c, d, e = ids
        cluster.drop(a, rate=0.25)
        cluster.duplicate(b, rate=0.5)
        cluster.delay(c, ticks=3, jitter=2)
        cluster.reorder(d, jitter=6)
        cluster.duplicate(e, c, rate=0.5)


class DeliveryOrder:
    """Watches the network: counts deliveries that came later than the tick they were sent in,
    and deliveries that overtook an earlier message on the same directed link."""

    def __init__(self, cluster: SimCluster):
        self.delayed = 0
        self.overtaken = 0
        self._seq = 0
        self._sent: dict[int, tuple[int, int, Message]] = {}  # id -> (seq, tick, m); keeps ids unique
        self._last: dict[tuple[str, str], int] = {}
        send, pop_due = cluster.network.send, cluster.network.pop_due

        def recording_send(m: Message, now: int) -> None:
            self._seq += 1
            self._sent[id(m)] = (self._seq, now, m)
            send(m, now)

        def recording_pop(now: int) -> Message | None:
            m = pop_due(now)
            if m is not None:
                order, sent_at, _ = self._sent[id(m)]
                link = (m.src, m.dst)
                self.delayed += now > sent_at
                self.overtaken += order < self._last.get(link, 0)
                self._last[link] = max(order, self._last.get(link, 0))
            return m

        cluster.network.send = recording_send  # type: ignore[method-assign]
        cluster.network.pop_due = recording_pop  # type: ignore[method-assign]


@pytest.mark.parametrize("kind", ["drop", "duplicate", "delay", "reorder", "mixed"])
def test_dropped_duplicated_delayed_or_reordered_messages_never_break_an_invariant_and_the_cluster_converges(kind):
    """§3.5: Raft assumes an unreliable network; AppendEntries and its answers are idempotent and
    stale answers are recognised. Over several seeds, with the invariant checker watching every
    step, commands keep committing through the faults and all nodes converge once healed."""
    for seed in range(3):
        cluster = SimCluster(5, seed=seed, max_msg_entries=8, max_inflight=4, client_timeout=80)
        rng = random.Random(f"{kind}-{seed}")
        order = DeliveryOrder(cluster)
        cluster.wait_leader()
        _apply_faults(cluster, kind, rng)
        for tick in range(200):
            leader = cluster.leader()
            # A leadership change under the same faults (retried: a lost TimeoutNow aborts one).
            if tick >= 80 and tick % 20 == 0 and leader is not None and len(cluster.checker.leaders) == 1:
                cluster.transfer(rng.choice([n for n in cluster.ids if n != leader]), leader=leader)
            if leader is not None and rng.random() < 0.6:
                for _ in range(rng.randint(1, 3)):
                    cluster.propose(leader, f"incr {rng.randint(1, 9)}")
            cluster.tick(1)
        stats = dict(cluster.network.stats)
        cluster.heal()
        assert cluster.stabilize(max_ticks=500), f"seed {seed}: no convergence after heal ({kind})"
        # The faults really happened.
        if kind in ("drop", "mixed"):
            assert stats["dropped"] > 0, f"seed {seed}"
        if kind in ("duplicate", "mixed"):
            assert stats["duplicated"] > 0, f"seed {seed}"
        if kind in ("delay", "mixed"):
            assert order.delayed > 0, f"seed {seed}: nothing was delayed"
        if kind in ("reorder", "mixed"):
            assert order.overtaken > 0, f"seed {seed}: nothing was delivered out of order"
        # Commands made progress through the faults, and the outcome is the same everywhere.
        acked = cluster.acknowledged()
        assert len(acked) >= 20, f"seed {seed}: only {len(acked)} commands acknowledged under {kind}"
        assert_no_acknowledged_command_lost(cluster, f"seed {seed} ({kind})")
        logs = {tuple(cluster.node(n).disk.entries) for n in cluster.ids}
        assert len(logs) == 1, f"seed {seed}: logs differ after convergence"
        values = prefix_values(cluster.node(cluster.ids[0]).disk.entries)
        for req in acked:
            assert req.result.result == values[req.result.index], f"seed {seed}: wrong result for {req}"
        assert len({cluster.state(n).value for n in cluster.ids}) == 1, f"seed {seed}"  # type: ignore[attr-defined]
        assert cluster.checker.checks > 1000, f"seed {seed}"
        assert len(cluster.checker.leaders) >= 2, f"seed {seed}: no leader change happened under {kind}"
