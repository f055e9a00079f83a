"""A leader's AppendEntries to several followers encode their shared entries once
(``codec._EntriesMemo``): every frame still decodes to exactly the message it encodes."""

from __future__ import annotations

from typing import Any

import pytest

from raftnode.core.messages import AppendEntries, Entry, EntryKind
from raftnode.wire import codec


def _append(dst: str, entries: tuple[Entry, ...], prev_index: int = 0) -> AppendEntries:
    return AppendEntries(term=2, src="n1", dst=dst, prev_index=prev_index, prev_term=1, entries=entries, commit=prev_index)


def _round_trips(message: AppendEntries) -> bool:
    frames = codec.FrameDecoder().feed(codec.encode_peer_frame(message))
    return len(frames) == 1 and codec.decode_message(frames[0].payload) == message


def _log(count: int, term: int = 2) -> list[Entry]:
    return [Entry(term, index, f"incr {index}".encode(), EntryKind.COMMAND) for index in range(1, count + 1)]


def test_the_same_entries_sent_to_each_follower_encode_once_and_each_frame_decodes_to_its_own_message() -> None:
    log = _log(50)
    messages = [_append(dst, tuple(log[10:40]), prev_index=10) for dst in ("n2", "n3", "n4", "n5")]
    assert all(_round_trips(m) for m in messages)
    assert codec._ENTRIES_MEMO._entries == tuple(log[10:40])


def test_entries_of_the_same_length_that_differ_anywhere_are_encoded_afresh() -> None:
    log = _log(12)
    first = (*log[:5], log[5])
    other_last = (*log[:5], Entry(2, 6, b"other", EntryKind.NOOP))  # same length and first entries
    equal_but_new = tuple(Entry(*entry) for entry in first)  # equal values, other objects
    for entries in (first, other_last, equal_but_new, tuple(log[6:12])):
        assert _round_trips(_append("n2", entries))


def test_planted_bug_a_memo_that_trusts_length_and_first_entry_sends_the_wrong_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo = codec._EntriesMemo()

    def careless(self: Any, entries: Any) -> bytes:
        last = memo._entries
        if len(entries) == len(last) and entries[0] is last[0]:
            return memo._encoded
        memo._entries, memo._encoded = tuple(entries), codec._enc_entries(entries)
        return memo._encoded

    monkeypatch.setattr(codec._EntriesMemo, "encode", careless)
    log = _log(6)
    assert _round_trips(_append("n2", tuple(log)))
    assert not _round_trips(_append("n3", (*log[:5], Entry(2, 6, b"other", EntryKind.NOOP))))
