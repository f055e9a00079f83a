"""Focused unit tests of the core's building blocks: the log, follower progress, quorum
arithmetic, the command tracker and RaftConfig validation.

Section numbers refer to Ongaro's thesis (2014). Expected values come from the definitions
(a majority of n is n // 2 + 1 of them, ...) computed independently of the code under test.
"""

from __future__ import annotations

import itertools
import random

import pytest

from raftnode.core.commands import CommandResult, CommandTracker
from raftnode.core.errors import (
    LogCompacted,
    NotLeader,
    RaftError,
    SafetyViolation,
    TransferInProgress,
    UnknownNode,
)
from raftnode.core.log import RaftLog
from raftnode.core.messages import Entry
from raftnode.core.progress import Progress, ProgressState
from raftnode.core.quorum import Configuration, VoteResult
from raftnode.core.raft import RaftConfig


def entries(terms, *, start: int = 1, size: int | None = None) -> list[Entry]:
    """Entries with the given terms from index ``start``; data is ``size`` bytes (or a short label)."""
    out = []
    for i, term in enumerate(terms):
        index = start + i
        data = bytes(size) if size is not None else f"e{index}t{term}".encode()
        out.append(Entry(term, index, data))
    return out


# ============================================================================================
# raftnode/core/log.py
# ============================================================================================


def test_log_rejects_non_contiguous_entries():
    with pytest.raises(ValueError, match="not contiguous"):
        RaftLog([Entry(1, 1), Entry(1, 3)])
    with pytest.raises(ValueError, match="not contiguous"):
        RaftLog([Entry(1, 1)], offset=5)


def test_log_term_lookup_covers_offset_past_end_and_compacted_indexes():
    log = RaftLog(entries([2, 3], start=6), offset=5, offset_term=2)
    assert (log.last_index, log.last_term) == (7, 3)
    assert log.term(5) == 2  # the snapshot's last entry
    assert log.term(6) == 2 and log.term(7) == 3
    assert log.term(8) is None
    with pytest.raises(LogCompacted):
        log.term(4)
    assert not log.match_term(4, 2)
    assert RaftLog().last_term == 0 and RaftLog().term(0) == 0


def test_slice_caps_the_entry_count():
    log = RaftLog(entries([1] * 10))
    assert [e.index for e in log.slice(3, 11, max_count=4)] == [3, 4, 5, 6]
    assert [e.index for e in log.slice(3, 5, max_count=4)] == [3, 4]  # hi binds first
    assert [e.index for e in log.slice(3, 11, max_count=1)] == [3]


def test_slice_clips_hi_to_the_end_and_returns_nothing_for_an_empty_range():
    log = RaftLog(entries([1] * 5))
    assert [e.index for e in log.slice(4, 100)] == [4, 5]
    assert log.slice(6, 10) == []
    assert log.slice(3, 3) == []


