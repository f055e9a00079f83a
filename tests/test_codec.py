"""raftnode.wire.codec: frames, peer messages, HELLO and client JSON payloads.

The claims: every Raft message round-trips exactly; the peer encoding is canonical (any payload
that decodes re-encodes to the same bytes); bad bytes from a peer only ever raise CodecError
(FrameError for the stream), naming what is wrong; the frame decoder gives the same result for
any split of the stream and refuses an oversized frame before its body arrives.
"""

from __future__ import annotations

import itertools
import json
import struct
from dataclasses import fields
from typing import Any, get_type_hints

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftnode.core.messages import (
    ALL_MESSAGE_TYPES,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    ReadIndex,
    ReadIndexResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from raftnode.core.quorum import Configuration
from raftnode.wire.codec import (
    MAX_FRAME_BYTES,
    MESSAGE_TYPE_CODES,
    PROTOCOL_VERSION,
    CodecError,
    Frame,
    FrameDecoder,
    FrameError,
    FrameKind,
    Hello,
    decode_hello,
    decode_json,
    decode_message,
    encode_frame,
    encode_hello,
    encode_json,
    encode_message,
    encode_peer_frame,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U64_MAX = 2**64 - 1
MAX_WIRE_NUMBER = 2**63 - 1

# --------------------------------------------------------------------------------------------
# Strategies, derived from the message dataclasses' type hints so that a field added to
# messages.py is generated here too (and fails the round trip until the codec carries it).

u64 = st.integers(min_value=0, max_value=MAX_WIRE_NUMBER)  # what a peer may send: terms and indexes
node_ids = st.text(st.characters(exclude_categories=("Cs",)), max_size=16)
entries = st.lists(
    st.builds(Entry, term=u64, index=u64, data=st.binary(max_size=48), kind=st.sampled_from(EntryKind)),
    max_size=12,
).map(tuple)
configurations = st.builds(
    lambda voters, learners, contexts: Configuration(frozenset(voters), frozenset(learners) - frozenset(voters),
                                                     {n: contexts for n in voters}),
    st.lists(node_ids.filter(bool), max_size=5), st.lists(node_ids.filter(bool), max_size=2), node_ids,
)
metas = st.builds(SnapshotMeta, index=u64, term=u64, configuration=st.none() | configurations)


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    if hint is int:
        return u64
    if hint is str:
        return node_ids
    if hint is bool:
        return st.booleans()
    if hint is bytes:
        return st.binary(max_size=200)
    if hint == (int | None):
        return st.none() | u64
    if hint == tuple[Entry, ...]:
        return entries
    if hint == tuple[int, ...]:
        return st.lists(u64, max_size=12).map(tuple)
    if hint is SnapshotMeta:
        return metas
    raise AssertionError(f"no strategy for a message field of type {hint!r}: teach the codec and this test")


def message_strategy(cls: type[Message]) -> st.SearchStrategy[Message]:
    hints = get_type_hints(cls)
    return st.builds(cls, **{f.name: strategy_for(hints[f.name]) for f in fields(cls)})


messages = st.one_of([message_strategy(cls) for cls in ALL_MESSAGE_TYPES])


def assert_round_trips(m: Message) -> bytes:
    payload = encode_message(m)
    decoded = decode_message(payload)
    assert type(decoded) is type(m)
    assert decoded == m
    for e in getattr(decoded, "entries", ()):
        assert type(e) is Entry and type(e.kind) is EntryKind and type(e.data) is bytes
    assert encode_message(decoded) == payload
    return payload


def ae(entries: tuple[Entry, ...] = (), **kw: Any) -> AppendEntries:
    base = {"term": 3, "src": "n1", "dst": "n2", "prev_index": 10, "prev_term": 2, "entries": entries, "commit": 9}
    return AppendEntries(**(base | kw))


# One hand-written value of every message type, with edge values.
EXAMPLES: list[Message] = [
    RequestVote(term=1, src="n1", dst="n2", last_log_index=0, last_log_term=0),
    RequestVote(term=MAX_WIRE_NUMBER, src="n1", dst="n2", last_log_index=MAX_WIRE_NUMBER, last_log_term=7, pre_vote=True, transfer=True),
    RequestVoteResponse(term=2, src="n2", dst="n1", granted=True, pre_vote=True),
    RequestVoteResponse(term=2, src="n2", dst="n1", granted=False),
    ae(),
    ae((Entry(3, 11, b"incr 1"), Entry(3, 12, b"", EntryKind.NOOP))),
    ae((Entry(3, 11, bytes(range(256)) * 4096),)),  # 1 MiB of data
    ae(tuple(Entry(3, 11 + i, b"x" * 16) for i in range(2000))),
    AppendEntriesResponse(term=4, src="n2", dst="n1", success=True, index=12),
    AppendEntriesResponse(term=4, src="n2", dst="n1", success=False, index=12, conflict_index=5, conflict_term=None),
    AppendEntriesResponse(term=4, src="n2", dst="n1", success=False, index=12, conflict_index=5, conflict_term=0),
    AppendEntriesResponse(term=4, src="n2", dst="n1", success=False, index=12, conflict_index=5, conflict_term=3),
    Heartbeat(term=5, src="nœud-1", dst="节点二", commit=3),
    Heartbeat(term=5, src="n1", dst="n2", commit=3, match=7, match_term=4),
    HeartbeatResponse(term=5, src="🦆", dst=""),
    HeartbeatResponse(term=5, src="n2", dst="n1", reject=True, last_index=2),
    Heartbeat(term=5, src="n1", dst="n2", commit=3, read_round=MAX_WIRE_NUMBER),
    HeartbeatResponse(term=5, src="n2", dst="n1", read_round=7),
    ReadIndex(term=5, src="n2", dst="n1", requests=()),
    ReadIndex(term=5, src="n2", dst="n1", requests=tuple(range(1000)) + (U64_MAX,)),
    ReadIndexResponse(term=5, src="n1", dst="n2", requests=(1, 2, 3), index=41, granted=True),
    ReadIndexResponse(term=5, src="n1", dst="n2", requests=(9,), index=0, granted=False),
    TimeoutNow(term=6, src="n1", dst="n3"),
    InstallSnapshot(
        term=7, src="n1", dst="n2", meta=SnapshotMeta(index=100, term=6, configuration=Configuration(frozenset({"n1", "n2", "n3"}))), offset=0,
        data=b"", done=False,
    ),
    InstallSnapshot(
        term=7, src="n1", dst="n2", meta=SnapshotMeta(index=100, term=6), offset=65536, data=b"\x00" * 70000,
        done=True,
    ),
    InstallSnapshotResponse(term=7, src="n2", dst="n1", index=100, offset=65536),
    RequestVote(term=1, src="x" * 255, dst="é" * 127, last_log_index=1, last_log_term=1),  # ids at the 255-byte cap
]


def test_every_message_type_has_a_distinct_stable_wire_code() -> None:
    assert set(MESSAGE_TYPE_CODES) == set(ALL_MESSAGE_TYPES)
    assert sorted(MESSAGE_TYPE_CODES.values()) == list(range(1, len(ALL_MESSAGE_TYPES) + 1))
    assert {type(m) for m in EXAMPLES} == set(ALL_MESSAGE_TYPES)


@pytest.mark.parametrize("m", EXAMPLES, ids=lambda m: type(m).__name__)
def test_each_message_round_trips_exactly(m: Message) -> None:
    assert_round_trips(m)


def test_the_wire_format_is_pinned() -> None:
    """Changing these bytes is a protocol change: bump PROTOCOL_VERSION."""
    assert encode_message(Heartbeat(term=2, src="a", dst="bc", commit=1, match=3, match_term=2, read_round=4)).hex() == (
        "05" "0000000000000002" "0000000000000001" "0000000000000003" "0000000000000002" "0000000000000004" "0161" "026263"
    )
    assert encode_message(ReadIndexResponse(term=2, src="a", dst="b", requests=(5, 6), index=3, granted=True)).hex() == (
        "0b" "0000000000000002" "0000000000000003" "01" "00000002" "0161" "0162" "0000000000000005" "0000000000000006"
    )
    assert encode_message(ae((Entry(3, 11, b"hi", EntryKind.NOOP),), src="a", dst="b")).hex() == (
        "03" "0000000000000003" "000000000000000a" "0000000000000002" "0000000000000009" "00000001" "0161" "0162"
        "0000000000000003" "000000000000000b" "01" "00000002" "6869"
    )
    assert encode_frame(FrameKind.PEER, b"xy") == b"\x00\x00\x00\x04\x03\x01xy"
    assert PROTOCOL_VERSION == 3


def test_an_append_entries_entry_costs_21_bytes_plus_its_data() -> None:
    sizes = [len(encode_message(ae(tuple(Entry(3, i, b"x" * 16) for i in range(n))))) for n in (0, 1, 64)]
    assert sizes[1] - sizes[0] == 37 and sizes[2] - sizes[0] == 64 * 37


@FAST
@given(messages)
def test_random_messages_round_trip_exactly(m: Message) -> None:
    assert_round_trips(m)


@FAST
@given(st.binary(max_size=120))
def test_arbitrary_payloads_raise_only_codec_error_or_decode_canonically(payload: bytes) -> None:
    try:
        m = decode_message(payload)
    except CodecError:
        return
    assert isinstance(m, Message) and encode_message(m) == payload


@FAST
@given(messages, st.data())
def test_mutated_encodings_raise_only_codec_error_or_decode_canonically(m: Message, data: st.DataObject) -> None:
    payload = bytearray(encode_message(m))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, len(payload)))
        if op == "flip" and at < len(payload):
            payload[at] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del payload[at:]
        elif op == "insert":
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=9))
        elif op == "delete":
            del payload[at : at + data.draw(st.integers(1, 9))]
    try:
        decoded = decode_message(bytes(payload))
    except CodecError:
        return
    assert encode_message(decoded) == bytes(payload)


