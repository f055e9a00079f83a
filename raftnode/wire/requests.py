"""The client protocol's requests as frozen records, encoded and decoded here and nowhere else.

A request on the wire is a JSON object (``raftnode.wire.framing``): ``op`` names the record, the
record's fields follow, and an envelope rides along -- ``id`` (echoed by the answer; the client
connection adds it), ``cluster_id`` and ``token`` (``Credentials.client_fields``; the service
checks them). ``document(request)`` is the object of a record; ``decode_request(object)`` the
record of an object, strict: an unknown op, a missing field or a field of the wrong type is a
:class:`WireError` naming it. Fields the record does not know are ignored (an older node serves a
newer client's request). What depends on the node's configuration (``max_command_bytes``) and
whether a command is blank are the service's to check.

Answers stay JSON objects (``{"ok": ..., ...}``; a command's answer carries the seed's
``CommandResult`` fields), read by ``raftnode.client.clientcore.CommandOutcome`` and raftctl's model.

Standard library, ``raftnode.wire.records`` and ``raftnode.wire.sessions`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Union

from .records import Record
from .sessions import SessionStamp, check_stamp

__all__ = [
    "AddNode", "ClearFaults", "MAX_BATCH_COMMANDS", "Query", "QueryMany", "RecentEvents", "RegisterSession", "RemoveNode",
    "Request", "RunCommand", "RunMany", "SetFaults", "Snapshot", "Status", "Stop", "Subscribe", "Transfer", "WireError", "as_document",
    "command_request", "decode_request", "document", "stamp_of", "timeout_of",
]

#: The longest a request may ask a node to wait, in seconds.
MAX_TIMEOUT = 3600
#: The most commands one ``run_many`` request may carry (well under a session's window).
MAX_BATCH_COMMANDS = 1024


class WireError(ValueError):
    """A request object that is not a request of the protocol; the message says what is wrong."""


class RunCommand(Record):
    """Commit ``command`` through the leader and apply it; in a session with its stamp."""

    __slots__ = ("command", "timeout", "session", "seq", "ack")
    OP: ClassVar[str] = "run_command"
    DEFAULTS = {"timeout": 5.0, "session": None, "seq": None, "ack": None}
    command: str
    timeout: float
    session: int | None
    seq: int | None
    ack: int | None

    @property
    def stamp(self) -> SessionStamp | None:
        """The session stamp, or None outside a session."""
        return None if self.session is None else SessionStamp(self.session, self.seq, self.ack)  # type: ignore[arg-type]


class RunMany(Record):
    """Commit ``commands`` through the leader as one batch, each answered on its own; in a
    session ``seqs`` holds each command's sequence number (distinct) and ``ack`` is shared.

    The answer is ``{"ok": true, "results": [...], "node": ..., "leader": ...}``: one object per
    command, in order, with the seed's CommandResult fields (``result`` and ``index`` always;
    ``error``, ``redirect``, ``retry``, ``timeout_expired`` when set).
    """

    __slots__ = ("commands", "timeout", "session", "seqs", "ack")
    OP: ClassVar[str] = "run_many"
    DEFAULTS = {"timeout": 5.0, "session": None, "seqs": None, "ack": None}
    commands: list[str]
    timeout: float
    session: int | None
    seqs: list[int] | None
    ack: int | None

    @property
    def stamps(self) -> list[SessionStamp] | None:
        """Each command's session stamp, or None outside a session."""
        if self.session is None:
            return None
        return [SessionStamp(self.session, seq, self.ack) for seq in self.seqs]  # type: ignore[union-attr,arg-type]


class Query(Record):
    """A linearizable read of ``command`` without a log entry (ReadIndex)."""

    __slots__ = ("command", "timeout")
    OP: ClassVar[str] = "query"
    DEFAULTS = {"timeout": 5.0}
    command: str
    timeout: float


class QueryMany(Record):
    """Linearizable reads of ``commands`` (ReadIndex, as ``Query``), each answered on its own:
    the answer is ``run_many``'s (``results``, one object per command, in order). No session:
    a read changes nothing."""

    __slots__ = ("commands", "timeout")
    OP: ClassVar[str] = "query_many"
    DEFAULTS = {"timeout": 5.0}
    commands: list[str]
    timeout: float


class RegisterSession(Record):
    """Open a client session (thesis §6.3); the answer's ``result`` is its id."""

    __slots__ = ("timeout",)
    OP: ClassVar[str] = "register_session"
    DEFAULTS = {"timeout": 5.0}
    timeout: float


