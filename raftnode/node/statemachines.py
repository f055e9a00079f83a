"""State machines shipped with raftnode.

A state machine implements ``process_command(command: str) -> result``. It must be
deterministic: the same commands in the same order give the same results on every node. To
refuse a command (bad arguments, unknown verb) raise :class:`CommandError`; the refusal is part
of the replicated outcome. Any other exception is a failure to apply, handled by the applier's
retry policy.

An optional ``query(command) -> result`` serves a read-only command from the current state
without changing it: linearizable reads (``raftctl query``) use it instead of the log. A state
machine without it gets its queries through the log, like any command.
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


def _int_arg(command: str, word: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise CommandError(f"{command!r}: {word!r} is not an integer") from None


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


#: Parses a ``_Parsed`` state machine remembers, and the longest command text it remembers one of.
PARSES_KEPT = 4096
PARSED_TEXT_MAX = 256


class _Parsed:
    """A state machine whose commands are parsed (``_parse``) before they are applied (``_apply``).

    ``validate`` is the parse alone: the leader calls it to refuse a malformed command before
    it enters the log. A parse depends on the text alone (an immutable tuple), so the recent
    ones are remembered (``_parsed``): the leader parses a command once, when it validates it,
    not again when it applies it; followers and a replay parse what they have not seen.
    """

    accepted = ""
    name = ""

    def __init__(self) -> None:
        self._parses: dict[str, tuple] = {}  # at most PARSES_KEPT short texts -> their parse

    def _parsed(self, command: str) -> tuple | None:
        """``_parse(command)``, remembered when it is one (CommandError as ``_parse`` raises it)."""
        try:
            parses = self._parses
        except AttributeError:  # a subclass whose __init__ did not call ours
            parses = self._parses = {}
        op = parses.get(command)
        if op is None:
            op = self._parse(command)
            if op is not None and len(command) <= PARSED_TEXT_MAX:
                if len(parses) >= PARSES_KEPT:
                    parses.clear()
                parses[command] = op
        return op

    def _parse(self, command: str) -> tuple | None:
        raise NotImplementedError

    def _apply(self, op: tuple) -> Any:
        raise NotImplementedError

    def _refuse(self, command: str) -> CommandError:
        return CommandError(f"unknown command {command!r}; {self.name} accepts: {self.accepted}")

    def validate(self, command: str) -> None:
        if self._parsed(command) is None:
            raise self._refuse(command)

    def query(self, command: str) -> Any:
        """A read-only command (``get``) answered from the current state, which it never changes.

        Raises CommandError for a command that would change the state: writes go through the log.
        """
        op = self._parsed(command)
        if op is None:
            raise self._refuse(command)
        if op[0] != "get":
            raise CommandError(f"{command!r} is not a read: a query takes only get; use run-command to change the state")
        return self._apply(op)

    def process_command(self, command: str) -> Any:
        op = self._parsed(command)
        if op is None:
            raise self._refuse(command)
        return self._apply(op)


class Counter(_Parsed):
    """An integer that commands change: ``incr N``, ``decr N``, ``get`` (the seed's SimpleOps)."""

    accepted = "incr N, decr N, get"
    name = "the counter"

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def _parse(self, command: str) -> tuple | None:
        words = command.split()
        if words[:1] in (["incr"], ["decr"]) and len(words) == 2:
            amount = _int_arg(command, words[1])
            return ("add", amount if words[0] == "incr" else -amount)
        if words == ["get"]:
            return ("get",)
        return None

    def _apply(self, op: tuple) -> int:
        if op[0] == "add":
            self.value += op[1]
        return self.value

    def snapshot(self) -> bytes:
        return json.dumps({"value": self.value}).encode()

    def restore(self, data: bytes) -> None:
        self.value = int(json.loads(data)["value"])

    def summary(self) -> dict[str, Any]:
        return {"value": self.value}


class Totals(_Parsed):
    """Named integer totals: ``add K N``, ``sub K N``, ``get K`` (the seed's DictTotalsOps)."""

    accepted = "add KEY N, sub KEY N, get KEY"
    name = "totals"

    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[str, int] = {}

    def _parse(self, command: str) -> tuple | None:
        words = command.split()
        if words[:1] in (["add"], ["sub"]) and len(words) == 3:
            amount = _int_arg(command, words[2])
            return ("add", words[1], amount if words[0] == "add" else -amount)
        if words[:1] == ["get"] and len(words) == 2:
            return ("get", words[1])
        return None

    def _apply(self, op: tuple) -> int:
        if op[0] == "add":
            self.totals[op[1]] = self.totals.get(op[1], 0) + op[2]
        return self.totals.get(op[1], 0)

    def snapshot(self) -> bytes:
        return json.dumps(self.totals, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        self.totals = {str(k): int(v) for k, v in json.loads(data).items()}

    def summary(self) -> dict[str, Any]:
        return {"keys": len(self.totals), "sum": sum(self.totals.values())}


class KeyValue(_Parsed):
    """A string key-value store: ``set K V``, ``get K``, ``delete K``, ``cas K OLD NEW``, ``incr K N``.

    ``set`` keeps the rest of the line as the value; ``cas`` sets K to NEW only if its value is
    OLD (``-`` stands for "absent") and returns whether it did; ``incr`` adds the integer N to
    K's value read as an integer (absent: 0), stores the sum as text and returns it (a value
    that is not an integer is refused, changing nothing).
    """

    accepted = "set KEY VALUE, get KEY, delete KEY, cas KEY OLD NEW, incr KEY N"
    name = "kv"

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}

    def _parse(self, command: str) -> tuple | None:
        if command.startswith("set "):
            words = command.split(maxsplit=2)
            return ("set", words[1], words[2]) if len(words) == 3 else None
        words = command.split()
        if words[:1] in (["get"], ["delete"]) and len(words) == 2:
            return (words[0], words[1])
        if words[:1] == ["cas"] and len(words) == 4:
            return ("cas", words[1], words[2], words[3])
        if words[:1] == ["incr"] and len(words) == 3:
            return ("incr", words[1], _int_arg(command, words[2]))
        return None

    def _apply(self, op: tuple) -> Any:
        verb, key = op[0], op[1]
        if verb == "set":
            self.data[key] = op[2]
            return op[2]
        if verb == "get":
            return self.data.get(key)
        if verb == "delete":
            return self.data.pop(key, None) is not None
        if verb == "incr":
            current = self.data.get(key, "0")
            if not _is_integer(current):
                raise CommandError(f"incr {key}: its value {current!r} is not an integer")
            total = int(current) + op[2]
            self.data[key] = str(total)
            return total
        if self.data.get(key, "-") != op[2]:
            return False
        self.data[key] = op[3]
        return True

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
