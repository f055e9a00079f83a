"""The simulator's typed trace: every line has a known kind, and the ``sim --trace`` filter keeps
exactly the lines it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import raftnode.core

from raftnode.sim.cluster import SimCluster
from raftnode.sim.runner import run_seed
from raftnode.sim.trace import CORE_KINDS, TRACE_KINDS, TraceFilter, TraceLine


@pytest.mark.parametrize("seed, disk_faults", [(1, False), (2, True), (3, True)])
def test_every_line_of_a_run_has_a_known_kind(seed, disk_faults):
    report = run_seed(seed, nodes=5, steps=600, disk_faults=disk_faults, trace=True)
    kinds = {line.kind for line in report.trace}
    assert kinds <= set(TRACE_KINDS), kinds - set(TRACE_KINDS)
    assert {"leader", "propose", "commit", "network"} <= kinds


def test_every_event_kind_the_core_can_tell_is_a_trace_kind():
    core = Path(raftnode.core.__file__).parent
    told = {kind for path in core.glob("*.py") for kind in re.findall(r'_event\(\s*"([^"]+)"', path.read_text())}
    assert told and told <= set(CORE_KINDS), told - set(CORE_KINDS)


def test_network_faults_concern_the_nodes_they_touch():
    c = SimCluster(3, seed=0, trace=True)
    c.isolate("n1")
    c.cut("n2", "n3")
    c.drop("n3", rate=0.5)
    c.heal()
    isolate, cut, drop, heal = c.trace[-4:]
    assert [line.kind for line in (isolate, cut, drop, heal)] == ["network"] * 4
    assert isolate.concerns("n1") and not isolate.concerns("n2")
    assert cut.concerns("n3") and not cut.concerns("n1")
    assert all(drop.concerns(n) for n in c.ids)  # every link of n3: n3 and each of its peers
    assert all(heal.concerns(n) for n in c.ids)


def test_the_filter_keeps_nodes_kinds_and_a_tick_range():
    at = lambda tick, node, kind: TraceLine(tick, node, kind, "x")  # noqa: E731
    lines = [at(1, "n1", "leader"), at(5, "n2", "commit"), at(9, None, "network"), at(12, "n1", "commit")]
    assert [l.tick for l in lines if TraceFilter(nodes=frozenset({"n1"}))(l)] == [1, 9, 12]
    assert [l.tick for l in lines if TraceFilter(kinds=frozenset({"commit"}))(l)] == [5, 12]
    assert [l.tick for l in lines if TraceFilter(from_tick=5, to_tick=9)(l)] == [5, 9]
    both = TraceFilter(nodes=frozenset({"n1"}), kinds=frozenset({"commit"}), from_tick=2)
    assert [l.tick for l in lines if both(l)] == [12]


def test_the_filter_refuses_an_unknown_kind_an_empty_range_and_an_unknown_node():
    with pytest.raises(ValueError, match="unknown trace kind 'leaders'; kinds are .*leader"):
        TraceFilter(kinds=frozenset({"leaders"}))
    with pytest.raises(ValueError, match="--from-tick 9 is after --to-tick 3"):
        TraceFilter(from_tick=9, to_tick=3)
    with pytest.raises(ValueError, match="unknown node 'n9'; nodes are n1, n2, n3"):
        TraceFilter(nodes=frozenset({"n9"})).check_nodes(("n1", "n2", "n3"))
