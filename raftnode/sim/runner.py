"""Randomized simulation runs: seeded schedules of faults and client commands.

One seed fixes everything: the schedule, the network's coin flips and every node's election
timeouts, so ``run_seed(seed, ...)`` replays a run exactly. A run is:

1. ``steps`` random actions — ticks, client commands (single and in bursts), linearizable reads
   (ReadIndex, at the leader or any node; each must see every command acknowledged before it
   was issued), partitions, cut
   links, lossy / slow / reordering / duplicating links, crashes and restarts of a minority,
   heals, leadership transfers and membership changes (new nodes added, members — the leader
   too — removed) — with every invariant checked as it goes; most seeds also snapshot and
   compact logs, so lagging and new nodes catch up through chunked InstallSnapshot; beside the
   one-shot commands, clients in sessions (``SimClients``) resend theirs across leader changes
   and send some twice, and every command of theirs must be applied exactly once once answered
   (at most once otherwise); session tables are small on some seeds, so sessions get evicted
   and expire; some commands, in sessions or not, go several in one batch entry (``run_many``);
2. liveness: faults stop (network healed, damaged disks restored from a copy, crashed nodes
   restarted); within a bound a leader must
   emerge and a new command must commit; then removed nodes that never learned of their
   removal are stopped, as an operator would, and every member must apply the whole log (with
   disk faults, after a follower restarts from an older copy under the leader in power: issue
   16's stuck follower, which the leader must catch up);
3. durability: every acknowledged command is on every member's disk and applied everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from ..core.errors import RaftError
from ..core.raft import Raft
from ..core.ready import Role
from ..node.apply import Applier
from ..node.driver import ReadyStep
from ..wire.sessions import SessionTable
from .clients import SimClients
from .cluster import DISK_WRITE_FAULTS, SimCluster
from .invariants import InvariantViolation
from .trace import TraceLine

ELECTION_TIMEOUT = (10, 20)
LIVENESS_BOUND = 20 * ELECTION_TIMEOUT[1]  # ticks after faults stop


@dataclass
class RunReport:
    """What one seed did, and whether it kept every promise."""

    seed: int
    nodes: int
    steps: int
    pre_vote: bool = True
    check_quorum: bool = True
    membership: bool = True
    disk_faults: bool = False
    ticks: int = 0
    leaders: int = 0
    max_term: int = 0
    commit_index: int = 0
    commands: int = 0
    acknowledged: int = 0
    session_commands: int = 0
    session_acknowledged: int = 0
    batch_entries: int = 0  # batch entries applied (run_many: many commands in one entry)
    reads_served: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    violation: str | None = None  # the broken invariant's name, or "liveness"
    detail: str | None = None
    trace: list[TraceLine] | None = None
    node_ids: tuple[str, ...] = ()  # every node the run had, the ones added included

    @property
    def ok(self) -> bool:
        return self.violation is None

    def replay_command(self) -> str:
        flags = "".join(
            f" --no-{name}" for name, on in
            (("pre-vote", self.pre_vote), ("check-quorum", self.check_quorum), ("membership", self.membership)) if not on
        ) + (" --disk-faults" if self.disk_faults else "")
        return f"raftctl sim --seed {self.seed} --nodes {self.nodes} --steps {self.steps}{flags} --trace"


def run_seed(
    seed: int,
    *,
    nodes: int = 5,
    steps: int = 2000,
    raft_class: type[Raft] = Raft,
    pre_vote: bool = True,
    check_quorum: bool = True,
    membership: bool = True,
    disk_faults: bool = False,
    corrupt_as_torn: bool = False,
    trace: bool = False,
    session_table: Callable[..., SessionTable] = SessionTable,
    ready_step: ReadyStep | None = None,
    applier_class: type[Applier] = Applier,
) -> RunReport:
    """Run one seeded schedule and check safety throughout and liveness at the end.

    ``disk_faults`` mixes in disk faults (see ``_Schedule.disk_fault``); ``corrupt_as_torn`` is a
    test-only planted bug (a corrupt record taken for a torn tail). ``session_table`` makes each
    node's session table (a seam for planted bugs), called with this seed's bounds; ``ready_step``
    replaces the shared driver's ``process_ready`` (a seam for a planted reordering), and
    ``applier_class`` each node's applier (a seam for planted bugs in applying batch entries)."""
    report = RunReport(seed=seed, nodes=nodes, steps=steps, pre_vote=pre_vote, check_quorum=check_quorum,
                       membership=membership, disk_faults=disk_faults)
    schedule_rng = random.Random(f"schedule-{seed}")
    cluster = SimCluster(
        nodes,
        seed=seed,
        raft_class=raft_class,
        trace=trace,
        election_timeout=ELECTION_TIMEOUT,
        heartbeat_interval=2,
        pre_vote=pre_vote,
        check_quorum=check_quorum,
        max_msg_entries=16,
        max_inflight=8,
        snapshot_every=schedule_rng.choice([None, 25, 100, 400]),
        snapshot_chunk_bytes=schedule_rng.choice([4, 64]),
        corrupt_as_torn=corrupt_as_torn,
        ready_step=ready_step,
        applier_class=applier_class,
        session_table=partial(session_table, max_sessions=schedule_rng.choice([2, 8, 64]),
                              timeout=schedule_rng.choice([150.0, 1000.0])),
    )
    batch_rng = random.Random(f"batches-{seed}")  # their own draws: the schedule's and clients' stay as without them
    schedule = _Schedule(cluster, schedule_rng, report, membership=membership, disk_faults=disk_faults,
                         batch_rng=random.Random(f"burst-batches-{seed}"))
    clients = SimClients(cluster, random.Random(f"clients-{seed}"), batch_rng=batch_rng)
    try:
        _run_steps(steps, schedule, clients, batch_rng)
        _check_liveness(cluster, lost_state=disk_faults)
        _check_durability(cluster)
    except InvariantViolation as exc:
        report.violation, report.detail = exc.invariant, exc.detail
    except AssertionError as exc:  # SafetyViolation raised inside a core
        report.violation, report.detail = "core assertion", str(exc)
    _count_outcomes(report, cluster, clients)
    return report


