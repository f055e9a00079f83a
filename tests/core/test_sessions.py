"""Client sessions (thesis §6.3): the session table, the applier that consults it, its snapshots,
and the simulator's exactly-once invariant, with deduplication planted off to show it bites."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftnode.core.messages import Entry, EntryKind
from raftnode.node.apply import SNAPSHOT_MAGIC, Applier
from raftnode.node.statemachines import Counter
from raftnode.sim.cluster import SimCluster
from raftnode.sim.invariants import InvariantViolation
from raftnode.sim.runner import run_seed
from raftnode.wire.sessions import (
    SESSION_EXPIRED,
    SessionEntryError,
    SessionRefused,
    SessionStamp,
    SessionTable,
    decode_session_entry,
    encode_register,
    encode_session_command,
)
from raftnode.wire.sessions import _decode_strictly

from .planted_bugs import ForgetsDuplicates


class Log:
    """Feeds entries to an applier at consecutive indexes, as a committed log would."""

    def __init__(self, applier: Applier) -> None:
        self.applier = applier
        self.index = applier.applied_index

    def append(self, data: bytes, kind: EntryKind = EntryKind.SESSION):
        self.index += 1
        self.applier.submit([Entry(1, self.index, data, kind)])
        done, failure = self.applier.run()
        assert failure is None and len(done) == 1
        return done[0]

    def register(self, time: float = 1.0) -> int:
        return self.append(encode_register(time)).result

    def run(self, command: str, stamp: SessionStamp, time: float = 1.0):
        return self.append(encode_session_command(stamp, time, command.encode()))


def counter_log(**table: object) -> tuple[Counter, Log]:
    counter = Counter()
    return counter, Log(Applier(counter, sessions=SessionTable(**table)))  # type: ignore[arg-type]


def test_a_resent_command_is_answered_with_its_first_outcome_and_never_applied_again() -> None:
    counter, log = counter_log()
    session = log.register()
    assert session == 1  # the register entry's index
    first = log.run("incr 5", SessionStamp(session, 1, 1))
    assert (first.result, first.duplicate, first.stamp) == (5, False, SessionStamp(1, 1, 1))
    log.run("incr 1", SessionStamp(session, 2, 1))
    again = log.run("incr 5", SessionStamp(session, 1, 1))
    assert (again.result, again.duplicate, again.stamp) == (5, True, None)
    assert counter.value == 6
    refused = log.run("bogus", SessionStamp(session, 3, 1))
    assert refused.error is not None and refused.stamp is not None
    assert log.run("bogus", SessionStamp(session, 3, 1)).error == refused.error  # a refusal is an outcome too
    assert log.append(b"incr 2", EntryKind.COMMAND).result == 8  # plain commands work as before


def test_sequences_may_commit_out_of_order_within_the_window_not_beyond_or_below_the_ack() -> None:
    counter, log = counter_log(window=4)
    session = log.register()
    assert log.run("incr 1", SessionStamp(session, 3, 1)).result == 1  # pipelined: 3 before 1 and 2
    assert log.run("incr 1", SessionStamp(session, 1, 1)).result == 2
    far = log.run("incr 1", SessionStamp(session, 5, 1))
    assert far.error is not None and "4 or more ahead of the lowest unanswered one (1)" in far.error
    assert log.run("incr 1", SessionStamp(session, 2, 2)).result == 3
    # The client now holds every answer below 4: the cluster forgets them.
    assert log.run("incr 1", SessionStamp(session, 4, 4)).result == 4
    stale = log.run("incr 1", SessionStamp(session, 1, 1))
    assert stale.error is not None and "sequence 1 was answered already" in stale.error
    assert log.run("incr 1", SessionStamp(session, 7, 4)).result == 5  # 7 < 4 + 4
    assert counter.value == 5


def test_sessions_expire_by_the_leaders_clock_in_the_log_and_by_least_recent_activity() -> None:
    counter, log = counter_log(max_sessions=2, timeout=10)
    a, b = log.register(time=100), log.register(time=101)
    assert log.run("incr 1", SessionStamp(a, 1, 1), time=105).result == 1  # b is now the least recent
    c = log.register(time=106)  # a third session: b is evicted
    evicted = log.run("incr 1", SessionStamp(b, 1, 1), time=107)
    assert evicted.error is not None and evicted.error.startswith(SESSION_EXPIRED)
    # An old stamp never turns the clock back; 116 is more than 10 s after a's last activity (105).
    assert log.run("incr 1", SessionStamp(c, 1, 1), time=116).result == 2
    assert log.run("incr 1", SessionStamp(a, 2, 2), time=90).error.startswith(SESSION_EXPIRED)
    assert counter.value == 2


def test_the_session_table_survives_a_snapshot_and_a_plain_snapshot_still_restores() -> None:
    counter, log = counter_log(max_sessions=2)
    a, b = log.register(), log.register()
    log.run("incr 3", SessionStamp(b, 1, 1))
    log.run("incr 4", SessionStamp(a, 1, 1))
    data = log.applier.snapshot()
    assert data.startswith(SNAPSHOT_MAGIC)
    copy, restored = counter_log(max_sessions=2)
    restored.applier.restore(log.index, data)
    restored.index = log.index
    assert copy.value == 7
    assert restored.run("incr 3", SessionStamp(b, 1, 1)).duplicate  # the saved result came along
    restored.register()  # and the order of activity: b was touched last, so a goes
    assert restored.run("incr 4", SessionStamp(a, 1, 1)).error.startswith(SESSION_EXPIRED)
    assert restored.applier.snapshot() != data
    # A cluster that never used sessions writes (and reads) the state machine's snapshot alone.
    plain, plain_log = counter_log()
    plain_log.append(b"incr 2", EntryKind.COMMAND)
    assert plain_log.applier.snapshot() == plain.snapshot()
    restored.applier.restore(9, plain.snapshot())
    assert copy.value == 2 and len(restored.applier.sessions) == 0


def test_hostile_session_entries_and_snapshots_are_refused_with_the_reason() -> None:
    counter, log = counter_log()
    short = log.append(b"\x01\x00")
    assert short.error == "session entry of 2 bytes is shorter than its 33-byte header"
    bad_op = log.append(b"\x07" + encode_register(1.0)[1:])
    assert bad_op.error == "unknown session entry op 7"
    with pytest.raises(SessionEntryError, match="not a number"):
        decode_session_entry(encode_register(math.nan))
    zero_seq = encode_session_command(SessionStamp(1, 1, 1), 1.0, b"incr 1").replace(
        (1).to_bytes(8, "big") * 2, (1).to_bytes(8, "big") + bytes(8), 1)
    assert "malformed session command" in log.append(zero_seq).error
    assert counter.value == 0
    table = json.dumps({"clock": 1, "sessions": [["x", 1, 1, []]]}).encode()
    with pytest.raises(ValueError, match="the session table in the snapshot is malformed"):
        log.applier.restore(5, SNAPSHOT_MAGIC + len(table).to_bytes(4, "big") + table)
    with pytest.raises(ValueError, match="cut short inside its session table"):
        log.applier.restore(5, SNAPSHOT_MAGIC + (1000).to_bytes(4, "big") + b"{}")


def duplicated_command(table: type[SessionTable]) -> SimCluster:
    """The same stamped command proposed twice to the leader: both copies commit."""
    cluster = SimCluster(3, seed=4, session_table=table)
    leader = cluster.wait_leader()
    session = cluster.wait_answered(cluster.register_session(leader)).result
    stamp = SessionStamp(session, 1, 1)
    first = cluster.propose(leader, "incr 5", session=stamp)
    second = cluster.propose(leader, "incr 5", session=stamp)
    for request in (first, second):
        result = cluster.wait_answered(request)
        cluster.checker.acknowledged_in_session(stamp, result.result, result.error)
    return cluster


def test_the_exactly_once_invariant_holds_and_catches_a_double_apply() -> None:
    cluster = duplicated_command(SessionTable)
    assert cluster.stabilize()
    assert {cluster.state(n).value for n in cluster.ids} == {5}  # type: ignore[attr-defined]
    with pytest.raises(InvariantViolation, match=r"exactly once: .* applied command 1 of session 2 at index 4; "
                                                 r"it was applied at index 3 already"):
        duplicated_command(ForgetsDuplicates)


def test_random_schedules_with_deduplication_planted_off_are_caught() -> None:
    for seed in range(3):
        report = run_seed(seed, nodes=5, steps=600, session_table=ForgetsDuplicates)
        assert report.violation == "exactly once", (seed, report.violation, report.detail)
    report = run_seed(0, nodes=5, steps=600)
    assert report.ok and report.session_acknowledged > 0, (report.violation, report.detail)


def _strict_or_error(decode, data):  # type: ignore[no-untyped-def]
    try:
        return decode(data)
    except SessionEntryError as exc:
        return f"error: {exc}"


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    op=st.integers(0, 3),
    fields=st.lists(st.sampled_from([0, 1, 2, 5, 2**63, 2**64 - 1]), min_size=3, max_size=3),
    time=st.sampled_from([0.0, 1.5, -3.0, math.inf, -math.inf, math.nan]),
    command=st.binary(max_size=8) | st.sampled_from([b"incr 1", "caf\u00e9".encode(), b"\xff\xfe"]),
    cut=st.integers(0, 40),
)
def test_the_fast_decode_of_a_session_entry_agrees_with_the_strict_one(op, fields, time, command, cut) -> None:  # type: ignore[no-untyped-def]
    """Well-formed commands take a shortcut; every other byte string, cut anywhere, gets the strict
    decode's answer or its error, from bytes as from a memoryview (what the log reads)."""
    data = struct.pack(">BQQQd", op, *fields, time) + command
    data = data[:cut] if cut < 33 else data  # cut inside the header, or whole
    expected = _strict_or_error(_decode_strictly, data)
    assert repr(_strict_or_error(decode_session_entry, data)) == repr(expected)
    assert repr(_strict_or_error(decode_session_entry, memoryview(data))) == repr(expected)


