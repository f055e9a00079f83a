"""`raftctl members`, `raftctl health`, `status NODE...` and the scripting edges of issue 17
(global -o/--json/--config, -h, JSON error documents, Ctrl-C as 130), against fake nodes that
answer `status` (tests/fake_nodes.py) or a cluster file nobody listens on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from raftctl import oneshot
from raftctl.cli import main
from raftctl.clusterfile import write_config
from raftnode.config import load_config

from ..e2e.raftctl_harness import free_base_port
from ..fake_nodes import fake_cluster, status_document


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args])


def cluster(leader: str | None, *, learners: tuple[str, ...] = (), behind: dict[str, int] | None = None,
            disk_full: tuple[str, ...] = ()) -> Any:
    """Status answers of a cluster led by ``leader`` with voters n1..n3 (and ``learners``)."""

    def handle(node_id: str, request: dict[str, Any]) -> Any:
        assert request["op"] == "status", request
        document = status_document(node_id, role="leader" if node_id == leader else "follower", leader=leader)
        document.update(voters=["n1", "n2", "n3"], learners=list(learners),
                        stats={"disk_full": node_id in disk_full})
        document["applied_index"] -= (behind or {}).get(node_id, 0)
        if node_id == leader:
            document["match_index"] = {"n2": 3, "n3": 2, "n4": 1, "bogus": "x"}
        return document

    return handle


def test_members_lists_roles_addresses_the_leader_and_its_match_index(tmp_path: Path) -> None:
    with fake_cluster(cluster("n1", learners=("n4",)), ("n1", "n2", "n3", "n4")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        document = json.loads(run(config, "members", "-o", "json").stdout)
        rows = {m["id"]: m for m in document["members"]}
        client = str(load_config(config).node("n2").client)
        assert rows["n2"] == {"id": "n2", "role": "voter", "peer": rows["n2"]["peer"], "client": client,
                              "alive": True, "leader": False, "match_index": 3}
        assert rows["n4"]["role"] == "learner" and rows["n4"]["match_index"] == 1
        assert rows["n1"]["leader"] and rows["n1"]["match_index"] == 3  # its own last index
        human = run(config, "members").stdout
        assert "n1 *" in human and "learner" in human and client in human


def test_status_json_shows_addresses_and_status_nodes_filters_rows(tmp_path: Path) -> None:
    with fake_cluster(cluster("n1"), ("n1", "n2", "n3")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        document = json.loads(run(config, "status", "--json").stdout)
        assert all(row["peer"] and row["client"] for row in document["nodes"])
        followers = json.loads(run(config, "status", "follower", "--json").stdout)
        assert [row["id"] for row in followers["nodes"]] == ["n2", "n3"] and followers["leader"] == "n1"
        one = run(config, "status", "n3")
        assert " n3 " in one.stdout and " n2 " not in one.stdout


@pytest.mark.parametrize(
    ("handler", "verdict", "code"),
    [
        (cluster("n1"), "healthy", 0),
        (cluster("n1", behind={"n3": 2}), "healthy", 0),
        (cluster("n1", disk_full=("n2",)), "degraded", 1),
        (cluster(None), "no-leader", 3),
    ],
)
def test_health_verdicts_and_exit_codes(tmp_path: Path, handler: Any, verdict: str, code: int) -> None:
    with fake_cluster(handler, ("n1", "n2", "n3")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        result = run(config, "health", "--json")
        assert result.exit_code == code, result.output
        document = json.loads(result.stdout)  # one document, failures included
        assert document["verdict"] == verdict
        assert document.get("exit_code", 0) == code and ("error" in document) == (code != 0)
        assert verdict in run(config, "health").stdout


def test_health_counts_a_lagging_node_and_a_dead_one_as_degraded(tmp_path: Path) -> None:
    with fake_cluster(cluster("n1", behind={"n3": 2}), ("n1", "n2", "n3")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        lagging = run(config, "health", "--max-lag", "1", "--json")
        assert lagging.exit_code == 1
        rows = {r["id"]: r for r in json.loads(lagging.stdout)["nodes"]}
        assert rows["n3"]["lag"] == 2 and not rows["n3"]["healthy"] and rows["n2"]["healthy"]
    with fake_cluster(cluster("n1"), ("n1", "n2", "n3"), down=("n3",)) as fake:
        config = fake.cluster_file(tmp_path / "cluster2.toml")
        dead = run(config, "health", "--json")
        assert dead.exit_code == 1
        assert {r["id"]: r["reachable"] for r in json.loads(dead.stdout)["nodes"]} == {"n1": True, "n2": True, "n3": False}


# -- scripting edges ---------------------------------------------------------------------------------


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml", 3, free_base_port(3))


@pytest.mark.parametrize("args", [["--json", "CONFIG", "health"], ["-o", "json", "CONFIG", "members"],
                                  ["CONFIG", "members", "--output=jsonl"], ["CONFIG", "status", "-ojson"]])
def test_output_and_config_may_come_before_or_after_the_subcommand(stopped: Path, args: list[str]) -> None:
    argv = [a for arg in args for a in (["--config", str(stopped)] if arg == "CONFIG" else [arg])]
    result = CliRunner().invoke(main, argv[2:] + argv[:2] if argv[0] == "--config" else argv)
    assert result.exit_code == 5, result.output
    assert json.loads(result.stdout) == {"error": result.stderr.removeprefix("Error: ").strip(),
                                         "code": "not_running", "exit_code": 5}


def test_the_config_after_the_subcommand_wins(stopped: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "missing.toml"), "status", "--config", str(stopped)])
    assert result.exit_code == 5, result.output


def test_a_usage_error_in_json_mode_is_a_json_document(stopped: Path) -> None:
    result = run(stopped, "--json", "kill")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["code"] == "usage" and "at least one node" in result.stderr
    bad_option = run(stopped, "status", "--nope", "--json")
    assert bad_option.exit_code == 2 and json.loads(bad_option.stdout)["exit_code"] == 2


def test_dash_h_is_help() -> None:
    for argv in (["-h"], ["kill", "-h"], ["health", "-h"]):
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0 and result.stdout.startswith("Usage:"), argv


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_ctrl_c_is_exit_130(stopped: Path, monkeypatch: pytest.MonkeyPatch, json_flag: list[str]) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(oneshot, "status", interrupted)
    result = run(stopped, "status", *json_flag)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.stderr
    if json_flag:
        assert json.loads(result.stdout)["code"] == "interrupted"
