"""State machines shipped with raftnode.

A state machine implements ``process_command(command: str) -> result``. It must be
deterministic: the same commands in the same order give the same results on every node. To
refuse a command (bad arguments, unknown verb) raise :class:`CommandError`; the refusal is part
of the replicated outcome. Any other exception is a failure to apply, handled by the applier's
retry policy.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class CommandError(Exception):
    """A deterministic refusal of a command by the state machine."""


class StateMachine(Protocol):
    def process_command(self, command: str) -> Any:
        """Apply one committed command; return its result or raise CommandError to refuse it."""

    def snapshot(self) -> bytes:
        """The whole state, as bytes that ``restore`` accepts."""

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a ``snapshot()``'s bytes."""

    def summary(self) -> dict[str, Any]:
        """A small JSON-able view of the state, for status displays."""


def _int_arg(command: str, words: list[str]) -> int:
    if len(words) != 2:
        raise CommandError(f"{command!r}: expected one integer argument")
    try:
        return int(words[1])
    except ValueError:
        raise CommandError(f"{command!r}: {words[1]!r} is not an integer") from None


class Counter:
    """An integer that commands change: ``incr N``, ``decr N``, ``get`` (the seed's SimpleOps)."""

    accepted = "incr N, decr N, get"

    def __init__(self) -> None:
        self.value = 0

    def process_command(self, command: str) -> int:
        words = command.split()
        verb = words[0] if words else ""
        if verb == "incr":
            self.value += _int_arg(command, words)
        elif verb == "decr":
            self.value -= _int_arg(command, words)
        elif verb != "get" or len(words) != 1:
            raise CommandError(f"unknown command {command!r}; the counter accepts: {self.accepted}")
        return self.value

    def snapshot(self) -> bytes:
        return json.dumps({"value": self.value}).encode()

    def restore(self, data: bytes) -> None:
        self.value = int(json.loads(data)["value"])

    def summary(self) -> dict[str, Any]:
        return {"value": self.value}
