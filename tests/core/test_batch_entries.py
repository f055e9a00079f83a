"""Batch entries (``raftnode.wire.batches``, ``EntryKind.BATCH``): the strict encoding, the
applier (in order, each command its own outcome and session check, a failure resumed where it
stopped), old entry kinds unchanged, and the simulator running batches with planted bugs caught."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftnode.core.messages import Entry, EntryKind
from raftnode.node.apply import Applier, BatchOutcome
from raftnode.node.statemachines import CommandError, Counter
from raftnode.sim.cluster import SimCluster
from raftnode.sim.invariants import InvariantViolation
from raftnode.sim.runner import run_seed
from raftnode.wire.batches import (
    MAX_BATCH_ENTRY_BYTES,
    MAX_ENTRY_COMMANDS,
    BatchContents,
    BatchEntryError,
    decode_batch_entry,
    encode_batch_entry,
    entry_runs,
    item_size,
    split_batch,
)
from raftnode.wire.sessions import SessionStamp, SessionTable, encode_register, encode_session_command

from .planted_bugs import AppliesBatchesBackwards, ForgetsBatchOutcomes, RestartsBatchesAfterAFailure, SkipsSessionsInBatches

STAMP = SessionStamp(1, 1, 1)


def batch(index: int, commands: list[str], stamps: list[SessionStamp | None] | None = None, time: float = 1.0) -> Entry:
    return Entry(1, index, encode_batch_entry(time, [c.encode() for c in commands], stamps), EntryKind.BATCH)


def applied(applier: Applier, *entries: Entry) -> list:
    applier.submit(entries)
    done, failure = applier.run()
    assert failure is None, failure
    return [a.result if a.entry.kind is EntryKind.BATCH and a.error is None else (a.result, a.error) for a in done]


# -- the encoding -----------------------------------------------------------------------------


def test_a_batch_entry_decodes_to_its_commands_and_stamps_in_order() -> None:
    stamps = [None, SessionStamp(7, 3, 2), None]
    data = encode_batch_entry(12.5, ["incr 1".encode(), "d\u00e9cr 2".encode(), b""], stamps)
    assert decode_batch_entry(data) == BatchContents(12.5, ["incr 1", "d\u00e9cr 2", ""], stamps)
    assert decode_batch_entry(encode_batch_entry(0.0, [b"get", b"x"], None)) == (0.0, ["get", "x"], None)
    assert decode_batch_entry(encode_batch_entry(0.0, [b"get"], [None])) == (0.0, ["get"], None)  # no stamp: none kept
    assert len(data) == 14 + item_size(b"incr 1", True) + item_size("d\u00e9cr 2".encode(), True) + item_size(b"", True)


def head(count: int, stamped: int = 0, version: int = 1, time: float = 0.0) -> bytes:
    return struct.pack(">BIdB", version, count, time, stamped)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "shorter than its 14-byte header"),
        (head(1, version=2) + struct.pack(">I", 0), "unknown version 2"),
        (head(1, time=float("nan")) + struct.pack(">I", 0), "time that is not a number"),
        (head(0), "claims 0 commands"),
        (head(MAX_ENTRY_COMMANDS + 1), f"claims {MAX_ENTRY_COMMANDS + 1} commands"),
        (head(2**32 - 1) + b"x" * 100, "claims 4294967295 commands"),
        (head(20) + struct.pack(">I", 0), "more than its 18 bytes can hold"),
        (head(1, stamped=2) + struct.pack(">I", 0), "unknown stamp flag 2"),
        (head(1, stamped=1) + struct.pack(">I", 0) + b"\0" * 8, "more than its 26 bytes can hold"),
        (head(1, stamped=1) + struct.pack(">IQQQ", 0, 0, 1, 1), "malformed session stamp"),
        (head(1, stamped=1) + struct.pack(">IQQQ", 0, 1, 1, 2), "malformed session stamp"),
        (head(1, stamped=1) + struct.pack(">IQQQ", 0, 0, 0, 0), "marked stamped but none"),
        (head(1) + struct.pack(">I", 2**32 - 1) + b"ab", "claim 4294967295 bytes; it holds 2"),
        (head(1) + struct.pack(">I", 1) + b"\xff", "command 0 is not utf-8"),
        (head(2) + struct.pack(">II", 1, 1) + "\u00e9".encode(), "command 0 is not utf-8"),  # a character cut in two
        (head(1) + struct.pack(">I", 1) + b"ab", "claim 1 bytes; it holds 2"),
    ],
)
def test_a_damaged_batch_entry_is_refused_naming_what_is_wrong(data: bytes, problem: str) -> None:
    with pytest.raises(BatchEntryError, match=problem.replace("(", r"\(")):
        decode_batch_entry(data)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(data=st.binary(max_size=200), seed=st.integers(0, 2**32))
def test_any_bytes_decode_or_raise_batch_entry_error_and_a_damaged_valid_entry_too(data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    good = encode_batch_entry(3.0, [b"incr 1", "\u00e9".encode(), b"get"], [None, SessionStamp(5, 9, 4), None])
    damaged = bytearray(good)
    for _ in range(rng.randint(1, 4)):
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    for candidate in (data, bytes(damaged), good[: rng.randrange(len(good))], good + data, head(3) + data):
        try:
            time, commands, stamps = decode_batch_entry(candidate)
        except BatchEntryError:
            continue
        # Accepted: strict, so it is the one encoding of what it decodes to.
        assert encode_batch_entry(time, [c.encode() for c in commands], stamps) == candidate


def test_encoding_refuses_an_empty_or_oversized_batch() -> None:
    with pytest.raises(ValueError, match="1 to 1024 commands"):
        encode_batch_entry(0.0, [], None)
    with pytest.raises(ValueError, match="1 to 1024 commands"):
        encode_batch_entry(0.0, [b"x"] * (MAX_ENTRY_COMMANDS + 1), None)


def test_a_batch_is_split_into_entries_that_fit_and_a_long_command_goes_alone() -> None:
    assert split_batch([10] * 5) == [range(0, 5)]
    assert split_batch([10] * (MAX_ENTRY_COMMANDS + 3)) == [range(0, MAX_ENTRY_COMMANDS), range(MAX_ENTRY_COMMANDS, 1027)]
    assert split_batch([40, 40, 40], max_bytes=100) == [range(0, 2), range(2, 3)]
    assert split_batch([10, 500, 10], max_bytes=100) == [range(0, 1), range(1, 2), range(2, 3)]
    big = (MAX_BATCH_ENTRY_BYTES // 3)
    runs = split_batch([big] * 7)
    assert [len(r) for r in runs] == [2, 2, 2, 1] and all(14 + big * len(r) <= MAX_BATCH_ENTRY_BYTES for r in runs)
    assert split_batch([]) == []
    assert entry_runs([b"incr 1"] * 3, stamped=False) == [range(3)]
    assert entry_runs([b"x" * 40] * 3, stamped=True, max_bytes=150) == split_batch([68] * 3, 150) == [range(2), range(2, 3)]


# -- the applier ------------------------------------------------------------------------------


def test_a_batch_entry_applies_its_commands_in_order_each_with_its_own_outcome() -> None:
    applier = Applier(Counter())
    outcomes = applied(applier, batch(1, ["incr 1", "bogus", "incr 2", "decr 5"]), Entry(1, 2, b"incr 10"))
    first, plain = outcomes
    assert [(o.result, o.error is not None) for o in first] == [(1, False), (None, True), (3, False), (-2, False)]
    assert "unknown command 'bogus'" in first[1].error  # one refusal; the others applied
    assert plain == (8, None)
    assert applier.applied_index == 2


def test_a_planted_backwards_batch_gives_other_outcomes_than_the_log_order() -> None:
    outcomes = applied(AppliesBatchesBackwards(Counter()), batch(1, ["incr 1", "incr 2", "decr 5"]))[0]
    assert [o.result for o in outcomes] != [1, 3, -2]  # what the test above asserts of the shipped applier


def test_session_commands_in_batches_are_applied_once_whoever_resends_them() -> None:
    applier = Applier(Counter())
    applier.submit([Entry(1, 1, encode_register(1.0), EntryKind.SESSION)])
    applier.run()
    s1, s2, s3 = (SessionStamp(1, seq, 1) for seq in (1, 2, 3))
    outcomes = applied(
        applier,
        batch(2, ["incr 1", "incr 2", "incr 4"], [s1, None, s2]),
        batch(3, ["incr 1", "incr 4", "incr 8"], [s1, s2, s3]),  # a resent batch, one more command
        Entry(1, 4, encode_session_command(s3, 2.0, b"incr 8"), EntryKind.SESSION),  # and a lone copy
        batch(5, ["incr 1"], [SessionStamp(99, 1, 1)]),  # no such session
    )
    assert outcomes[0] == (BatchOutcome(1, None, s1, False), BatchOutcome(3, None, None, False),
                           BatchOutcome(7, None, s2, False))
    assert outcomes[1] == (BatchOutcome(1, None, None, True), BatchOutcome(7, None, None, True),
                           BatchOutcome(15, None, s3, False))
    assert outcomes[2] == (15, None)
    assert outcomes[3][0].error.startswith("session expired")
    assert applier.state_machine.value == 15


@pytest.mark.parametrize("applier_class", [SkipsSessionsInBatches, ForgetsBatchOutcomes])
def test_planted_session_bugs_in_batches_apply_a_resent_batch_twice(applier_class: type[Applier]) -> None:
    applier = applier_class(Counter())
    applier.submit([Entry(1, 1, encode_register(1.0), EntryKind.SESSION)])
    applier.run()
    applied(applier, batch(2, ["incr 1"], [STAMP]), batch(3, ["incr 1"], [STAMP]))
    assert applier.state_machine.value == 2  # the shipped applier's is 1 (the test above)


def test_a_damaged_batch_entry_is_an_error_outcome_the_same_everywhere_and_the_log_goes_on() -> None:
    applier = Applier(Counter())
    damaged = Entry(1, 1, b"\x01\x00\x00\x00\x05garbage", EntryKind.BATCH)
    outcomes = applied(applier, damaged, batch(2, ["incr 3"]))
    assert outcomes[0][0] is None and "batch entry" in outcomes[0][1]
    assert outcomes[1] == (BatchOutcome(3, None, None, False),)


class FlakyCounter(Counter):
    """Fails ``incr 5`` the first ``failures`` times it is applied (not a CommandError)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def process_command(self, command: str) -> object:
        if command == "incr 5" and self.failures:
            self.failures -= 1
            raise OSError("the disk under the state machine hiccuped")
        return super().process_command(command)


