"""The command contract of the seed document (state_machine_commands.rst), driven through SimCluster.

Each test is one line of "The command contract" in the scenario catalog. ``run_command`` is
``SimCluster.propose``; its answer is a :class:`CommandResult`. The Counter state machine accepts
``incr N``, ``decr N`` and ``get``; anything else is a deterministic refusal (CommandError).

Thesis references: committing and applying (§3.5, §3.6), redirecting clients (§6.2), a leader
that steps down or is deposed (§3.6.2, §6.2 CheckQuorum), and §6.3 on what a client may conclude
from a timeout (nothing: the command may or may not commit later).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from raftnode.core.commands import CommandResult
from raftnode.core.ready import Role
from raftnode.node.statemachines import Counter
from raftnode.sim.cluster import ClientRequest, SimCluster

SEEDS = range(4)


# -- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerMoment:
    """What the cluster looked like at the instant a request was answered."""

    node: str
    result: CommandResult
    node_commit: int
    node_applied: int
    node_value: int
    holders: frozenset[str]  # nodes whose disk holds the entry at result.index with the leader's term


def spy_on_answers(c: SimCluster, monkeypatch) -> dict[int, AnswerMoment]:
    """Record the cluster's state at the exact moment each request gets its answer.

    ``SimCluster._answer`` is the single place every answer goes through; wrapping it on the
    instance lets a test look at commit, apply and disks *when* the answer is given, not later.
    """
    moments: dict[int, AnswerMoment] = {}
    original = c._answer

    def spy(node, req: ClientRequest, result: CommandResult) -> None:
        holders: frozenset[str] = frozenset()
        if result.index is not None and node.raft is not None:
            term = node.raft.log.term(result.index)
            holders = frozenset(
                n.id
                for n in c.nodes.values()
                if len(n.disk.entries) >= result.index and n.disk.entries[result.index - 1].term == term
            )
        moments[req.id] = AnswerMoment(
            node=node.id,
            result=result,
            node_commit=node.raft.commit if node.raft is not None else -1,
            node_applied=node.applier.applied_index if node.applier is not None else -1,
            node_value=node.applier.state_machine.value if node.applier is not None else 0,
            holders=holders,
        )
        original(node, req, result)

    monkeypatch.setattr(c, "_answer", spy)
    return moments


def last_indexes(c: SimCluster) -> dict[str, int]:
    return {n: c.raft(n).log.last_index for n in c.ids}


def disk_logs(c: SimCluster) -> dict[str, list]:
    return {n: list(c.node(n).disk.entries) for n in c.ids}


def followers(c: SimCluster, leader: str) -> list[str]:
    return [n for n in c.ids if n != leader]


def majority(c: SimCluster) -> int:
    return len(c.ids) // 2 + 1


def applied_commands(c: SimCluster) -> set[bytes]:
    return {data for _term, data in c.checker.applied.values()}


def replay_counter(entries, upto: int) -> int:
    """The Counter's value after applying the committed log up to ``upto`` (a model, not the code under test)."""
    model = Counter()
    for entry in entries[:upto]:
        if entry.data:
            try:
                model.process_command(entry.data.decode())
            except Exception:  # a refused command changes nothing
                pass
    return model.value


class FlakyCounter(Counter):
    """A Counter that can be told to raise a non-CommandError exception for one command.

    ``fail(command, times=K)`` fails the first K attempts, then succeeds; ``times=None`` fails forever.
    """

    def __init__(self) -> None:
        super().__init__()
        self.failing: str | None = None
        self.failures_left: int | None = 0
        self.attempts = 0

    def fail(self, command: str, *, times: int | None) -> None:
        self.failing = command
        self.failures_left = times

    def process_command(self, command: str) -> int:
        if command == self.failing:
            self.attempts += 1
            if self.failures_left is None or self.failures_left > 0:
                if self.failures_left is not None:
                    self.failures_left -= 1
                raise OSError(f"disk full while applying {command!r}")
        return super().process_command(command)


