"""The one NODE grammar (issue 17): parsing against the cluster file, and every node-taking
command using it. No process runs: the cluster file points at ports nobody listens on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from raftctl import selectors
from raftctl.cli import main
from raftctl.clusterfile import write_config
from raftctl.errors import UnknownNode, UsageProblem

from ..e2e.raftctl_harness import free_base_port

IDS = ("n1", "n2", "n3", "n4")


def test_spaces_and_commas_are_the_same_separator_and_ids_count_once() -> None:
    assert selectors.parse(["n1", "n2"], IDS) == selectors.parse(["n1,n2"], IDS) == ["n1", "n2"]
    assert selectors.parse(["n3,n1", "n3", " n2 "], IDS) == ["n3", "n1", "n2"]


def test_all_and_the_all_flag_name_every_node_in_file_order() -> None:
    assert selectors.parse(["all"], IDS) == list(IDS)
    assert selectors.parse([], IDS, everything=True) == list(IDS)
    assert selectors.parse(["n3", "all"], IDS) == ["n3", "n1", "n2", "n4"]


def test_role_words_are_kept_in_order_and_may_repeat() -> None:
    assert selectors.parse(["leader,follower", "follower", "n2"], IDS) == ["leader", "follower", "follower", "n2"]


def test_an_unknown_word_names_itself_and_the_valid_ids() -> None:
    with pytest.raises(UnknownNode) as caught:
        selectors.parse(["n1,n9"], IDS)
    message = str(caught.value)
    assert "'n9'" in message and "n1, n2, n3, n4" in message and "`learner`" in message and "`all`" in message


def test_nothing_named_and_words_a_command_does_not_take_are_usage_errors() -> None:
    with pytest.raises(UsageProblem, match="at least one node"):
        selectors.parse([], IDS)
    with pytest.raises(UsageProblem, match="by its id"):
        selectors.parse(["leader"], IDS, roles=())
    with pytest.raises(UsageProblem, match="one node, not 2"):
        selectors.parse_one(["n1,n2"], IDS)
    with pytest.raises(UsageProblem, match="cannot be used"):
        selectors.parse_one(["all"], IDS)


def test_partition_groups_check_each_word_and_refuse_all() -> None:
    assert selectors.parse_groups(["n1,leader", "n3"], IDS) == [["n1", "leader"], ["n3"]]
    with pytest.raises(UnknownNode, match="'n9'"):
        selectors.parse_groups(["n1,n9"], IDS)
    with pytest.raises(UsageProblem, match="partition group"):
        selectors.parse_groups(["all"], IDS)


def test_ids_resolve_without_any_network(tmp_path: Path) -> None:
    from raftnode.config import load_config

    config = load_config(write_config(tmp_path / "cluster.toml", 3, free_base_port(3)))
    assert selectors.resolve(config, ["n3", "n1"]) == ["n3", "n1"]


# -- the commands ------------------------------------------------------------------------------------


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml", 3, free_base_port(3))


def run(config_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config_path), *args])


@pytest.mark.parametrize("words", [["n1", "n2"], ["n1,n2"], ["n2,n1", "n1"]])
def test_kill_takes_several_nodes_space_or_comma_separated(config_path: Path, words: list[str]) -> None:
    result = run(config_path, "kill", *words)
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == ["n1 is not running; nothing to do.", "n2 is not running; nothing to do."]


def test_kill_all_in_json_lists_a_result_per_node(config_path: Path) -> None:
    for args in (["kill", "--all", "--json"], ["kill", "all", "--json"]):
        document = json.loads(run(config_path, *args).stdout)
        assert [r["node"] for r in document["results"]] == ["n1", "n2", "n3"]
        assert {r["action"] for r in document["results"]} == {"not-running"}
    single = json.loads(run(config_path, "stop", "n3", "--json").stdout)
    assert single["node"] == "n3" and single["results"] == [{k: v for k, v in single.items() if k != "results"}]


@pytest.mark.parametrize("command", ["kill n1 n9", "stop n9,n1", "restart n1 n9", "start n9", "slow n1,n9 --delay 5",
                                     "fast n9 --all", "snapshot n9", "partition n1,n9 n2", "logs n9",
                                     "transfer-leader n9", "remove-node n9"])
def test_an_unknown_node_anywhere_is_exit_2_naming_it_and_the_valid_ids(config_path: Path, command: str) -> None:
    result = run(config_path, *command.split())
    assert result.exit_code == 2, result.output
    assert "'n9'" in result.stderr and "n1, n2, n3" in result.stderr


@pytest.mark.parametrize("command", ["kill", "stop", "start", "restart", "slow --delay 5", "flaky --drop 5",
                                     "duplicate --pct 5", "fast", "snapshot"])
def test_every_node_taking_command_has_all_and_needs_a_node(config_path: Path, command: str) -> None:
    words = command.split()
    assert "--all" in CliRunner().invoke(main, [words[0], "--help"]).stdout
    result = run(config_path, *words)
    assert result.exit_code == 2 and "name at least one node" in result.stderr, result.output


def test_fast_all_reaches_the_cluster(config_path: Path) -> None:
    result = run(config_path, "fast", "--all")
    assert result.exit_code == 5 and "not running" in result.stderr, result.output


@pytest.mark.parametrize("command", ["logs n1,n2", "transfer-leader n1,n2", "logs all"])
def test_commands_of_one_node_refuse_several(config_path: Path, command: str) -> None:
    result = run(config_path, *command.split())
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize(("words", "expected"), [
    ("kill n", ["n1", "n2", "n3"]),
    ("partition n1,l", ["n1,leader", "n1,learner"]),
    ("status f", ["follower"]),
])
def test_shell_completion_offers_the_node_ids_of_the_cluster_file(config_path: Path, words: str, expected: list[str]) -> None:
    typed = f"raftctl --config {config_path} {words}"
    env = {"COMP_WORDS": typed, "COMP_CWORD": str(len(typed.split()) - 1), "_RAFTCTL_COMPLETE": "bash_complete"}
    result = CliRunner().invoke(main, [], env=env, prog_name="raftctl")
    assert result.exit_code == 0, result.output
    assert [line.split(",", 1)[1] for line in result.stdout.splitlines()] == expected