def _run_steps(steps: int, schedule: _Schedule, clients: SimClients, batch_rng: random.Random) -> None:
    """The random actions, with the clients' commands (some in batches) between them."""
    for _ in range(steps):
        schedule.step()
        if clients.rng.random() < 0.15:
            clients.command(schedule.command())
        if batch_rng.random() < 0.05:
            clients.batch([schedule.command(batch_rng) for _ in range(batch_rng.randint(2, 4))])
        clients.step()


def _count_outcomes(report: RunReport, cluster: SimCluster, clients: SimClients) -> None:
    """Fill ``report``'s totals from a finished run."""
    checker = cluster.checker
    report.ticks = cluster.now
    report.leaders = len(checker.leaders)
    report.max_term = max(checker.leaders, default=0)
    report.commit_index = max(checker.committed, default=0)
    report.commands = len(cluster.requests)
    report.acknowledged = len(checker.acked)
    report.session_commands = clients.stats["commands"]
    report.session_acknowledged = checker.session_acked
    report.batch_entries = len(checker.batch_entries)
    report.reads_served = checker.reads_served
    report.trace = cluster.trace
    report.node_ids = tuple(cluster.nodes)


class _Schedule:
    """Draws one random action per step."""

    def __init__(self, cluster: SimCluster, rng: random.Random, report: RunReport, *, membership: bool,
                 disk_faults: bool = False, batch_rng: random.Random | None = None):
        self.cluster = cluster
        self.rng = rng
        self.batch_rng = batch_rng if batch_rng is not None else random.Random("batches")
        self.report = report
        self.max_voters = len(cluster.ids) + 2
        self.next_id = len(cluster.ids) + 1
        self.actions = [
            (self.tick, 50),
            (self.propose, 22),
            (self.burst, 3),
            (self.read, 8),
            (self.network_fault, 8),
            (self.heal, 5),
            (self.crash, 3),
            (self.restart, 5),
            (self.transfer, 2),
            (self.stabilize, 2),
            (self.change_membership, 2 if membership else 0),
            (self.disk_fault, 4 if disk_faults else 0),
        ]
        self._weights = [w for _, w in self.actions]

    def step(self) -> None:
        action = self.rng.choices(self.actions, weights=self._weights)[0][0]
        action()

    def _count(self, what: str) -> None:
        self.report.faults[what] = self.report.faults.get(what, 0) + 1

    def command(self, rng: random.Random | None = None) -> str:
        rng = rng or self.rng
        roll = rng.random()
        if roll < 0.03:
            return "bogus"  # refused by the state machine, identically everywhere
        verb = "incr" if roll < 0.8 else "decr"
        return f"{verb} {rng.randint(1, 9)}"

    def tick(self) -> None:
        self.cluster.tick(self.rng.randint(1, 3))

    def _client_node(self, leader_share: float) -> str | None:
        """Where a client's request goes: the leader ``leader_share`` of the time, else any live node."""
        live = self.cluster.live()
        if not live:
            return None
        leader = self.cluster.leader()
        return leader if leader is not None and self.rng.random() < leader_share else self.rng.choice(live).id

    def propose(self) -> None:
        node = self._client_node(0.8)
        if node is not None:
            self.cluster.propose(node, self.command(), timeout=self.rng.randint(20, 120))

    def read(self) -> None:
        node = self._client_node(0.6)
        if node is not None:
            self.cluster.read(node, timeout=self.rng.randint(20, 120))

    def burst(self) -> None:
        """Many commands at the leader: one by one, then (half of the time) some in batch entries."""
        leader = self.cluster.leader()
        if leader is None:
            return
        raft = self.cluster.raft(leader)
        rng = self.batch_rng
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 4)):
                if raft.role is not Role.LEADER:
                    break
                self.cluster.propose_batch(leader, [self.command(rng) for _ in range(rng.randint(1, 12))])
        for _ in range(self.rng.randint(5, 40)):
            if raft.role is not Role.LEADER:
                break
            self.cluster.propose(leader, self.command())

    def network_fault(self) -> None:
        c, rng = self.cluster, self.rng
        members = c.members()
        ids = members if len(members) >= 2 else list(c.ids)
        a, b = rng.sample(ids, 2)
        kind = rng.choice(["isolate", "cut", "partition", "drop", "delay", "reorder", "duplicate"])
        self._count(kind)
        if kind == "isolate":
            c.isolate(a)
        elif kind == "cut":
            c.cut(a, b)
        elif kind == "partition":
            c.partition(rng.sample(ids, rng.randint(1, len(ids) - 1)))
        elif kind == "drop":
            c.drop(a, b if rng.random() < 0.5 else None, rate=rng.choice([0.1, 0.3, 0.6]))
        elif kind == "delay":
            c.delay(a, b if rng.random() < 0.5 else None, ticks=rng.randint(1, 8), jitter=rng.randint(0, 4))
        elif kind == "reorder":
            c.reorder(a, b if rng.random() < 0.5 else None, jitter=rng.randint(1, 6))
        else:
            c.duplicate(a, b if rng.random() < 0.5 else None, rate=rng.choice([0.2, 0.5]))

    def heal(self) -> None:
        self._count("heal")
        self.cluster.heal()

    def crash(self) -> None:
        live = self._may_lose_one_more()
        if not live:
            return
        self._count("crash")
        leader = self.cluster.leader()
        victim = leader if leader is not None and self.rng.random() < 0.4 else self.rng.choice(live)
        self.cluster.crash(victim)

    def restart(self) -> None:
        down = [n.id for n in self.cluster.nodes.values() if not n.alive and not n.removed and not n.refused]
        if down:
            self._count("restart")
            self.cluster.restart(self.rng.choice(down))

    def _may_lose_one_more(self) -> list[str]:
        """Live members one more of which may go down (crash or disk fault) keeping a majority up."""
        c = self.cluster
        configuration = c.configuration()
        live = [n.id for n in c.live() if n.id in configuration.members() and n.write_fault is None]
        down = [n for n in configuration.voters
                if not c.node(n).alive or c.node(n).write_fault is not None or c.node(n).disk_full]
        return live if len(down) < (len(configuration.voters) - 1) // 2 else []

    def disk_fault(self) -> None:
        """A disk fault: one that hits a live node's next write (it then stops); a live node's disk
        filling up (it stays up and drops its writes; a full leader hands over) or getting room
        again; or damage to a crashed node's disk — a bit flipped in a record (it then refuses to
        start, for good), or the end of its log lost (restored from an older copy; hard state kept)."""
        c, rng = self.cluster, self.rng
        kind = rng.choice([*DISK_WRITE_FAULTS, "corrupt record", "older copy", "full disk"])
        if kind == "full disk":
            self._fill_or_free_a_disk()
            return
        if kind in DISK_WRITE_FAULTS:
            live = self._may_lose_one_more()
            if live:
                self._count(kind)
                c.fail_next_write(rng.choice(live), kind)
            return
        configuration = c.configuration()
        down = [n for n in c.nodes.values() if not n.alive and not n.removed and not n.refused
                and n.disk.last_index > n.disk.offset]
        if not down:
            return
        node = rng.choice(down)
        if kind == "corrupt record":
            refused = [n for n in configuration.voters if c.node(n).refused]
            if len(refused) < (len(configuration.voters) - 1) // 2:
                self._count(kind)
                c.corrupt_record(node.id, rng.choice([node.disk.last_index, rng.randint(node.disk.offset + 1, node.disk.last_index)]))
            return
        lowest = _lowest_safe_rewind(c, node.id)
        if lowest < node.disk.last_index:
            self._count(kind)
            c.rewind_log(node.id, rng.randint(lowest, node.disk.last_index - 1))

    def _fill_or_free_a_disk(self) -> None:
        """Give a full disk room again, or fill a live member's disk (the leader's 40% of the time)."""
        c, rng = self.cluster, self.rng
        full = [n.id for n in c.live() if n.disk_full]
        if full and rng.random() < 0.5:
            self._count("disk freed")
            c.fill_disk(rng.choice(full), False)
            return
        live = [n for n in self._may_lose_one_more() if not c.node(n).disk_full]
        if live:
            self._count("disk full")
            leader = c.leader()
            c.fill_disk(leader if leader in live and rng.random() < 0.4 else rng.choice(live))

    def transfer(self) -> None:
        leader = self.cluster.leader()
        if leader is None:
            return
        targets = sorted(self.cluster.raft(leader).configuration.voters - {leader})
        if not targets:
            return
        self._count("transfer")
        self.cluster.transfer(self.rng.choice(targets), leader=leader)

    def stabilize(self) -> None:
        self.cluster.tick(self.rng.randint(10, 40))

    def change_membership(self) -> None:
        """Add a brand-new node, or remove a member (the leader itself now and then)."""
        c, rng = self.cluster, self.rng
        leader = c.leader()
        if leader is None:
            return
        configuration = c.raft(leader).configuration
        try:
            if len(configuration.voters) <= 3 or (len(configuration.voters) < self.max_voters and rng.random() < 0.5):
                node_id = f"n{self.next_id}"
                self.next_id += 1
                c.add_node(node_id, leader=leader)
                self._count("add node")
            else:
                victim = leader if rng.random() < 0.25 else rng.choice(sorted(configuration.members()))
                remaining = configuration.voters - {victim}
                if sum(1 for n in remaining if c.node(n).refused) > (len(remaining) - 1) // 2:
                    return  # the refused disks would hold a majority's say: replace them first
                c.remove_node(victim, leader=leader)
                self._count("remove leader" if victim == leader else "remove node")
        except RaftError:
            self._count("membership change refused")


