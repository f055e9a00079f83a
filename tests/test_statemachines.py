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


def test_a_remembered_parse_is_the_parse_of_that_very_text():
    """The leader's parse at validation is reused at apply (one parse per command): only ever for
    the same text, so commands that differ in an argument or in spacing apply as their own."""
    kv = KeyValue()
    for command in ("set k a b", "set k a  b", "incr n 1", "incr n 2", "incr n 10"):
        kv.validate(command)
    assert kv.process_command("set k a  b") == "a  b"  # not "set k a b"'s value
    assert kv.process_command("incr n 2") == 2
    assert kv.process_command("incr n 10") == 12
    with pytest.raises(CommandError):  # a refused text is never remembered as a parse
        kv.validate("incr n x")
    with pytest.raises(CommandError):
        kv.process_command("incr n x")


def test_remembered_parses_are_bounded_in_count_and_text_length():
    from raftnode.node.statemachines import PARSED_TEXT_MAX, PARSES_KEPT, Counter

    counter = Counter()
    for amount in range(3 * PARSES_KEPT):
        counter.process_command(f"incr {amount}")
    counter.process_command("incr " + "1" * PARSED_TEXT_MAX)
    assert 0 < len(counter._parses) <= PARSES_KEPT
    assert max(map(len, counter._parses)) <= PARSED_TEXT_MAX
    assert counter.value == sum(range(3 * PARSES_KEPT)) + int("1" * PARSED_TEXT_MAX)


def test_a_subclass_that_skips_our_init_still_parses_and_remembers() -> None:
    """A user's subclass of a built-in state machine need not call its ``__init__``."""
    from raftnode.node.statemachines import Counter

    class Mine(Counter):
        def __init__(self) -> None:  # noqa: D107 - no super().__init__() on purpose
            self.value = 10

    machine = Mine()
    assert machine.process_command("incr 5") == 15 and machine.process_command("incr 5") == 20
