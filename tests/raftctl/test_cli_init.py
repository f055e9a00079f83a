"""`raftctl init` writes a loadable cluster file, never silently overwrites one, and errors reach
stderr with the contract's exit codes instead of tracebacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from raftnode.security.credentials import load_credentials

from raftctl.cli import (
    ERROR_EXIT_CODES,
    EXIT_USAGE,
    App,
    CommandError,
    domain_errors,
    exit_code_for,
    main,
    pass_app,
)
from raftnode.config import ConfigError, load_config


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(main, list(args), env=env)


def assert_clean_failure(result: Result, code: int) -> None:
    """Exit ``code``, nothing on stdout, a message on stderr and no traceback."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") or "Usage:" in result.stderr
    assert "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit)


def test_init_writes_a_loadable_three_node_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    result = invoke(runner, "--config", str(path), "init")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    secrets = tmp_path / ".raftctl" / "secrets.toml"
    assert result.stdout == (
        f"Wrote {path}: cluster 'demo', 3 nodes n1..n3 on 127.0.0.1, "
        f"peer ports 7101-7103, client ports 7201-7203; cluster id and secrets in {secrets} (mode 0600).\n"
    )
    assert load_config(path).node_ids == ("n1", "n2", "n3")
    assert secrets.stat().st_mode & 0o777 == 0o600
    first = load_credentials(secrets)
    assert invoke(runner, "--config", str(path), "init", "--force").exit_code == 0
    assert load_credentials(secrets) == first, "init --force must keep the cluster's identity and secrets"


def test_init_defaults_to_cluster_toml_in_the_working_directory(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, "init", "--nodes", "5", "--base-port", "9000")
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "cluster.toml")
    assert [n.peer.port for n in config.nodes] == [9001, 9002, 9003, 9004, 9005]
    assert [n.client.port for n in config.nodes] == [9101, 9102, 9103, 9104, 9105]


