"""The built-in state machines' commands, as the README lists them."""

from __future__ import annotations

import pytest

from raftnode.node.statemachines import CommandError, KeyValue


def test_kv_incr_adds_to_an_integer_value_treating_absent_as_zero_and_stores_text():
    kv = KeyValue()
    assert kv.process_command("incr hits 5") == 5
    assert kv.process_command("incr hits -2") == 3
    assert kv.process_command("get hits") == "3"
    assert kv.process_command("cas hits 3 10") is True
    assert kv.process_command("incr hits 1") == 11


def test_kv_incr_of_a_value_that_is_not_an_integer_is_refused_and_changes_nothing():
    kv = KeyValue()
    kv.process_command("set name ada")
    with pytest.raises(CommandError, match="'ada' is not an integer"):
        kv.process_command("incr name 1")
    assert kv.data == {"name": "ada"}


@pytest.mark.parametrize("command", ["incr k", "incr k x", "incr k 1 2"])
def test_kv_refuses_a_malformed_incr_before_it_enters_the_log(command):
    with pytest.raises(CommandError):
        KeyValue().validate(command)
