"""Client sessions (thesis §6.3): each command applied at most once, however often it is resent.

A client that resends a command after a lost connection, a ``redirect`` or a ``retry`` may leave
two copies of it in the log: the first leader appended it and lost leadership before answering,
and the next leader committed it anyway. Sessions make the second copy harmless:

- a client registers a session through the log; the register entry's index is the session id;
- each command carries ``(session, seq, ack)``: its sequence number in the session (1, 2, ...,
  the same on every resend) and the lowest sequence the client has no answer for yet (``ack``:
  it holds the answers of every sequence below it, so the cluster may forget them);
- the apply layer (:class:`SessionTable`, used by ``raftnode.node.apply.Applier``) keeps, per session,
  the result of every sequence from ``ack`` on, and answers a copy of a command it has applied
  with the saved result, without applying it again. The state machine never sees a duplicate.

Several commands of one session may be in flight at once (pipelining): sequences may commit in
any order, as long as none is ``window`` or more above the session's ``ack``.

Refusals, deterministic on every node (the command is not applied):

- ``session expired``: the session is not in the table — idle for longer than ``timeout``
  seconds, evicted as the least recently active once ``max_sessions`` are open, or never
  registered. The client cannot know whether an earlier copy was applied: the outcome is unknown;
- a sequence below ``ack`` whose result was forgotten: the client already had its answer;
- a sequence ``window`` or more above ``ack``: too many commands in flight.

Time never comes from the applying node's clock: the leader stamps each session entry with its
wall clock when it proposes it, and the table's clock is the largest stamp applied so far, so
every node expires the same sessions at the same log index. Memory is bounded: at most
``max_sessions`` sessions of at most ``window`` saved results each.

Session entries are log entries of kind ``EntryKind.SESSION``; their data is
``[u8 op][u64 session][u64 seq][u64 ack][f64 leader time][command, utf-8]`` (op 0 registers,
1 runs the command). Commands without a session stay plain ``EntryKind.COMMAND`` entries. A batch
entry (``EntryKind.BATCH``, ``raftnode.wire.batches``) carries many commands, each with its own
stamp or none, checked against the table one by one, in order, as if each were an entry of its own.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "MAX_SESSIONS",
    "SESSION_EXPIRED",
    "SESSION_TIMEOUT",
    "SESSION_WINDOW",
    "SessionEntry",
    "SessionEntryError",
    "SessionRefused",
    "SessionStamp",
    "SessionTable",
    "decode_session_entry",
    "encode_register",
    "encode_session_command",
]

#: Sessions kept at most; registering one more evicts the least recently active.
MAX_SESSIONS = 1024
#: Saved results per session at most: the commands a client may have in flight in one session.
SESSION_WINDOW = 4096
#: Seconds (of the leaders' clocks, as stamped in the log) a session may stay idle.
SESSION_TIMEOUT = 3600.0
#: How every refusal for an unknown session starts (clients test for it).
SESSION_EXPIRED = "session expired"

_REGISTER, _COMMAND = 0, 1
_HEAD = struct.Struct(">BQQQd")
_HEAD_SIZE = _HEAD.size
_pack_head, _unpack_head = _HEAD.pack, _HEAD.unpack_from
_isfinite = math.isfinite
_heappop, _heappush = heapq.heappop, heapq.heappush
_new_tuple = tuple.__new__  # a NamedTuple without its Python-level __new__ (the hot paths)
_U64 = 1 << 64
_dumps = functools.partial(json.dumps, separators=(",", ":"), default=repr)  # the table's JSON (encode)


class SessionStamp(NamedTuple):
    """What a command carries in a session: the session id, its sequence number and the lowest
    sequence the client has no answer for (``ack <= seq``)."""

    session: int
    seq: int
    ack: int


class SessionEntry(NamedTuple):
    """A decoded session entry: a registration (``stamp`` None) or a stamped command."""

    time: float
    stamp: SessionStamp | None
    command: str


class SessionEntryError(ValueError):
    """The data of a session entry cannot be decoded; the message says what is wrong."""


class SessionRefused(Exception):
    """A session command that must not be applied (expired session, stale or far sequence)."""


def check_stamp(session: object, seq: object, ack: object) -> SessionStamp:
    """The stamp of a request's ``session``/``seq``/``ack`` fields; ValueError naming what is wrong."""
    if type(session) is int and type(seq) is int and type(ack) is int and 0 < session < _U64 and 0 < ack <= seq < _U64:
        return _new_tuple(SessionStamp, (session, seq, ack))  # the common case, checked at once (every request)
    for name, value in (("session", session), ("seq", seq), ("ack", ack)):
        if type(value) is not int or not 1 <= value < _U64:
            raise ValueError(f"{name!r} must be an integer from 1 to 2**64-1, not {value!r}")
    if ack > seq:  # type: ignore[operator]
        raise ValueError(f"'ack' ({ack}) cannot exceed 'seq' ({seq}): a command in flight has no answer yet")
    return SessionStamp(session, seq, ack)  # type: ignore[arg-type]