@pytest.mark.parametrize(("applier_class", "value"), [(Applier, 8), (RestartsBatchesAfterAFailure, 9)])
def test_a_failure_inside_a_batch_is_retried_from_that_command_never_reapplying_the_ones_before(
    applier_class: type[Applier], value: int
) -> None:
    applier = applier_class(FlakyCounter(failures=1))
    applier.submit([batch(1, ["incr 1", "bogus", "incr 5", "incr 2"])])
    done, failure = applier.run()
    assert done == [] and failure is not None and not failure.halted and applier.applied_index == 0
    assert applier.mid_entry is (applier_class is Applier)  # applied in part: no snapshot now (the planted one forgot)
    done, failure = applier.run()
    assert failure is None and applier.applied_index == 1 and not applier.mid_entry
    assert [o.result for o in done[0].result] == [value - 7, None, value - 2, value]
    assert applier.state_machine.value == value  # 8; the planted restart applies "incr 1" twice: 9


def test_the_snapshotter_waits_while_a_batch_is_applied_in_part() -> None:
    from raftnode.node.snapshotpolicy import SnapshotPolicy
    from raftnode.node.snapshotter import Snapshotter

    applier = Applier(FlakyCounter(failures=1))
    applier.submit([Entry(1, 1, b"incr 1"), batch(2, ["incr 1", "incr 5"])])
    applier.run()
    raft = type("R", (), {"log": type("L", (), {"offset": 0})()})()
    snapshots = Snapshotter(SnapshotPolicy(1, None), applier, disk=None)  # type: ignore[arg-type]
    assert applier.applied_index == 1 and applier.mid_entry and not snapshots.due(raft)  # type: ignore[arg-type]
    applier.run()
    assert snapshots.due(raft)  # type: ignore[arg-type]


