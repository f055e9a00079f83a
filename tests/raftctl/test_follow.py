"""Following the nodes' events while the membership changes (``raftctl.follow``), as both
``raftctl events --follow`` (``cluster.follow_events``) and ``raftctl watch`` (``Watcher``) do:

- a node the cluster file names only after the follow began is subscribed to, and its events
  come out;
- the subscription of a node the file no longer names ends and is not tried again;
- copies of an event are dropped, remembering only the last ``RECENT_KEYS`` keys.

The nodes are fakes on loopback (``tests/fake_nodes.py``) and the file is rewritten with the
functions add-node and remove-node use, so time is real; every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from raftctl import cluster, dashboard, follow
from raftctl.clusterfile import add_node_to_file, remove_node_from_file
from raftnode.config import Address, ClusterConfig, load_config

from ..fake_nodes import FakeCluster, fake_cluster, status_document

#: Seconds any one step may take before the test fails.
STEP = 5.0
#: Longer than a subscriber waits before it subscribes again (Watcher's: 0.5 s).
RETRY_WINDOW = 0.8

Seen = list[dict[str, Any]]


def node_event(node_id: str, detail: str) -> dict[str, Any]:
    """An event as a node streams it (``NodeEvent.to_dict()``)."""
    return {"time": time.time(), "node": node_id, "kind": "role", "detail": detail}


def answering(history: tuple[dict[str, Any], ...] = ()) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """A fake node: ``status`` says follower, ``recent_events`` gives ``history``, ``events`` subscribes."""

    def answer(node_id: str, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("op") == "status":
            return status_document(node_id)
        if request.get("op") == "recent_events":
            return {"ok": True, "events": list(history)}
        return {"ok": True}

    return answer


async def follow_events(config: ClusterConfig, seen: Seen) -> None:
    await cluster.follow_events(config, seen.append, history=False, reconnect_interval=0.05, reload_interval=0.05)


async def watch(config: ClusterConfig, seen: Seen) -> None:
    await dashboard.Watcher(config, interval=0.05, on_event=seen.append).run()


Follower = Callable[[ClusterConfig, Seen], Awaitable[None]]
BOTH = pytest.mark.parametrize("run", [follow_events, watch], ids=["events-follow", "watch"])


@asynccontextmanager
async def following(run: Follower, path: Path) -> AsyncIterator[Seen]:
    """``run`` follows the cluster of ``path`` (read now) in the background; yields what it emits."""
    seen: Seen = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, load_config(path), seen)
        yield seen
        nursery.cancel_scope.cancel()


async def until(check: Callable[[], bool]) -> None:
    with trio.fail_after(STEP):
        while not check():
            await trio.sleep(0.01)


async def comes_out(fake: FakeCluster, seen: Seen, node_id: str, detail: str) -> None:
    """``node_id`` streams an event (to one subscriber); wait until the follower emits it."""
    assert fake.push(node_id, node_event(node_id, detail)) == 1
    await until(lambda: any(e["node"] == node_id and e["detail"] == detail for e in seen))


def add(path: Path, fake: FakeCluster, node_id: str) -> None:
    """What ``raftctl add-node`` does to the cluster file."""
    add_node_to_file(path, node_id, Address("127.0.0.1", 9), Address("127.0.0.1", fake.ports[node_id]))


@BOTH
@pytest.mark.trio
async def test_a_node_added_to_the_cluster_file_after_the_follow_began_is_followed(tmp_path: Path, run: Follower) -> None:
    with fake_cluster(answering(), ("n1", "n2")) as fake:
        path = fake.cluster_file(tmp_path / "cluster.toml", ids=("n1",))
        async with following(run, path) as seen:
            await until(lambda: fake.subscribers("n1") == 1)
            await comes_out(fake, seen, "n1", "before the change")
            assert fake.ops("events") == ["n1"]

            add(path, fake, "n2")
            await until(lambda: fake.subscribers("n2") == 1)
            await comes_out(fake, seen, "n2", "the new node speaks")
            await comes_out(fake, seen, "n1", "the old one too")
        assert fake.ops("events") == ["n1", "n2"], "one subscription each; n1's was left alone"


@BOTH
@pytest.mark.trio
async def test_the_subscription_of_a_node_removed_from_the_cluster_file_ends(tmp_path: Path, run: Follower) -> None:
    with fake_cluster(answering(), ("n1", "n2")) as fake:
        path = fake.cluster_file(tmp_path / "cluster.toml")
        async with following(run, path) as seen:
            await until(lambda: fake.subscribers("n1") == 1 and fake.subscribers("n2") == 1)
            await comes_out(fake, seen, "n2", "still a member")

            assert remove_node_from_file(path, "n2")  # what `raftctl remove-node n2` does last
            await until(lambda: fake.subscribers("n2") == 0)
            await trio.sleep(RETRY_WINDOW)  # a subscriber still running would have subscribed again
            assert fake.subscribers("n2") == 0 and fake.ops("events").count("n2") == 1
            await comes_out(fake, seen, "n1", "n1 goes on")


@BOTH
@pytest.mark.trio
async def test_copies_are_dropped_among_the_recent_keys_only(tmp_path: Path, run: Follower, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "RECENT_KEYS", 2)
    with fake_cluster(answering(), ("n1",)) as fake:
        path = fake.cluster_file(tmp_path / "cluster.toml")
        async with following(run, path) as seen:
            await until(lambda: fake.subscribers("n1") == 1)
            a, b, c = (node_event("n1", detail) for detail in "abc")  # since the follow began
            for event in (a, a, b, c, a):  # the second a is a copy; the third comes 2 keys later
                fake.push("n1", event)
            await comes_out(fake, seen, "n1", "last")
        # (watch's poller may add "died"/"returned" for n1 when a status answer is late on a loaded machine)
        assert [e["detail"] for e in seen if e["node"] == "n1" and e["kind"] == "role"] == ["a", "b", "c", "a", "last"]


async def with_history(config: ClusterConfig, seen: Seen) -> None:
    await cluster.follow_events(config, seen.append, reconnect_interval=0.05)


@pytest.mark.trio
async def test_events_follow_gives_the_history_first_and_drops_its_replay(tmp_path: Path) -> None:
    old = node_event("n1", "from before")
    with fake_cluster(answering((old,)), ("n1",)) as fake:
        path = fake.cluster_file(tmp_path / "cluster.toml")
        async with following(with_history, path) as seen:
            await until(lambda: fake.subscribers("n1") == 1)
            fake.push("n1", old)
            await comes_out(fake, seen, "n1", "new")
        assert [e["detail"] for e in seen] == ["from before", "new"]


def test_recent_keys_remember_only_the_last_ones() -> None:
    keys = follow.RecentKeys(3)
    assert [keys.add(k) for k in "abacd"] == [True, True, False, True, True]
    assert len(keys) == 3 and "a" not in keys and "d" in keys
    for k in range(10_000):
        keys.add(k)
    assert len(keys) == 3 and 9_999 in keys and 0 not in keys
    assert follow.RecentKeys().size == follow.RECENT_KEYS
