"""The formats of ``DiskStorage``'s files: log records, hard-state records, the snapshot file.

See ``raftnode.storage.disk`` for the byte layouts and why they are so. Pure functions of bytes,
no I/O. The underscored names are private to ``raftnode.storage``'s disk modules.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from ..core.messages import EntryKind
from ..core.quorum import Configuration
from . import CorruptLogError, Entry, HardState, SnapshotMeta, gap_error

_FRAME = struct.Struct("<II")  # length, checksum
_HEAD = struct.Struct("<IQQB")  # length + payload head: the first bytes the checksum covers
_RECORD = struct.Struct("<IIQQB")  # the whole 25-byte record header
_PAYLOAD_HEAD = struct.Struct("<QQB")  # term, index, kind
_U64 = struct.Struct("<Q")
_HS_DATA = struct.Struct("<QB")  # commit, has_vote
_SNAP_HEAD = struct.Struct("<8sIQ")  # magic, meta length, data length
_U32 = struct.Struct("<I")

HEADER_SIZE = _RECORD.size  # 25
MIN_PAYLOAD = _PAYLOAD_HEAD.size  # 17
HS_KIND = 0xFF
SNAPSHOT_MAGIC = b"RAFTSNP1"
_KINDS = {k.value: k for k in EntryKind}
_INDEX_AT = 16  # where a record's index field sits, from the record's start


def _encode_entries(entries: Sequence[Entry], out: list) -> None:
    """Frame ``entries`` into ``out`` (chunks to join), checking that their indexes are consecutive.

    The hot path: two struct packs and two C-level crc32 calls per entry, no slicing, no copies.

    Raises:
        ValueError: an entry's index does not follow its predecessor's.
    """
    crc32 = zlib.crc32
    head = _HEAD.pack
    record = _RECORD.pack
    add = out.append
    expected = entries[0].index
    for term, index, data, kind in entries:
        if index != expected:
            raise gap_error(index, expected)
        expected += 1
        n = MIN_PAYLOAD + len(data)
        add(record(n, crc32(data, crc32(head(n, term, index, kind))), term, index, kind))
        add(data)


def _frame(term: int, index: int, kind: int, data: bytes) -> bytes:
    n = MIN_PAYLOAD + len(data)
    crc = zlib.crc32(data, zlib.crc32(_HEAD.pack(n, term, index, kind)))
    return _RECORD.pack(n, crc, term, index, kind) + data


_HS_HEAD = struct.Struct("<IQQBQB")  # length, term, sequence, kind, commit, has_vote: what the checksum covers first
_HS_RECORD = struct.Struct("<IIQQBQB")  # the same with the checksum: a hard-state record but for its vote


def _hs_record(hs: HardState, seq: int) -> bytes:
    """The hard-state record numbered ``seq``: the bytes of ``_frame(hs.term, seq, HS_KIND,
    _hs_data(hs))`` in two packs (one is written with nearly every fsync)."""
    vote = hs.vote
    raw = b"" if vote is None else vote.encode()
    n = MIN_PAYLOAD + _HS_DATA.size + len(raw)
    has_vote = vote is not None
    crc = zlib.crc32(_HS_HEAD.pack(n, hs.term, seq, HS_KIND, hs.commit, has_vote))
    if raw:
        crc = zlib.crc32(raw, crc)
    return _HS_RECORD.pack(n, crc, hs.term, seq, HS_KIND, hs.commit, has_vote) + raw


def _hs_data(hs: HardState) -> bytes:
    """A hard-state record's data, the format's reference form: ``_hs_record`` writes the same
    bytes without it (tests compare the two)."""
    vote = hs.vote
    return _HS_DATA.pack(hs.commit, vote is not None) + (vote.encode() if vote is not None else b"")


def _decode_hs(term: int, data: bytes) -> HardState:
    """The hard state in a record's data; ValueError if malformed."""
    if len(data) < _HS_DATA.size:
        raise ValueError("hard-state record too short")
    commit, has_vote = _HS_DATA.unpack_from(data)
    rest = data[_HS_DATA.size :]
    if has_vote not in (0, 1) or (not has_vote and rest):
        raise ValueError("malformed hard-state record")
    return HardState(term=term, vote=rest.decode() if has_vote else None, commit=commit)


def _frame_ok(buf: bytes, start: int) -> bool:
    """Whether a complete record with a valid checksum starts at ``start``."""
    n = len(buf)
    if start < 0 or n - start < HEADER_SIZE:
        return False
    length, crc = _FRAME.unpack_from(buf, start)
    end = start + 8 + length
    if length < MIN_PAYLOAD or end > n:
        return False
    mv = memoryview(buf)
    return zlib.crc32(mv[start + 8 : end], zlib.crc32(mv[start : start + 4])) == crc


def _parse_snapshot(buf: bytes, path: Path) -> tuple[SnapshotMeta, memoryview]:
    if len(buf) < _SNAP_HEAD.size + 4:
        raise CorruptLogError(path, 0, f"snapshot file too short ({len(buf)} bytes)")
    magic, meta_len, data_len = _SNAP_HEAD.unpack_from(buf)
    if magic != SNAPSHOT_MAGIC:
        raise CorruptLogError(path, 0, "not a snapshot file (bad magic)")
    body_end = _SNAP_HEAD.size + meta_len + data_len
    if body_end + 4 != len(buf):
        raise CorruptLogError(path, 8, f"snapshot lengths ({meta_len}, {data_len}) do not match the file size {len(buf)}")
    mv = memoryview(buf)
    (crc,) = _U32.unpack_from(buf, body_end)
    if zlib.crc32(mv[:body_end]) != crc:
        raise CorruptLogError(path, body_end, "snapshot checksum mismatch")
    try:
        raw = json.loads(bytes(mv[_SNAP_HEAD.size : _SNAP_HEAD.size + meta_len]))
        configuration = raw.get("configuration")
        meta = SnapshotMeta(
            int(raw["index"]), int(raw["term"]),
            Configuration.decode(configuration.encode()) if configuration else None,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptLogError(path, _SNAP_HEAD.size, f"bad snapshot metadata: {e}") from None
    return meta, mv[_SNAP_HEAD.size + meta_len : body_end]


def _encode_snapshot(meta: SnapshotMeta, data: bytes) -> list[bytes]:
    """The snapshot file's contents, as chunks to write in order."""
    configuration = meta.configuration.encode().decode() if meta.configuration else None
    meta_json = json.dumps({"index": meta.index, "term": meta.term, "configuration": configuration}).encode()
    head = _SNAP_HEAD.pack(SNAPSHOT_MAGIC, len(meta_json), len(data))
    crc = zlib.crc32(data, zlib.crc32(meta_json, zlib.crc32(head)))
    return [head, meta_json, data, _U32.pack(crc)]