# -- at the leader: the result, after commit and apply ----------------------------------------


def test_leader_returns_the_process_command_result_only_after_the_entry_is_committed_on_a_majority_and_applied(
    monkeypatch,
):
    """§3.5/§3.6: the leader answers a command with its state machine's output once the entry is
    committed (stored on a majority) and applied — never earlier."""
    commands = ["incr 5", "decr 2", "incr 10", "get", "decr 20"]
    for seed in SEEDS:
        with monkeypatch.context() as mp:
            c = SimCluster(3, seed=seed)
            moments = spy_on_answers(c, mp)
            assert c.stabilize(), f"seed {seed}: no stable leader"
            leader = c.leader()
            assert leader is not None
            # Slow every link of the leader so commit takes several ticks and "before" is observable.
            c.delay(leader, None, ticks=2)
            model = Counter()
            for command in commands:
                expected = model.process_command(command)
                req = c.propose(leader, command)
                index = c.raft(leader).log.last_index
                for _ in range(50):
                    if req.done:
                        break
                    assert c.node(leader).applier.applied_index < index, (
                        f"seed {seed}: {command!r} applied at the leader but left unanswered"
                    )
                    c.tick()
                result = req.result
                assert result is not None, f"seed {seed}: {command!r} unanswered"
                assert result.ok and result.result == expected and result.index == index, (
                    f"seed {seed}: {command!r} answered {result}, expected result {expected} at index {index}"
                )
                assert req.answered_at > req.submitted, f"seed {seed}: {command!r} answered before any replication"
                moment = moments[req.id]
                assert moment.node == leader
                assert moment.node_commit >= index, f"seed {seed}: answered before commit: {moment}"
                assert moment.node_applied >= index, f"seed {seed}: answered before apply: {moment}"
                assert len(moment.holders) >= majority(c), f"seed {seed}: answered while on {moment.holders} only"
                assert moment.node_value == expected, f"seed {seed}: state at answer {moment.node_value} != {expected}"
            c.heal()
            assert c.stabilize(), f"seed {seed}: did not converge"
            for n in c.ids:
                assert c.state(n).value == model.value, f"seed {seed}: {n} has {c.state(n).value}, want {model.value}"


# -- at a follower, and at a node that knows no leader ----------------------------------------


def test_follower_that_knows_the_leader_redirects_to_it_in_the_same_tick_and_appends_nothing():
    """§6.2: a follower rejects a client request and supplies the leader it knows of."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        leader = c.leader()
        for follower in followers(c, leader):
            before_logs = last_indexes(c)
            before_sent = c.network.stats["sent"]
            now = c.now
            req = c.propose(follower, "incr 9")
            assert req.result == CommandResult(redirect=leader), f"seed {seed}: {follower} answered {req.result}"
            assert req.answered_at == now == c.now, f"seed {seed}: redirect not immediate"
            assert last_indexes(c) == before_logs, f"seed {seed}: a redirected command was appended somewhere"
            assert c.network.stats["sent"] == before_sent, f"seed {seed}: a redirect sent messages"
        assert c.stabilize(), f"seed {seed}: did not converge"
        assert all(c.state(n).value == 0 for n in c.ids), f"seed {seed}: a redirected command was applied"
        assert b"incr 9" not in applied_commands(c)


def test_node_that_knows_no_leader_answers_retry_at_once_at_cold_start_and_during_an_election():
    """§3.4/§6.2: while an election is in progress no leader is known; the node says "retry" at once."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed)
        # Cold start: nobody knows a leader yet.
        for n in c.ids:
            assert c.raft(n).leader is None
            req = c.propose(n, "incr 1")
            assert req.result == CommandResult(retry=True), f"seed {seed}: {n} answered {req.result} at cold start"
            assert req.answered_at == c.now == 0
        assert all(c.raft(n).log.last_index == 0 for n in c.ids), f"seed {seed}: a refused command was appended"

        # An isolated follower starts an election (pre-vote) and forgets the old leader.
        assert c.stabilize(), f"seed {seed}: no stable leader"
        leader = c.leader()
        lonely = followers(c, leader)[0]
        c.isolate(lonely)
        assert c.run_until(lambda: c.raft(lonely).role is not Role.FOLLOWER, max_ticks=100), (
            f"seed {seed}: isolated {lonely} never campaigned"
        )
        raft = c.raft(lonely)
        assert raft.leader is None, f"seed {seed}: campaigning {lonely} still names leader {raft.leader}"
        before, now = raft.log.last_index, c.now
        req = c.propose(lonely, "incr 1")
        assert req.result == CommandResult(retry=True), f"seed {seed}: candidate {lonely} answered {req.result}"
        assert req.answered_at == now and raft.log.last_index == before, f"seed {seed}: retry not immediate/clean"
        c.heal()
        assert c.stabilize(), f"seed {seed}: did not converge"
        assert b"incr 1" not in applied_commands(c), f"seed {seed}: a command answered retry was applied"