@pytest.mark.parametrize("m", EXAMPLES[:6] + EXAMPLES[8:], ids=lambda m: type(m).__name__)
def test_every_truncation_is_a_codec_error_naming_the_type(m: Message) -> None:
    payload = encode_message(m)
    step = max(1, len(payload) // 400)
    for cut in range(0, len(payload), step):
        with pytest.raises(CodecError) as info:
            decode_message(payload[:cut])
        if cut:
            assert type(m).__name__ in str(info.value)


def test_memoryview_and_bytearray_payloads_decode_too() -> None:
    m = ae((Entry(3, 11, b"incr 1"),))
    payload = encode_message(m)
    assert decode_message(memoryview(payload)) == m
    assert decode_message(bytearray(payload)) == m
    assert decode_message(memoryview(b"\xff" + payload)[1:]) == m


def expect_error(payload: bytes, *fragments: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_message(payload)
    assert type(info.value) is CodecError
    for fragment in fragments:
        assert fragment in str(info.value)


def test_decode_errors_name_the_type_and_the_field() -> None:
    hb = encode_message(Heartbeat(term=2, src="a", dst="b", commit=1))
    expect_error(b"", "empty")
    expect_error(b"\x63" + hb[1:], "unknown message type byte 99")
    expect_error(hb + b"\x00", "Heartbeat", "1 trailing bytes")
    expect_error(hb[:12], "Heartbeat.commit", "truncated")
    expect_error(hb[:-1], "Heartbeat.dst", "truncated")
    expect_error(hb[:36], "Heartbeat.read_round", "truncated")
    expect_error(hb[:41] + b"\x01\xff" + hb[43:], "Heartbeat.src", "utf-8")

    ri = encode_message(ReadIndex(term=2, src="a", dst="b", requests=(1, 2)))
    expect_error(ri[:-1], "ReadIndex.requests", "count 2")
    expect_error(ri + b"\x00" * 8, "ReadIndex", "8 trailing bytes")
    rir = bytearray(encode_message(ReadIndexResponse(term=2, src="a", dst="b", requests=(), index=1, granted=True)))
    rir[17] = 2
    expect_error(bytes(rir), "ReadIndexResponse.granted", "0 or 1")

    rvr = bytearray(encode_message(RequestVoteResponse(term=2, src="a", dst="b", granted=True)))
    rvr[9] = 2
    expect_error(bytes(rvr), "RequestVoteResponse.granted", "0 or 1")

    aer = bytearray(encode_message(AppendEntriesResponse(term=2, src="a", dst="b", success=False, index=3)))
    aer[-13] = 7  # conflict_term.present (then 8 bytes of conflict_term and 4 of ids)
    expect_error(bytes(aer), "AppendEntriesResponse.conflict_term.present")
    aer[-13] = 0
    aer[-5] = 1  # a value for an absent conflict_term
    expect_error(bytes(aer), "AppendEntriesResponse.conflict_term", "absent")

    good = encode_message(ae((Entry(3, 11, b"hi"), Entry(3, 12, b"yo"))))
    header = 1 + 8 * 4 + 4 + 3 + 3
    bad_kind = bytearray(good)
    bad_kind[header + 23 + 16] = 9  # second entry's kind
    expect_error(bytes(bad_kind), "AppendEntries.entries[1].kind", "unknown entry kind 9")
    expect_error(good[:-1], "AppendEntries.entries[1].data", "truncated")
    expect_error(good[: header + 23 + 5], "AppendEntries.entries", "count 2 is more than the 28 remaining bytes")
    big_first = encode_message(ae((Entry(3, 11, b"h" * 100), Entry(3, 12, b"yo"))))
    expect_error(big_first[: header + 121 + 5], "AppendEntries.entries[1]: payload truncated")
    huge = bytearray(good)
    huge[header - 10 : header - 6] = struct.pack(">I", 0xFFFFFFFF)
    expect_error(bytes(huge), "AppendEntries.entries", "count 4294967295")
    long_data = bytearray(good)
    long_data[header + 17 : header + 21] = struct.pack(">I", 0xFFFFFFFF)
    expect_error(bytes(long_data), "AppendEntries.entries[0].data", "truncated")

    snap = encode_message(
        InstallSnapshot(term=1, src="a", dst="b", meta=SnapshotMeta(1, 1, Configuration(frozenset("a"))), offset=0,
                        data=b"z", done=True)
    )
    length_at = 1 + 8 * 4 + 1
    too_long = snap[:length_at] + b"\xff\xff\xff\xff" + snap[length_at + 4 :]
    expect_error(too_long, "InstallSnapshot.meta.configuration", "truncated")
    ids_end = length_at + 4 + 2 + 2
    garbled = snap[:ids_end] + b"x" + snap[ids_end + 1 :]
    expect_error(garbled, "InstallSnapshot.meta.configuration", "bad configuration entry")
    expect_error(snap[:-1], "InstallSnapshot.data", "truncated")
    expect_error(snap[:-5], "InstallSnapshot.data", "truncated")
    expect_error(object(), "byte buffer")  # type: ignore[arg-type]


def test_encode_errors_are_codec_errors_naming_the_field() -> None:
    cases = [
        (ae(term=-1), "term -1"),
        (ae(commit=2**64), "commit"),
        (ae(src="x" * 256), "src is 256 bytes"),
        (ae(dst=7), "dst must be a str"),  # type: ignore[arg-type]
        (ae(src="\ud800"), "src is not encodable"),
        (ae((Entry(1, 2, b"", 7),)), "entries[0].kind"),  # type: ignore[arg-type]
        (ae((Entry(1, 2, "text"),)), "entries[0].data must be bytes"),  # type: ignore[arg-type]
        (ae((Entry(-1, 2, b""),)), "entries[0]"),
        (ae(((1, 2),)), "entries[0] must be an Entry"),  # type: ignore[arg-type]
        (AppendEntriesResponse(term=1, src="a", dst="b", success=False, index=1, conflict_term=-3), "conflict_term"),
        (
            InstallSnapshot(term=1, src="a", dst="b", meta=SnapshotMeta(1, 1, ("a",)), offset=0, data=b"", done=True),  # type: ignore[arg-type]
            "configuration must be a Configuration",
        ),
        (
            InstallSnapshot(term=1, src="a", dst="b", meta=(1, 1), offset=0, data=b"", done=True),  # type: ignore[arg-type]
            "meta must be a SnapshotMeta",
        ),
        (ReadIndex(term=1, src="a", dst="b", requests=(3, -1)), "requests [1] -1 is outside"),
        (ReadIndex(term=1, src="a", dst="b", requests=[1]), "requests must be a tuple"),  # type: ignore[arg-type]
        (ReadIndexResponse(term=1, src="a", dst="b", requests=(), index=-2, granted=True), "index -2"),
        (Heartbeat(term=1, src="a", dst="b", commit=0, read_round=2**64), "read_round"),
    ]
    for m, fragment in cases:
        with pytest.raises(CodecError) as info:
            encode_message(m)
        assert type(m).__name__ in str(info.value) and fragment in str(info.value), str(info.value)
    with pytest.raises(CodecError, match="not a Raft message"):
        encode_message("hello")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Frames

ALL_KINDS = list(FrameKind)
frames = st.builds(Frame, st.sampled_from(ALL_KINDS), st.binary(max_size=40))


def decode_in_chunks(data: bytes, cuts: list[int], max_frame_bytes: int = MAX_FRAME_BYTES) -> tuple[list[Frame], str | None]:
    """Feed ``data`` split at ``cuts``; the frames out and the error message, if any."""
    decoder = FrameDecoder(max_frame_bytes)
    out: list[Frame] = []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    for a, b in itertools.pairwise(bounds):
        try:
            got = decoder.feed(data[a:b])
        except FrameError as e:
            out.extend(e.frames)
            with pytest.raises(FrameError, match="unusable"):
                decoder.feed(b"")
            return out, str(e)
        assert all(type(f) is Frame and type(f.kind) is FrameKind and type(f.payload) is bytes for f in got)
        out.extend(got)
    return out, None


@FAST
@given(st.lists(frames, max_size=8), st.lists(st.integers(0, 400), max_size=10))
def test_valid_frames_decode_identically_under_any_split(fs: list[Frame], cuts: list[int]) -> None:
    data = b"".join(encode_frame(k, p) for k, p in fs)
    assert decode_in_chunks(data, cuts) == (fs, None)


def test_valid_frames_split_at_every_position_decode_identically() -> None:
    fs = [Frame(FrameKind.HELLO, encode_hello("n1", "prod")), Frame(FrameKind.PEER, b""),
          Frame(FrameKind.PEER, encode_message(EXAMPLES[5])), Frame(FrameKind.EVENT, b"{}")]
    data = b"".join(encode_frame(k, p) for k, p in fs)
    for cut in range(len(data) + 1):
        assert decode_in_chunks(data, [cut]) == (fs, None)
    assert decode_in_chunks(data, list(range(len(data)))) == (fs, None)  # one byte at a time


stream_pieces = st.one_of(frames.map(lambda f: encode_frame(*f)), st.binary(min_size=1, max_size=8))


@FAST
@given(st.lists(stream_pieces, max_size=6), st.lists(st.integers(0, 300), max_size=8), st.sampled_from([2, 16, 64, MAX_FRAME_BYTES]))
def test_arbitrary_streams_yield_frames_or_frame_error_the_same_under_any_split(
    pieces: list[bytes], cuts: list[int], limit: int
) -> None:
    data = b"".join(pieces)
    whole = decode_in_chunks(data, [], limit)  # raises nothing but FrameError (anything else fails the test)
    assert decode_in_chunks(data, cuts, limit) == whole


@FAST
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_arbitrary_bytes_yield_frames_or_frame_error(data: bytes, cuts: list[int]) -> None:
    assert decode_in_chunks(data, cuts) == decode_in_chunks(data, [])


def test_many_small_frames_in_one_feed() -> None:
    one = encode_frame(FrameKind.PEER, encode_message(Heartbeat(term=1, src="n1", dst="n2", commit=0)))
    decoder = FrameDecoder()
    got = decoder.feed(one * 20000 + one[:3])
    assert len(got) == 20000 and decoder.buffered == 3
    assert decoder.feed(one[3:] + one) == [got[0], got[0]] and decoder.buffered == 0


def test_an_oversized_frame_is_refused_before_its_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    assert decoder.feed(struct.pack(">I", 1024)[:3]) == []
    with pytest.raises(FrameError, match="length 1025 exceeds the maximum of 1024"):
        FrameDecoder(max_frame_bytes=1024).feed(struct.pack(">I", 1025))
    with pytest.raises(FrameError, match="exceeds the maximum"):
        FrameDecoder().feed(struct.pack(">I", MAX_FRAME_BYTES + 1) + b"\x01\x01")
    # exactly at the limit is fine
    frame = encode_frame(FrameKind.PEER, b"p" * 1022, max_frame_bytes=1024)
    assert FrameDecoder(max_frame_bytes=1024).feed(frame) == [Frame(FrameKind.PEER, b"p" * 1022)]
    with pytest.raises(FrameError, match="exceeds"):
        encode_frame(FrameKind.PEER, b"p" * 1023, max_frame_bytes=1024)


def test_unknown_version_unknown_kind_and_short_length_are_refused_from_the_header() -> None:
    with pytest.raises(FrameError, match="unknown protocol version 99"):
        FrameDecoder().feed(struct.pack(">IB", 1000, 99))  # refused before kind or body
    with pytest.raises(FrameError, match="unknown protocol version 2"):
        FrameDecoder().feed(struct.pack(">IB", 1000, 2))  # before ReadIndex: a mixed cluster says so
    with pytest.raises(FrameError, match="unknown protocol version 0"):
        FrameDecoder().feed(b"\x00\x00\x00\x02\x00\x01")
    with pytest.raises(FrameError, match="unknown frame kind 9"):
        FrameDecoder().feed(struct.pack(">IBB", 1000, PROTOCOL_VERSION, 9))
    for length in (0, 1):
        with pytest.raises(FrameError, match=f"frame length {length} is too small"):
            FrameDecoder().feed(struct.pack(">I", length))


def test_frames_before_a_fault_are_handed_over_and_the_decoder_stays_failed() -> None:
    good = encode_frame(FrameKind.PEER, b"ok")
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as info:
        decoder.feed(good + b"\x00\x00\x00\x05\x07garbage")
    assert info.value.frames == [Frame(FrameKind.PEER, b"ok")] and "version 7" in str(info.value)
    with pytest.raises(FrameError, match="unusable"):
        decoder.feed(good)
    with pytest.raises(FrameError):
        FrameDecoder().feed("text")  # type: ignore[arg-type]
    assert FrameDecoder().feed(memoryview(good)) == [Frame(FrameKind.PEER, b"ok")]
    assert FrameDecoder().feed(bytearray(good)) == [Frame(FrameKind.PEER, b"ok")]


def test_encode_frame_refuses_unknown_kinds() -> None:
    for kind in (0, 8, "PEER", None):
        with pytest.raises(FrameError, match="unknown kind"):
            encode_frame(kind, b"")  # type: ignore[arg-type]
    assert encode_frame(1, b"") == encode_frame(FrameKind.PEER, b"")


# --------------------------------------------------------------------------------------------
# HELLO and client JSON


def test_hello_round_trips_and_rejects_garbage() -> None:
    assert decode_hello(encode_hello("nœud-1", "prod")) == Hello("nœud-1", "prod")
    assert decode_hello(encode_hello("", "")) == Hello("", "")
    for bad in (b"", b"\x02n1", b"\x02n1\x04pro", b"\x02n1\x01p!", b"\x01\xff\x00"):
        with pytest.raises(CodecError, match="Hello"):
            decode_hello(bad)
    with pytest.raises(CodecError, match="cluster"):
        encode_hello("n1", "c" * 256)


def test_json_payloads_round_trip() -> None:
    obj = {"op": "run_command", "command": "incr 1", "timeout": 1.5, "nested": {"a": [1, None, True]}, "ü": "ß"}
    payload = encode_json(obj)
    assert decode_json(payload) == obj and decode_json(memoryview(payload)) == obj
    assert json.loads(payload) == obj


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"", "invalid JSON"),
        (b"{", "invalid JSON"),
        (b"[1, 2]", "not list"),
        (b"3", "not int"),
        (b'"s"', "not str"),
        (b"null", "not NoneType"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": 1e999}', "out of range"),
        (b'{"a": "\xff"}', "utf-8"),
        (b"[" * 200_000 + b"]" * 200_000, "invalid JSON"),  # nesting abuse: json's recursion guard
        (b'{"a": ' + b"9" * 5000 + b"}", "invalid JSON"),  # int digit-count abuse
    ],
)
def test_json_payload_abuse_is_a_codec_error(payload: bytes, fragment: str) -> None:
    with pytest.raises(CodecError, match=fragment):
        decode_json(payload)


