"""``raftctl chaos`` end to end: real node processes, real faults, the history checked.

The runs are short (seconds, 3 nodes) to keep the suite fast; correctness does not depend on
timing, so a busy machine only makes a run record fewer operations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from raftctl.cli import main

from .raftctl_harness import REPO


def chaos(tmp_path: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["chaos", "--dir", str(tmp_path / "run"), "--json", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def test_a_run_under_every_fault_kind_is_linearizable_and_every_node_converges(tmp_path: Path) -> None:
    code, report = chaos(tmp_path, "--seed", "3", "--duration", "24", "--nodes", "3", "--clients", "4")
    assert report["verdict"] == "linearizable", report
    assert code == 0
    assert report["converged"], report["convergence"]
    assert report["outcomes"]["ok"] > 50
    assert len(report["faults"]) >= 3
    history = [json.loads(line) for line in Path(report["history"]).read_text().splitlines()]
    assert {r["type"] for r in history} >= {"invoke", "ok", "fault", "leader"}
    assert "linearizable" in Path(report["report"]).read_text()
    kinds = {r["f"] for r in history if r["type"] == "fault"}
    assert kinds & {"kill", "partition", "restart", "slow", "flaky", "transfer", "remove-node"}


def test_a_state_machine_that_loses_acknowledged_writes_is_caught_as_an_anomaly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the node processes import the planted class
    code, report = chaos(tmp_path, "--seed", "4", "--duration", "6", "--nodes", "3", "--clients", "3",
                         "--faults", "none", "--state-machine", "tests.e2e.planted_kv:LosesEveryFifthWrite")
    assert report["verdict"] == "anomaly", report
    assert code == 1
    assert report["converged"]  # the bug is deterministic: the nodes agree; only the history shows it
    assert report["anomalies"] and report["anomaly_keys"]


def test_nodes_whose_states_differ_are_reported_though_every_answer_was_right(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the node processes import the planted class
    code, report = chaos(tmp_path, "--seed", "5", "--duration", "4", "--nodes", "3", "--clients", "2",
                         "--faults", "none", "--state-machine", "tests.e2e.planted_kv:DivergesInSnapshots")
    assert report["verdict"] == "linearizable", report
    assert not report["converged"] and "different states" in report["convergence"], report["convergence"]
    assert code == 1


def test_an_unknown_fault_kind_is_a_usage_error_naming_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["chaos", "--faults", "kill,lightning", "--dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "lightning" in result.output and "partition" in result.output