# -- a leader isolated from its majority ------------------------------------------------------


def test_isolated_leader_without_check_quorum_times_out_and_its_entry_is_overwritten_never_applied():
    """§3.6.2/§6.3: an entry only on a leader cut off from its majority never commits; the client
    gets timeout_expired, and the new leader's log overwrites it, so no node ever applies it."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed, check_quorum=False)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        old = c.leader()
        old_term = c.raft(old).term
        c.isolate(old)
        req = c.propose(old, "incr 7", timeout=30)
        index = c.raft(old).log.last_index
        assert c.run_until(lambda: req.done, max_ticks=100)
        assert req.result == CommandResult(timeout_expired=True, index=index), f"seed {seed}: {req.result}"
        assert req.answered_at == req.submitted + 30, f"seed {seed}: answered at {req.answered_at}"
        assert c.raft(old).role is Role.LEADER, f"seed {seed}: without check-quorum the old leader stays leader"
        assert c.node(old).applier.applied_index < index and c.state(old).value == 0, f"seed {seed}: applied alone"

        # The majority elects a new leader, which commits a different command.
        assert c.run_until(lambda: c.leader() not in (None, old), max_ticks=200), f"seed {seed}: no new leader"
        new = c.leader()
        assert c.raft(new).term > old_term
        other = c.propose(new, "incr 1")
        assert c.wait_answered(other).ok

        c.heal()
        assert c.stabilize(), f"seed {seed}: did not converge after heal"
        logs = disk_logs(c)
        for n, log in logs.items():
            assert log == logs[new], f"seed {seed}: {n}'s log differs from the new leader's"
            assert len(log) >= index and log[index - 1].term > old_term, (
                f"seed {seed}: {n} still holds the old leader's entry {index}: {log[index - 1]}"
            )
        assert all(e.data != b"incr 7" for e in logs[new]), f"seed {seed}: the timed-out command survived"
        assert b"incr 7" not in applied_commands(c), f"seed {seed}: some node applied the timed-out command"
        assert all(c.state(n).value == 1 for n in c.ids), f"seed {seed}: {[c.state(n).value for n in c.ids]}"
        assert req.result.timeout_expired, "a timed-out answer must not change afterwards"


def test_timed_out_command_that_reached_a_majority_is_applied_only_once_a_new_leader_commits_it():
    """§3.6.2/§6.3: a timeout says nothing about the command's fate; an entry stored on a majority
    but never known committed by its leader is committed later by the next leader (which must
    hold it, §3.6.1), and only then applied — with the same term it was proposed in."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed, check_quorum=False)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        old = c.leader()
        old_term = c.raft(old).term
        holder, other = followers(c, old)
        # old -> holder works, but its answers never come back; other is cut off entirely.
        c.network.link(holder, old).blocked = True
        c.cut(old, other)
        req = c.propose(old, "incr 7", timeout=20)
        index = c.raft(old).log.last_index
        assert c.run_until(lambda: req.done, max_ticks=50)
        assert req.result == CommandResult(timeout_expired=True, index=index), f"seed {seed}: {req.result}"
        assert c.raft(holder).log.match_term(index, old_term), f"seed {seed}: the entry never reached {holder}"
        assert c.raft(old).commit < index, f"seed {seed}: the old leader learned of a commit it cannot see"
        assert index not in c.checker.applied, f"seed {seed}: applied before any leader committed it"

        c.isolate(old)
        assert c.run_until(lambda: c.leader() not in (None, old) and c.raft(c.leader()).commit >= index,
                           max_ticks=300), f"seed {seed}: no new leader committed index {index}"
        new = c.leader()
        assert new == holder, f"seed {seed}: {new} won without the entry {holder} holds"
        assert c.raft(new).term > old_term
        assert c.checker.committed[index] == old_term, f"seed {seed}: committed a different entry at {index}"

        c.heal()
        assert c.stabilize(), f"seed {seed}: did not converge"
        for n in c.ids:
            assert c.state(n).value == 7, f"seed {seed}: {n} has {c.state(n).value}"
        assert c.checker.applied[index] == (old_term, b"incr 7")
        assert req.result.timeout_expired, "a timed-out answer must not change afterwards"


