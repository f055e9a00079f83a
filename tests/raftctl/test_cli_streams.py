"""`watch -o jsonl` and `events -f -o jsonl` (issue 17): one JSON document per line, repeats
collapsed into records with a `count`, never rich markup. The event sources are replaced by a
scripted pre-vote storm, so no node runs and nothing waits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from raftctl import cluster, dashboard
from raftctl.cli import main
from raftctl.clusterfile import write_config

from ..e2e.raftctl_harness import free_base_port


def storm() -> list[dict[str, Any]]:
    """A leader change, a cut-off node's 37 pre-votes, a kill: what floods a feed."""
    def at(t: float, node: str, kind: str, detail: str, source: str = "node") -> dict[str, Any]:
        return {"time": t, "node": node, "kind": kind, "detail": detail, "source": source}

    return [at(0.0, "n1", "leader-change", "leader is n1 (term 1)", "watch"),
            *(at(1.0 + i * 0.2, "n3", "pre-vote", "pre-vote for term 2") for i in range(37)),
            at(9.0, "n2", "killed", "[bold]process 42[/bold] (SIGKILL)", "raftctl")]


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml", 3, free_base_port(3))


def records(output: str) -> list[dict[str, Any]]:
    lines = output.splitlines()
    assert lines and all(line.startswith("{") and line.endswith("}") for line in lines), output
    return [json.loads(line) for line in lines]


def check_the_storm_is_collapsed(found: list[dict[str, Any]]) -> None:
    pre_votes = [r["count"] for r in found if r["kind"] == "pre-vote"]
    assert pre_votes == [1, 2, 10, 37]  # sparingly, then the final count once the stream ends
    assert {r["first"] for r in found if r["kind"] == "pre-vote"} == {1.0}
    assert [r["kind"] for r in found if r["kind"] != "pre-vote"] == ["leader-change", "killed"]
    killed = next(r for r in found if r["kind"] == "killed")
    assert killed["detail"] == "[bold]process 42[/bold] (SIGKILL)" and killed["count"] == 1  # the data, as it came


@pytest.mark.parametrize("mode", [["-o", "jsonl"], ["--json"]])
def test_watch_as_json_lines_collapses_repeats_with_a_count(config_path: Path, monkeypatch, mode) -> None:
    async def scripted(self: dashboard.Watcher) -> None:
        for event in storm():
            self.add(event)

    monkeypatch.setattr(dashboard.Watcher, "run", scripted)
    result = CliRunner().invoke(main, ["--config", str(config_path), *mode, "watch", "--duration", "5"])
    assert result.exit_code == 0, result.output
    check_the_storm_is_collapsed(records(result.stdout))


@pytest.fixture
def follow_storm(config_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``events -f`` with these arguments over the storm; the CliRunner result."""
    async def scripted(config: Any, emit: Any) -> None:
        for event in storm():
            emit(event)

    monkeypatch.setattr(cluster, "follow_events", scripted)
    return lambda *args: CliRunner().invoke(main, ["--config", str(config_path), "events", "-f", *args])


def test_events_follow_as_json_lines_collapses_repeats_with_a_count(follow_storm) -> None:
    result = follow_storm("-o", "jsonl")
    assert result.exit_code == 0, result.output
    check_the_storm_is_collapsed(records(result.stdout))


def test_events_follow_in_text_shows_the_count_and_keeps_filtering(follow_storm) -> None:
    result = follow_storm("--kind", "pre-vote")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all("pre-vote for term 2" in line for line in lines)
    assert lines[-1].endswith("×37") and "killed" not in result.stdout
