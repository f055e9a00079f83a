"""Batch entries: one log entry holding many client commands (``EntryKind.BATCH``).

A client's ``run_many`` is proposed as one entry (or a few, when its commands would not fit in
one: :func:`split_batch`), replicated and persisted once, and applied command by command, in
order, at every node (``raftnode.node.apply``); each command keeps its own outcome, its own
session stamp check (thesis §6.3, ``raftnode.wire.sessions``) and its own answer. Every command
of the entry answers with the entry's index.

The data of a batch entry, version 1 (big-endian), laid out by column so that it is packed and
read with a few calls whatever the count::

    [u8 version = 1][u32 count][f64 leader time][u8 stamped: 0 or 1]
    count times: [u32 n], each command's length in bytes
    if stamped, count times: [u64 session][u64 seq][u64 ack] (all zero: that command has none)
    the commands' utf-8 bytes, back to back

The leader time stamps every session command of the entry, as a session entry's does. The
decoder is strict (exactly one encoding per value: ``stamped`` is 1 only when some command has
a stamp; nothing after the last command) and hostile-input safe: a damaged entry raises
:class:`BatchEntryError` naming what is wrong, and decoding never allocates more than a small
multiple of the entry's own bytes.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Sequence
from typing import NamedTuple

from .sessions import SessionStamp, check_stamp

__all__ = [
    "BATCH_VERSION",
    "MAX_BATCH_ENTRY_BYTES",
    "MAX_ENTRY_COMMANDS",
    "BatchContents",
    "BatchEntryError",
    "decode_batch_entry",
    "encode_batch_entry",
    "entry_runs",
    "item_size",
    "split_batch",
]

BATCH_VERSION = 1
#: Commands one batch entry holds at most (a run_many holds at most 1,024).
MAX_ENTRY_COMMANDS = 1024
#: A batch entry's data grows to at most this many bytes, unless one command alone is longer
#: (then that command goes alone): an entry stays far below the peer frame limit (16 MiB).
MAX_BATCH_ENTRY_BYTES = 1 << 20

_HEAD = struct.Struct(">BIdB")
_HEAD_SIZE = _HEAD.size
_LENGTH_SIZE, _STAMP_SIZE = 4, 24
_isfinite = math.isfinite
_new_tuple = tuple.__new__


@functools.lru_cache(maxsize=MAX_ENTRY_COMMANDS * 2)
def _column(count: int, code: str) -> struct.Struct:
    """The struct of ``count`` big-endian ``code`` values (one per count and code, kept)."""
    return struct.Struct(f">{count}{code}")


class BatchContents(NamedTuple):
    """A decoded batch entry: the leader's time, the commands in order, and each command's
    session stamp (None for a command without one; ``stamps`` None: no command has one)."""

    time: float
    commands: list[str]
    stamps: list[SessionStamp | None] | None


class BatchEntryError(ValueError):
    """The data of a batch entry cannot be decoded; the message says what is wrong."""


def item_size(command: bytes, stamped: bool) -> int:
    """The bytes ``command`` takes in a batch entry (in one with stamps when ``stamped``)."""
    return _LENGTH_SIZE + (_STAMP_SIZE if stamped else 0) + len(command)


def encode_batch_entry(time: float, commands: Sequence[bytes], stamps: Sequence[SessionStamp | None] | None) -> bytes:
    """The data of a batch entry holding ``commands`` (utf-8), each with its stamp, if any."""
    count = len(commands)
    if not 0 < count <= MAX_ENTRY_COMMANDS:
        raise ValueError(f"a batch entry holds 1 to {MAX_ENTRY_COMMANDS} commands, not {count}")
    if stamps is not None and len(stamps) != count:
        raise ValueError(f"{len(stamps)} stamps for {count} commands")
    stamped = stamps is not None and any(stamp is not None for stamp in stamps)
    parts = [_HEAD.pack(BATCH_VERSION, count, time, stamped), _column(count, "I").pack(*map(len, commands))]
    if stamped:
        assert stamps is not None
        values: list[int] = []
        for stamp in stamps:
            values.extend(stamp if stamp is not None else (0, 0, 0))
        parts.append(_column(3 * count, "Q").pack(*values))
    parts.extend(commands)
    return b"".join(parts)


def entry_runs(commands: Sequence[bytes], stamped: bool, max_bytes: int = MAX_BATCH_ENTRY_BYTES) -> list[range]:
    """``split_batch`` of ``commands`` (utf-8), at once when they all fit in one entry."""
    count = len(commands)
    per_command = _LENGTH_SIZE + (_STAMP_SIZE if stamped else 0)
    if count <= MAX_ENTRY_COMMANDS and _HEAD_SIZE + count * per_command + sum(map(len, commands)) <= max_bytes:
        return [range(count)]
    return split_batch([per_command + len(command) for command in commands], max_bytes)


def split_batch(sizes: Sequence[int], max_bytes: int = MAX_BATCH_ENTRY_BYTES) -> list[range]:
    """Positions of commands whose items are ``sizes`` bytes, cut into runs that each fit one
    entry (at most ``MAX_ENTRY_COMMANDS`` and about ``max_bytes``; a longer command goes alone)."""
    runs = []
    start, total = 0, _HEAD_SIZE
    for position, size in enumerate(sizes):
        if position > start and (total + size > max_bytes or position - start >= MAX_ENTRY_COMMANDS):
            runs.append(range(start, position))
            start, total = position, _HEAD_SIZE
        total += size
    if start < len(sizes):
        runs.append(range(start, len(sizes)))
    return runs


def decode_batch_entry(data: bytes) -> BatchContents:
    """The contents of a batch entry's data; BatchEntryError if it is malformed."""
    size = len(data)
    if size < _HEAD_SIZE:
        raise BatchEntryError(f"batch entry of {size} bytes is shorter than its {_HEAD_SIZE}-byte header")
    version, count, time, stamped = _HEAD.unpack_from(data)
    if version != BATCH_VERSION:
        raise BatchEntryError(f"batch entry of unknown version {version} (this node reads version {BATCH_VERSION})")
    if not _isfinite(time):
        raise BatchEntryError(f"batch entry carries a time that is not a number: {time!r}")
    if not 0 < count <= MAX_ENTRY_COMMANDS:
        raise BatchEntryError(f"batch entry claims {count} commands; it holds 1 to {MAX_ENTRY_COMMANDS}")
    if stamped > 1:
        raise BatchEntryError(f"batch entry has an unknown stamp flag {stamped}")
    off = _HEAD_SIZE + count * (_LENGTH_SIZE + (_STAMP_SIZE if stamped else 0))
    if off > size:
        raise BatchEntryError(f"batch entry claims {count} commands, more than its {size} bytes can hold")
    lengths = _column(count, "I").unpack_from(data, _HEAD_SIZE)
    body = data[off:]
    if sum(lengths) != len(body):
        raise BatchEntryError(f"batch entry's {count} commands claim {sum(lengths)} bytes; it holds {len(body)}")
    stamps = _stamps(data, count) if stamped else None
    try:
        text = body.decode() if type(body) is bytes else bytes(body).decode()
    except UnicodeDecodeError:
        text = None
    commands = []
    append = commands.append
    start = 0
    if text is not None and len(text) == len(body):  # ASCII (the common case): byte and character offsets agree
        for n in lengths:
            append(text[start : start + n])
            start += n
    else:
        body = bytes(body)
        for position, n in enumerate(lengths):
            try:
                append(body[start : start + n].decode())
            except UnicodeDecodeError as exc:
                raise BatchEntryError(f"batch entry command {position} is not utf-8: {exc}") from None
            start += n
    return _new_tuple(BatchContents, (time, commands, stamps))


def _stamps(data: bytes, count: int) -> list[SessionStamp | None]:
    values = _column(3 * count, "Q").unpack_from(data, _HEAD_SIZE + _LENGTH_SIZE * count)
    stamps: list[SessionStamp | None] = []
    append = stamps.append
    for position in range(count):
        at = 3 * position
        session, seq, ack = values[at], values[at + 1], values[at + 2]
        if session and 0 < ack <= seq:  # the common case, checked at once (u64s: below 2**64 already)
            append(_new_tuple(SessionStamp, (session, seq, ack)))
        elif not (session or seq or ack):
            append(None)
        else:
            try:
                append(check_stamp(session, seq, ack))  # raises: the common case above took every valid one
            except ValueError as exc:
                raise BatchEntryError(f"batch entry command {position} has a malformed session stamp: {exc}") from None
    if all(stamp is None for stamp in stamps):
        raise BatchEntryError("batch entry is marked stamped but none of its commands has a session stamp")
    return stamps
