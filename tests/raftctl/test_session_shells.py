"""raftctl's one session core (``oneshot.SessionCore``) in its two shells: ``QuickSession``
(blocking) and ``cluster.Session`` (trio) see the same cluster the same way, and the core's
``poll`` keeps its deadline on the shell's clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from raftctl import cluster, oneshot
from raftctl.errors import NoLeaderError, UnknownNode
from raftnode.config import load_config

from ..fake_nodes import fake_cluster, status_document


def statuses(leader: str | None) -> Any:
    def handle(node_id: str, request: dict[str, Any]) -> Any:
        role = "leader" if node_id == leader else "follower"
        return status_document(node_id, role=role, leader=leader)

    return handle


def both_shells(config_path: Path, work: Any) -> tuple[Any, Any]:
    """``work(session)`` in the blocking shell, then (awaited) in the trio shell."""
    config = load_config(config_path)

    def outcome(call: Any) -> Any:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - compared below
            return exc

    with oneshot.quick_session(config) as quick:
        blocking = outcome(lambda: work(quick))

    async def in_trio() -> Any:
        async with cluster.session(config) as s:
            try:
                return await work(s)
            except Exception as exc:  # noqa: BLE001 - compared below
                return exc

    return blocking, trio.run(in_trio)


def test_both_shells_resolve_names_alike(tmp_path: Path) -> None:
    with fake_cluster(statuses("n2")) as fake:
        path = fake.cluster_file(tmp_path / "cluster.toml")
        assert both_shells(path, lambda s: s.resolve("leader", timeout=2)) == ("n2", "n2")
        assert both_shells(path, lambda s: s.resolve("follower", timeout=2, exclude=["n1"])) == ("n3", "n3")
        quick, async_ = both_shells(path, lambda s: s.resolve("n7"))
        assert isinstance(quick, UnknownNode) and type(async_) is UnknownNode and str(quick) == str(async_)


def test_both_shells_time_out_alike_when_no_node_leads(tmp_path: Path) -> None:
    with fake_cluster(statuses(None)) as fake:
        path = fake.cluster_file(tmp_path / "cluster.toml")
        quick, async_ = both_shells(path, lambda s: s.resolve("leader", timeout=0.3))
        assert isinstance(quick, NoLeaderError) and type(async_) is NoLeaderError
        assert str(quick) == str(async_) and "no leader within 0.3 s" in str(quick)


def test_poll_takes_a_first_picture_then_waits_on_the_shells_clock() -> None:
    class Config:
        node_ids = ["n1"]
        tls = None  # plain TCP: a picture's floor is 0.1 s

    core = oneshot.SessionCore(Config(), client=None)  # type: ignore[arg-type]
    now = [0.0]
    core.clock = lambda: now[0]
    steps = core.poll_steps(lambda status: status == "good", timeout=1.0, interval=0.25)
    assert steps.send(None) == oneshot.Look(1.0)
    assert steps.send("bad") == oneshot.Wait(0.25)
    now[0] = 0.9
    assert steps.send(None) == oneshot.Look(pytest.approx(0.1))
    assert core.last_status == "bad"
    with pytest.raises(StopIteration) as done:
        steps.send("good")
    assert done.value.value == (True, "good")  # what check said, and the picture
    late = core.poll_steps(lambda status: False, timeout=0.5)
    late.send(None)
    now[0] = 2.0
    with pytest.raises(oneshot.PollTimeout):
        late.send("bad")
