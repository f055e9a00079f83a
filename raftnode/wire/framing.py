"""Versioned, length-prefixed frames and the client protocol's JSON payloads.

Every frame on a connection, in both directions, is::

    [u32 big-endian length of the rest][u8 protocol version][u8 frame kind][payload]

so ``length = 2 + len(payload)``. ``FrameDecoder`` checks the header as soon as its bytes
arrive: a length under 2 or over ``max_frame_bytes`` is refused before any of the body is read,
then the version, then the kind. Any ``FrameError`` leaves the decoder unusable: the caller
drops the connection and counts it.

Client protocol payloads (requests, responses and events) are JSON objects (``encode_json`` /
``decode_json``) with a size cap.

This is the part of ``raftnode.wire.codec`` that a client needs, split out so that a client imports
neither trio nor ``raftnode.core`` (``raftctl status`` and ``run-command`` start in a new
process each time). ``raftnode.wire.codec`` re-exports every public name here, with the peer message
encoding on top. Standard library only.
"""

from __future__ import annotations

import enum
import json
import math
import struct
from typing import Any, NamedTuple

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_JSON_BYTES",
    "PROTOCOL_VERSION",
    "CodecError",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameKind",
    "decode_json",
    "encode_frame",
    "encode_json",
]

PROTOCOL_VERSION = 3  # 2: Heartbeat (match, match_term), HeartbeatResponse reject hint; 3: ReadIndex, read_round
MAX_FRAME_BYTES = 16 * 1024 * 1024  # the default cap on a frame's length field
#: The default cap on one client-protocol JSON payload: what a frame holds. A node's endpoint
#: applies its own, smaller cap (``cluster.max_command_bytes`` plus headroom).
MAX_JSON_BYTES = MAX_FRAME_BYTES - 2


class CodecError(ValueError):
    """Bytes that do not decode (or a value that cannot be encoded); the message says why."""


class FrameError(CodecError):
    """The byte stream of a connection is not a valid sequence of frames: drop the connection.

    ``frames`` holds the complete frames that preceded the fault in the same ``feed`` call.
    """

    def __init__(self, message: str, frames: list[Frame] | None = None) -> None:
        super().__init__(message)
        self.frames: list[Frame] = frames if frames is not None else []


# --------------------------------------------------------------------------------------------
# Framing


class FrameKind(enum.IntEnum):
    """What a frame's payload is."""

    PEER = 1  # a Raft message (encode_message)
    CLIENT_REQUEST = 2  # a client-protocol request (JSON object)
    CLIENT_RESPONSE = 3  # a client-protocol response (JSON object)
    EVENT = 4  # one event of an events stream (JSON object)
    HELLO = 5  # a peer connection's first frame (encode_hello)
    CHALLENGE = 6  # the answer to a HELLO when peers authenticate (raftnode.transport.handshake)
    PROOF = 7  # the connecting peer's answer to the CHALLENGE


class Frame(NamedTuple):
    kind: FrameKind
    payload: bytes


_FRAME_KINDS: dict[int, FrameKind] = {int(k): k for k in FrameKind}
_FRAME_HEAD = struct.Struct(">IBB")  # length of the rest, version, kind
_FRAME_LEN = struct.Struct(">I")
_FRAME_HEAD_SIZE = _FRAME_HEAD.size  # 6
_FRAME_MIN_LENGTH = 2  # version + kind