def _lowest_safe_rewind(cluster: SimCluster, node_id: str) -> int:
    """How far back a crashed node's log may be lost without breaking Raft: only entries known
    committed and held by a majority of the voters without it (it keeps its vote, so a candidate
    lacking them must still meet a holder among any majority it asks)."""
    disk = cluster.node(node_id).disk
    checker = cluster.checker
    voters = cluster.configuration().voters
    others = [cluster.node(n).disk for n in voters if n != node_id and n in cluster.nodes]
    index = disk.last_index
    while index > disk.offset:
        term = disk.term(index)
        holders = sum(1 for d in others if d.holds(index, term))  # type: ignore[arg-type]
        if checker.committed.get(index) != term or holders <= len(voters) // 2:
            break
        if checker.acked.get(index) == term:  # and a majority of the voters it was acknowledged with
            acked_by = checker.voters[index]
            if len((checker.holders[index] - {node_id}) & acked_by) <= len(acked_by) // 2:
                break
        index -= 1
    return index


def _restart_a_follower_from_an_older_copy(cluster: SimCluster) -> None:
    """Issue 16's stuck follower under a leader in power: a follower's process restarts at once on
    its disk restored from an older copy (as far back as is safe), so it holds less than the
    leader counts it at; the leader must notice and catch it up."""
    leader = cluster.leader()
    for node_id in sorted(cluster.configuration().voters - {leader}):
        if cluster.node(node_id).alive:
            cluster.crash(node_id)
            lowest = _lowest_safe_rewind(cluster, node_id)
            if lowest < cluster.node(node_id).disk.last_index:
                cluster.rewind_log(node_id, lowest)
            cluster.restart(node_id)
            return


