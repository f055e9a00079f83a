"""`raftctl sim`: parsing, human and JSON output, replay, and the exit code on a violation."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import raftctl.simulate as simulate
from raftctl.cli import main
from raftnode.sim.runner import run_seed
from tests.core.planted_bugs import QuorumOneShort


def invoke(*args: str):
    return CliRunner().invoke(main, ["sim", *args])


def test_sim_runs_seeds_and_summarizes_without_a_cluster(tmp_path):
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "absent.toml"), "sim", "--seeds", "3",
                                       "--nodes", "3", "--steps", "200", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 seeds, 3 nodes, 200 steps: 0 violations;")


def test_sim_json_is_one_document_with_totals():
    result = invoke("--seeds", "2", "--nodes", "3", "--steps", "150", "--jobs", "1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["seeds"], doc["nodes"], doc["steps"], doc["violations"]) == (2, 3, 150, [])
    assert doc["totals"]["leaders_elected"] >= 2 and doc["totals"]["acknowledged"] > 0


def test_sim_trace_tells_one_seed_as_a_story_matching_the_library_run():
    result = invoke("--seed", "4", "--nodes", "3", "--steps", "120", "--trace")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["tick", "node", "role", "term", "commit", "what"]
    expected = [str(line) for line in run_seed(4, nodes=3, steps=120, trace=True).trace]
    assert lines[1 : 1 + len(expected)] == expected
    assert any("became leader in term" in line for line in lines)


def test_sim_trace_without_a_seed_is_a_usage_error():
    result = invoke("--trace")
    assert result.exit_code == 2
    assert "--trace needs --seed" in result.stderr


def test_sim_reports_a_violation_with_seed_invariant_and_replay_command_and_exits_1(monkeypatch):
    monkeypatch.setattr(simulate, "run_seed", lambda seed, **kw: run_seed(seed, raft_class=QuorumOneShort, **kw))
    result = invoke("--seeds", "2", "--nodes", "5", "--steps", "2000", "--jobs", "1")
    assert result.exit_code == 1
    assert "seed 0: VIOLATION of" in result.stderr
    assert "replay: raftctl sim --seed 0 --nodes 5 --steps 2000 --trace" in result.stderr


@pytest.mark.parametrize("bad", [["--seeds", "0"], ["--nodes", "0"], ["--steps", "x"]])
def test_sim_rejects_bad_options_with_exit_2(bad):
    assert invoke(*bad).exit_code == 2


def test_sim_disk_faults_injects_them_and_says_so_in_json_and_replay():
    result = invoke("--seeds", "2", "--nodes", "5", "--steps", "600", "--jobs", "1", "--disk-faults", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["disk_faults"] is True and doc["violations"] == []
    disk_kinds = {"torn write", "lost unsynced writes", "fsync failed", "disk full", "corrupt record", "older copy"}
    assert disk_kinds & set(doc["totals"]["faults"])
    assert run_seed(0, nodes=5, steps=10, disk_faults=True).replay_command().endswith("--disk-faults --trace")


def test_sim_on_a_terminal_counts_the_seeds_done_on_stderr(monkeypatch):
    """Progress (issue 17): on a terminal, stderr carries 'done/total seeds', ending with a newline."""
    import io
    import sys

    from raftctl.commands.tools import _run_sim_seeds

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    settings = simulate.SimSettings(nodes=3, steps=100, pre_vote=True, check_quorum=True, membership=False,
                                    disk_faults=False)
    reports = _run_sim_seeds(range(3), settings, 1, as_json=False)
    assert [r.seed for r in reports] == [0, 1, 2] and all(r.ok for r in reports)
    assert terminal.getvalue() == "\r1/3 seeds\r2/3 seeds\r3/3 seeds\n"
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    _run_sim_seeds(range(2), settings, 1, as_json=False)
    assert piped.getvalue() == ""  # piped: no counter


def _story(*filters: str) -> list[str]:
    result = invoke("--seed", "6", "--nodes", "5", "--steps", "400", "--trace", *filters)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["tick", "node", "role", "term", "commit", "what"]
    return lines[1:-1]  # the header and the verdict off


def test_sim_trace_filters_by_node_kind_and_tick_range():
    trace = run_seed(6, nodes=5, steps=400, trace=True).trace
    every = [str(line) for line in trace]
    assert _story() == every

    at_n2 = _story("--node", "n2")
    assert at_n2 == [str(line) for line in trace if line.node == "n2" or (line.node is None and line.concerns("n2"))]
    assert 0 < len(at_n2) < len(every)

    leaders_and_faults = _story("--kind", "leader", "--kind", "network,crash")
    assert leaders_and_faults == [str(line) for line in trace if line.kind in ("leader", "network", "crash")]
    assert any("became leader" in line for line in leaders_and_faults)

    window = _story("--from-tick", "100", "--to-tick", "150")
    assert window == [str(line) for line in trace if 100 <= line.tick <= 150] and window


@pytest.mark.parametrize("filters, says", [
    (["--kind", "leaders"], "unknown trace kind 'leaders'; kinds are"),
    (["--node", "n9"], "unknown node 'n9'; nodes are n1, n2, n3"),
    (["--from-tick", "50", "--to-tick", "10"], "--from-tick 50 is after --to-tick 10"),
])
def test_sim_trace_filters_refuse_bad_words_with_exit_2(filters, says):
    result = invoke("--seed", "1", "--nodes", "3", "--steps", "50", "--trace", *filters)
    assert result.exit_code == 2
    assert says in result.stderr


def test_sim_trace_filters_without_trace_are_a_usage_error():
    result = invoke("--seed", "1", "--kind", "leader")
    assert result.exit_code == 2
    assert "filter --trace: add --trace" in result.stderr