def test_json_size_cap() -> None:
    with pytest.raises(CodecError, match="exceeds the maximum of 100"):
        decode_json(b'{"a": "' + b"x" * 100 + b'"}', max_bytes=100)
    with pytest.raises(CodecError, match="exceeds the maximum of 100"):
        encode_json({"a": "x" * 100}, max_bytes=100)
    with pytest.raises(CodecError, match="must be a JSON object"):
        encode_json([1])  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="cannot encode"):
        encode_json({"a": object()})
    with pytest.raises(CodecError, match="cannot encode"):
        encode_json({"a": float("nan")})


@FAST
@given(st.binary(max_size=64))
def test_arbitrary_json_payloads_raise_only_codec_error(payload: bytes) -> None:
    try:
        assert isinstance(decode_json(payload), dict)
    except CodecError:
        pass



def test_the_codec_uses_only_the_standard_library_and_raftnode_core() -> None:
    import ast
    import sys
    from pathlib import Path

    import raftnode.wire.codec
    import raftnode.wire.framing

    def imports(module: object) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))  # type: ignore[attr-defined]
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        return imported | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}

    allowed = ("raftnode.core", "raftnode.wire.framing")
    bad = {n for n in imports(raftnode.wire.codec) if n.split(".")[0] not in sys.stdlib_module_names and not n.startswith(allowed)}
    assert not bad, f"raftnode/wire/codec.py imports {bad}: it must stay stdlib-only (no trio)"
    # The framing half is what clients import: the standard library only, not even raftnode.core.
    bad = {n for n in imports(raftnode.wire.framing) if n.split(".")[0] not in sys.stdlib_module_names}
    assert not bad, f"raftnode/wire/framing.py imports {bad}: it must stay stdlib-only"