def test_isolated_leader_with_check_quorum_steps_down_and_answers_retry_before_the_deadline():
    """§6.2 (CheckQuorum): a leader that cannot hear a majority for an election timeout steps down;
    the commands waiting on it are answered "retry" at that moment rather than left to time out."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed, check_quorum=True)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        old = c.leader()
        lo, hi = c.raft(old).config.election_timeout
        c.isolate(old)
        reqs = [c.propose(old, f"incr {k}", timeout=10 * hi) for k in (3, 4)]
        assert c.run_until(lambda: all(r.done for r in reqs), max_ticks=10 * hi)
        for req in reqs:  # each carries its entry's index: taken, then orphaned (outcome unknown)
            assert req.result == CommandResult(retry=True, index=req.result.index) and req.result.outcome_unknown, \
                f"seed {seed}: {req.command!r} answered {req.result}"
            assert req.answered_at - req.submitted <= 2 * lo, f"seed {seed}: step-down took too long"
        assert c.raft(old).role is Role.FOLLOWER
        c.heal()
        assert c.stabilize(), f"seed {seed}: did not converge"
        assert {b"incr 3", b"incr 4"}.isdisjoint(applied_commands(c)), f"seed {seed}: a retried command applied"
        assert len({c.state(n).value for n in c.ids}) == 1


def test_deposed_leader_answers_its_waiting_commands_with_a_redirect_to_the_leader_it_hears_from():
    """§3.3/§6.2: a leader that learns of a newer leader (higher term) steps down and redirects the
    clients it was holding to that leader; their commands are not applied."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed, check_quorum=False)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        old = c.leader()
        c.isolate(old)
        req = c.propose(old, "incr 7", timeout=1000)
        assert c.run_until(lambda: c.leader() not in (None, old), max_ticks=200), f"seed {seed}: no new leader"
        new = c.leader()
        assert not req.done
        # Only new -> old opens: the old leader hears of the new term from the new leader itself.
        c.network.link(new, old).blocked = False
        assert c.run_until(lambda: req.done, max_ticks=50), f"seed {seed}: waiting command never answered"
        assert req.result == CommandResult(redirect=new, index=req.result.index) and req.result.outcome_unknown, \
            f"seed {seed}: answered {req.result}, expected {new} with the entry's index"
        c.heal()
        assert c.stabilize(), f"seed {seed}: did not converge"
        assert b"incr 7" not in applied_commands(c), f"seed {seed}: a redirected command was applied"


# -- errors from the state machine ------------------------------------------------------------