def test_expiry_is_checked_again_after_a_restore_and_a_clear() -> None:
    table = SessionTable(timeout=10)
    a = table.register(1, 100.0)
    assert table.lookup(SessionStamp(a, 1, 1), 105.0) is None
    copy = SessionTable(timeout=10)
    copy.restore(table.encode())
    with pytest.raises(SessionRefused, match=SESSION_EXPIRED):
        copy.lookup(SessionStamp(a, 2, 2), 116.0)
    copy.clear()
    b = copy.register(2, 1.0)
    with pytest.raises(SessionRefused, match=SESSION_EXPIRED):
        copy.lookup(SessionStamp(b, 1, 1), 12.0)


def _encoded_afresh(table: SessionTable) -> bytes:
    """The table's JSON built from scratch (what ``encode`` gives, without what it remembers)."""
    sessions = [[sid, s.last_active, s.floor, [[seq, *s.results[seq]] for seq in sorted(s.results)]]
                for sid, s in table._sessions.items()]
    return json.dumps({"clock": table.clock, "sessions": sessions}, separators=(",", ":"), default=repr).encode()


def test_a_session_is_encoded_again_whenever_it_changed_since_the_last_snapshot() -> None:
    """``encode`` reuses the JSON of sessions unchanged since the last call (idle ones); a
    session touched in any way (a new result, a duplicate answered, an ack, an expiry, a
    restore) is encoded anew: the bytes always equal a fresh encoding."""
    table = SessionTable(max_sessions=3, timeout=50.0)
    a, b = table.register(1, 10.0), table.register(2, 11.0)
    steps = [
        lambda: table.record(SessionStamp(a, 1, 1), 5, None) if table.lookup(SessionStamp(a, 1, 1), 12.0) is None else None,
        lambda: table.lookup(SessionStamp(a, 1, 1), 13.0),  # a duplicate: only its activity time changes
        lambda: table.record(SessionStamp(b, 3, 1), "t\u00e9xt", None) if table.lookup(SessionStamp(b, 3, 1), 14.0) is None else None,
        lambda: table.record(SessionStamp(b, 4, 4), None, "refused") if table.lookup(SessionStamp(b, 4, 4), 15.0) is None else None,
        lambda: table.register(3, 16.0),
        lambda: table.register(4, 17.0),  # evicts the least recently active
        lambda: table.register(5, 90.0),  # expires the idle ones
        lambda: table.restore(_encoded_afresh(table)),
    ]
    for step in steps:
        assert table.encode() == _encoded_afresh(table)
        step()
    assert table.encode() == _encoded_afresh(table)


def test_an_entry_whose_answer_raised_is_never_applied_again() -> None:
    """``Applier.apply_each`` counts an entry applied before its sink (the answer) runs: a sink
    that raises leaves the entry applied once, and the next run goes on from the entry after it."""
    counter = Counter()
    applier = Applier(counter)
    applier.submit([Entry(1, 1, b"incr 5", EntryKind.COMMAND), Entry(1, 2, b"incr 1", EntryKind.COMMAND)])

    def answer_fails(entry: Entry, result: object, error: object, stamp: object, duplicate: bool) -> None:
        raise RuntimeError(f"the answer to {entry.index} could not be sent")

    with pytest.raises(RuntimeError):
        applier.apply_each(answer_fails)
    assert counter.value == 5 and applier.applied_index == 1
    seen: list[int] = []
    assert applier.apply_each(lambda entry, *_: seen.append(entry.index)) is None
    assert seen == [2] and counter.value == 6 and applier.applied_index == 2
