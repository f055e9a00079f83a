"""``raftnode.statemachines`` moved to ``raftnode.node.statemachines``; this module keeps the
imports written against the old name working."""

from raftnode.node.statemachines import (  # noqa: F401
    CommandError,
    StateMachine,
    Counter,
    Totals,
    KeyValue,
    BUILT_IN,
    load_state_machine,
)

__all__ = [
    "CommandError",
    "StateMachine",
    "Counter",
    "Totals",
    "KeyValue",
    "BUILT_IN",
    "load_state_machine",
]
