"""The node's event bus: recent events bounded, handlers inline, subscribers that never slow the node."""

from __future__ import annotations

import trio

from raftnode.node.eventbus import RECENT_EVENTS, EventBus


def test_a_subscriber_gets_the_recent_events_that_fit_then_new_ones_and_a_full_one_loses_them_counted() -> None:
    stats = {"events_dropped": 0}
    bus = EventBus("n1", stats)
    seen: list[str] = []
    bus.add_handler(lambda event: seen.append(event.detail))
    for i in range(RECENT_EVENTS + 5):
        bus.emit("tick", str(i))
    assert len(bus.recent()) == RECENT_EVENTS and bus.recent()[0].detail == "5"  # bounded, oldest gone
    small = bus.subscribe(max_buffer=3)  # fewer slots than recent events: the newest three, no error
    assert [small.receive_nowait().detail for _ in range(3)] == [str(RECENT_EVENTS + 2), str(RECENT_EVENTS + 3),
                                                                 str(RECENT_EVENTS + 4)]
    for i in range(5):
        bus.emit("after", f"a{i}")
    assert [small.receive_nowait().detail for _ in range(3)] == ["a0", "a1", "a2"]
    assert stats["events_dropped"] == 2  # a3 and a4 found it full: lost and counted, the bus went on
    assert seen[-1] == "a4" and len(seen) == RECENT_EVENTS + 10  # handlers see everything
    bus.close()
    try:
        small.receive_nowait()
        raise AssertionError("the stream should have ended")
    except trio.EndOfChannel:
        pass
