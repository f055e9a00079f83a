"""Status records, the leader a majority follows, convergence, and their rendering as text.

Rendering is checked by printing into ``Console(file=io.StringIO(), width=100,
color_system=None)`` and reading the text, as rich's own tests do.
"""

from __future__ import annotations

import dataclasses
import io
import time
from typing import Any

from rich.console import Console

from raftctl import render
from raftctl.dashboard import WatchState, derive_events
from raftctl.model import (
    STATUS_KEYS,
    ClusterStatus,
    NodeRow,
    describe_faults,
    describe_state,
)

NO_FAULTS = {"partitioned_from": [], "delay_ms": 0.0, "jitter_ms": 0.0, "drop_pct": 0.0, "duplicate_pct": 0.0}


def row(node: str, role: str = "follower", *, term: int = 3, leader: str | None = "n1", last: int = 120,
        commit: int | None = None, applied: int | None = None, faults: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None, halted: str | None = None) -> NodeRow:
    return NodeRow(
        id=node, alive=True, pid=4000 + int(node[1:]), role=role, term=term, leader=leader,
        last_index=last, commit_index=last if commit is None else commit,
        applied_index=last if applied is None else applied, snapshot_index=0,
        faults=faults or dict(NO_FAULTS), state=state or {"value": 57}, apply_halted=halted,
    )


def picture(*rows: NodeRow) -> ClusterStatus:
    return ClusterStatus("demo", rows)


