"""The commands that handle a node's process refuse a node on another host (exit 2, naming it)
and send nothing anywhere to find that out."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from raftctl.cli import EXIT_NOT_RUNNING, EXIT_USAGE, main
from raftctl.locality import is_local_host

# 203.0.113.0/24 is TEST-NET-3 (RFC 5737): no machine holds it, and binding to it sends nothing.
REMOTE = "203.0.113.10"
MIXED = f"""\
[cluster]
state_dir = "state"

[[nodes]]
id = "n1"
peer = "127.0.0.1:7101"
client = "127.0.0.1:7201"

[[nodes]]
id = "n2"
peer = "{REMOTE}:7102"
client = "{REMOTE}:7202"
"""


def test_loopback_and_this_machines_addresses_are_local() -> None:
    assert is_local_host("127.0.0.1") and is_local_host("127.9.8.7") and is_local_host("localhost")
    assert not is_local_host(REMOTE)


def test_an_address_of_an_interface_here_is_local() -> None:
    # The address the kernel would send from towards TEST-NET-1 is one of this machine's (a UDP
    # connect only picks a route; nothing is sent). No route at all: nothing to check.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((REMOTE, 9))
        except OSError:
            pytest.skip("no route beyond loopback on this machine")
        own = s.getsockname()[0]
    assert is_local_host(own), own


@pytest.mark.parametrize(
    "args", [["up"], ["down"], ["kill", "n2"], ["stop", "n2"], ["start", "n2"], ["restart", "n2"], ["logs", "n2"],
             ["kill", "leader"]],
)
def test_process_commands_refuse_a_remote_node(tmp_path: Path, args: list[str]) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(MIXED)
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exit_code == EXIT_USAGE, result.output
    assert f"`raftctl {args[0]}`" in result.stderr and f"n2 at {REMOTE}" in result.stderr
    assert "n1 at" not in result.stderr
    assert not (tmp_path / "state" / "pids").exists()  # nothing was started


def test_a_local_node_of_the_same_file_is_handled_as_before(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(MIXED)
    result = CliRunner().invoke(main, ["--config", str(config), "logs", "n1"])
    assert result.exit_code == EXIT_NOT_RUNNING and "never started by raftctl" in result.stderr
