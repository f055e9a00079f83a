"""Batch entries: one log entry holding many client commands (``EntryKind.BATCH``).

A client's ``run_many`` is proposed as one entry (or a few, when its commands would not fit in
one: :func:`split_batch`), replicated and persisted once, and applied command by command, in
order, at every node (``raftnode.node.apply``); each command keeps its own outcome, its own
session stamp check (thesis §6.3, ``raftnode.wire.sessions``) and its own answer. Every command
of the entry answers with the entry's index.

The data of a batch entry, version 1 (big-endian)::

    [u8 version = 1][u32 count][f64 leader time]
    count times: [u8 stamped: 0 or 1][u32 n]([u64 session][u64 seq][u64 ack] if stamped)[n bytes, utf-8]

The leader time stamps every session command of the entry, as a session entry's does. The
decoder is strict (exactly one encoding per value, nothing after the last command) and hostile-
input safe: a damaged entry raises :class:`BatchEntryError` naming what is wrong, and decoding
never allocates more than the entry's own bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import NamedTuple

from .sessions import SessionStamp, check_stamp

__all__ = [
    "BATCH_VERSION",
    "MAX_BATCH_ENTRY_BYTES",
    "MAX_ENTRY_COMMANDS",
    "BatchEntryError",
    "BatchItem",
    "decode_batch_entry",
    "encode_batch_entry",
    "split_batch",
]

BATCH_VERSION = 1
#: Commands one batch entry holds at most (a run_many holds at most 1,024).
MAX_ENTRY_COMMANDS = 1024
#: A batch entry's data grows to at most this many bytes, unless one command alone is longer
#: (then that command goes alone): an entry stays far below the peer frame limit (16 MiB).
MAX_BATCH_ENTRY_BYTES = 1 << 20

_HEAD = struct.Struct(">BId")
_PLAIN = struct.Struct(">BI")
_STAMPED = struct.Struct(">BIQQQ")
_HEAD_SIZE, _PLAIN_SIZE, _STAMPED_SIZE = _HEAD.size, _PLAIN.size, _STAMPED.size
_pack_plain, _pack_stamped = _PLAIN.pack, _STAMPED.pack
_unpack_plain, _unpack_stamped = _PLAIN.unpack_from, _STAMPED.unpack_from
_isfinite = math.isfinite
_new_tuple = tuple.__new__


class BatchItem(NamedTuple):
    """One command of a decoded batch entry: its session stamp (None: no session) and text."""

    stamp: SessionStamp | None
    command: str


class BatchEntryError(ValueError):
    """The data of a batch entry cannot be decoded; the message says what is wrong."""


def item_size(command: bytes, stamped: bool) -> int:
    """The bytes ``command`` takes in a batch entry."""
    return (_STAMPED_SIZE if stamped else _PLAIN_SIZE) + len(command)


def encode_batch_entry(time: float, commands: Sequence[bytes], stamps: Sequence[SessionStamp | None] | None) -> bytes:
    """The data of a batch entry holding ``commands`` (utf-8), each with its stamp, if any."""
    if not 0 < len(commands) <= MAX_ENTRY_COMMANDS:
        raise ValueError(f"a batch entry holds 1 to {MAX_ENTRY_COMMANDS} commands, not {len(commands)}")
    if stamps is not None and len(stamps) != len(commands):
        raise ValueError(f"{len(stamps)} stamps for {len(commands)} commands")
    parts = [_HEAD.pack(BATCH_VERSION, len(commands), time)]
    append = parts.append
    if stamps is None:
        for command in commands:
            append(_pack_plain(0, len(command)))
            append(command)
    else:
        for command, stamp in zip(commands, stamps):
            if stamp is None:
                append(_pack_plain(0, len(command)))
            else:
                append(_pack_stamped(1, len(command), *stamp))
            append(command)
    return b"".join(parts)


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


def decode_batch_entry(data: bytes) -> tuple[float, list[BatchItem]]:
    """``(leader time, items)`` of a batch entry's data; BatchEntryError if it is malformed."""
    size = len(data)
    if size < _HEAD_SIZE:
        raise BatchEntryError(f"batch entry of {size} bytes is shorter than its {_HEAD_SIZE}-byte header")
    version, count, time = _HEAD.unpack_from(data)
    if version != BATCH_VERSION:
        raise BatchEntryError(f"batch entry of unknown version {version} (this node reads version {BATCH_VERSION})")
    if not _isfinite(time):
        raise BatchEntryError(f"batch entry carries a time that is not a number: {time!r}")
    if not 0 < count <= MAX_ENTRY_COMMANDS:
        raise BatchEntryError(f"batch entry claims {count} commands; it holds 1 to {MAX_ENTRY_COMMANDS}")
    if count * _PLAIN_SIZE > size - _HEAD_SIZE:
        raise BatchEntryError(f"batch entry claims {count} commands, more than its {size} bytes can hold")
    if type(data) is not bytes:
        data = bytes(data)
    items = []
    append = items.append
    off = _HEAD_SIZE
    for position in range(count):
        if off + _PLAIN_SIZE > size:
            raise BatchEntryError(f"batch entry is cut short at command {position} of {count}")
        stamped, n = _unpack_plain(data, off)
        stamp = None
        if stamped == 1:
            if off + _STAMPED_SIZE > size:
                raise BatchEntryError(f"batch entry is cut short in the session stamp of command {position}")
            _, _, session, seq, ack = _unpack_stamped(data, off)
            try:
                stamp = check_stamp(session, seq, ack)
            except ValueError as exc:
                raise BatchEntryError(f"batch entry command {position} has a malformed session stamp: {exc}") from None
            off += _STAMPED_SIZE
        elif stamped == 0:
            off += _PLAIN_SIZE
        else:
            raise BatchEntryError(f"batch entry command {position} has an unknown stamp flag {stamped}")
        end = off + n
        if end > size:
            raise BatchEntryError(f"batch entry command {position} claims {n} bytes; only {size - off} remain")
        try:
            command = data[off:end].decode()
        except UnicodeDecodeError as exc:
            raise BatchEntryError(f"batch entry command {position} is not utf-8: {exc}") from None
        append(_new_tuple(BatchItem, (stamp, command)))
        off = end
    if off != size:
        raise BatchEntryError(f"batch entry has {size - off} bytes after its {count} commands")
    return time, items