def test_command_error_at_the_leader_returns_an_error_and_leaves_every_node_in_the_same_state():
    """The seed: an error from process_command at the leader is returned to the caller. A
    CommandError is deterministic, so every node applies the same refusal and stays identical."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        leader = c.leader()
        model = Counter()
        outcomes: dict[int, str] = {}
        for command in ["incr 4", "bogus", "incr x", "decr", "get now", "decr 1"]:
            req = c.propose(leader, command)
            result = c.wait_answered(req)
            assert result.index is not None, f"seed {seed}: {command!r} -> {result}"
            outcomes[result.index] = command
            try:
                expected_value, expected_error = model.process_command(command), None
            except Exception as exc:  # the model refuses exactly what the node must refuse
                expected_value, expected_error = None, exc
            if expected_error is None:
                assert result.ok and result.result == expected_value, f"seed {seed}: {command!r} -> {result}"
            else:
                assert not result.ok and result.error, f"seed {seed}: {command!r} -> {result}"
                assert result.result is None and result.index is not None
                assert result.redirect is None and not result.retry and not result.timeout_expired
                assert str(expected_error) in result.error, f"seed {seed}: {result.error!r}"
            assert c.stabilize(), f"seed {seed}: did not converge after {command!r}"
            summaries = {n: c.state(n).summary() for n in c.ids}
            applied = {n: c.node(n).applier.applied_index for n in c.ids}
            assert len({tuple(sorted(s.items())) for s in summaries.values()}) == 1, f"seed {seed}: {summaries}"
            assert len(set(applied.values())) == 1, f"seed {seed}: {applied}"
            assert summaries[leader] == {"value": model.value}
        for n in c.ids:
            assert c.node(n).apply_failures == [], f"seed {seed}: a refusal was treated as an apply failure on {n}"
        # A refused command still took its log position, applied (as a refusal) the same everywhere.
        for index, command in outcomes.items():
            assert c.checker.applied[index][1] == command.encode(), f"seed {seed}: index {index}"


def test_transient_apply_failure_at_a_follower_is_detected_reported_and_retried_until_it_applies():
    """Beyond the seed (which leaves this undetected): a non-CommandError raised while a follower
    applies a committed entry is recorded as an ApplyFailure, the entry is retried, and once the
    state machine recovers the follower applies it and agrees with its peers."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed, state_machine=FlakyCounter, trace=True)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        leader = c.leader()
        sick = followers(c, leader)[0]
        max_attempts = c.node(sick).applier.max_attempts
        flaky = c.state(sick)
        flaky.fail("incr 3", times=max_attempts - 1)
        req = c.propose(leader, "incr 3")
        index = c.raft(leader).log.last_index
        # The leader's own state machine is fine: the client gets its result.
        assert c.wait_answered(req) == CommandResult(result=3, index=index), f"seed {seed}: {req.result}"
        assert c.run_until(lambda: c.node(sick).apply_failures, max_ticks=50), f"seed {seed}: failure not seen"
        failures = c.node(sick).apply_failures
        assert [f.index for f in failures] == [index] * len(failures)
        assert [f.attempt for f in failures] == list(range(1, len(failures) + 1))
        assert not any(f.halted for f in failures) and "OSError" in failures[0].reason
        assert any(f"apply of index {index} failed" in line and "will retry" in line for line in map(str, c.trace))
        assert c.node(sick).applier.applied_index == index - 1, f"seed {seed}: applied past a failed entry"
        assert c.state(sick).value == 0

        # Retry until it goes through (each retry is one attempt; it must not need more than allowed).
        for _ in range(max_attempts):
            if c.node(sick).applier.applied_index >= index:
                break
            c.retry_apply()
        applier = c.node(sick).applier
        assert applier.halted is None and applier.applied_index == index, f"seed {seed}: not recovered"
        assert flaky.attempts == max_attempts, f"seed {seed}: {flaky.attempts} attempts"
        assert len(c.node(sick).apply_failures) == max_attempts - 1
        assert c.state(sick).value == 3
        more = c.propose(leader, "incr 1")
        assert c.wait_answered(more).result == 4
        assert c.stabilize(), f"seed {seed}: did not converge"
        assert {c.state(n).value for n in c.ids} == {4}, f"seed {seed}"