def test_a_snapshot_taken_after_batches_restores_their_sessions() -> None:
    applier = Applier(Counter())
    applier.submit([Entry(1, 1, encode_register(1.0), EntryKind.SESSION)])
    applier.run()
    applied(applier, batch(2, ["incr 1", "incr 2"], [STAMP, None]))
    copy = Applier(Counter(), sessions=SessionTable())
    copy.restore(2, applier.snapshot())
    assert applied(copy, batch(3, ["incr 1"], [STAMP]))[0] == (BatchOutcome(1, None, None, True),)
    assert copy.state_machine.value == 3


def test_entries_of_the_older_kinds_apply_as_before() -> None:
    applier = Applier(Counter())
    outcomes = applied(
        applier,
        Entry(1, 1, b"", EntryKind.NOOP),
        Entry(1, 2, b"incr 2"),
        Entry(1, 3, encode_register(1.0), EntryKind.SESSION),
        Entry(1, 4, encode_session_command(SessionStamp(3, 1, 1), 1.0, b"incr 3"), EntryKind.SESSION),
        Entry(1, 5, encode_session_command(SessionStamp(3, 1, 1), 1.0, b"incr 3"), EntryKind.SESSION),
        Entry(1, 6, b"bogus"),
    )
    assert outcomes[:5] == [(None, None), (2, None), (3, None), (5, None), (5, None)]
    assert outcomes[5][0] is None and "unknown command" in outcomes[5][1]