def test_slice_caps_the_bytes_but_always_returns_at_least_one_entry():
    """§10.2 (batching): a batch is bounded in bytes, yet an oversized entry must still be sendable."""
    size = 100
    log = RaftLog(entries([1] * 6, size=size))
    for max_bytes in (1, size - 1, size, size + 1, 2 * size, 2 * size + 1, 3 * size - 1, 6 * size, 10 * size):
        got = log.slice(1, 7, max_bytes=max_bytes)
        # Expected by definition: the longest prefix whose total is <= max_bytes, but at least one entry.
        expected = max(1, min(6, max_bytes // size))
        assert len(got) == expected, f"max_bytes={max_bytes}: got {len(got)} entries"
        assert [e.index for e in got] == list(range(1, expected + 1))


def test_slice_applies_both_caps_and_the_tighter_one_wins():
    log = RaftLog(entries([1] * 8, size=10))
    assert len(log.slice(1, 9, max_count=5, max_bytes=30)) == 3
    assert len(log.slice(1, 9, max_count=2, max_bytes=30)) == 2


def test_slice_with_mixed_entry_sizes_stops_before_the_entry_that_overflows():
    log = RaftLog([Entry(1, 1, bytes(5)), Entry(1, 2, bytes(50)), Entry(1, 3, bytes(5))])
    assert [e.index for e in log.slice(1, 4, max_bytes=20)] == [1]
    assert [e.index for e in log.slice(1, 4, max_bytes=60)] == [1, 2, 3]
    assert [e.index for e in log.slice(2, 4, max_bytes=20)] == [2]  # oversized first entry still goes


def test_slice_refuses_a_range_starting_inside_the_snapshot():
    log = RaftLog(entries([2, 2], start=4), offset=3, offset_term=1)
    with pytest.raises(LogCompacted):
        log.slice(3, 6)
    assert [e.index for e in log.slice(4, 6)] == [4, 5]


def test_conflict_hint_reports_a_short_log_as_last_index_plus_one():
    """§5.3 (the thesis' optimisation of back-off): a follower lacking prev_index says where its log ends."""
    log = RaftLog(entries([1, 1, 2]))
    assert log.conflict_hint(4) == (4, None)
    assert log.conflict_hint(9) == (4, None)
    assert RaftLog().conflict_hint(3) == (1, None)


def test_conflict_hint_names_the_conflicting_term_and_its_first_index():
    terms = [1, 1, 2, 2, 2, 3, 5, 5]
    log = RaftLog(entries(terms))
    for prev_index in range(1, len(terms) + 1):
        term = terms[prev_index - 1]
        first = terms.index(term) + 1  # the first index holding that term (terms are non-decreasing)
        assert log.conflict_hint(prev_index) == (first, term), f"prev_index={prev_index}"


def test_conflict_hint_does_not_scan_into_the_snapshot():
    log = RaftLog(entries([2, 2, 3], start=4), offset=3, offset_term=2)
    assert log.conflict_hint(5) == (4, 2)
    assert log.conflict_hint(6) == (6, 3)
    # The whole log shares the snapshot's term: the hint is still the first index the log holds.
    log = RaftLog(entries([2, 2, 2], start=4), offset=3, offset_term=2)
    assert log.conflict_hint(6) == (4, 2)


def test_last_index_of_term_finds_the_last_entry_of_a_term_at_or_below_upper():
    terms = [1, 1, 2, 2, 4, 4]
    log = RaftLog(entries(terms))
    for term in range(0, 7):
        for upper in range(0, 10):
            candidates = [i for i in range(1, min(upper, len(terms)) + 1) if terms[i - 1] == term]
            expected = max(candidates) if candidates else None
            assert log.last_index_of_term(term, upper) == expected, f"term={term} upper={upper}"


def test_last_index_of_term_stops_at_the_snapshot():
    log = RaftLog(entries([3, 3], start=5), offset=4, offset_term=2)
    assert log.last_index_of_term(3, 10) == 6
    assert log.last_index_of_term(2, 10) is None  # term 2 only lives in the snapshot now


def test_merge_skips_entries_already_held_and_appends_the_rest():
    log = RaftLog(entries([1, 1, 2]))
    log.merge(entries([1, 2, 2, 2], start=2), commit_index=3)
    assert [e.term for e in log.slice(1, 10)] == [1, 1, 2, 2, 2]
    assert log.stable_index == 3
    assert [e.index for e in log.unstable()] == [4, 5]


def test_merge_of_an_older_shorter_append_never_truncates_matching_entries():
    """§3.5: only a conflicting entry causes truncation; a stale, shorter AppendEntries must not
    remove entries that follow it (they may be committed)."""
    original = entries([1, 1, 2, 2])
    log = RaftLog(original)
    log.merge(original[:2], commit_index=0)
    log.merge([], commit_index=0)
    assert log.slice(1, 10) == original


def test_merge_truncates_at_the_first_conflict_and_hands_the_replacements_out_again():
    """§3.5: if an existing entry conflicts with a new one (same index, different term), delete it
    and all that follow it."""
    log = RaftLog(entries([1, 1, 1, 1]))
    new = entries([1, 3, 3], start=2)
    log.merge(new, commit_index=1)
    assert [e.term for e in log.slice(1, 10)] == [1, 1, 3, 3]
    assert log.last_index == 4
    # The stable mark moves back so storage learns to cut its log at the conflict.
    assert log.stable_index == 2
    assert log.unstable() == new[1:]


def test_merge_refuses_to_truncate_a_committed_entry_and_leaves_the_log_untouched():
    """§3.6 (State Machine Safety): a committed entry is never removed."""
    original = entries([1, 1, 2])
    log = RaftLog(original)
    for commit_index in (2, 3):
        with pytest.raises(SafetyViolation, match="committed index 2"):
            log.merge([Entry(3, 2, b"x"), Entry(3, 3, b"y")], commit_index=commit_index)
        assert log.slice(1, 10) == original and log.stable_index == 3
    # Conflicting only above the commit index is fine.
    log.merge([Entry(3, 3, b"y")], commit_index=2)
    assert [e.term for e in log.slice(1, 10)] == [1, 1, 3]


def test_stable_to_marks_entries_persisted():
    log = RaftLog()
    for e in entries([1, 1, 1]):
        log.append(e)
    assert log.stable_index == 0 and len(log.unstable()) == 3
    log.stable_to(2, 1)
    assert log.stable_index == 2 and [e.index for e in log.unstable()] == [3]
    log.stable_to(1, 1)  # never moves backwards
    assert log.stable_index == 2
    log.stable_to(9, 1)  # past the end: nothing to mark
    assert log.stable_index == 2


def test_stable_to_ignores_a_persist_report_for_entries_replaced_since():
    """The shell reports entries it wrote from an older Ready; if a conflicting append replaced
    them meanwhile, the new entries must still be handed out (they are not on disk)."""
    log = RaftLog()
    for e in entries([1, 1, 1]):
        log.append(e)
    handed_out = log.unstable()
    replacement = entries([2, 2], start=2)
    log.merge(replacement, commit_index=0)
    log.stable_to(handed_out[-1].index, handed_out[-1].term)  # (3, term 1) no longer exists
    assert log.stable_index == 0
    assert log.unstable() == [handed_out[0], *replacement]
    log.stable_to(1, 1)  # the first entry was untouched: its report counts
    assert log.stable_index == 1
    log.stable_to(3, 2)
    assert log.stable_index == 3 and log.unstable() == []


def test_is_up_to_date_compares_last_term_then_length():
    """§3.6.1: the log with the later last term is more up to date; with equal terms, the longer one."""
    log = RaftLog(entries([1, 2, 2]))
    assert log.is_up_to_date(3, 2) and log.is_up_to_date(9, 2) and log.is_up_to_date(1, 3)
    assert not log.is_up_to_date(2, 2) and not log.is_up_to_date(99, 1)


# ============================================================================================
# raftnode/core/progress.py
# ============================================================================================


def replicating(match: int, *, window: int) -> Progress:
    pr = Progress(next_index=match + 1, max_inflight=window)
    pr.acknowledged(match)
    pr.become_replicate()
    return pr


def test_probe_sends_one_append_at_a_time():
    pr = Progress(next_index=8, max_inflight=4)
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.sent(9, 2)
    assert pr.is_paused() and pr.next == 8  # a probe does not move next optimistically
    assert pr.acknowledged(9) and pr.match == 9 and pr.next == 10
    assert not pr.is_paused()


def test_replicate_window_pauses_at_max_inflight_and_reopens_as_acks_arrive():
    """Pipelining (§10.2.1): at most max_inflight appends unacknowledged per follower."""
    for window in (1, 2, 3, 5):
        pr = replicating(10, window=window)
        last = 10
        for n in range(window):
            assert not pr.is_paused(), f"window {window}: paused after {n} sends"
            pr.sent(last + 2, 2)
            last += 2
            assert pr.next == last + 1
        assert pr.is_paused() and len(pr.inflight) == window
        pr.acknowledged(12)  # the first batch
        assert not pr.is_paused() and len(pr.inflight) == window - 1
        pr.acknowledged(last)  # cumulative: frees everything up to it
        assert len(pr.inflight) == 0 and pr.match == last


def test_an_empty_append_does_not_take_a_window_slot():
    pr = replicating(4, window=1)
    pr.sent(4, 0)
    assert not pr.is_paused() and pr.next == 5


def test_stale_acknowledgement_does_not_move_match_back():
    pr = replicating(10, window=4)
    pr.sent(12, 2)
    assert not pr.acknowledged(7)
    assert pr.match == 10 and pr.next == 13
    assert list(pr.inflight) == [12]


def test_stale_rejections_are_ignored():
    """A rejection of an append the follower has since matched (REPLICATE) or of a probe other
    than the outstanding one (PROBE) is out of date and must not rewind the follower."""
    pr = replicating(10, window=4)
    pr.sent(15, 5)
    assert not pr.rejected(9, 3) and not pr.rejected(10, 3)
    assert (pr.state, pr.match, pr.next, list(pr.inflight)) == (ProgressState.REPLICATE, 10, 16, [15])

    probe = Progress(next_index=8, max_inflight=4)
    probe.sent(7, 0)
    for stale in (5, 6, 8):
        assert not probe.rejected(stale, 1), f"rejection of {stale} taken while probing at 7"
    assert probe.next == 8 and probe.is_paused()


def test_rejection_moves_next_below_the_rejected_index_but_never_below_match_plus_one():
    pr = replicating(3, window=4)
    pr.sent(9, 6)
    assert pr.rejected(9, 1)  # the hint points before match: clamp to match + 1
    assert pr.state is ProgressState.PROBE and pr.next == 4 and not pr.inflight and not pr.is_paused()

    pr = Progress(next_index=10, max_inflight=4)
    pr.sent(9, 0)
    assert pr.rejected(9, 6)
    assert pr.next == 6 and not pr.is_paused()

    pr = Progress(next_index=10, max_inflight=4)
    assert pr.rejected(9, 42)  # a hint past the rejected index still moves next down to it
    assert pr.next == 9


def test_heartbeat_answer_frees_a_slot_in_a_jammed_window():
    """A lost append would otherwise pause replication to that follower forever."""
    pr = replicating(10, window=2)
    pr.sent(11, 1)
    pr.sent(12, 1)
    assert pr.is_paused()
    pr.heartbeat_answered()
    assert not pr.is_paused() and list(pr.inflight) == [12] and pr.recent_active
    pr.heartbeat_answered()  # window not full: keeps its records
    assert list(pr.inflight) == [12]


def test_heartbeat_answer_unpauses_a_probe():
    pr = Progress(next_index=5, max_inflight=2)
    pr.sent(4, 0)
    assert pr.is_paused()
    pr.heartbeat_answered()
    assert not pr.is_paused() and pr.recent_active


# ============================================================================================
# raftnode/core/quorum.py
# ============================================================================================


def voters(n: int) -> list[str]:
    return [f"v{i}" for i in range(1, n + 1)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_quorum_is_a_strict_majority(n):
    config = Configuration(voters=frozenset(voters(n)))
    q = config.quorum
    assert 2 * q > n and 2 * (q - 1) <= n, f"{q} of {n} is not the smallest majority"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_committed_index_is_the_highest_index_stored_on_a_majority(n):
    """§3.6: an entry is committed once replicated on a majority of voters."""
    rng = random.Random(n)
    names = voters(n)
    config = Configuration(voters=frozenset(names), learners=frozenset({"learner"}))
    for trial in range(200):
        match = {v: rng.randint(0, 12) for v in names if rng.random() < 0.9}  # absent = nothing stored
        match["learner"] = 99  # learners never count
        c = config.committed_index(match)
        on = lambda i: sum(1 for v in names if match.get(v, 0) >= i)  # noqa: E731
        assert 2 * on(c) > n, f"n={n} match={match}: {c} is not on a majority"
        assert 2 * on(c + 1) <= n, f"n={n} match={match}: {c + 1} is on a majority too"


def test_committed_index_examples():
    three = Configuration(voters=frozenset("abc"))
    assert three.committed_index({"a": 5, "b": 3, "c": 1}) == 3
    assert three.committed_index({"a": 5}) == 0
    assert three.committed_index({"a": 5, "b": 5}) == 5
    four = Configuration(voters=frozenset("abcd"))
    assert four.committed_index({"a": 9, "b": 7, "c": 2, "d": 1}) == 2


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_vote_result_for_every_combination_of_votes(n):
    """§3.4: a candidate wins with votes from a majority; it has lost once a majority is out of reach."""
    names = voters(n)
    config = Configuration(voters=frozenset(names), learners=frozenset({"learner"}))
    for combo in itertools.product((True, False, None), repeat=n):
        votes = {v: c for v, c in zip(names, combo) if c is not None}
        votes["learner"] = True  # a learner's vote never counts
        votes["stranger"] = True
        granted = combo.count(True)
        undecided = combo.count(None)
        if 2 * granted > n:
            expected = VoteResult.WON
        elif 2 * (granted + undecided) <= n:
            expected = VoteResult.LOST
        else:
            expected = VoteResult.PENDING
        assert config.vote_result(votes) is expected, f"n={n} votes={combo}"


def test_has_quorum_counts_voters_only():
    config = Configuration(voters=frozenset("abcde"), learners=frozenset("xy"))
    assert config.has_quorum("abc") and not config.has_quorum("ab") and not config.has_quorum("abxy")
    assert config.members() == frozenset("abcdexy")


# ============================================================================================
# raftnode/core/commands.py
# ============================================================================================


def test_applied_with_the_proposed_term_answers_with_the_result():
    tracker: CommandTracker[str] = CommandTracker()
    tracker.track(5, 2, "client-a")
    tracker.track(6, 2, "client-b")
    assert len(tracker) == 2
    token, answer = tracker.applied(5, 2, result=42, leader="n1")
    assert token == "client-a" and answer == CommandResult(result=42, index=5) and answer.ok
    token, answer = tracker.applied(6, 2, error="unknown command", leader="n1")
    assert token == "client-b" and answer == CommandResult(error="unknown command", index=6)
    assert not answer.ok
    assert len(tracker) == 0
    assert tracker.applied(5, 2, result=42) is None  # answered once only


def test_applied_with_another_term_is_not_this_commands_outcome():
    """§3.6.2: an index taken over by another leader's entry means the command was lost; its client
    must hear redirect or retry, never the other entry's result."""
    tracker: CommandTracker[str] = CommandTracker()
    tracker.track(5, 2, "a")
    tracker.track(6, 2, "b")
    assert tracker.applied(5, 3, result=42, leader="n2") == ("a", CommandResult(redirect="n2"))
    assert tracker.applied(6, 1, result=7, leader=None) == ("b", CommandResult(retry=True))
    assert not CommandResult(redirect="n2").outcome_unknown  # its entry is gone: nothing was done
    assert len(tracker) == 0


def test_applied_at_an_untracked_index_answers_nobody():
    tracker: CommandTracker[str] = CommandTracker()
    tracker.track(5, 2, "a")
    assert tracker.applied(4, 2, result=1) is None
    assert len(tracker) == 1


def test_leadership_lost_answers_every_waiter_with_redirect_or_retry():
    tracker: CommandTracker[str] = CommandTracker()
    for index, token in enumerate("abc", start=3):
        tracker.track(index, 4, token)
    answers = tracker.leadership_lost("n3")
    assert sorted(t for t, _ in answers) == ["a", "b", "c"]
    # Each answer carries its entry's index: proposed, then leadership lost -- outcome unknown.
    assert sorted((t, a) for t, a in answers) == [(t, CommandResult(redirect="n3", index=i))
                                                   for i, t in enumerate("abc", start=3)]
    assert all(a.outcome_unknown and not a.ok for _, a in answers)
    assert len(tracker) == 0 and tracker.leadership_lost("n3") == []
    tracker.track(9, 5, "d")
    assert tracker.leadership_lost(None) == [("d", CommandResult(retry=True, index=9))]
    assert tracker.applied(9, 5, result=1) is None  # the lost command cannot be answered twice


def test_expire_answers_timeout_expired_at_or_after_the_deadline_only():
    tracker: CommandTracker[str] = CommandTracker()
    tracker.track(1, 1, "early", deadline=10)
    tracker.track(2, 1, "late", deadline=20)
    tracker.track(3, 1, "patient", deadline=None)
    assert tracker.expire(9) == []
    assert tracker.expire(10) == [("early", CommandResult(timeout_expired=True, index=1))]
    assert tracker.expire(15) == []
    assert tracker.expire(100) == [("late", CommandResult(timeout_expired=True, index=2))]
    assert len(tracker) == 1
    assert tracker.applied(3, 1, result=0) == ("patient", CommandResult(result=0, index=3))


def test_failed_answers_the_waiter_with_an_error():
    tracker: CommandTracker[str] = CommandTracker()
    tracker.track(4, 1, "a")
    assert tracker.failed(3, "halted") is None
    token, answer = tracker.failed(4, "apply halted at index 4")
    assert token == "a" and answer == CommandResult(error="apply halted at index 4", index=4) and not answer.ok
    assert len(tracker) == 0


def test_refusals_map_to_redirect_retry_or_error():
    assert CommandResult.from_refusal(NotLeader("n2")) == CommandResult(redirect="n2")
    assert CommandResult.from_refusal(NotLeader(None)) == CommandResult(retry=True)
    assert CommandResult.from_refusal(TransferInProgress("n3")) == CommandResult(retry=True)
    other = CommandResult.from_refusal(UnknownNode("n9", ["n1"]))
    assert other.error and "n9" in other.error and not other.ok
    assert CommandResult.from_refusal(RaftError("boom")).error == "boom"


def test_ok_holds_only_for_an_accepted_result():
    assert CommandResult(result=None, index=3).ok  # a command may legitimately return None
    for answer in (
        CommandResult(error="x"),
        CommandResult(redirect="n1"),
        CommandResult(retry=True),
        CommandResult(timeout_expired=True, index=2),
    ):
        assert not answer.ok, answer


# ============================================================================================
# RaftConfig validation
# ============================================================================================


def test_valid_configs_are_accepted():
    RaftConfig(node_id="a", voters=("a",))
    RaftConfig(node_id="b", voters=("a", "b", "c"), election_timeout=(3, 4), heartbeat_interval=1,
               max_msg_entries=1, max_msg_bytes=1, max_inflight=1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"node_id": "z"}, "not among the voters"),
        ({"voters": ("a", "b", "a")}, "duplicate voter"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"heartbeat_interval": -1}, "heartbeat_interval"),
        ({"heartbeat_interval": 10, "election_timeout": (10, 20)}, "heartbeat_interval"),
        ({"heartbeat_interval": 11, "election_timeout": (10, 20)}, "heartbeat_interval"),
        ({"election_timeout": (10, 10)}, "election_timeout"),
        ({"election_timeout": (20, 10)}, "election_timeout"),
        ({"max_msg_entries": 0}, "max_msg_entries"),
        ({"max_msg_bytes": 0}, "max_msg_bytes"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"max_inflight": -3}, "max_inflight"),
    ],
)
def test_invalid_configs_are_refused_with_a_message_naming_the_problem(overrides, message):
    settings = {"node_id": "a", "voters": ("a", "b", "c")} | overrides
    with pytest.raises(ValueError, match=message):
        RaftConfig(**settings)


