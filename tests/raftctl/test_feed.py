"""`watch`'s feed (raftctl.feed): repeats collapse into one counting line, lines stay in time
order whatever order the sources deliver them in, and plain streams print repeats sparingly."""

from __future__ import annotations

import random

from raftctl.feed import Feed, FeedStream, worth_a_line


def event(at: float, kind: str = "pre-vote", detail: str = "pre-vote for term 2", node: str = "n3") -> dict:
    return {"time": at, "node": node, "kind": kind, "detail": detail, "source": "node"}


def test_a_pre_vote_storm_is_one_counting_line_and_faults_stay_in_view() -> None:
    feed = Feed(maxlen=10)
    feed.add(event(0.0, "killed", "process 42 (SIGKILL)", node="n1"))
    feed.add(event(0.1, "leader-change", "leader n1 -> n2 (term 2)", node="n2"))
    for i in range(37):
        line, new = feed.add(event(1.0 + i * 0.2))
        assert new == (i == 0)
    assert [e["kind"] for e in feed] == ["killed", "leader-change", "pre-vote"]
    assert feed[-1]["count"] == 37 and feed[-1]["time"] == 1.0 + 36 * 0.2


def test_a_repeat_after_the_window_starts_a_new_line() -> None:
    feed = Feed(coalesce_seconds=30)
    feed.add(event(0.0))
    _, new = feed.add(event(31.0))
    assert new and len(feed) == 2


def test_lines_are_kept_in_time_order_whatever_the_arrival_order() -> None:
    rng = random.Random(17)
    times = [float(t) for t in range(60)]
    rng.shuffle(times)
    feed = Feed(maxlen=40)
    for at in times:
        feed.add(event(at, "role", f"role change {at}"))
    kept = [e["time"] for e in feed]
    assert kept == sorted(kept) and len(kept) == 40


def test_a_plain_stream_prints_the_first_second_tenth_hundredth_repeat() -> None:
    assert [n for n in range(1, 1001) if worth_a_line(n)] == [1, 2, 10, 100, 1000]


def test_a_stream_prints_a_storm_sparingly_then_its_final_count_when_the_run_ends() -> None:
    stream = FeedStream(Feed(coalesce_seconds=30))
    printed = [stream.offer(event(1.0 + i * 0.2)) for i in range(37)]
    counts = [[r["count"] for r in records] for records in printed]
    assert [c for c in counts if c] == [[1], [2], [10]]
    assert all(r["first"] == 1.0 for records in printed for r in records)
    # A fault 40 s later: the storm's run is over, its final count comes out first, then the fault.
    later = stream.offer(event(48.0, "killed", "process 42 (SIGKILL)", node="n1"))
    assert [(r["kind"], r["count"]) for r in later] == [("pre-vote", 37), ("killed", 1)]
    assert later[0]["time"] == 1.0 + 36 * 0.2 and later[0]["first"] == 1.0
    assert stream.close() == []  # nothing left untold


def test_a_stream_that_ends_tells_the_counts_it_has_not_printed() -> None:
    stream = FeedStream()
    for i in range(5):
        stream.offer(event(float(i)))
    stream.offer(event(5.0, "role", "follower in term 3"))
    assert [(r["kind"], r["count"]) for r in stream.close()] == [("pre-vote", 5)]
    assert stream.close() == []


def test_a_stream_record_is_plain_data_with_a_count_even_the_first() -> None:
    (record,) = FeedStream().offer(event(3.0))
    assert record == {**event(3.0), "count": 1, "first": 3.0}