class Status(Record):
    """The node's status; with ``digest`` a digest of its whole state too (costs a snapshot)."""

    __slots__ = ("digest",)
    OP: ClassVar[str] = "status"
    DEFAULTS = {"digest": False}
    digest: bool


class Subscribe(Record):
    """Subscribe the connection to the node's events (EVENT frames follow the answer)."""

    __slots__ = ()
    OP: ClassVar[str] = "events"


class RecentEvents(Record):
    """The node's recent events, without subscribing."""

    __slots__ = ()
    OP: ClassVar[str] = "recent_events"


class SetFaults(Record):
    """Replace the node's link faults (``raftnode.transport.faults.Faults`` fields)."""

    __slots__ = ("faults",)
    OP: ClassVar[str] = "set_faults"
    faults: dict[str, Any]


class ClearFaults(Record):
    __slots__ = ()
    OP: ClassVar[str] = "clear_faults"


class Transfer(Record):
    """Hand leadership to ``target``."""

    __slots__ = ("target",)
    OP: ClassVar[str] = "transfer"
    target: str


class Snapshot(Record):
    __slots__ = ()
    OP: ClassVar[str] = "snapshot"


class AddNode(Record):
    """Add ``node`` (``peer`` and ``client`` addresses, ``host:port``) as a voter."""

    __slots__ = ("node", "peer", "client", "timeout")
    OP: ClassVar[str] = "add_node"
    DEFAULTS = {"timeout": 60.0}
    node: str
    peer: str
    client: str
    timeout: float


class RemoveNode(Record):
    __slots__ = ("node", "timeout")
    OP: ClassVar[str] = "remove_node"
    DEFAULTS = {"timeout": 30.0}
    node: str
    timeout: float


class Stop(Record):
    """Stop the node (after answering)."""

    __slots__ = ()
    OP: ClassVar[str] = "stop"


Request = Union[
    RunCommand, RunMany, Query, QueryMany, RegisterSession, Status, Subscribe, RecentEvents, SetFaults, ClearFaults, Transfer,
    Snapshot, AddNode, RemoveNode, Stop,
]
RECORDS: dict[str, type[Any]] = {
    record.OP: record
    for record in (RunCommand, RunMany, Query, QueryMany, RegisterSession, Status, Subscribe, RecentEvents, SetFaults, ClearFaults,
                   Transfer, Snapshot, AddNode, RemoveNode, Stop)
}
#: The ops that need the admin token (when the endpoint has credentials).
ADMIN_OPS = frozenset({"set_faults", "clear_faults", "transfer", "snapshot", "add_node", "remove_node", "stop"})


def command_request(command: str, *, timeout: float, op: str = "run_command") -> RunCommand | Query:
    """The request that runs ``command`` (``op`` ``run_command``) or reads it (``query``)."""
    if op == Query.OP:
        return Query(command, timeout)
    if op != RunCommand.OP:
        raise WireError(f"a command goes as run_command or query, not {op!r}")
    return RunCommand(command, timeout)


# -- encoding ------------------------------------------------------------------------------------


def document(request: Request) -> dict[str, Any]:
    """The JSON object of ``request``: ``op`` first, then its fields; a field left at a default of
    None or False (no session stamp, no digest) is left out, as the clients always sent it."""
    out: dict[str, Any] = {"op": request.OP}
    defaults = request.DEFAULTS
    for name, value in zip(request.__slots__, request.values()):
        if (value is None or value is False) and name in defaults and defaults[name] is value:
            continue
        out[name] = value
    return out


def as_document(request: Request | Mapping[str, Any]) -> dict[str, Any]:
    """``document(request)`` for a record; a mapping (a test's raw request) as it is."""
    if isinstance(request, Mapping):
        return dict(request)
    return document(request)


# -- decoding ------------------------------------------------------------------------------------


def decode_request(obj: Mapping[str, Any]) -> Request:
    """The record of a request object; WireError naming what is wrong (op, field, type)."""
    op = obj.get("op")
    record = RECORDS.get(op) if isinstance(op, str) else None
    if record is None:
        raise WireError(f"unknown op {op!r}; known: {', '.join(sorted(RECORDS))}")
    decode = _DECODERS.get(record)
    if decode is not None:
        return decode(obj)
    kinds = record.__annotations__
    return record(**{name: _field(obj, record.OP, name, kinds[name]) for name in record.__slots__
                     if name in obj or name not in record.DEFAULTS})


