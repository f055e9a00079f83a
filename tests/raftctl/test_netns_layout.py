"""`up --netns` refuses a cluster file whose addresses do not fit namespaces, names everything
it makes after the cluster, and trusts no state file that names anything else."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from raftctl import netns
from raftnode.config import load_config


def config_with(tmp_path: Path, *hosts: str):
    nodes = "".join(
        f'\n[[nodes]]\nid = "n{k}"\npeer = "{host}:7101"\nclient = "{host}:7201"\n' for k, host in enumerate(hosts, 1)
    )
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nstate_dir = "state"\n' + nodes)
    return load_config(path)


def test_layout_names_short_interfaces_and_one_bridge_address(tmp_path: Path) -> None:
    layout = netns.plan(config_with(tmp_path, "198.19.4.11", "198.19.4.12"))
    assert layout.bridge_address == "198.19.4.1/24"
    assert [n.address for n in layout.nodes.values()] == ["198.19.4.11", "198.19.4.12"]
    assert all(len(name) <= 15 for name in [layout.bridge] + [n.veth for n in layout.nodes.values()])
    (tmp_path / "x").mkdir()
    other = netns.plan(config_with(tmp_path / "x", "198.19.4.11"))
    assert other.bridge != layout.bridge  # another state dir, other names


@pytest.mark.parametrize(
    ("hosts", "reason"),
    [
        (("127.0.0.1",), "needs one IPv4 address from 198.18.0.0/15"),
        (("10.1.2.3",), "needs one IPv4 address from 198.18.0.0/15"),
        (("198.18.0.1",), "reserved"),
        (("198.18.1.11", "198.18.2.12"), "one /24"),
    ],
)
def test_addresses_that_do_not_fit_are_refused(tmp_path: Path, hosts: tuple[str, ...], reason: str) -> None:
    with pytest.raises(netns.NetnsError, match=reason):
        netns.plan(config_with(tmp_path, *hosts))


def test_a_state_file_naming_other_interfaces_is_refused(tmp_path: Path) -> None:
    config = config_with(tmp_path, "198.18.3.11")
    layout = netns.plan(config)
    config.state_dir.mkdir()
    document = {"bridge": "eth0", "bridge_address": layout.bridge_address,
                "nodes": {"n1": {"netns": "x", "veth": "eth0", "address": "198.18.3.11"}}}
    netns.state_file(config).write_text(json.dumps(document))
    with pytest.raises(netns.NetnsError, match="does not match the cluster file"):
        netns.load(config)
    netns.state_file(config).write_text("{not json")
    with pytest.raises(netns.NetnsError, match="unreadable"):
        netns.load(config)


def test_without_root_up_netns_says_so_and_makes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from raftctl.cli import EXIT_USAGE, main

    config = config_with(tmp_path, "198.18.3.11")
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["--config", str(config.path), "up", "--netns"])
    assert result.exit_code == EXIT_USAGE and "--netns needs root" in result.stderr
    assert not netns.state_file(config).exists()


@pytest.mark.parametrize(
    ("entry", "accepted"),
    [
        ({"netns": "raftctl-{tag}-n4", "veth": "rv{tag}3", "address": "198.18.3.14"}, True),  # add-node's record
        ({"netns": "raftctl-{tag}-n4", "veth": "eth0", "address": "198.18.3.14"}, False),  # not our interface
        ({"netns": "init", "veth": "rv{tag}3", "address": "198.18.3.14"}, False),  # not our namespace
        ({"netns": "raftctl-{tag}-n4", "veth": "rv{tag}3", "address": "198.18.9.14"}, False),  # off the bridge
        ({"netns": "raftctl-{tag}-n4", "veth": "rv{tag}3", "address": "bogus"}, False),
    ],
)
def test_a_state_file_may_name_nodes_added_since_up_but_only_with_our_names(
    tmp_path: Path, entry: dict[str, str], accepted: bool
) -> None:
    """add-node and remove-node change the record after `up`; what they write is trusted, nothing else."""
    config = config_with(tmp_path, "198.18.3.11", "198.18.3.12")
    layout = netns.plan(config)
    tag = layout.bridge[2:]
    config.state_dir.mkdir()
    document = json.loads(json.dumps(dataclasses.asdict(layout)))
    del document["nodes"]["n1"]  # removed since
    document["nodes"]["n4"] = {key: value.format(tag=tag) for key, value in entry.items()}
    netns.state_file(config).write_text(json.dumps(document))
    if accepted:
        assert set(netns.load(config).nodes) == {"n2", "n4"}
    else:
        with pytest.raises(netns.NetnsError, match="does not match the cluster file"):
            netns.load(config)
