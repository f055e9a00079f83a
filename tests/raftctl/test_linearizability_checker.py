"""The linearizability checker: planted anomalies are caught and explained; unknown outcomes,
concurrency and budgets are handled; generated histories agree with a brute-force reference."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from raftctl.linearizability import (
    ANOMALY,
    COUNTER,
    KEY_VALUE,
    OK,
    UNKNOWN,
    Budget,
    ModelMismatch,
    check_history,
)
from raftctl.linearizability.generate import linearizable_history
from raftctl.linearizability.history import History, Operation, history_from_records

from .linearizability_helpers import Recorder


def verdict(rec: Recorder, model=KEY_VALUE, budget: Budget = Budget()):
    return check_history(rec.history(), model, budget)


def only_anomaly(rec: Recorder, model=KEY_VALUE):
    result = verdict(rec, model)
    assert result.status == ANOMALY
    (anomaly,) = result.anomalies
    return anomaly


# -- planted anomalies ---------------------------------------------------------------------------


def test_a_stale_read_is_an_anomaly_explained_by_the_read_and_the_value_it_should_see():
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.call(2, "set", "v2")
    stale = rec.call(3, "get", result="v1")
    anomaly = only_anomaly(rec)
    assert (anomaly.op.f, anomaly.op.output, anomaly.op.complete_line) == ("get", "v1", stale)
    assert [(step.op.input, step.state) for step in anomaly.linearized] == [("v1", "v1"), ("v2", "v2")]
    assert anomaly.state == "v2"
    assert [op.id for op in anomaly.unplaced] == [anomaly.op.id]
    assert 'get k → "v1"' in anomaly.explanation and 'would return "v2"' in anomaly.explanation


def double_apply_history(read_after: bool) -> Recorder:
    """The issue's anomaly: a cas answered false, explicable only by a concurrent set, whose new
    value is read later — it had been applied after all."""
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.invoke(1, "cas", ["v1", "v2"])
    rec.call(2, "set", "v3")
    rec.ok(1, False)
    if read_after:
        rec.call(3, "get", result="v2")
    return rec


def test_a_double_apply_is_caught_at_the_read_of_the_refused_cas_value():
    assert verdict(double_apply_history(read_after=False)).status == OK  # the concurrent set explains "false"
    anomaly = only_anomaly(double_apply_history(read_after=True))
    assert (anomaly.op.f, anomaly.op.output) == ("get", "v2")
    assert [op.f for op in anomaly.prefix] == ["set", "cas", "set", "get"]


def test_a_lost_write_is_an_anomaly():
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.call(2, "get", result=None)
    assert only_anomaly(rec).op.f == "get"
    counter = Recorder()
    counter.call(1, "incr", 1, result=1, key=None)
    counter.call(2, "incr", 1, result=2, key=None)
    counter.call(1, "get", result=1, key=None)
    assert only_anomaly(counter, COUNTER).op.f == "get"


def test_the_anomaly_is_the_first_completion_that_breaks_linearizability():
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.call(1, "set", "v2")
    stale = rec.call(2, "get", result="v1")
    for n in range(3, 30):  # a long linearizable tail after the stale read
        rec.call(n % 4, "set", f"v{n}")
        rec.call((n + 1) % 4, "get", result=f"v{n}")
    anomaly = only_anomaly(rec)
    assert anomaly.op.complete_line == stale
    assert len(anomaly.prefix) == 3


def test_a_failed_operation_never_took_effect():
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.invoke(1, "set", "v2")
    rec.fail(1)
    rec.call(2, "get", result="v2")
    assert only_anomaly(rec).op.output == "v2"


# -- operations with an unknown outcome ---------------------------------------------------------


def unknown_set_then_reads(*reads: Any, complete: bool = True) -> Recorder:
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.invoke(2, "set", "v2")
    if complete:
        rec.info(2)
    for value in reads:
        rec.call(3, "get", result=value)
    return rec


@pytest.mark.parametrize("complete", [True, False], ids=["info", "never-completed"])
def test_an_unknown_outcome_may_take_effect_now_later_or_never_but_only_once(complete):
    assert verdict(unknown_set_then_reads("v2", complete=complete)).status == OK  # took effect
    assert verdict(unknown_set_then_reads("v1", complete=complete)).status == OK  # did not
    assert verdict(unknown_set_then_reads("v1", "v1", "v2", complete=complete)).status == OK  # took effect late
    anomaly = only_anomaly(unknown_set_then_reads("v2", "v1", complete=complete))  # not undone
    assert anomaly.op.output == "v1"


def test_an_unknown_cas_and_incr_take_effect_with_their_semantics():
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.invoke(2, "cas", ["v1", "v2"])
    rec.info(2)
    rec.call(1, "get", result="v2")
    assert verdict(rec).status == OK
    counter = Recorder()
    counter.call(1, "incr", 1, result=1, key=None)
    counter.invoke(2, "incr", 5, key=None)
    counter.info(2)
    counter.call(1, "get", result=6, key=None)
    counter.call(1, "incr", 1, result=7, key=None)
    assert verdict(counter, COUNTER).status == OK
    counter.call(1, "get", result=2, key=None)  # the unknown incr cannot be taken back
    assert only_anomaly(counter, COUNTER).op.output == 2


# -- concurrency ----------------------------------------------------------------------------------


@pytest.mark.parametrize("last", ["v1", "v2"])
def test_overlapping_writes_linearize_in_either_order(last):
    rec = Recorder()
    rec.invoke(1, "set", "v1")
    rec.invoke(2, "set", "v2")
    rec.invoke(3, "get")
    rec.ok(3, None)  # a read concurrent with both writes may see neither
    rec.ok(1)
    rec.ok(2)
    rec.call(3, "get", result=last)
    rec.call(3, "get", result=last)
    assert verdict(rec).status == OK


def test_reads_of_overlapping_writes_must_agree_on_one_order():
    rec = Recorder()
    rec.invoke(1, "set", "v1")
    rec.invoke(2, "set", "v2")
    rec.ok(1)
    rec.ok(2)
    rec.call(3, "get", result="v2")
    rec.call(4, "get", result="v1")
    assert only_anomaly(rec).op.process == 4


def test_keys_are_checked_independently_and_the_bad_one_is_named():
    rec = Recorder()
    rec.call(1, "set", "a1", key="a")
    rec.call(1, "set", "b1", key="b")
    rec.call(2, "get", result="a1", key="a")
    rec.call(2, "get", result=None, key="b")
    result = verdict(rec)
    assert result.status == ANOMALY
    assert [(k.key, k.status) for k in result.keys] == [("a", OK), ("b", ANOMALY)]
    assert result.to_json()["anomaly_keys"] == ["b"]


def test_kv_semantics_follow_the_kv_state_machine():
    rec = Recorder()
    rec.call(1, "cas", [None, "v1"], result=True)  # null: absent
    rec.call(1, "cas", [None, "v2"], result=False)
    rec.call(1, "delete", result=True)
    rec.call(1, "delete", result=False)
    rec.call(1, "cas", ["-", "v3"], result=True)  # kv's own spelling of absent
    rec.call(1, "get", result="v3")
    assert verdict(rec).status == OK
    from raftnode.node.statemachines import KeyValue

    machine = KeyValue()
    assert [machine.process_command(c) for c in ("cas k - v1", "cas k - v2", "delete k", "delete k",
                                                 "cas k - v3", "get k")] == [True, False, True, False, True, "v3"]


def test_an_operation_the_model_lacks_is_refused_with_its_line():
    rec = Recorder()
    rec.call(1, "incr", 1, result=1, key=None)
    line = rec.invoke(1, "set", "v1", key=None)
    with pytest.raises(ModelMismatch, match=f"line {line}: the counter model has no set"):
        verdict(rec, COUNTER)


def test_kv_incr_counts_from_absent_and_its_text_is_what_get_reads():
    rec = Recorder()
    rec.call(1, "incr", 2, result=2)
    rec.call(2, "get", result="2")
    rec.call(1, "incr", 3, result=5)
    assert verdict(rec).status == OK
    rec.call(2, "incr", 1, result=7)  # a double apply of the incr 3, or a lost one: either way wrong
    assert verdict(rec).status == ANOMALY


def test_kv_incr_of_a_written_string_is_refused_so_no_answer_explains_it():
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.call(2, "incr", 1, result=1)
    assert verdict(rec).status == ANOMALY


# -- budgets --------------------------------------------------------------------------------------


def crowded_history(key: str, processes: int = 10) -> Recorder:
    """Many concurrent unknown writes: a search space far beyond a handful of steps."""
    rec = Recorder()
    for p in range(processes):
        rec.invoke(p, "set", f"{key}{p}", key=key)
    for p in range(processes):
        rec.ok(p)
    rec.call(99, "get", result=f"{key}0", key=key)
    return rec


def test_a_key_that_exhausts_its_budget_is_unknown_and_named():
    rec = crowded_history("hard")
    rec.call(1, "set", "v1", key="easy")
    result = verdict(rec, budget=Budget(steps=20))
    assert result.status == UNKNOWN
    assert result.unknown_keys == ["hard"]
    assert verdict(rec).status == OK  # the default budget is enough


def test_an_anomaly_outweighs_an_unknown_key():
    rec = crowded_history("hard")
    rec.call(1, "set", "v1", key="bad")
    rec.call(1, "get", result="v0", key="bad")
    result = verdict(rec, budget=Budget(steps=30))
    assert result.status == ANOMALY
    assert (result.unknown_keys, result.to_json()["anomaly_keys"]) == (["hard"], ["bad"])


def test_a_seconds_budget_reads_the_given_clock():
    ticks = iter(range(10**6))
    result = check_history(crowded_history("hard", processes=14).history(), KEY_VALUE,
                           Budget(steps=None, seconds=5), clock=lambda: next(ticks))
    assert [(k.key, k.exhausted) for k in result.keys] == [("hard", "seconds")]


def test_the_memo_stays_within_its_memory_budget():
    history = crowded_history("hard", processes=14).history()
    # 15 operations: 121 bytes an entry, so 12,100 bytes hold 100 entries
    result = check_history(history, KEY_VALUE, Budget(steps=None, memory_bytes=12_100))
    assert [(k.key, k.status, k.exhausted) for k in result.keys] == [("hard", UNKNOWN, "memory")]
    assert result.keys[0].steps < 10_000
    assert check_history(history, KEY_VALUE).status == OK


def test_unknown_writes_nobody_reads_are_interchangeable_so_many_stay_cheap():
    """30 writes with unknown outcomes, none read: 2**30 subsets for a search that told them
    apart, a few thousand steps for one that knows their values cannot be observed."""
    rec = Recorder()
    rec.call(0, "set", "seen")
    for p in range(1, 31):
        rec.invoke(p, "set", f"lost{p}")
        rec.info(p)
    for p in range(1, 31):
        rec.call(0, "cas", ["seen", f"next{p}"], result=False)  # some unknown write came first
    result = verdict(rec, budget=Budget(steps=5_000))
    assert result.status == OK, result.to_json()
    rec.call(0, "get", result="seen")  # but none of them can be undone: proving it takes longer
    assert verdict(rec, budget=Budget(steps=300_000)).status == ANOMALY


# -- generated histories --------------------------------------------------------------------------


def generated(seed: int, model, operations: int, processes: int, keys_every: int) -> list[dict]:
    return linearizable_history(random.Random(seed), model, operations=operations, processes=processes,
                                keys_every=keys_every, info_rate=0.1, fail_rate=0.1)


def load(records: list[dict]) -> History:
    return history_from_records(enumerate(records, start=1))


history_shapes = st.tuples(
    st.integers(0, 2**32), st.sampled_from([KEY_VALUE, COUNTER]), st.integers(1, 80), st.integers(1, 6),
    st.integers(3, 40))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history_shapes)
def test_histories_made_by_running_the_model_are_linearizable(shape):
    seed, model, operations, processes, keys_every = shape
    result = check_history(load(generated(*shape)), model)
    assert result.status == OK, f"seed {seed}: {result.to_json()}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history_shapes, st.integers(0, 10**6))
def test_one_read_of_a_value_never_written_is_always_caught(shape, pick):
    records = generated(*shape)
    model = shape[1]
    reads = [i for i, r in enumerate(records) if r["type"] == "ok" and r["f"] == "get"]
    assume(reads)
    mutated = reads[pick % len(reads)]
    records[mutated]["value"] = "never written" if model is KEY_VALUE else -1
    result = check_history(load(records), model)
    assert result.status == ANOMALY, f"seed {shape[0]}"
    (anomaly,) = result.anomalies
    assert anomaly.op.complete_line == mutated + 1
    assert anomaly.key == records[mutated]["key"]


# -- a reference: every order that real time allows, tried one by one ----------------------------


def brute_force_linearizable(ops: list[Operation], model) -> bool:
    """Is there an order of the ops (an unknown outcome may be left out) that respects real time
    and the model? Exponential; for a handful of operations."""
    ops = [op for op in ops if op.status != "fail" and not (op.f == "get" and op.status != "ok")]
    end = float("inf")

    def ret(op: Operation) -> float:
        return op.complete_line if op.status == "ok" else end

    def search(remaining: list[Operation], state: Any) -> bool:
        if all(op.status != "ok" for op in remaining):
            return True
        for op in remaining:
            if any(ret(other) < op.invoke_line for other in remaining if other is not op):
                continue
            output, after = model.apply(state, op.f, op.input)
            rest = [other for other in remaining if other is not op]
            if op.status == "ok" and output != op.output:
                continue
            if search(rest, after):
                return True
        return False

    return search(ops, model.initial)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.sampled_from([KEY_VALUE, COUNTER]), st.integers(1, 7), st.integers(1, 4),
       st.lists(st.integers(0, 10**6), max_size=3))
def test_the_checker_agrees_with_brute_force_on_small_histories(seed, model, operations, processes, corruptions):
    records = generated(seed, model, operations, processes, keys_every=1000)
    outputs = [i for i, r in enumerate(records) if r["type"] == "ok" and r["f"] != "set"]
    rng = random.Random(seed)
    for pick in corruptions:  # wrong results drawn from values that exist, so some stay explicable
        if outputs:
            record = records[outputs[pick % len(outputs)]]
            if record["f"] in ("cas", "delete"):
                record["value"] = not record["value"]
            elif model is KEY_VALUE:
                record["value"] = rng.choice([None] + [f"v{n}" for n in range(1, operations + 1)])
            else:
                record["value"] = rng.randint(0, 3 * operations)
    history = load(records)
    expected = all(brute_force_linearizable(ops, model) for ops in history.by_key().values())
    assert (check_history(history, model).status == OK) == expected, f"seed {seed}: {records}"