def encode_register(time: float) -> bytes:
    return _HEAD.pack(_REGISTER, 0, 0, 0, time)


def encode_session_command(stamp: SessionStamp, time: float, command: bytes) -> bytes:
    session, seq, ack = stamp
    return _pack_head(_COMMAND, session, seq, ack, time) + command


def decode_session_entry(data: bytes) -> SessionEntry:
    """Decode a session entry's data; SessionEntryError if it is malformed."""
    if len(data) >= _HEAD_SIZE:  # the common case, a well-formed command, checked at once (every applied entry)
        op, session, seq, ack, time = _unpack_head(data)
        if op == _COMMAND and session and 0 < ack <= seq and _isfinite(time):  # u64s: below 2**64 already
            try:
                command = (data[_HEAD_SIZE:] if type(data) is bytes else bytes(data[_HEAD_SIZE:])).decode()
            except UnicodeDecodeError:
                pass  # the general path below names what is wrong
            else:
                return _new_tuple(SessionEntry, (time, _new_tuple(SessionStamp, (session, seq, ack)), command))
    return _decode_strictly(data)


def _decode_strictly(data: bytes) -> SessionEntry:
    if len(data) < _HEAD.size:
        raise SessionEntryError(f"session entry of {len(data)} bytes is shorter than its {_HEAD.size}-byte header")
    op, session, seq, ack, time = _HEAD.unpack_from(data)
    if not math.isfinite(time):
        raise SessionEntryError(f"session entry carries a time that is not a number: {time!r}")
    if op == _REGISTER:
        return SessionEntry(time, None, "")
    if op != _COMMAND:
        raise SessionEntryError(f"unknown session entry op {op}")
    try:
        stamp = check_stamp(session, seq, ack)
        command = (data[_HEAD.size :] if type(data) is bytes else bytes(data[_HEAD.size :])).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise SessionEntryError(f"malformed session command: {exc}") from None
    return SessionEntry(time, stamp, command)


@dataclass(slots=True)
class _Session:
    last_active: float
    floor: int = 1  # the client holds the answer of every sequence below
    results: dict[int, tuple[Any, str | None]] = field(default_factory=dict)  # seq -> (result, error)
    seqs: list[int] = field(default_factory=list)  # a heap of the keys of results
    encoded: bytes | None = None  # this session in SessionTable.encode's JSON, until it changes