def _field(obj: Mapping[str, Any], op: str, name: str, kind: Any) -> Any:
    """``obj[name]``, checked against the record field's type (written as a string)."""
    if name == "timeout":
        return timeout_of(obj, None, op)
    value = obj.get(name)
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise WireError(f"{op} needs a non-empty string {name!r}")
    elif kind == "bool":
        return value is True  # any other value: not asked for
    elif kind.startswith("dict"):
        if not isinstance(value, dict):
            raise WireError(f"{op} needs an object {name!r}")
    return value


def timeout_of(obj: Mapping[str, Any], default: float | None, op: str = "") -> float:
    """The request's ``timeout`` in seconds (``default`` when absent); WireError if it is not a
    number of seconds in (0, MAX_TIMEOUT]."""
    timeout = obj.get("timeout", default)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT:
        raise WireError(f"'timeout' must be a number of seconds between 0 and {MAX_TIMEOUT}")
    return float(timeout)


def _command(obj: Mapping[str, Any], op: str) -> str:
    command = obj.get("command")
    if not isinstance(command, str):
        raise WireError(f"{op} needs a non-empty string 'command'")
    return command


def stamp_of(obj: Mapping[str, Any]) -> SessionStamp | None:
    """The session stamp of a run_command object (None without ``session``); WireError if malformed."""
    if "session" not in obj:
        if "seq" in obj or "ack" in obj:
            raise WireError("'seq' and 'ack' need a 'session'")
        return None
    try:
        return check_stamp(obj.get("session"), obj.get("seq"), obj.get("ack"))
    except ValueError as exc:
        raise WireError(f"run_command: {exc}") from None


def _run_command(obj: Mapping[str, Any]) -> RunCommand:
    command = _command(obj, RunCommand.OP)
    timeout = timeout_of(obj, 5.0)
    stamp = stamp_of(obj)
    if stamp is None:
        return RunCommand(command, timeout)
    return RunCommand(command, timeout, *stamp)


def _query(obj: Mapping[str, Any]) -> Query:
    return Query(_command(obj, Query.OP), timeout_of(obj, 5.0))


def _run_many(obj: Mapping[str, Any]) -> RunMany:
    """A run_many object: 1 to MAX_BATCH_COMMANDS string commands; in a session as many distinct
    ``seqs`` with one ``ack`` no higher than any of them."""
    op = RunMany.OP
    commands = _commands(obj, op)
    timeout = timeout_of(obj, 5.0)
    if "session" not in obj:
        if "seqs" in obj or "ack" in obj:
            raise WireError("'seqs' and 'ack' need a 'session'")
        return RunMany(commands, timeout)
    seqs = obj.get("seqs")
    if not isinstance(seqs, list) or len(seqs) != len(commands):
        raise WireError(f"{op} in a session needs a list 'seqs' as long as 'commands' ({len(commands)})")
    if any(type(seq) is not int for seq in seqs):
        raise WireError(f"{op}: every one of 'seqs' must be an integer")
    if len(set(seqs)) != len(seqs):
        raise WireError(f"{op}: 'seqs' must be distinct")
    try:  # the lowest and highest bound them all: each in range, none below ack
        for seq in (min(seqs), max(seqs)):
            check_stamp(obj.get("session"), seq, obj.get("ack"))
    except ValueError as exc:
        raise WireError(f"{op}: {exc}") from None
    return RunMany(commands, timeout, obj["session"], seqs, obj["ack"])


def _commands(obj: Mapping[str, Any], op: str, *, empty_ok: bool = True) -> list[str]:
    """The request's ``commands``: a list of 1 to MAX_BATCH_COMMANDS strings (non-empty unless
    ``empty_ok``); WireError naming the first that is not."""
    commands = obj.get("commands")
    if not isinstance(commands, list) or not 1 <= len(commands) <= MAX_BATCH_COMMANDS:
        raise WireError(f"{op} needs a list 'commands' of 1 to {MAX_BATCH_COMMANDS} commands")
    for position, command in enumerate(commands):
        if type(command) is not str:
            raise WireError(f"{op}: command {position} is not a string")
        if not command and not empty_ok:
            raise WireError(f"{op}: command {position} is empty")
    return commands


def _query_many(obj: Mapping[str, Any]) -> QueryMany:
    """A query_many object: 1 to MAX_BATCH_COMMANDS non-empty string commands (a blank or too
    long one is the service's to answer on its own); a session stamp is ignored, as ``query``'s."""
    return QueryMany(_commands(obj, QueryMany.OP, empty_ok=False), timeout_of(obj, 5.0))


_DECODERS: dict[type[Any], Any] = {RunCommand: _run_command, RunMany: _run_many, Query: _query, QueryMany: _query_many}
