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


class Totals:
    """Named integer totals: ``add K N``, ``sub K N``, ``get K`` (the seed's DictTotalsOps)."""

    accepted = "add KEY N, sub KEY N, get KEY"

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}

    def process_command(self, command: str) -> int:
        words = command.split()
        verb = words[0] if words else ""
        if verb in ("add", "sub") and len(words) == 3:
            amount = _int_arg(command, [verb, words[2]])
            key = words[1]
            self.totals[key] = self.totals.get(key, 0) + (amount if verb == "add" else -amount)
            return self.totals[key]
        if verb == "get" and len(words) == 2:
            return self.totals.get(words[1], 0)
        raise CommandError(f"unknown command {command!r}; totals accepts: {self.accepted}")

    def snapshot(self) -> bytes:
        return json.dumps(self.totals, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        self.totals = {str(k): int(v) for k, v in json.loads(data).items()}

    def summary(self) -> dict[str, Any]:
        return {"keys": len(self.totals), "sum": sum(self.totals.values())}


class KeyValue:
    """A string key-value store: ``set K V``, ``get K``, ``delete K``, ``cas K OLD NEW``.

    ``cas`` sets K to NEW only if its value is OLD (``-`` stands for "absent") and returns
    whether it did.
    """

    accepted = "set KEY VALUE, get KEY, delete KEY, cas KEY OLD NEW"

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def process_command(self, command: str) -> Any:
        words = command.split(maxsplit=2) if command.startswith("set ") else command.split()
        verb = words[0] if words else ""
        if verb == "set" and len(words) == 3:
            self.data[words[1]] = words[2]
            return words[2]
        if verb == "get" and len(words) == 2:
            return self.data.get(words[1])
        if verb == "delete" and len(words) == 2:
            return self.data.pop(words[1], None) is not None
        if verb == "cas" and len(words) == 4:
            _, key, old, new = words
            if self.data.get(key, "-") != old:
                return False
            self.data[key] = new
            return True
        raise CommandError(f"unknown command {command!r}; kv accepts: {self.accepted}")

    def snapshot(self) -> bytes:
        return json.dumps(self.data, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        self.data = {str(k): str(v) for k, v in json.loads(data).items()}

    def summary(self) -> dict[str, Any]:
        return {"keys": len(self.data)}


BUILT_IN: dict[str, type] = {"counter": Counter, "totals": Totals, "kv": KeyValue}


def load_state_machine(spec: str) -> StateMachine:
    """A new state machine from a cluster.toml ``state_machine`` value.

    ``counter``, ``totals`` and ``kv`` are built in; ``package.module:Class`` imports a user's
    class and calls it with no arguments.

    Raises:
        ValueError: the name is unknown or the class cannot be imported, with the reason.
    """
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"unknown state machine {spec!r}: use {', '.join(BUILT_IN)} or package.module:Class")
    import importlib

    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load state machine {spec!r}: {exc}") from None
    machine = cls()
    if not callable(getattr(machine, "process_command", None)):
        raise ValueError(f"state machine {spec!r} has no process_command method")
    return machine