def test_a_command_error_of_a_session_command_in_a_batch_is_its_saved_outcome() -> None:
    class Refuses(Counter):
        def process_command(self, command: str) -> object:
            if command == "no":
                raise CommandError("refused")
            return super().process_command(command)

    applier = Applier(Refuses())
    applier.submit([Entry(1, 1, encode_register(1.0), EntryKind.SESSION)])
    applier.run()
    first = applied(applier, batch(2, ["no", "incr 1"], [STAMP, None]))[0]
    again = applied(applier, batch(3, ["no"], [STAMP]))[0]
    assert first[0] == BatchOutcome(None, "refused", STAMP, False) and first[1].result == 1
    assert again == (BatchOutcome(None, "refused", None, True),)


# -- the simulator ----------------------------------------------------------------------------


def test_random_schedules_run_batch_entries_in_and_out_of_sessions() -> None:
    report = run_seed(1, nodes=5, steps=800)
    assert report.ok, (report.violation, report.detail)
    assert report.batch_entries > 20 and report.session_acknowledged > 0


@pytest.mark.parametrize("applier_class", [SkipsSessionsInBatches, ForgetsBatchOutcomes])
def test_random_schedules_catch_batched_session_commands_applied_twice(applier_class: type[Applier]) -> None:
    caught = [run_seed(seed, nodes=5, steps=800, applier_class=applier_class) for seed in range(4)]
    assert any(r.violation == "exactly once" for r in caught), [(r.violation, r.detail) for r in caught]
    for report in caught:
        assert report.violation in (None, "exactly once"), (report.violation, report.detail)


def resent_batch_after_a_leader_change(applier_class: type[Applier]) -> SimCluster:
    """A batch in a session reaches the log, its leader hands over before answering (outcome
    unknown), and the client resends the batch to the next leader: both copies commit."""
    cluster = SimCluster(3, seed=4, applier_class=applier_class)
    leader = cluster.wait_leader()
    session = cluster.wait_answered(cluster.register_session(leader)).result
    stamps = [SessionStamp(session, 1, 1), SessionStamp(session, 2, 1)]
    first = cluster.propose_batch(leader, ["incr 1", "incr 2"], stamps=stamps)
    appends = []
    while (m := cluster.network.pop_due(cluster.now)) is not None:
        appends.append(m)
    for m in appends:  # the entry reaches the followers ...
        cluster.raft(m.dst).step(m)
        cluster._process(cluster.node(m.dst))
    cluster.isolate(leader)  # ... and the leader never hears that it committed
    answers = [cluster.wait_answered(request) for request in first]
    assert all(answer.outcome_unknown for answer in answers), answers
    assert cluster.run_until(lambda: cluster.leader() not in (None, leader))
    target = cluster.leader()
    assert target is not None
    again = cluster.propose_batch(target, ["incr 1", "incr 2"], stamps=stamps)
    for stamp, request in zip(stamps, again):
        result = cluster.wait_answered(request)
        cluster.checker.acknowledged_in_session(stamp, result.result, result.error)
    assert [r.result.result for r in again] == [1, 3]
    return cluster


def test_a_batch_resent_after_a_leader_change_is_applied_once_and_a_planted_double_apply_is_caught() -> None:
    cluster = resent_batch_after_a_leader_change(Applier)
    cluster.heal()
    assert cluster.stabilize()
    assert {cluster.state(n).value for n in cluster.ids} == {3}  # type: ignore[attr-defined]
    assert len(cluster.checker.batch_entries) == 2  # both copies in the log
    with pytest.raises(InvariantViolation, match=r"exactly once: .* applied command 1 of session 2 at index \d+; "
                                                 r"it was applied at index \d+ already"):
        resent_batch_after_a_leader_change(ForgetsBatchOutcomes)