def text(renderable: Any, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


HEALTHY = picture(row("n1", "leader"), row("n2"), row("n3"))


# -- the model -------------------------------------------------------------------------------------


def test_status_json_has_exactly_the_contract_keys_and_a_down_node_is_all_null() -> None:
    document = picture(row("n1", "leader"), row("n2"), NodeRow.down("n3")).to_json()
    assert document["cluster"] == "demo" and document["leader"] == "n1"
    assert [list(n) for n in document["nodes"]] == [list(STATUS_KEYS)] * 3
    assert document["nodes"][0]["state"] == {"value": 57}
    assert document["nodes"][2] == {
        "id": "n3", "alive": False, "pid": None, "role": None, "term": None, "leader": None,
        "last_index": None, "commit_index": None, "applied_index": None, "snapshot_index": None,
        "faults": None, "state": None,
    }


def test_the_response_id_is_not_trusted_for_the_node_id() -> None:
    # The endpoint echoes the request id under "id"; the row takes the id of the node asked.
    parsed = NodeRow.from_response("n2", {"id": 1, "role": "follower", "term": 2, "state": {"value": 1}})
    assert parsed.id == "n2" and parsed.alive and parsed.term == 2


def test_the_leader_is_the_one_a_majority_follows_not_a_deposed_one_still_claiming() -> None:
    # n1 was cut off with n2; it still says leader in term 3, n2 still follows it; n3..n5 elected n3.
    split = ClusterStatus("demo", (
        row("n1", "leader", term=3, leader="n1"),
        row("n2", term=3, leader="n1"),
        row("n3", "leader", term=4, leader="n3"),
        row("n4", term=4, leader="n3"),
        row("n5", term=4, leader="n3"),
    ))
    assert split.leader == "n3"
    assert [r.id for r in split.claimed_leaders()] == ["n3", "n1"]
    # Without a majority behind anyone, there is no leader.
    lonely = picture(row("n1", "leader", leader="n1"), NodeRow.down("n2"), NodeRow.down("n3"))
    assert lonely.leader is None
    assert "n1 says it leads term 3 but no majority follows it" in text(render.status_view(lonely))


def test_followers_of_the_current_leader_come_first() -> None:
    status = picture(row("n1", "leader"), row("n2", leader=None), row("n3"))
    assert [r.id for r in status.followers()] == ["n3", "n2"]


def test_a_learner_is_not_a_follower() -> None:
    leader = dataclasses.replace(row("n1", "leader"), voters=("n1", "n2", "n3"), learners=("n4",))
    status = picture(leader, row("n2"), row("n3"), row("n4"))
    assert [r.id for r in status.followers()] == ["n2", "n3"]
    leaderless = [dataclasses.replace(row(n, leader=None), learners=("n4",)) for n in ("n2", "n4")]
    assert [r.id for r in picture(*leaderless).followers()] == ["n2"]


def test_convergence_needs_every_node_up_on_one_leader_with_equal_indexes_and_state() -> None:
    assert HEALTHY.convergence_problems() == []
    assert picture(row("n1", "leader"), row("n2"), NodeRow.down("n3")).convergence_problems() == ["down: n3"]
    behind = picture(row("n1", "leader"), row("n2"), row("n3", last=120, commit=118, applied=118))
    assert behind.convergence_problems() == ["n3 at last 120 / commit 118 / applied 118, leader last 120"]
    stale = picture(row("n1", "leader"), row("n2"), row("n3", term=2, leader="n2"))
    assert stale.convergence_problems() == ["n3 follows n2 in term 2"]
    halted = picture(row("n1", "leader"), row("n2"), row("n3", halted="boom"))
    assert halted.convergence_problems() == ["n3 stopped applying: boom"]
    assert picture(row("n1"), row("n2"), row("n3")).convergence_problems() == ["no leader"]


def test_lagging_counts_down_nodes_and_those_below_the_index() -> None:
    status = picture(row("n1", "leader", last=10), row("n2", last=9), NodeRow.down("n3"))
    assert [r.id for r in status.lagging(10)] == ["n2", "n3"]


def test_fault_and_state_descriptions() -> None:
    assert describe_faults(NO_FAULTS) == "-" and describe_faults(None) == "-"
    assert describe_faults({"partitioned_from": ["n2", "n3"], "delay_ms": 50, "jitter_ms": 10, "drop_pct": 20,
                            "duplicate_pct": 2.5}) == "cut n2,n3 delay 50±10ms drop 20% dup 2.5%"
    assert describe_state({"value": 57}) == "value=57"
    assert describe_state({"keys": 2, "sum": 9}) == "keys=2 sum=9"
    assert describe_state(None) == "-"


# -- rendering -------------------------------------------------------------------------------------


def test_the_status_table_has_a_row_per_node_with_every_column() -> None:
    status = picture(
        row("n1", "leader", state={"value": 57}),
        row("n2", "pre-candidate", faults={**NO_FAULTS, "partitioned_from": ["n1", "n3"]}),
        NodeRow.down("n3"),
    )
    out = text(render.status_view(status))
    lines = out.splitlines()
    assert lines[0].startswith("cluster demo · leader n1 · term 3")
    header = next(line for line in lines if "ROLE" in line)
    for column in ("ID", "ALIVE", "PID", "ROLE", "TERM", "LEADER", "LAST", "COMMIT", "APPLIED", "SNAP",
                   "FAULTS", "STATE"):
        assert column in header
    n1 = next(line for line in lines if line.startswith(" n1"))
    assert n1.split()[:10] == ["n1", "yes", "4001", "leader", "3", "n1", "120", "120", "120", "0"]
    assert "value=57" in n1
    n2 = next(line for line in lines if line.startswith(" n2"))
    assert "pre-candidate" in n2 and "cut n1,n3" in n2
    n3 = next(line for line in lines if line.startswith(" n3"))
    assert n3.split()[:4] == ["n3", "no", "-", "down"]
    assert all(len(line) <= 100 for line in lines)


def test_a_table_without_leader_and_a_halted_node_say_so() -> None:
    status = picture(row("n1", leader=None), row("n2", leader=None, halted="index 7 failed 3 times"), NodeRow.down("n3", "pid 9 not answering"))
    out = text(render.status_view(status))
    assert "cluster demo · no leader" in out
    assert "APPLY HALTED" in out
    assert "n2 stopped applying: index 7 failed 3 times" in out
    assert "n3: pid 9 not answering" in out


def test_roles_are_colored() -> None:
    assert render.role_text(row("n1", "leader")).style == "bold green"
    assert render.role_text(row("n2")).style == "cyan"
    assert render.role_text(NodeRow.down("n3")).plain == "down"


def test_events_render_one_line_each_with_time_node_kind_detail() -> None:
    at = time.mktime((2026, 11, 29, 6, 39, 50, 0, 0, -1)) + 0.155
    out = text(render.events_view([
        {"time": at, "node": "n1", "kind": "leader", "detail": "became leader in term 3", "source": "node"},
        {"time": at + 1, "node": None, "kind": "heal", "detail": "partition removed", "source": "raftctl"},
    ]))
    assert out.rstrip("\n").splitlines() == [
        "2026-11-29 06:39:50.155  n1     leader         became leader in term 3",
        "2026-11-29 06:39:51.155  *      heal           partition removed  [raftctl]",
    ]


def test_the_dashboard_shows_header_table_and_the_newest_events() -> None:
    feed = [{"time": 1_000_000 + i, "node": "n1", "kind": "commit", "detail": f"event {i}", "source": "node"}
            for i in range(20)]
    out = text(render.dashboard(HEALTHY, feed, commit_rate=12.4, clock="10:00:00", feed_lines=5))
    assert out.startswith("raftctl watch  10:00:00  commits 12/s  (Ctrl-C to leave)")
    assert "leader n1" in out and "ROLE" in out
    assert "event 19" in out and "event 15" in out and "event 14" not in out
    empty = text(render.dashboard(None, [], problem="no node answers"))
    assert "no node answers" in empty and "no events yet" in empty


# -- what watch derives ----------------------------------------------------------------------------


def test_watch_derives_deaths_returns_and_leader_changes() -> None:
    before = HEALTHY
    after = picture(NodeRow.down("n1"), row("n2", "leader", term=4, leader="n2"), row("n3", term=4, leader="n2"))
    found = derive_events(before, after, at=5.0)
    assert [(e["kind"], e["node"]) for e in found] == [("died", "n1"), ("leader-change", "n2")]
    assert found[1]["detail"] == "leader n1 -> n2 (term 4)"
    back = derive_events(after, picture(row("n1", term=4, leader="n2"), *after.nodes[1:]), at=6.0)
    assert [(e["kind"], e["node"]) for e in back] == [("returned", "n1")]
    first = derive_events(None, HEALTHY, at=1.0)
    assert [(e["kind"], e["detail"]) for e in first] == [("leader-change", "leader is n1 (term 3)")]
    lost = derive_events(HEALTHY, picture(row("n1", leader=None), row("n2", leader=None), row("n3", leader=None)), at=2.0)
    assert [e["detail"] for e in lost] == ["leader n1 lost; no leader"]


def test_commit_rate_over_a_window() -> None:
    state = WatchState()
    assert state.commit_rate() is None
    for second, index in [(0.0, 0), (1.0, 100), (2.0, 300), (3.0, 500)]:
        state.commit_samples.append((second, index))
    assert state.commit_rate(window=2.0) == 200.0


def test_a_follower_with_a_full_disk_shows_disk_full_in_the_table_notes_and_problems() -> None:
    full = NodeRow.from_response("n2", {"role": "follower", "term": 3, "leader": "n1", "stats": {"disk_full": 1}})
    assert full.disk_full and not NodeRow.from_response("n3", {"stats": {"disk_full": 0}}).disk_full
    status = picture(row("n1", "leader"), full, NodeRow.down("n3"))
    out = text(render.status_view(status))
    n2 = next(line for line in out.splitlines() if line.startswith(" n2"))
    assert "DISK FULL" in n2
    assert "n2: disk full — up, acknowledging nothing until space frees" in out