def test_the_codec_re_exports_the_framing_half() -> None:
    import raftnode.wire.codec
    import raftnode.wire.framing

    for name in raftnode.wire.framing.__all__:
        assert getattr(raftnode.wire.codec, name) is getattr(raftnode.wire.framing, name), name
        assert name in raftnode.wire.codec.__all__, name


# --------------------------------------------------------------------------------------------
# Range checks: a term or index a node could not count up from and still encode is malformed


@pytest.mark.parametrize(
    "message",
    [
        RequestVote(term=2**64 - 2, src="n1", dst="n2", last_log_index=0, last_log_term=0),
        RequestVote(term=1, src="n1", dst="n2", last_log_index=MAX_WIRE_NUMBER + 1, last_log_term=0),
        TimeoutNow(term=MAX_WIRE_NUMBER + 1, src="n1", dst="n2"),
        Heartbeat(term=1, src="n1", dst="n2", commit=U64_MAX),
        AppendEntriesResponse(term=1, src="n2", dst="n1", success=True, index=2**63),
        ae((Entry(2**63, 11, b"incr 1"),)),
        ae((Entry(3, U64_MAX, b"incr 1"),)),
    ],
    ids=lambda m: type(m).__name__,
)
def test_a_term_or_index_over_2_63_minus_1_encodes_but_is_malformed_on_decode(message: Message) -> None:
    payload = encode_message(message)  # a node may hold such a value; a peer may not send it
    with pytest.raises(CodecError, match=r"2\*\*63-1"):
        decode_message(payload)
    at_limit = decode_message(encode_message(TimeoutNow(term=MAX_WIRE_NUMBER, src="n1", dst="n2")))
    assert at_limit.term == MAX_WIRE_NUMBER
    assert encode_message(TimeoutNow(term=at_limit.term + 1, src="n1", dst="n2"))  # one more still encodes


