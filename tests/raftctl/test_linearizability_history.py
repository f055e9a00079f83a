"""The history format's loader: what it builds, and every bad record refused with its line."""

from __future__ import annotations

import json

import pytest

from raftctl.linearizability import HistoryError, parse_history
from raftctl.linearizability.history import MAX_LINE_CHARS

from .linearizability_helpers import Recorder


def test_operations_pair_invokes_with_completions_per_process():
    rec = Recorder()
    rec.invoke(1, "set", "v1")
    rec.invoke(2, "cas", ["v1", "v2"])
    rec.ok(1)
    rec.ok(2, False)
    rec.invoke(1, "get")
    rec.info(1)
    rec.invoke(1, "delete")  # a process may go on after an info
    rec.fail(1)
    rec.invoke(3, "incr", 2, key=None)
    history = rec.history()
    set_, cas, get, delete, incr = history.operations
    assert (set_.status, set_.output, set_.invoke_line, set_.complete_line) == ("ok", "v1", 1, 3)
    assert (cas.input, cas.status, cas.output) == (("v1", "v2"), "ok", False)
    assert (get.status, get.output, get.complete_line) == ("info", None, 6)
    assert delete.status == "fail"
    assert (incr.key, incr.status, incr.complete_line, incr.complete_time) == (None, "open", None, None)
    assert list(history.by_key()) == ["k", None]


def test_timeline_records_are_kept_apart_from_operations():
    rec = Recorder()
    rec.fault("partition", value=[["n1"], ["n2", "n3"]])
    rec.leader("n2", term=4)
    rec.fault("kill", node="n2")
    history = rec.history()
    assert history.operations == ()
    assert [event.describe() for event in history.events] == [
        'partition [["n1"], ["n2", "n3"]]', "leader n2 (term 4)", "kill n2"]


def test_blank_lines_are_skipped_and_line_numbers_stay_true():
    lines = ['{"type": "invoke", "process": 1, "f": "get", "key": "k", "time": 0}', "", "  ",
             '{"type": "ok", "process": 1, "value": null, "time": 1}']
    (op,) = parse_history(lines).operations
    assert (op.invoke_line, op.complete_line) == (1, 4)


INVOKE = {"type": "invoke", "process": 1, "f": "set", "key": "k", "value": "v1", "time": 1}
BAD_RECORDS = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a record must be a JSON object, not list"),
    ({**INVOKE, "type": "invok"}, "unknown type 'invok'"),
    ({**INVOKE, "vaule": 1}, "unknown field 'vaule'"),
    ({**INVOKE, "time": None}, '"time" must be a finite number'),
    ({**INVOKE, "time": True}, '"time" must be a finite number'),
    ({**INVOKE, "process": 1.5}, '"process" must be an integer or a string'),
    ({**INVOKE, "f": "append"}, "unknown f 'append'"),
    ({**INVOKE, "key": 7}, "'key' must be a string"),
    ({**INVOKE, "value": None}, "a set's invoke value is a string or an integer"),
    ({**INVOKE, "f": "get", "value": "x"}, "a get's invoke value is null"),
    ({**INVOKE, "f": "cas", "value": ["a"]}, "a cas's invoke value is [old, new]"),
    ({**INVOKE, "f": "cas", "value": ["a", None]}, "a cas's invoke value is [old, new]"),
    ({**INVOKE, "f": "incr", "value": "1"}, "an incr's invoke value is an integer"),
    ({"type": "ok", "process": 1, "time": 1}, "ok for process 1, which has no operation in flight"),
    ({"type": "leader", "node": "n1", "term": "4", "time": 1}, "a leader's term must be an integer"),
    ({"type": "fault", "time": 1}, "'f' must be a string"),
    ({"type": "leader", "node": "n1", "f": "x", "time": 1}, "unknown field 'f'"),
]


@pytest.mark.parametrize(("record", "problem"), BAD_RECORDS, ids=[p for _, p in BAD_RECORDS])
def test_a_bad_record_is_refused_with_its_line_and_the_problem(record, problem):
    good = json.dumps({"type": "fault", "f": "heal", "time": 0})
    bad = record if isinstance(record, str) else json.dumps(record)
    with pytest.raises(HistoryError) as caught:
        parse_history([good, bad])
    assert caught.value.line == 2
    assert str(caught.value).startswith("line 2: ")
    assert problem in caught.value.problem


def completion_problem(invoke: dict, completion: dict) -> str:
    with pytest.raises(HistoryError) as caught:
        parse_history([json.dumps(invoke), json.dumps({"process": 1, "time": 2, **completion})])
    assert caught.value.line == 2
    return caught.value.problem


def test_a_completion_must_match_its_invoke_and_carry_a_valid_result():
    assert "completes a 'get' but process 1 invoked set on line 1" in completion_problem(
        INVOKE, {"type": "ok", "f": "get"})
    assert "completes key 'j' but process 1 invoked key 'k'" in completion_problem(INVOKE, {"type": "ok", "key": "j"})
    assert "a set's ok value is null or the value written" in completion_problem(INVOKE, {"type": "ok", "value": "v2"})
    cas = {**INVOKE, "f": "cas", "value": ["v1", "v2"]}
    assert "a cas's ok value is true or false" in completion_problem(cas, {"type": "ok", "value": "yes"})
    incr = {**INVOKE, "f": "incr", "value": 1}
    assert "an incr's ok value is the new integer" in completion_problem(incr, {"type": "ok", "value": True})
    get = {**INVOKE, "f": "get", "value": None}
    assert "a get's ok value is a string, an integer or null" in completion_problem(get, {"type": "ok", "value": [1]})


def test_records_out_of_time_order_and_overlapping_invokes_are_refused():
    with pytest.raises(HistoryError, match=r"line 2: time 0.5 is earlier than line 1's 1"):
        parse_history([json.dumps(INVOKE), json.dumps({"type": "ok", "process": 1, "time": 0.5})])
    with pytest.raises(HistoryError, match=r"line 2: process 1 invokes again while its set of line 1"):
        parse_history([json.dumps(INVOKE), json.dumps({**INVOKE, "time": 2})])


def test_an_overlong_line_is_refused_without_parsing_it():
    with pytest.raises(HistoryError, match=f"line 1: longer than {MAX_LINE_CHARS} characters"):
        parse_history(["x" * (MAX_LINE_CHARS + 1)])


def test_bytes_are_decoded_and_bad_utf8_is_refused_with_its_line():
    good = b'{"type": "leader", "node": "n\xc3\xa9", "time": 0}'
    assert parse_history([good]).events[0].node == "né"
    with pytest.raises(HistoryError, match=r"line 2: not UTF-8 \(invalid start byte at byte 22\)"):
        parse_history([good, b'{"type": "leader", "no\xffde": "n1", "time": 0}'])