@pytest.mark.parametrize("seed", range(30))
def test_the_logs_last_index_stays_offset_plus_its_entries_under_every_change(seed: int) -> None:
    """``last_index`` is kept as a field (read on every input): it must follow every change."""
    rng = random.Random(seed)
    log = RaftLog(entries([1] * rng.randrange(4)))
    for step in range(60):
        op = rng.choice(["append", "merge", "compact", "restore", "stable"])
        if op == "append":
            log.append(Entry(log.last_term, log.last_index + 1, b"x"))
        elif op == "merge":
            start = rng.randrange(log.offset + 1, log.last_index + 3) if log.last_index + 1 > log.offset else log.offset + 1
            start = min(start, log.last_index + 1)
            term = log.last_term + rng.choice([0, 1])
            try:
                log.merge(entries([term] * rng.randrange(1, 4), start=start), commit_index=log.offset)
            except Exception:  # noqa: BLE001 - a refused merge changes nothing either way
                pass
        elif op == "stable":
            log.stable_to(log.last_index, log.last_term)
        elif op == "compact" and log.stable_index > log.offset:
            index = rng.randrange(log.offset + 1, log.stable_index + 1)
            log.compact(index, log.term(index))
        elif op == "restore":
            index = rng.randrange(log.offset, log.last_index + 5)
            log.restore(index, rng.choice([log.last_term, log.last_term + 1]))
        assert log.last_index == log.offset + len(log._entries), f"seed {seed}, step {step}: {op}"