class SessionTable:
    """Per session, the results the client may still ask for again (see the module docstring).

    Deterministic: its state is a function of the session entries applied, in log order.
    """

    def __init__(
        self, *, max_sessions: int = MAX_SESSIONS, window: int = SESSION_WINDOW, timeout: float = SESSION_TIMEOUT
    ) -> None:
        if max_sessions < 1 or window < 1 or timeout <= 0:
            raise ValueError("max_sessions, window and timeout must be positive")
        self.max_sessions = max_sessions
        self.window = window
        self.timeout = timeout
        self.clock = 0.0  # the largest leader time applied
        self._sessions: OrderedDict[int, _Session] = OrderedDict()  # least recently active first
        # At most the last_active of every open session (inf without any): no session can have
        # expired while clock - timeout does not exceed it, so most entries skip the scan.
        self._oldest_active = math.inf

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def used(self) -> bool:
        """Whether any session entry was ever applied (snapshots then carry the table)."""
        return self.clock > 0 or bool(self._sessions)

    def register(self, index: int, time: float) -> int:
        """Open the session of the register entry at ``index``; returns its id (``index``)."""
        self._advance(time)
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        self._sessions[index] = _Session(self.clock)
        self._oldest_active = min(self._oldest_active, self.clock)
        return index

    def lookup(self, stamp: SessionStamp, time: float) -> tuple[Any, str | None] | None:
        """The saved ``(result, error)`` of a command applied before; None if it is new.

        Raises:
            SessionRefused: the command must not be applied (the message says why).
        """
        if time > self.clock:
            self.clock = time
        clock = self.clock
        if clock - self.timeout > self._oldest_active:
            self._expire()
        sid, seq, ack = stamp
        sessions = self._sessions
        session = sessions.get(sid)
        if session is None:
            raise SessionRefused(self._unknown(sid))
        session.last_active = clock
        session.encoded = None
        sessions.move_to_end(sid)
        results = session.results
        saved = results.get(seq)
        if saved is not None:
            return saved
        floor = session.floor
        if seq < floor:
            raise SessionRefused(
                f"session {sid}: sequence {seq} was answered already (the client holds the "
                f"answers of every sequence below {floor}); not applied again"
            )
        if ack > floor:
            session.floor = floor = ack
            seqs = session.seqs
            while seqs and seqs[0] < ack:
                del results[_heappop(seqs)]
        if seq >= floor + self.window:
            raise SessionRefused(
                f"session {sid}: sequence {seq} is {self.window} or more ahead of the lowest "
                f"unanswered one ({floor}); at most {self.window} commands may be in flight per session; "
                "not applied"
            )
        return None

    def _unknown(self, sid: int) -> str:
        return (
            f"{SESSION_EXPIRED}: session {sid} is not open (idle for over {self.timeout:g} s, "
            f"evicted as least recently active beyond {self.max_sessions} sessions, or never registered); "
            "the command was not applied"
        )

    def record(self, stamp: SessionStamp, result: Any, error: str | None) -> None:
        """Save the outcome of the new command ``stamp`` (after ``lookup`` returned None)."""
        sid, seq, _ = stamp
        session = self._sessions[sid]
        session.results[seq] = (result, error)
        _heappush(session.seqs, seq)
        session.encoded = None

    def _advance(self, time: float) -> None:
        if time > self.clock:
            self.clock = time
        if self.clock - self.timeout > self._oldest_active:
            self._expire()

    def _expire(self) -> None:
        """Close the sessions idle for longer than ``timeout`` (the least recently active first)."""
        horizon = self.clock - self.timeout
        sessions = self._sessions
        while sessions:
            first = next(iter(sessions.values()))
            if first.last_active >= horizon:
                self._oldest_active = first.last_active
                return
            sessions.popitem(last=False)
        self._oldest_active = math.inf

    # -- snapshots ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The whole table as JSON bytes (sessions in activity order, results in sequence order):
        ``{"clock": ..., "sessions": [[id, last_active, floor, [[seq, result, error], ...]], ...]}``.

        A session unchanged since the last call is not encoded again (the idle ones of clients
        gone away keep their unacknowledged results for ``timeout`` seconds: most of a table)."""
        parts = []
        for sid, session in self._sessions.items():
            text = session.encoded
            if text is None:
                results = session.results
                text = session.encoded = _dumps(
                    [sid, session.last_active, session.floor, [[seq, *results[seq]] for seq in sorted(results)]]).encode()
            parts.append(text)
        return b'{"clock":%s,"sessions":[%s]}' % (_dumps(self.clock).encode(), b",".join(parts))

    def restore(self, data: bytes) -> None:
        """Replace the table with an ``encode()``d one; ValueError naming what is wrong."""
        try:
            document = json.loads(data)
            clock = float(document["clock"])
            sessions: OrderedDict[int, _Session] = OrderedDict()
            for sid, last_active, floor, results in document["sessions"]:
                if type(sid) is not int or type(floor) is not int or len(results) > self.window:
                    raise ValueError(f"bad session {sid!r}")
                session = _Session(float(last_active), floor)
                for seq, result, error in results:
                    if type(seq) is not int or not (error is None or isinstance(error, str)):
                        raise ValueError(f"bad result of session {sid} sequence {seq!r}")
                    session.results[seq] = (result, error)
                session.seqs = sorted(session.results)
                sessions[sid] = session
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"the session table in the snapshot is malformed: {exc}") from None
        while len(sessions) > self.max_sessions:
            sessions.popitem(last=False)
        self.clock = clock
        self._sessions = sessions
        self._oldest_active = min((s.last_active for s in sessions.values()), default=math.inf)

    def clear(self) -> None:
        self.clock = 0.0
        self._sessions.clear()
        self._oldest_active = math.inf