def test_a_decoder_told_to_stop_after_one_frame_keeps_the_rest_for_later() -> None:
    first = encode_frame(FrameKind.HELLO, b"h")
    second = encode_frame(FrameKind.PEER, b"p" * 100)
    decoder = FrameDecoder(max_frame_bytes=16)
    assert decoder.feed(first + second, max_frames=1) == [Frame(FrameKind.HELLO, b"h")]
    assert decoder.buffered == len(second)  # not parsed yet, so not yet refused as too long
    decoder.max_frame_bytes = 1024
    assert decoder.feed(b"") == [Frame(FrameKind.PEER, b"p" * 100)]
    with pytest.raises(FrameError, match="exceeds the maximum of 16"):
        FrameDecoder(max_frame_bytes=16).feed(first + second)


@given(messages)
def test_a_peer_frame_in_one_step_is_byte_for_byte_the_framed_message(m: Message) -> None:
    assert encode_peer_frame(m) == encode_frame(FrameKind.PEER, encode_message(m))


def test_a_peer_frame_over_the_limit_is_refused_like_any_frame() -> None:
    m = next(e for e in EXAMPLES if isinstance(e, AppendEntries))
    size = len(encode_message(m)) + 2
    assert encode_peer_frame(m, max_frame_bytes=size)
    with pytest.raises(FrameError, match="exceeds the maximum"):
        encode_peer_frame(m, max_frame_bytes=size - 1)


@FAST
@given(st.lists(frames, min_size=1, max_size=6), st.lists(st.integers(0, 300), max_size=6), st.sampled_from([bytes, bytearray, memoryview]))
def test_bytes_bytearray_and_memoryview_pieces_decode_alike(fs: list[Frame], cuts: list[int], kind: type) -> None:
    data = b"".join(encode_frame(k, p) for k, p in fs)
    decoder = FrameDecoder()
    out: list[Frame] = []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    for a, b in itertools.pairwise(bounds):
        out.extend(decoder.feed(kind(data[a:b])))
    assert out == fs and decoder.buffered == 0
