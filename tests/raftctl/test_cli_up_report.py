"""`raftctl up` says what it found running (issue 17): with 2 of 3 nodes up it starts the third and
names the two it found, never claiming their leader was elected now. The start is scripted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from raftctl import cluster
from raftctl.cli import main
from raftctl.cluster import UpResult
from raftctl.clusterfile import write_config

from ..e2e.raftctl_harness import free_base_port
from .test_render_and_model import picture, row


@pytest.fixture
def up_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config_path = write_config(tmp_path / "cluster.toml", 3, free_base_port(3))

    def run(started: dict[str, int], running: dict[str, int], *flags: str):
        async def scripted_up(config, *, timeout):
            return UpResult(started=started, already_running=running, elapsed=0.42,
                            status=picture(row("n1", "leader"), row("n2"), row("n3")))

        monkeypatch.setattr(cluster, "up", scripted_up)
        return CliRunner().invoke(main, ["--config", str(config_path), "up", *flags])

    return run


def test_up_with_two_of_three_running_names_what_it_found_and_what_it_started(up_finds) -> None:
    result = up_finds({"n3": 4003}, {"n1": 4001, "n2": 4002})
    assert result.exit_code == 0, result.output
    assert "Started n3 (pid 4003)" in result.stdout
    assert "Already running: n1, n2; leader n1" in result.stdout
    assert "elected" not in result.stdout


def test_up_with_every_node_running_says_so(up_finds) -> None:
    result = up_finds({}, {"n1": 4001, "n2": 4002, "n3": 4003})
    assert result.exit_code == 0, result.output
    assert "is already running (n1, n2, n3)" in result.stdout and "Started" not in result.stdout


def test_up_as_json_separates_started_from_found(up_finds) -> None:
    document = json.loads(up_finds({"n3": 4003}, {"n1": 4001, "n2": 4002}, "-o", "json").stdout)
    assert document["started"] == {"n3": 4003} and document["already_running"] == {"n1": 4001, "n2": 4002}
    assert document["status"]["leader"] == "n1"