def test_init_honours_raftctl_config(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "from-env.toml"
    result = invoke(runner, "init", "--nodes", "1", env={"RAFTCTL_CONFIG": str(path)})
    assert result.exit_code == 0, result.output
    assert "1 node n1 " in result.stdout
    assert load_config(path).node_ids == ("n1",)


def test_init_refuses_to_overwrite_without_force(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text("# mine\n")
    result = invoke(runner, "--config", str(path), "init")
    assert_clean_failure(result, EXIT_USAGE)
    assert result.stderr == f"Error: {path} already exists; use --force to overwrite it\n"
    assert path.read_text() == "# mine\n"


def test_init_force_overwrites(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text("this is not toml [")
    result = invoke(runner, "--config", str(path), "init", "--force", "--nodes", "4")
    assert result.exit_code == 0, result.output
    assert load_config(path).node_ids == ("n1", "n2", "n3", "n4")


def test_init_json_prints_one_document_with_path_and_nodes(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "cluster.toml"
    result = invoke(runner, "--config", str(path), "init", "--nodes", "2", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert json.loads(result.stdout) == {
        "path": str(path.resolve()),
        "secrets": str(tmp_path.resolve() / ".raftctl" / "secrets.toml"),
        "nodes": [
            {"id": "n1", "peer": "127.0.0.1:7101", "client": "127.0.0.1:7201"},
            {"id": "n2", "peer": "127.0.0.1:7102", "client": "127.0.0.1:7202"},
        ],
    }


def test_init_json_refusal_is_a_document_on_stdout_and_text_on_stderr(runner: CliRunner, tmp_path: Path) -> None:
    # issue 17: in JSON mode every outcome, errors included, is one JSON document on stdout.
    path = tmp_path / "cluster.toml"
    path.write_text("")
    result = invoke(runner, "--config", str(path), "init", "--json")
    assert result.exit_code == EXIT_USAGE and "already exists" in result.stderr
    document = json.loads(result.stdout)
    assert document["exit_code"] == EXIT_USAGE and document["code"] == "usage"
    assert "already exists" in document["error"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--nodes", "0"], "--nodes"),
        (["--nodes", "101"], "--nodes"),
        (["--base-port", "65500"], "outside 1024-65535"),
        (["--base-port", "http"], "--base-port"),
        (["--base-port", "0"], "ports at 1-103, outside 1024-65535"),  # issue 17: was ports 1-2 and 101-102
        (["--base-port", "1000"], "outside 1024-65535"),
    ],
)
def test_init_rejects_bad_options_with_exit_2(
    runner: CliRunner, tmp_path: Path, args: list[str], fragment: str
) -> None:
    path = tmp_path / "cluster.toml"
    result = invoke(runner, "--config", str(path), "init", *args)
    assert_clean_failure(result, EXIT_USAGE)
    assert fragment in result.stderr
    assert not path.exists()


def test_init_into_a_missing_directory_fails_with_exit_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "no" / "such" / "cluster.toml"
    result = invoke(runner, "--config", str(path), "init")
    assert_clean_failure(result, EXIT_USAGE)
    assert f"{path}: cannot write" in result.stderr


# --- error translation, which every later command relies on -------------------------------------


@pytest.fixture
def probe() -> Iterator[str]:
    """A temporary `probe` command that loads the cluster file, as real commands will."""

    @click.command("probe")
    @pass_app
    def probe_command(app: App) -> None:
        click.echo(app.config().name)

    main.add_command(probe_command)
    try:
        yield "probe"
    finally:
        del main.commands["probe"]


def test_a_bad_config_file_exits_2_with_the_message_on_stderr(
    runner: CliRunner, tmp_path: Path, probe: str
) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nheartbeat_ms = "fast"\n')
    result = invoke(runner, "--config", str(path), probe)
    assert_clean_failure(result, EXIT_USAGE)
    assert result.stderr == (
        f"Error: {path}: cluster.heartbeat_ms: "
        "expected a positive integer, got string 'fast'\n"
    )


def test_a_missing_config_file_exits_2(runner: CliRunner, tmp_path: Path, probe: str) -> None:
    path = tmp_path / "absent.toml"
    result = invoke(runner, "--config", str(path), probe)
    assert_clean_failure(result, EXIT_USAGE)
    assert f"{path}: file not found" in result.stderr


def test_a_good_config_file_reaches_the_command(
    runner: CliRunner, tmp_path: Path, probe: str
) -> None:
    path = tmp_path / "cluster.toml"
    assert invoke(runner, "--config", str(path), "init").exit_code == 0
    result = invoke(runner, "--config", str(path), probe)
    assert (result.exit_code, result.stdout) == (0, "demo\n")


def test_registered_errors_map_by_closest_base_class() -> None:
    class NoLeader(Exception):
        pass

    class StillNoLeader(NoLeader):
        pass

    ERROR_EXIT_CODES[NoLeader] = 3
    try:
        assert exit_code_for(StillNoLeader()) == 3
        assert exit_code_for(ConfigError("f", "k", "r")) == EXIT_USAGE
        assert exit_code_for(KeyError("x")) is None
        with pytest.raises(CommandError) as info, domain_errors():
            raise StillNoLeader("no leader after 5s")
        assert (info.value.exit_code, info.value.message) == (3, "no leader after 5s")
    finally:
        del ERROR_EXIT_CODES[NoLeader]


def test_unregistered_exceptions_are_bugs_and_propagate() -> None:
    with pytest.raises(ZeroDivisionError), domain_errors():
        1 / 0  # noqa: B018


def test_init_base_port_auto_picks_ports_that_are_free(runner: CliRunner, tmp_path: Path) -> None:
    import socket

    from raftnode.config import load_config

    path = tmp_path / "cluster.toml"
    result = invoke(runner, "--config", str(path), "init", "--nodes", "4", "--base-port", "auto")
    assert result.exit_code == 0, result.output
    config = load_config(path)
    for node in config.nodes:
        for address in (node.peer, node.client):
            assert 1024 <= address.port <= 65535
            with socket.socket() as s:
                s.bind((address.host, address.port))  # free when init chose it (and still, here)
