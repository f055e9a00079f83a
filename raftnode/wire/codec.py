"""Bytes <-> messages: versioned, length-prefixed frames and the peer and client encodings.

Framing. Every frame on a connection, in both directions, is::

    [u32 big-endian length of the rest][u8 protocol version][u8 frame kind][payload]

so ``length = 2 + len(payload)``. ``FrameDecoder`` checks the header as soon as its bytes
arrive: a length under 2 or over ``max_frame_bytes`` is refused before any of the body is read,
then the version, then the kind. Any ``FrameError`` leaves the decoder unusable: the caller
drops the connection and counts it.
Framing and the client protocol's JSON payloads live in ``raftnode.wire.framing`` (re-exported
here), so a client can speak the protocol without importing ``raftnode.core``.

Peer messages (``FrameKind.PEER``) use a compact, canonical binary encoding built with
precompiled ``struct.Struct`` objects. All integers are big-endian and unsigned::

    [u8 type][u64 term][fixed fields of the type][src][dst][variable tail]

- a node id is ``[u8 length][utf-8]`` (at most 255 bytes);
- a bool is one byte, 0 or 1; ``conflict_term`` is a present byte (0/1) then a u64 (0 when absent);
- AppendEntries' tail is its ``count`` entries, each ``[u64 term][u64 index][u8 kind][u32 n][n bytes]``;
- InstallSnapshot's tail is ``[u16 voter count][voter ids][u32 n][n bytes of snapshot data]``;
- ReadIndex's and ReadIndexResponse's tail is their ``requests.count`` request ids, u64 each.

Version 2 added ``read_round`` to Heartbeat and HeartbeatResponse and the ReadIndex messages
(linearizable reads, thesis §6.4); a node of version 1 refuses the connection by its header.

The decoder is strict: exactly one encoding decodes to a given message, so for every accepted
payload ``encode_message(decode_message(p)) == p``. Every decoding problem raises ``CodecError``
naming the message type and the field; nothing else escapes. Terms and indexes above
``MAX_WIRE_NUMBER`` (2**63-1) are malformed: a node that adopted such a term could count past
2**64-1 and then fail to encode its own messages.

Why not msgpack or json: a hand-written struct layout needs no dependency, is strictly
validated field by field as it is read, and is smaller and faster than json
(``python3 benchmarks/codec.py`` measures it against json, pickle and, when installed, msgpack).
pickle is measured as a reference only: unpickling bytes from a peer would execute them.

Client protocol payloads (requests, responses and events) are low volume and go as JSON
objects (``encode_json`` / ``decode_json``) with a size cap. A peer connection opens with a
``HELLO`` frame (``encode_hello`` / ``decode_hello``): the sender's node id, the cluster's name
and id, and a nonce for the authentication (``raftnode.transport.handshake``).

Standard library, ``raftnode.wire.framing`` and ``raftnode.core`` only; this module must not import trio.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from dataclasses import fields
from typing import Any, NamedTuple

from raftnode.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    ReadIndex,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from raftnode.core.quorum import Configuration
from raftnode.wire.framing import (
    MAX_FRAME_BYTES,
    MAX_JSON_BYTES,
    PROTOCOL_VERSION,
    CodecError,
    Frame,
    FrameDecoder,
    FrameError,
    FrameKind,
    _as_bytes,
    decode_json,
    encode_frame,
    encode_json,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_JSON_BYTES",
    "MESSAGE_TYPE_CODES",
    "PROTOCOL_VERSION",
    "CodecError",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameKind",
    "Hello",
    "decode_hello",
    "decode_json",
    "decode_message",
    "encode_frame",
    "encode_hello",
    "encode_json",
    "encode_message",
    "encode_peer_frame",
]

_U64_MAX = (1 << 64) - 1
#: The largest term or index a peer may send: half the u64 range, so that a node counting up from
#: any accepted value never reaches one it cannot encode.
MAX_WIRE_NUMBER = (1 << 63) - 1


# --------------------------------------------------------------------------------------------
# Peer messages

MESSAGE_TYPE_CODES: dict[type[Message], int] = {
    RequestVote: 1,
    RequestVoteResponse: 2,
    AppendEntries: 3,
    AppendEntriesResponse: 4,
    Heartbeat: 5,
    HeartbeatResponse: 6,
    TimeoutNow: 7,
    InstallSnapshot: 8,
    InstallSnapshotResponse: 9,
    ReadIndex: 10,
    ReadIndexResponse: 11,
}
"""The wire type byte of each message type. Stable: changing one is a protocol version change."""


class _Layout:
    """The fixed part of a message: the type byte, the term and the type's fixed-width fields.

    ``enc`` packs ``(type byte, term, *fields)`` with bools as ``?`` (any truthy value -> 1);
    ``dec`` skips the type byte and reads bools as raw bytes so they can be checked for 0/1.
    """

    __slots__ = ("bools", "dec", "enc", "ends", "name", "size")

    def __init__(self, name: str, spec: tuple[tuple[str, str], ...]) -> None:
        spec = (("term", "Q"),) + spec
        self.name = name
        codes = "".join(code for _, code in spec)
        self.enc = struct.Struct(">B" + codes)
        self.dec = struct.Struct(">x" + codes.replace("?", "B"))
        self.size = self.dec.size
        ends, at = [], 1
        for field, code in spec:
            at += struct.calcsize(">" + code)
            ends.append((at, field))
        self.ends = tuple(ends)
        self.bools = tuple((i, field) for i, (field, code) in enumerate(spec) if code == "?")

    def read(self, buf: Any, n: int) -> tuple[int, ...]:
        if n < self.size:
            raise _truncated(self.name, next(field for end, field in self.ends if end > n))
        values = self.dec.unpack_from(buf, 0)
        for i, field in self.bools:
            if values[i] > 1:
                raise CodecError(f"{self.name}.{field}: bool byte must be 0 or 1, not {values[i]}")
        if max(values) > MAX_WIRE_NUMBER:
            field = next(field for value, (_, field) in zip(values, self.ends) if value > MAX_WIRE_NUMBER)
            raise CodecError(f"{self.name}.{field}: {max(values)} is more than the largest term or index, 2**63-1")
        return values


_RV = _Layout("RequestVote", (("last_log_index", "Q"), ("last_log_term", "Q"), ("pre_vote", "?"), ("transfer", "?")))
_RVR = _Layout("RequestVoteResponse", (("granted", "?"), ("pre_vote", "?")))
_AE = _Layout("AppendEntries", (("prev_index", "Q"), ("prev_term", "Q"), ("commit", "Q"), ("entries.count", "I")))
_AER = _Layout(
    "AppendEntriesResponse",
    (("success", "?"), ("index", "Q"), ("conflict_index", "Q"), ("conflict_term.present", "?"), ("conflict_term", "Q")),
)
_HB = _Layout("Heartbeat", (("commit", "Q"), ("match", "Q"), ("match_term", "Q"), ("read_round", "Q")))
_HBR = _Layout("HeartbeatResponse", (("reject", "?"), ("last_index", "Q"), ("read_round", "Q")))
_TN = _Layout("TimeoutNow", ())
_IS = _Layout(
    "InstallSnapshot",
    (("meta.index", "Q"), ("meta.term", "Q"), ("offset", "Q"), ("done", "?"), ("meta.configuration.length", "I")),
)
_ISR = _Layout("InstallSnapshotResponse", (("index", "Q"), ("offset", "Q")))
_RI = _Layout("ReadIndex", (("requests.count", "I"),))
_RIR = _Layout("ReadIndexResponse", (("index", "Q"), ("granted", "?"), ("requests.count", "I")))

_ENTRY_ENC = struct.Struct(">QQBI")  # term, index, kind, data length; then the data
_ENTRY_DEC = _ENTRY_ENC
_ENTRY_SIZE = _ENTRY_ENC.size  # 21
_U8 = struct.Struct(">B")
_U32 = struct.Struct(">I")
_ENTRY_KINDS: dict[int, EntryKind] = {int(k): k for k in EntryKind}
_tuple_new = tuple.__new__

# Encoded node ids ([u8 length][utf-8]), cached: a cluster has few of them.
_ID_CACHE: dict[str, bytes] = {}
_ID_CACHE_MAX = 4096


def _enc_id(s: str) -> bytes:
    try:
        return _ID_CACHE[s]
    except KeyError:
        pass
    if type(s) is not str:
        raise TypeError(f"a node id must be a str, not {type(s).__name__}")
    raw = s.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"a node id is at most 255 bytes of utf-8, not {len(raw)}")
    encoded = _U8.pack(len(raw)) + raw
    if len(_ID_CACHE) < _ID_CACHE_MAX:
        _ID_CACHE[s] = encoded
    return encoded


def _enc_request_vote(m: RequestVote) -> bytes:
    return b"".join(
        (
            _RV.enc.pack(1, m.term, m.last_log_index, m.last_log_term, m.pre_vote, m.transfer),
            _enc_id(m.src),
            _enc_id(m.dst),
        )
    )


def _enc_request_vote_response(m: RequestVoteResponse) -> bytes:
    return b"".join((_RVR.enc.pack(2, m.term, m.granted, m.pre_vote), _enc_id(m.src), _enc_id(m.dst)))


def _enc_append_entries(m: AppendEntries) -> bytes:
    entries = m.entries
    return b"".join((
        _AE.enc.pack(3, m.term, m.prev_index, m.prev_term, m.commit, len(entries)),
        _enc_id(m.src),
        _enc_id(m.dst),
        _ENTRIES_MEMO.encode(entries) if entries else b"",
    ))


def _enc_entries(entries: Any) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    pack = _ENTRY_ENC.pack
    kinds = _ENTRY_KINDS
    for term, index, data, kind in entries:
        if kind not in kinds or type(data) is not bytes:
            raise ValueError("bad entry")  # _diagnose names it
        append(pack(term, index, kind, len(data)))
        append(data)
    return b"".join(parts)


class _EntriesMemo:
    """The encoding of the last entries encoded, given again for the same entries: a leader sends
    the same batch to each follower in its own AppendEntries (its own tuple, the same ``Entry``
    objects), and each copy would encode it again. "The same" is every entry the very same
    object as the remembered one (kept alive here, so its id is not reused); ``Entry`` is an
    immutable tuple of immutable fields, so the same objects encode the same."""

    __slots__ = ("_entries", "_encoded")

    def __init__(self) -> None:
        self._entries: tuple[Any, ...] = ()
        self._encoded = b""

    def encode(self, entries: Any) -> bytes:
        last = self._entries
        if len(entries) == len(last) and all(map(_is, entries, last)):
            return self._encoded
        encoded = _enc_entries(entries)
        self._entries, self._encoded = tuple(entries), encoded
        return encoded


_is = operator.is_
_ENTRIES_MEMO = _EntriesMemo()


def _enc_append_entries_response(m: AppendEntriesResponse) -> bytes:
    ct = m.conflict_term
    return b"".join(
        (
            _AER.enc.pack(4, m.term, m.success, m.index, m.conflict_index, ct is not None, 0 if ct is None else ct),
            _enc_id(m.src),
            _enc_id(m.dst),
        )
    )


def _enc_heartbeat(m: Heartbeat) -> bytes:
    return b"".join((_HB.enc.pack(5, m.term, m.commit, m.match, m.match_term, m.read_round), _enc_id(m.src), _enc_id(m.dst)))


def _enc_heartbeat_response(m: HeartbeatResponse) -> bytes:
    return b"".join((_HBR.enc.pack(6, m.term, m.reject, m.last_index, m.read_round), _enc_id(m.src), _enc_id(m.dst)))


def _enc_u64s(values: tuple[int, ...]) -> bytes:
    if type(values) is not tuple:
        raise TypeError("requests must be a tuple")
    return struct.pack(f">{len(values)}Q", *values)


def _enc_read_index(m: ReadIndex) -> bytes:
    requests = m.requests
    return b"".join((_RI.enc.pack(10, m.term, len(requests)), _enc_id(m.src), _enc_id(m.dst), _enc_u64s(requests)))


def _enc_read_index_response(m: ReadIndexResponse) -> bytes:
    requests = m.requests
    return b"".join((
        _RIR.enc.pack(11, m.term, m.index, m.granted, len(requests)), _enc_id(m.src), _enc_id(m.dst),
        _enc_u64s(requests),
    ))


def _enc_timeout_now(m: TimeoutNow) -> bytes:
    return b"".join((_TN.enc.pack(7, m.term), _enc_id(m.src), _enc_id(m.dst)))


def _enc_install_snapshot(m: InstallSnapshot) -> bytes:
    meta, data = m.meta, m.data
    if type(meta) is not SnapshotMeta or type(data) is not bytes:
        raise TypeError("bad meta or data")
    configuration = meta.configuration.encode() if meta.configuration is not None else b""
    parts = [
        _IS.enc.pack(8, m.term, meta.index, meta.term, m.offset, m.done, len(configuration)),
        _enc_id(m.src),
        _enc_id(m.dst),
        configuration,
    ]
    parts.append(_U32.pack(len(data)))
    parts.append(data)
    return b"".join(parts)


def _enc_install_snapshot_response(m: InstallSnapshotResponse) -> bytes:
    return b"".join((_ISR.enc.pack(9, m.term, m.index, m.offset), _enc_id(m.src), _enc_id(m.dst)))


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    RequestVote: _enc_request_vote,
    RequestVoteResponse: _enc_request_vote_response,
    AppendEntries: _enc_append_entries,
    AppendEntriesResponse: _enc_append_entries_response,
    Heartbeat: _enc_heartbeat,
    HeartbeatResponse: _enc_heartbeat_response,
    TimeoutNow: _enc_timeout_now,
    InstallSnapshot: _enc_install_snapshot,
    InstallSnapshotResponse: _enc_install_snapshot_response,
    ReadIndex: _enc_read_index,
    ReadIndexResponse: _enc_read_index_response,
}


def encode_message(m: Message) -> bytes:
    """The payload of a PEER frame for ``m``. Raises CodecError naming a field that cannot be encoded."""
    encoder = _ENCODERS.get(type(m))
    if encoder is None:
        raise CodecError(f"cannot encode {type(m).__name__}: not a Raft message type")
    try:
        return encoder(m)
    except (struct.error, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise CodecError(f"cannot encode {type(m).__name__}: {_diagnose(m) or e}") from None


_PEER_FRAME_HEAD = struct.Struct(">IBB")  # framing's header: length of the rest, version, kind


def encode_peer_frame(m: Message, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """``encode_frame(FrameKind.PEER, encode_message(m))`` in one step: every Raft message sent
    takes this path. Raises CodecError as they do."""
    payload = encode_message(m)
    length = len(payload) + 2
    if length > max_frame_bytes:
        raise FrameError(f"PEER frame of {length} bytes exceeds the maximum of {max_frame_bytes}")
    return _PEER_FRAME_HEAD.pack(length, PROTOCOL_VERSION, FrameKind.PEER) + payload


def _problem_u64(v: Any) -> str | None:
    if type(v) is bool or not isinstance(v, int):
        return f"must be an int, not {type(v).__name__}"
    if not 0 <= v <= _U64_MAX:
        return f"{v} is outside 0..2**64-1"
    return None


def _problem_id(v: Any) -> str | None:
    if type(v) is not str:
        return f"must be a str, not {type(v).__name__}"
    try:
        size = len(v.encode("utf-8"))
    except UnicodeEncodeError as e:
        return f"is not encodable as utf-8 ({e.reason})"
    return f"is {size} bytes of utf-8, more than 255" if size > 255 else None


def _problem_bytes(v: Any) -> str | None:
    if type(v) is not bytes:
        return f"must be bytes, not {type(v).__name__}"
    return f"is {len(v)} bytes, more than 2**32-1" if len(v) > 0xFFFFFFFF else None


def _diagnose(m: Message) -> str | None:
    """Which field of ``m`` cannot be encoded, and why (the slow path after a failed encode)."""
    for f in fields(m):
        name, v = f.name, getattr(m, f.name)
        if name in ("src", "dst"):
            problem = _problem_id(v)
        elif name == "conflict_term":
            problem = None if v is None else _problem_u64(v)
        elif name == "entries":
            if not isinstance(v, (tuple, list)):
                problem = f"must be a tuple of Entry, not {type(v).__name__}"
            elif len(v) > 0xFFFFFFFF:
                problem = f"{len(v)} entries is more than 2**32-1"
            else:
                problem = None
                for i, e in enumerate(v):
                    if not isinstance(e, Entry):
                        name, problem = f"entries[{i}]", f"must be an Entry, not {type(e).__name__}"
                    elif _problem_u64(e.term) or _problem_u64(e.index):
                        name, problem = f"entries[{i}]", f"term/index {_problem_u64(e.term) or _problem_u64(e.index)}"
                    elif _problem_bytes(e.data):
                        name, problem = f"entries[{i}].data", _problem_bytes(e.data)
                    elif e.kind not in _ENTRY_KINDS:
                        name, problem = f"entries[{i}].kind", f"unknown entry kind {e.kind!r}"
                    if problem:
                        break
        elif name == "meta":
            if type(v) is not SnapshotMeta:
                problem = f"must be a SnapshotMeta, not {type(v).__name__}"
            else:
                problem = _problem_u64(v.index) and f"index {_problem_u64(v.index)}"
                problem = problem or (_problem_u64(v.term) and f"term {_problem_u64(v.term)}")
                if not problem and v.configuration is not None and not isinstance(v.configuration, Configuration):
                    problem = f"configuration must be a Configuration, not {type(v.configuration).__name__}"
        elif name == "data":
            problem = _problem_bytes(v)
        elif name == "requests":
            if not isinstance(v, tuple):
                problem = f"must be a tuple of ints, not {type(v).__name__}"
            elif len(v) > 0xFFFFFFFF:
                problem = f"{len(v)} requests is more than 2**32-1"
            else:
                problem = next((f"[{i}] {p}" for i, r in enumerate(v) if (p := _problem_u64(r))), None)
        elif isinstance(f.default, bool) or name in ("granted", "success", "done"):
            problem = None  # any value encodes as its truth value
        else:
            problem = _problem_u64(v)
        if problem:
            return f"{name} {problem}"
    return None


def _truncated(type_name: str, field: str) -> CodecError:
    return CodecError(f"{type_name}.{field}: payload truncated")


def _dec_id(buf: bytes, n: int, off: int, type_name: str, field: str) -> tuple[str, int]:
    if off >= n:
        raise _truncated(type_name, field)
    end = off + 1 + buf[off]
    if end > n:
        raise _truncated(type_name, field)
    try:
        return str(buf[off + 1 : end], "utf-8"), end
    except UnicodeDecodeError as e:
        raise CodecError(f"{type_name}.{field}: invalid utf-8 ({e.reason})") from None


def _dec_ids(buf: bytes, n: int, off: int, type_name: str) -> tuple[str, str, int]:
    if off < n:  # every message has the two: read in line; anything amiss takes the path that names it
        mid = off + 1 + buf[off]
        if mid < n:
            end = mid + 1 + buf[mid]
            if end <= n:
                try:
                    return str(buf[off + 1 : mid], "utf-8"), str(buf[mid + 1 : end], "utf-8"), end
                except UnicodeDecodeError:
                    pass
    src, off = _dec_id(buf, n, off, type_name, "src")
    dst, off = _dec_id(buf, n, off, type_name, "dst")
    return src, dst, off


def _done(n: int, off: int, type_name: str) -> None:
    if off != n:
        raise CodecError(f"{type_name}: {n - off} trailing bytes after the message")


def _dec_request_vote(buf: bytes, n: int) -> RequestVote:
    term, last_log_index, last_log_term, pre_vote, transfer = _RV.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _RV.size, "RequestVote")
    _done(n, off, "RequestVote")
    return RequestVote(
        term=term,
        src=src,
        dst=dst,
        last_log_index=last_log_index,
        last_log_term=last_log_term,
        pre_vote=pre_vote == 1,
        transfer=transfer == 1,
    )


def _dec_request_vote_response(buf: bytes, n: int) -> RequestVoteResponse:
    term, granted, pre_vote = _RVR.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _RVR.size, "RequestVoteResponse")
    _done(n, off, "RequestVoteResponse")
    return RequestVoteResponse(term=term, src=src, dst=dst, granted=granted == 1, pre_vote=pre_vote == 1)


def _dec_append_entries(buf: bytes, n: int) -> AppendEntries:
    term, prev_index, prev_term, commit, count = _AE.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _AE.size, "AppendEntries")
    if count > (n - off) // _ENTRY_SIZE:
        raise CodecError(f"AppendEntries.entries: count {count} is more than the {n - off} remaining bytes can hold")
    # The hot loop reads in place with unpack_from at offsets; the only per-entry copy is the
    # data itself. It does no bounds checks of its own: a short payload shows as struct.error
    # or as an offset past the end, an unknown kind as KeyError; _entries_error then names it.
    first = off
    entries = []
    append = entries.append
    unpack_from = _ENTRY_DEC.unpack_from
    kinds = _ENTRY_KINDS
    try:
        for _ in range(count):
            e_term, e_index, raw_kind, size = unpack_from(buf, off)
            if e_term > MAX_WIRE_NUMBER or e_index > MAX_WIRE_NUMBER:
                raise CodecError(f"AppendEntries.entries: term {e_term} or index {e_index} is more than 2**63-1")
            off += _ENTRY_SIZE
            end = off + size
            append(_tuple_new(Entry, (e_term, e_index, buf[off:end], kinds[raw_kind])))
            off = end
    except (struct.error, KeyError):
        raise _entries_error(buf, n, first, count) from None
    if off > n:
        raise _entries_error(buf, n, first, count)
    _done(n, off, "AppendEntries")
    return AppendEntries(
        term=term, src=src, dst=dst, prev_index=prev_index, prev_term=prev_term, entries=tuple(entries), commit=commit
    )


def _entries_error(buf: bytes, n: int, off: int, count: int) -> CodecError:
    """The slow path of AppendEntries decoding: which entry is broken, and how."""
    for i in range(count):
        if off + _ENTRY_SIZE > n:
            return _truncated("AppendEntries", f"entries[{i}]")
        _, _, raw_kind, size = _ENTRY_DEC.unpack_from(buf, off)
        off += _ENTRY_SIZE + size
        if off > n:
            return _truncated("AppendEntries", f"entries[{i}].data")
        if raw_kind not in _ENTRY_KINDS:
            return CodecError(f"AppendEntries.entries[{i}].kind: unknown entry kind {raw_kind}")
    return CodecError("AppendEntries.entries: malformed")  # unreachable: the fast path found a fault


def _dec_append_entries_response(buf: bytes, n: int) -> AppendEntriesResponse:
    term, success, index, conflict_index, has_conflict_term, conflict_term = _AER.read(buf, n)
    if not has_conflict_term and conflict_term != 0:
        raise CodecError("AppendEntriesResponse.conflict_term: absent but its value is not 0")
    src, dst, off = _dec_ids(buf, n, _AER.size, "AppendEntriesResponse")
    _done(n, off, "AppendEntriesResponse")
    return AppendEntriesResponse(
        term=term,
        src=src,
        dst=dst,
        success=success == 1,
        index=index,
        conflict_index=conflict_index,
        conflict_term=conflict_term if has_conflict_term else None,
    )


def _dec_heartbeat(buf: bytes, n: int) -> Heartbeat:
    term, commit, match, match_term, read_round = _HB.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _HB.size, "Heartbeat")
    _done(n, off, "Heartbeat")
    return Heartbeat(term=term, src=src, dst=dst, commit=commit, match=match, match_term=match_term,
                     read_round=read_round)


def _dec_heartbeat_response(buf: bytes, n: int) -> HeartbeatResponse:
    term, reject, last_index, read_round = _HBR.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _HBR.size, "HeartbeatResponse")
    _done(n, off, "HeartbeatResponse")
    return HeartbeatResponse(term=term, src=src, dst=dst, reject=reject == 1, last_index=last_index,
                             read_round=read_round)


def _dec_u64s(buf: bytes, n: int, off: int, count: int, type_name: str) -> tuple[int, ...]:
    """Exactly ``count`` u64 request ids from ``off`` to the end of the payload."""
    if count * 8 > n - off:
        raise CodecError(f"{type_name}.requests: count {count} is more than the {n - off} remaining bytes can hold")
    _done(n, off + count * 8, type_name)
    return struct.unpack_from(f">{count}Q", buf, off)


def _dec_read_index(buf: bytes, n: int) -> ReadIndex:
    term, count = _RI.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _RI.size, "ReadIndex")
    return ReadIndex(term=term, src=src, dst=dst, requests=_dec_u64s(buf, n, off, count, "ReadIndex"))


def _dec_read_index_response(buf: bytes, n: int) -> ReadIndexResponse:
    term, index, granted, count = _RIR.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _RIR.size, "ReadIndexResponse")
    requests = _dec_u64s(buf, n, off, count, "ReadIndexResponse")
    return ReadIndexResponse(term=term, src=src, dst=dst, requests=requests, index=index, granted=granted == 1)


def _dec_timeout_now(buf: bytes, n: int) -> TimeoutNow:
    (term,) = _TN.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _TN.size, "TimeoutNow")
    _done(n, off, "TimeoutNow")
    return TimeoutNow(term=term, src=src, dst=dst)


def _dec_install_snapshot(buf: bytes, n: int) -> InstallSnapshot:
    term, meta_index, meta_term, offset, done, config_length = _IS.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _IS.size, "InstallSnapshot")
    configuration = None
    if config_length:
        if off + config_length > n:
            raise _truncated("InstallSnapshot", "meta.configuration")
        try:
            configuration = Configuration.decode(bytes(buf[off : off + config_length]))
        except ValueError as exc:
            raise CodecError(f"InstallSnapshot.meta.configuration: {exc}") from None
        off += config_length
    if off + 4 > n:
        raise _truncated("InstallSnapshot", "data")
    (size,) = _U32.unpack_from(buf, off)
    off += 4
    end = off + size
    if end > n:
        raise _truncated("InstallSnapshot", "data")
    data = buf[off:end]
    _done(n, end, "InstallSnapshot")
    return InstallSnapshot(
        term=term,
        src=src,
        dst=dst,
        meta=SnapshotMeta(index=meta_index, term=meta_term, configuration=configuration),
        offset=offset,
        data=data,
        done=done == 1,
    )


def _dec_install_snapshot_response(buf: bytes, n: int) -> InstallSnapshotResponse:
    term, index, offset = _ISR.read(buf, n)
    src, dst, off = _dec_ids(buf, n, _ISR.size, "InstallSnapshotResponse")
    _done(n, off, "InstallSnapshotResponse")
    return InstallSnapshotResponse(term=term, src=src, dst=dst, index=index, offset=offset)


_DECODERS: dict[int, Callable[[bytes, int], Message]] = {
    1: _dec_request_vote,
    2: _dec_request_vote_response,
    3: _dec_append_entries,
    4: _dec_append_entries_response,
    5: _dec_heartbeat,
    6: _dec_heartbeat_response,
    7: _dec_timeout_now,
    8: _dec_install_snapshot,
    9: _dec_install_snapshot_response,
    10: _dec_read_index,
    11: _dec_read_index_response,
}
assert {MESSAGE_TYPE_CODES[t] for t in _ENCODERS} == set(_DECODERS)


def decode_message(payload: bytes | bytearray | memoryview) -> Message:
    """The message in a PEER frame's payload. Raises only CodecError, naming the type and field."""
    buf = _as_bytes(payload, "a peer message")
    n = len(buf)
    if n == 0:
        raise CodecError("peer message: empty payload (no type byte)")
    decoder = _DECODERS.get(buf[0])
    if decoder is None:
        raise CodecError(f"peer message: unknown message type byte {buf[0]}")
    return decoder(buf, n)