def test_persistent_apply_failure_at_a_follower_halts_its_applier_loudly_while_the_others_continue():
    """A follower that keeps failing to apply a committed entry stops applying (Applier.halted), says
    so, and never applies anything past it — it does not diverge in silence; the cluster goes on."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed, state_machine=FlakyCounter, trace=True)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        leader = c.leader()
        sick = followers(c, leader)[0]
        healthy = [n for n in c.ids if n != sick]
        c.state(sick).fail("incr 3", times=None)
        first = c.propose(leader, "incr 2")
        assert c.wait_answered(first).result == 2
        req = c.propose(leader, "incr 3")
        index = c.raft(leader).log.last_index
        assert c.wait_answered(req).result == 5
        assert c.run_until(lambda: c.node(sick).apply_failures, max_ticks=50), f"seed {seed}: failure not seen"
        applier = c.node(sick).applier
        for _ in range(applier.max_attempts + 2):
            c.retry_apply()
        assert applier.halted is not None, f"seed {seed}: still retrying after {applier.max_attempts} attempts"
        assert applier.halted.index == index and applier.halted.halted
        assert c.node(sick).apply_failures[-1] == applier.halted
        assert len(c.node(sick).apply_failures) == applier.max_attempts, f"seed {seed}: retried after halting"
        assert c.state(sick).attempts == applier.max_attempts
        assert any("halted: stopped applying" in line for line in map(str, c.trace)), f"seed {seed}: the halt was silent"

        # The rest of the cluster keeps committing and applying; the halted node keeps replicating
        # (its log and commit index advance) but applies nothing past the failed entry.
        for k in range(4):
            r = c.propose(leader, f"incr {10 + k}")
            assert c.wait_answered(r).ok, f"seed {seed}: cluster stopped serving: {r.result}"
        c.tick(30)
        c.retry_apply()
        last = c.raft(leader).log.last_index
        assert c.raft(sick).commit == last, f"seed {seed}: the halted node stopped replicating"
        assert applier.applied_index == index - 1, f"seed {seed}: the halted node applied past index {index}"
        assert c.state(sick).value == 2
        for n in healthy:
            assert c.node(n).applier.applied_index == last and c.state(n).value == 5 + 10 + 11 + 12 + 13
        # Nothing it applied disagrees with its peers (the checker would have raised otherwise).
        assert all(c.checker.applied[i][1] == c.raft(leader).log.entry(i).data for i in range(1, last + 1))


def test_apply_halt_at_the_leader_answers_the_waiting_client_with_an_error_not_a_result():
    """The other side of the halt policy: if the leader itself cannot apply a committed command,
    its waiting client is told so (an error naming the halt), never a made-up result."""
    for seed in SEEDS:
        c = SimCluster(3, seed=seed, state_machine=FlakyCounter)
        assert c.stabilize(), f"seed {seed}: no stable leader"
        leader = c.leader()
        c.state(leader).fail("incr 3", times=None)
        req = c.propose(leader, "incr 3")
        index = c.raft(leader).log.last_index
        for _ in range(c.node(leader).applier.max_attempts + 1):
            if req.done:
                break
            c.tick()
            c.retry_apply()
        assert req.result is not None, f"seed {seed}: the waiting client was left hanging"
        assert req.result.error and "halted" in req.result.error and req.result.result is None, (
            f"seed {seed}: {req.result}"
        )
        assert req.result.index == index
        assert c.node(leader).applier.halted is not None
        assert c.state(leader).value == 0


# -- a leader that steps down while commands wait ---------------------------------------------


def _churn(seed: int) -> SimCluster:
    """Leaders come and go while clients send commands to whoever is (or was) leader."""
    rng = random.Random(seed)
    c = SimCluster(5, seed=seed, check_quorum=rng.random() < 0.5, client_timeout=80)
    numbers = itertools.count(1)
    for _ in range(500):
        roll = rng.random()
        leaders = [n for n in c.ids if c.raft(n).role is Role.LEADER]
        if roll < 0.3:
            for _ in range(rng.randint(1, 3)):
                target = rng.choice(leaders) if leaders and rng.random() < 0.85 else rng.choice(c.ids)
                c.propose(target, f"incr {next(numbers)}")
        elif roll < 0.34 and leaders:
            c.isolate(rng.choice(leaders))
        elif roll < 0.37 and leaders:
            lead = rng.choice(leaders)
            buddy = rng.choice([n for n in c.ids if n != lead])
            c.partition([lead, buddy])
        elif roll < 0.40:
            c.drop(rng.choice(c.ids), None, rate=0.3)
        elif roll < 0.45:
            c.heal()
        c.tick()
    c.heal()
    assert c.stabilize(max_ticks=2000), f"seed {seed}: did not converge"
    assert c.run_until(lambda: all(r.done for r in c.requests), max_ticks=200), f"seed {seed}: unanswered requests"
    return c


def test_leaders_stepping_down_with_commands_waiting_answer_redirect_or_retry_never_a_wrong_result():
    """§3.6.2/§6.2: when leadership is lost before a command applies, its client hears redirect or
    retry. Whatever happens, an answer that carries an outcome belongs to the command at its index:
    the entry applied there is that request's command and the result is the state after it."""
    stepped_down = ok = orphaned = committed_anyway = 0
    for seed in range(6):
        c = _churn(seed)
        reference = c.node(c.leader()).disk.entries
        for req in c.requests:
            assert not req.lost, f"seed {seed}: no node crashed, yet {req.command!r} was lost"
            r = req.result
            assert r is not None
            kinds = [r.ok, r.error is not None, r.redirect is not None, r.retry, r.timeout_expired]
            assert sum(kinds) == 1, f"seed {seed}: {req.command!r} answered ambiguously: {r}"
            if r.redirect is not None or r.retry:
                assert r.result is None
                applied_as = [i for i, (_, data) in c.checker.applied.items() if data == req.command.encode()]
                if r.index is None:  # refused before proposing, or its entry overwritten: nothing was done
                    assert applied_as == [], f"seed {seed}: {req.command!r} answered {r} yet applied at {applied_as}"
                else:  # proposed at r.index, then leadership lost: it may have committed there, nowhere else
                    assert set(applied_as) <= {r.index}, f"seed {seed}: {req.command!r} applied at {applied_as}"
                    orphaned += 1
                    committed_anyway += applied_as == [r.index]
                if req.answered_at > req.submitted:
                    stepped_down += 1
            elif r.timeout_expired:
                assert r.result is None
            else:
                assert r.index is not None, f"seed {seed}: {req.command!r} has an outcome but no index: {r}"
                term, data = c.checker.applied[r.index]
                assert data == req.command.encode(), (
                    f"seed {seed}: {req.command!r} was answered {r} but index {r.index} applied {data!r}"
                )
                assert r.ok, f"seed {seed}: {req.command!r} refused: {r}"
                ok += 1
                expected = replay_counter(reference, r.index)
                assert r.result == expected, f"seed {seed}: {req.command!r} got {r.result}, state was {expected}"
    assert ok > 0, "no command ever succeeded: the scenario proves nothing"
    assert stepped_down > 0, "no waiting command met a step-down: the scenario proves nothing"
    assert orphaned > 0, "no command was orphaned by a lost leadership: the scenario proves nothing"
    # ... and some of those committed after all: "nothing was done" would have been false.
    assert committed_anyway > 0, "no orphaned command committed later: the scenario proves nothing"