def _check_liveness(cluster: SimCluster, *, lost_state: bool = False) -> None:
    """Faults stop: a command must commit and every member converge within LIVENESS_BOUND ticks;
    with ``lost_state`` a follower then restarts from an older copy and must catch up too."""
    cluster.heal()
    for node_id in cluster.ids:
        cluster.node(node_id).write_fault = None
        if cluster.node(node_id).disk_full:
            cluster.fill_disk(node_id, False)
        cluster.repair_disk(node_id)  # the operator restores a file refused as corrupt from a copy
        cluster.restart(node_id)
    deadline = cluster.now + LIVENESS_BOUND
    while cluster.now < deadline:
        leader = cluster.leader()
        if leader is not None:
            req = cluster.propose(leader, "incr 1", timeout=ELECTION_TIMEOUT[1] * 2)
            cluster.run_until(lambda: req.done, max_ticks=max(0, deadline - cluster.now))
            if req.result is not None and req.result.ok:
                members = cluster.raft(leader).committed_configuration().members()
                for node in cluster.live():
                    if node.id not in members:
                        cluster.crash(node.id)  # removed, but never learned it: the operator stops it
                if lost_state:
                    _restart_a_follower_from_an_older_copy(cluster)
                break
        cluster.tick()
    else:
        raise InvariantViolation(
            "liveness", f"no command committed within {LIVENESS_BOUND} ticks after faults stopped"
        )
    if not cluster.stabilize(max_ticks=max(1, deadline - cluster.now)):
        raise InvariantViolation("liveness", f"nodes did not converge within {LIVENESS_BOUND} ticks after faults stopped")


def _check_durability(cluster: SimCluster) -> None:
    """Every acknowledged command is on every member's disk and applied."""
    members = cluster.configuration().members()
    for index, term in cluster.checker.acked.items():
        for node in (cluster.nodes[m] for m in sorted(members)):
            if not node.disk.holds(index, term):
                raise InvariantViolation("durability", f"acknowledged entry {index} (term {term}) missing on {node.id}")
            if node.applier is None or node.applier.applied_index < index:
                raise InvariantViolation("durability", f"acknowledged entry {index} not applied on {node.id}")