# --------------------------------------------------------------------------------------------
# HELLO: the first frame on a peer connection


class Hello(NamedTuple):
    node_id: str
    cluster: str
    cluster_id: str = ""  # the cluster's identity (raftnode.security.credentials); "" when it has none
    nonce: bytes = b""  # the connecting node's challenge when peers authenticate


def encode_hello(node_id: str, cluster: str, cluster_id: str = "", nonce: bytes = b"") -> bytes:
    """The payload of a HELLO frame: node id, cluster name and cluster id, each ``[u8 n][utf-8]``,
    then ``[u8 n][nonce]``."""
    for field, value in (("node_id", node_id), ("cluster", cluster), ("cluster_id", cluster_id)):
        problem = _problem_id(value)
        if problem:
            raise CodecError(f"cannot encode Hello: {field} {problem}")
    if type(nonce) is not bytes or len(nonce) > 255:
        raise CodecError("cannot encode Hello: nonce must be at most 255 bytes")
    return _enc_id(node_id) + _enc_id(cluster) + _enc_id(cluster_id) + _U8.pack(len(nonce)) + nonce


def decode_hello(payload: bytes | bytearray | memoryview) -> Hello:
    buf = _as_bytes(payload, "a Hello")
    n = len(buf)
    node_id, off = _dec_id(buf, n, 0, "Hello", "node_id")
    cluster, off = _dec_id(buf, n, off, "Hello", "cluster")
    cluster_id, off = _dec_id(buf, n, off, "Hello", "cluster_id")
    if off >= n:
        raise _truncated("Hello", "nonce")
    end = off + 1 + buf[off]
    if end > n:
        raise _truncated("Hello", "nonce")
    nonce = buf[off + 1 : end]
    _done(n, end, "Hello")
    return Hello(node_id, cluster, cluster_id, nonce)