def encode_frame(kind: FrameKind | int, payload: bytes, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """One frame: header then ``payload``. Refuses a frame the peer's decoder would refuse."""
    frame_kind = _FRAME_KINDS.get(kind) if isinstance(kind, int) else None
    if frame_kind is None:
        raise FrameError(f"cannot encode a frame of unknown kind {kind!r}")
    try:
        size = memoryview(payload).nbytes
    except TypeError:
        raise FrameError(f"frame payload must be bytes-like, not {type(payload).__name__}") from None
    length = size + _FRAME_MIN_LENGTH
    if length > max_frame_bytes or length > 0xFFFFFFFF:
        raise FrameError(f"{frame_kind.name} frame of {length} bytes exceeds the maximum of {max_frame_bytes}")
    return b"".join((_FRAME_HEAD.pack(length, PROTOCOL_VERSION, frame_kind), payload))


class FrameDecoder:
    """Splits a connection's byte stream into frames, incrementally, across arbitrary splits.

    ``feed(data)`` returns the frames completed by ``data`` (possibly none). Complete frames
    are parsed in place over a memoryview and copied out once each; the unparsed tail is kept
    in a bytearray, trimmed once per call, so many small frames in one call cost O(total).
    A header is validated as soon as its bytes are in: an oversized length is refused before
    any of the body arrives. After a ``FrameError`` every later ``feed`` raises too.
    """

    __slots__ = ("_buf", "_failed", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if not _FRAME_MIN_LENGTH <= max_frame_bytes <= 0xFFFFFFFF:
            raise ValueError(f"max_frame_bytes must be between 2 and 2**32-1, not {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._failed: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview, *, max_frames: int | None = None) -> list[Frame]:
        """The frames completed by ``data``; with ``max_frames``, at most that many, the rest
        kept for the next call (``feed(b"")`` parses it, under the ``max_frame_bytes`` then set)."""
        if self._failed is not None:
            raise FrameError(f"frame decoder is unusable after an earlier error ({self._failed})")
        frames: list[Frame] = []
        buf = self._buf
        try:
            if buf:
                buf += data
                del buf[: self._parse(buf, frames, max_frames)]
            elif type(data) is bytes:  # what a socket read gives: parsed as it is, no view over it
                consumed = self._parse_flat(data, frames, max_frames)
                if consumed < len(data):
                    buf += memoryview(data)[consumed:]
            else:
                # Nothing pending: parse straight out of the caller's buffer, keep only the tail.
                with memoryview(data) as raw, raw.cast("B") as view:
                    consumed = self._parse_flat(view, frames, max_frames)
                    if consumed < len(view):
                        buf += view[consumed:]
        except FrameError as e:
            self._failed = str(e)
            buf.clear()
            e.frames = frames
            raise
        except (TypeError, ValueError) as e:  # data that is not a byte buffer
            self._failed = f"cannot read {type(data).__name__}: {e}"
            buf.clear()
            raise FrameError(self._failed, frames) from None
        return frames

    def _parse(self, data: bytearray | memoryview, frames: list[Frame], max_frames: int | None = None) -> int:
        """Append every complete frame in ``data`` (flat bytes) to ``frames``, at most
        ``max_frames``; return the bytes consumed."""
        with memoryview(data) as view:
            return self._parse_flat(view, frames, max_frames)

    def _parse_flat(self, view: bytes | memoryview, frames: list[Frame], max_frames: int | None = None) -> int:
        """``_parse`` over ``bytes`` or a flat byte view, read in place."""
        limit = self.max_frame_bytes
        kinds = _FRAME_KINDS
        append = frames.append
        unpack_head = _FRAME_HEAD.unpack_from
        pos = 0
        end_of_data = len(view)
        while max_frames is None or len(frames) < max_frames:
            avail = end_of_data - pos
            if avail >= _FRAME_HEAD_SIZE:
                length, version, kind = unpack_head(view, pos)
            elif avail >= 4:
                # Not enough for the whole header: check what is here already.
                (length,) = _FRAME_LEN.unpack_from(view, pos)
                version = view[pos + 4] if avail > 4 else None
                kind = None
            else:
                break
            if length < _FRAME_MIN_LENGTH:
                raise FrameError(
                    f"frame length {length} is too small (a frame holds at least a version and a kind byte)"
                )
            if length > limit:
                raise FrameError(f"frame length {length} exceeds the maximum of {limit} bytes")
            if version is not None and version != PROTOCOL_VERSION:
                raise FrameError(f"unknown protocol version {version} (this node speaks version {PROTOCOL_VERSION})")
            if kind is None:
                break
            frame_kind = kinds.get(kind)
            if frame_kind is None:
                raise FrameError(f"unknown frame kind {kind}")
            end = pos + 4 + length
            if end > end_of_data:
                break
            append(Frame(frame_kind, bytes(view[pos + _FRAME_HEAD_SIZE : end])))
            pos = end
        return pos


def _as_bytes(payload: Any, what: str) -> bytes:
    """``payload`` itself if it is bytes; any other byte buffer copied once into bytes.

    Decoders then read it in place with ``unpack_from`` at offsets, and every slice they take
    (node ids, entry data) is already the ``bytes`` the message holds.
    """
    if type(payload) is bytes:
        return payload
    try:
        with memoryview(payload) as view:
            return view.tobytes()
    except (TypeError, ValueError) as e:
        raise CodecError(f"{what} must be a byte buffer, not {type(payload).__name__} ({e})") from None


# --------------------------------------------------------------------------------------------
# Client protocol: JSON objects


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a JSON number")
    return value


#: Built once: ``json.loads`` with hooks builds a decoder per call (measurable per request).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_parse_float)
#: The decoder's scanner, called directly for an object without surrounding whitespace (every
#: client's request): ``JSONDecoder.decode`` spends half its time on two whitespace regexes.
_SCAN_ONCE = _DECODER.scan_once


def _decode_text(text: str) -> Any:
    """``_DECODER.decode(text)``, through the scanner alone when ``text`` is one object without
    whitespace around it (any other text, or an error, takes the full path and its message)."""
    if text[:1] == "{" and text[-1:] == "}":
        try:
            obj, end = _SCAN_ONCE(text, 0)
        except StopIteration:  # decode says what was expected where
            end = -1
        if end == len(text):
            return obj
    return _DECODER.decode(text)


def encode_json(obj: dict[str, Any], *, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """A client-protocol payload: ``obj`` (a dict) as compact utf-8 JSON, at most ``max_bytes``."""
    if not isinstance(obj, dict):
        raise CodecError(f"a client-protocol payload must be a JSON object (dict), not {type(obj).__name__}")
    try:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise CodecError(f"cannot encode JSON payload: {e}") from None
    if len(data) > max_bytes:
        raise CodecError(f"JSON payload of {len(data)} bytes exceeds the maximum of {max_bytes}")
    return data


def decode_json(payload: bytes | bytearray | memoryview, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object in a client-protocol payload; CodecError for anything else.

    The size cap bounds the work; nesting deeper than the interpreter's recursion limit is
    refused by json itself (RecursionError, reported as CodecError).
    """
    buf = _as_bytes(payload, "a JSON payload")
    if len(buf) > max_bytes:
        raise CodecError(f"JSON payload of {len(buf)} bytes exceeds the maximum of {max_bytes}")
    try:
        text = str(buf, "utf-8")
        obj = _decode_text(text)
    except UnicodeDecodeError as e:
        raise CodecError(f"JSON payload is not valid utf-8 ({e.reason} at byte {e.start})") from None
    except (ValueError, RecursionError, TypeError) as e:
        raise CodecError(f"invalid JSON payload: {e}") from None
    if not isinstance(obj, dict):
        raise CodecError(f"a client-protocol payload must be a JSON object, not {type(obj).__name__}")
    return obj
