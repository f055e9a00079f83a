"""Leadership transfer (§3.10), claim by claim from the scenario catalog.

The leader catches the target up, sends it TimeoutNow, and the target campaigns at once without
a pre-vote round; meanwhile the leader refuses new commands ("retry"), and if nothing happens
within an election timeout it aborts and serves again. Everything runs in :class:`SimCluster`
(invariants checked at every step), parametrized over ``SEEDS``; the seed is in each test id
and assertion message.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from raftnode.core.messages import Entry, Message, RequestVote, TimeoutNow
from raftnode.core.raft import Raft
from raftnode.core.ready import Role
from raftnode.sim.cluster import ClientRequest, SimCluster

from .helpers import stable_cluster

SEEDS = range(20)
LO, HI = 10, 20  # SimCluster's default election timeout range, in ticks


def log_of(raft: Raft) -> list[Entry]:
    return raft.log.slice(1, raft.log.last_index + 1) if raft.log.last_index else []


def pick_target(c: SimCluster, leader: str, seed: int) -> str:
    followers = sorted(i for i in c.ids if i != leader)
    return followers[seed % len(followers)]


def led_by(c: SimCluster, leader: str) -> bool:
    """``leader`` leads and every live node follows it in its term."""
    raft = c.node(leader).raft
    if raft is None or raft.role is not Role.LEADER:
        return False
    return all(n.raft.leader == leader and n.raft.term == raft.term for n in c.live())  # type: ignore[union-attr]


def committed_commands(c: SimCluster, node: str) -> list[Entry]:
    raft = c.raft(node)
    return [e for e in log_of(raft)[: raft.commit] if e.data]


def watch_sends(c: SimCluster, seen: Callable[[Message], None]) -> None:
    send = c.network.send

    def recording_send(m: Message, now: int) -> None:
        seen(m)
        send(m, now)

    c.network.send = recording_send  # type: ignore[method-assign]


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", SEEDS)
def test_transfer_to_an_up_to_date_follower_makes_it_leader_within_one_election_timeout(size, seed):
    """§3.10: asked to hand over to a follower whose log matches its own, the leader sends it
    TimeoutNow at once; the target wins the next term (no pre-vote, no lease in the way) within
    one election timeout, every node follows it, and no committed command is lost."""
    c, old, term = stable_cluster(size, seed)
    reqs = [c.propose(old, f"incr {k}") for k in (1, 2, 3)]
    assert c.stabilize(max_ticks=HI), f"seed {seed}"
    assert all(r.result is not None and r.result.ok for r in reqs), f"seed {seed}"
    before = committed_commands(c, old)
    target = pick_target(c, old, seed)
    assert c.raft(old).progress(target).match == c.raft(old).log.last_index, f"seed {seed}: target not up to date"
    c.transfer(target)
    start = c.now
    assert c.run_until(lambda: led_by(c, target), max_ticks=LO), (
        f"seed {seed}: {target} did not take over within {LO} ticks"
    )
    assert c.now - start <= LO
    assert c.raft(target).term == term + 1, f"seed {seed}: the transfer took {c.raft(target).term - term} terms"
    assert c.raft(old).role is Role.FOLLOWER, f"seed {seed}"
    assert c.stabilize(max_ticks=HI), f"seed {seed}"
    assert committed_commands(c, target)[: len(before)] == before, f"seed {seed}: a committed command was lost"
    assert all(c.state(i).value == 6 for i in c.ids), f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_transfer_to_a_lagging_follower_first_brings_its_log_up_to_date(seed):
    """§3.10: when the target lags, the leader first replicates to it; TimeoutNow is sent only
    once the target's log (on its disk too) equals the leader's, so it campaigns with a log at
    least as up to date as any, wins, and every committed command survives the handover.
    (Four entries per AppendEntries, so catching up takes several acknowledged round trips.)"""
    c, old, _ = stable_cluster(3, seed, max_msg_entries=4)
    target = pick_target(c, old, seed)
    c.isolate(target)
    reqs = [c.propose(old, f"incr {k}") for k in range(1, 21)]
    assert c.run_until(lambda: all(r.done for r in reqs), max_ticks=HI), f"seed {seed}"
    assert all(r.result.ok for r in reqs), f"seed {seed}"  # type: ignore[union-attr]
    committed = committed_commands(c, old)
    c.heal()
    leader_raft = c.raft(old)
    assert leader_raft.progress(target).match < leader_raft.log.last_index, f"seed {seed}: target not lagging"
    assert c.raft(target).log.last_index < leader_raft.log.last_index, f"seed {seed}"

    at_timeout_now: list[tuple[list[Entry], list[Entry], list[Entry]]] = []
    campaign: list[RequestVote] = []

    def seen(m: Message) -> None:
        if isinstance(m, TimeoutNow):
            assert m.src == old and m.dst == target, m
            at_timeout_now.append(
                (log_of(c.raft(old)), log_of(c.raft(target)), list(c.node(target).disk.entries))
            )
        elif isinstance(m, RequestVote) and m.src == target and not m.pre_vote:
            campaign.append(m)

    watch_sends(c, seen)
    c.transfer(target)
    assert at_timeout_now == [], f"seed {seed}: TimeoutNow sent to a lagging target"
    assert c.raft(old).transferee == target
    took_over = c.run_until(lambda: led_by(c, target), max_ticks=LO)

    assert at_timeout_now, f"seed {seed}: no TimeoutNow"
    for leader_log, target_log, target_disk in at_timeout_now:
        assert target_log == leader_log and target_disk == leader_log, (
            f"seed {seed}: TimeoutNow sent while the target held {len(target_log)} of {len(leader_log)} entries"
        )
    assert took_over, f"seed {seed}: {target} did not take over within {LO} ticks"
    leader_log = at_timeout_now[0][0]
    assert campaign and all(v.transfer for v in campaign), f"seed {seed}"
    assert (campaign[0].last_log_index, campaign[0].last_log_term) == (
        leader_log[-1].index, leader_log[-1].term), f"seed {seed}"
    assert c.stabilize(max_ticks=HI), f"seed {seed}"
    assert committed_commands(c, target)[: len(committed)] == committed, f"seed {seed}: a committed entry was lost"
    assert all(c.state(i).value == 210 for i in c.ids), f"seed {seed}"


@pytest.mark.parametrize("unreachable", ["isolated", "crashed"])
@pytest.mark.parametrize("seed", SEEDS)
def test_transfer_to_an_unreachable_follower_aborts_after_an_election_timeout_and_the_old_leader_serves_again(
    unreachable, seed
):
    """§3.10: if the target does not take over within about an election timeout, the leader
    aborts the transfer and accepts commands again; they commit on the reachable majority, and
    the leader keeps its term throughout."""
    c, leader, term = stable_cluster(3, seed)
    target = pick_target(c, leader, seed)
    if unreachable == "isolated":
        c.isolate(target)
    else:
        c.crash(target)
    c.transfer(target)
    raft = c.raft(leader)
    start = c.now
    assert raft.transferee == target
    c.tick()
    refused = c.propose(leader, "incr 100")
    assert refused.result is not None and refused.result.retry, f"seed {seed}: transfer ended too soon"
    assert c.run_until(lambda: raft.transferee is None, max_ticks=HI), (
        f"seed {seed}: the transfer to unreachable {target} was not aborted within {HI} ticks"
    )
    assert LO <= c.now - start <= HI, f"seed {seed}: aborted after {c.now - start} ticks"
    assert raft.role is Role.LEADER and raft.term == term, f"seed {seed}: {leader} lost leadership"
    reqs = [c.propose(leader, f"incr {k}") for k in (1, 2, 3)]
    assert c.run_until(lambda: all(r.done for r in reqs), max_ticks=HI), f"seed {seed}"
    assert [r.result.result for r in reqs] == [1, 3, 6], f"seed {seed}: {[r.result for r in reqs]}"  # type: ignore[union-attr]
    if unreachable == "isolated":
        c.heal()
    else:
        c.restart(target)
    assert c.stabilize(max_ticks=5 * HI), f"seed {seed}"
    assert c.leader() == leader and c.raft(leader).term == term, f"seed {seed}"
    assert c.state(target).value == 6, f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_command_at_the_leader_during_a_transfer_is_answered_retry_at_once(seed):
    """§3.10 and the command contract: while a transfer is in progress the leader stops accepting
    commands; each command sent to it is answered "retry" in the same tick, never left waiting."""
    c, leader, _ = stable_cluster(3, seed)
    target = pick_target(c, leader, seed)
    c.isolate(target)  # keeps the transfer pending for a while
    c.transfer(target)
    answers: list[ClientRequest] = []
    for _ in range(2 * HI):
        if c.raft(leader).transferee is None:
            break
        req = c.propose(leader, "incr 1")
        answers.append(req)
        assert req.result is not None and req.answered_at == c.now, f"seed {seed}: no immediate answer"
        assert req.result.retry and req.result.index is None, f"seed {seed}: {req.result}"
        c.tick()
    assert c.raft(leader).transferee is None, f"seed {seed}: the transfer never ended"
    assert len(answers) >= LO, f"seed {seed}: the transfer lasted {len(answers)} ticks"
    assert c.state(leader).value == 0, f"seed {seed}: a refused command was applied"


@pytest.mark.parametrize("seed", SEEDS)
def test_commands_waiting_when_a_transfer_completes_are_all_answered(seed):
    """§3.10 and the command contract: commands the old leader accepted just before handing over
    are each answered — with their own result if they committed under it, otherwise with a
    redirect to the new leader or retry — and never left to time out."""
    c, old, _ = stable_cluster(3, seed)
    target = pick_target(c, old, seed)
    reqs = [c.propose(old, f"incr {k}") for k in range(1, 6)]
    c.transfer(target)
    later = c.propose(old, "incr 1000")
    assert later.result is not None and later.result.retry, f"seed {seed}"
    assert c.run_until(lambda: led_by(c, target), max_ticks=LO), f"seed {seed}"
    assert c.run_until(lambda: all(r.done for r in reqs), max_ticks=HI), f"seed {seed}: a command got no answer"
    new_log = {e.index: e for e in log_of(c.raft(target))}
    for r in reqs:
        res = r.result
        assert res is not None and not res.timeout_expired, f"seed {seed}: {r.command}: {res}"
        if res.ok:
            assert res.index in new_log and new_log[res.index].data == r.command.encode(), f"seed {seed}"
        else:
            assert res.redirect == target or res.retry, f"seed {seed}: {r.command}: {res}"
    after = c.propose(old, "incr 1")
    assert after.result is not None and after.result.redirect == target, f"seed {seed}: {after.result}"


@pytest.mark.parametrize("seed", range(5))
def test_a_leader_that_must_step_aside_picks_a_follower_it_hears_from_with_the_most_of_its_log(seed):
    """``most_caught_up_follower`` (the full-disk leader's hand-over target): a follower cut off
    for an election timeout loses to one the leader hears from; among those, the highest match."""
    c, leader, _ = stable_cluster(5, seed)
    raft = c.raft(leader)
    followers = sorted(i for i in c.ids if i != leader)
    behind, cut_off = followers[0], followers[1]
    c.isolate(cut_off)
    c.crash(behind)
    for n in range(3):
        c.propose(leader, f"incr {n}")
    c.tick(2 * HI)
    assert c.raft(leader) is raft and raft.role is Role.LEADER, f"seed {seed}"
    healthy = [f for f in followers if f not in (behind, cut_off)]
    target = raft.most_caught_up_follower()
    assert target in healthy, f"seed {seed}: {target}"
    assert raft.progress(target).match == max(raft.progress(f).match for f in healthy) == raft.log.last_index
    assert all(c.raft(n).most_caught_up_follower() is None for n in healthy), f"seed {seed}: only a leader picks"


@pytest.mark.parametrize("seed", range(5))
def test_a_follower_the_leader_stopped_hearing_from_is_not_picked_even_holding_the_whole_log(seed):
    c, leader, _ = stable_cluster(3, seed)
    raft = c.raft(leader)
    c.wait_answered(c.propose(leader, "incr 1"))
    c.tick(HI)
    silent = max(i for i in c.ids if i != leader)  # the greatest id: it would win every tie
    assert raft.progress(silent).match == raft.log.last_index, f"seed {seed}"
    c.isolate(silent)
    c.tick(2 * HI)
    assert raft.role is Role.LEADER and raft.progress(silent).match == raft.log.last_index, f"seed {seed}"
    assert raft.most_caught_up_follower() == min(i for i in c.ids if i != leader), f"seed {seed}"
