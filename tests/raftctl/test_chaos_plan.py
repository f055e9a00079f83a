"""The chaos run's plan: a seeded workload and fault schedule (pure, so tested without a cluster)."""

from __future__ import annotations

import pytest

from raftctl.chaosrun.plan import FAULT_KINDS, Workload, fault_schedule
from raftnode.node.statemachines import KeyValue


def test_the_same_seed_gives_the_same_operations_and_faults():
    def ops(seed):
        w = Workload(seed, 3)
        return [w.next(c, t / 10) for t in range(200) for c in range(3)]

    assert ops(7) == ops(7)
    assert ops(7) != ops(8)
    assert fault_schedule(7, FAULT_KINDS, duration=60) == fault_schedule(7, FAULT_KINDS, duration=60)
    assert fault_schedule(7, FAULT_KINDS, duration=60) != fault_schedule(8, FAULT_KINDS, duration=60)


def test_written_values_are_unique_across_clients_and_register_and_counter_keys_never_mix():
    w = Workload(1, 4, keys=4, rotate_s=1.0)
    written, functions_by_key = [], {}
    for step in range(2000):
        op = w.next(step % 4, step / 100)
        functions_by_key.setdefault(op.key, set()).add(op.f)
        if op.f == "set":
            written.append(op.value)
        elif op.f == "cas":
            written.append(op.value[1])
    assert len(written) == len(set(written)) > 100
    for key, functions in functions_by_key.items():
        assert functions <= ({"get", "set", "cas"} if key.startswith("r") else {"get", "incr"}), key


def test_the_key_window_rotates_with_time():
    w = Workload(1, 1, keys=4, rotate_s=2.0)
    assert w.window(0.0) == w.window(1.9)
    assert set(w.window(0.0)[0]).isdisjoint(w.window(2.0)[0])


def test_every_operation_is_a_command_the_kv_state_machine_runs_as_the_history_says():
    kv, w = KeyValue(), Workload(3, 2, keys=2, rotate_s=100.0)
    for step in range(500):
        op = w.next(step % 2, 0.0)
        before = kv.data.get(op.key)
        result = kv.process_command(op.command)
        if op.f == "set":
            assert result == op.value and kv.data[op.key] == op.value
        elif op.f == "cas":
            old, new = op.value
            assert result == ((before if before is not None else None) == old)
            assert kv.data.get(op.key) == (new if result else before)
        elif op.f == "incr":
            assert result == int(before or 0) + op.value and kv.data[op.key] == str(result)
        else:
            assert result == before


def test_faults_come_one_at_a_time_and_all_are_recovered_before_the_end():
    for seed in range(50):
        schedule = fault_schedule(seed, FAULT_KINDS, duration=120, settle_s=3.0)
        assert schedule, seed
        for earlier, later in zip(schedule, schedule[1:]):
            assert earlier.at + earlier.hold <= later.at, (seed, earlier, later)
        last = schedule[-1]
        assert last.at + last.hold + 3.0 <= 120
        assert {f.kind for f in schedule} <= set(FAULT_KINDS)


def test_a_schedule_uses_only_the_kinds_asked_for_and_refuses_unknown_ones():
    assert {f.kind for f in fault_schedule(1, ["kill"], duration=100)} == {"kill"}
    assert fault_schedule(1, [], duration=100) == []
    with pytest.raises(ValueError, match="unknown fault kind lightning"):
        fault_schedule(1, ["kill", "lightning"], duration=100)
