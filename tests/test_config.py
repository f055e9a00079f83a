"""cluster.toml: a valid file loads into frozen records; every invalid one is a ConfigError that
names the file, the key and what is wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from raftctl.clusterfile import _table_blocks, default_config_text, remove_node_from_file, write_config
from raftnode.config import (
    DEFAULT_CLUSTER,
    Address,
    ClusterConfig,
    ConfigError,
    load_config,
    parse_address,
    parse_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

BASE = """\
[cluster]
name = "demo"
state_machine = "counter"
state_dir = ".raftctl"
heartbeat_ms = 50
election_timeout_ms = [150, 300]
pre_vote = true
check_quorum = true

[[nodes]]
id = "n1"
peer = "127.0.0.1:7101"
client = "127.0.0.1:7201"

[[nodes]]
id = "n2"
peer = "127.0.0.1:7102"
client = "127.0.0.1:7202"

[[nodes]]
id = "n3"
peer = "127.0.0.1:7103"
client = "127.0.0.1:7203"
"""

NODES_ONLY = BASE[BASE.index("[[nodes]]") :]


def variant(old: str, new: str) -> str:
    """BASE with exactly one occurrence of ``old`` replaced (so a typo cannot make a no-op)."""
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    """Load ``text`` from a file and return the ConfigError, checking it names that file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.path == str(path)
    assert str(error).startswith(f"{path}: ")
    if error.key is not None:
        assert f": {error.key}: " in str(error)
    return error


# --- valid files -------------------------------------------------------------------------------


def test_the_repository_default_file_describes_three_local_nodes() -> None:
    config = load_config(REPO_ROOT / "cluster.toml")
    assert config.name == "demo"
    assert config.state_machine == "counter"
    assert config.state_dir == REPO_ROOT / ".raftctl"
    assert (config.heartbeat_ms, config.election_timeout_ms) == (50, (150, 300))
    assert config.pre_vote and config.check_quorum
    assert config.node_ids == ("n1", "n2", "n3")
    assert [n.peer for n in config.nodes] == [("127.0.0.1", p) for p in (7101, 7102, 7103)]
    assert [n.client for n in config.nodes] == [("127.0.0.1", p) for p in (7201, 7202, 7203)]


def test_write_config_round_trips_through_load_config(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", nodes=5, base_port=8000)
    config = load_config(path)
    assert config.path == path.resolve()
    assert config.node_ids == ("n1", "n2", "n3", "n4", "n5")
    assert [n.peer.port for n in config.nodes] == [8001, 8002, 8003, 8004, 8005]
    assert [n.client.port for n in config.nodes] == [8101, 8102, 8103, 8104, 8105]
    assert all(n.peer.host == n.client.host == "127.0.0.1" for n in config.nodes)
    assert config.name == DEFAULT_CLUSTER["name"]
    assert config.state_machine == DEFAULT_CLUSTER["state_machine"]
    assert config.state_dir == tmp_path.resolve() / DEFAULT_CLUSTER["state_dir"]
    assert config.heartbeat_ms == DEFAULT_CLUSTER["heartbeat_ms"]
    assert config.election_timeout_ms == tuple(DEFAULT_CLUSTER["election_timeout_ms"])
    assert config.pre_vote is DEFAULT_CLUSTER["pre_vote"]
    assert config.check_quorum is DEFAULT_CLUSTER["check_quorum"]


def test_default_config_text_uses_base_port_7100_and_three_nodes(tmp_path: Path) -> None:
    config = parse_config(default_config_text(), path=tmp_path / "cluster.toml")
    assert config.node_ids == ("n1", "n2", "n3")
    assert [str(n.peer) for n in config.nodes] == [f"127.0.0.1:{p}" for p in (7101, 7102, 7103)]
    assert [str(n.client) for n in config.nodes] == [f"127.0.0.1:{p}" for p in (7201, 7202, 7203)]


def test_omitted_cluster_keys_take_their_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, NODES_ONLY))
    assert config.name == "demo"
    assert config.state_machine == "counter"
    assert config.heartbeat_ms == 50
    assert config.election_timeout_ms == (150, 300)
    assert config.pre_vote is True and config.check_quorum is True


def test_state_dir_is_relative_to_the_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    path = write(tmp_path, variant('state_dir = ".raftctl"', 'state_dir = "state/here"'))
    assert load_config(path).state_dir == tmp_path.resolve() / "state" / "here"


def test_removing_the_last_node_keeps_a_table_that_follows_it(tmp_path: Path) -> None:
    """A table after the last ``[[nodes]]`` entry (as ``[tls]`` in a hand-written file) is not part
    of that node: removing the node keeps it (it once went with it, and the cluster lost TLS)."""
    path = write(tmp_path, BASE + "\n[tls]\nenabled = true\n")
    assert remove_node_from_file(path, "n3")
    config = load_config(path)
    assert config.node_ids == ("n1", "n2") and config.tls is not None
    assert "[tls]\nenabled = true\n" in path.read_text(encoding="utf-8")


def test_removing_a_node_whose_header_is_spaced_finds_it(tmp_path: Path) -> None:
    """``[[ nodes ]]`` is the same header as ``[[nodes]]`` to TOML, so to remove-node too."""
    path = write(tmp_path, BASE.replace("[[nodes]]", "[[ nodes ]]  # spaced"))
    assert remove_node_from_file(path, "n2")
    assert load_config(path).node_ids == ("n1", "n3")


def test_a_line_that_only_looks_like_a_header_does_not_cut_the_file() -> None:
    """Inside a multi-line array or string a line may begin with ``[``: the file is cut only
    before real table headers, and the pieces join back to the file."""
    text = 'a = [\n[1, 2],\n]\ns = """\n[[nodes]]\nid = "x"\n"""\n[[nodes]]\nid = "n1"\n\n[tls]\nk = 1\n'
    blocks = _table_blocks(text)
    assert "".join(blocks) == text
    assert [b.split("\n", 1)[0] for b in blocks] == ["a = [", "[[nodes]]", "[tls]"]


def test_records_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.nodes[0].id = "x"  # type: ignore[misc]
    assert isinstance(config, ClusterConfig) and isinstance(config.nodes, tuple)


def test_custom_state_machine_import_path_and_bracketed_ipv6_are_accepted(tmp_path: Path) -> None:
    text = variant('state_machine = "counter"', 'state_machine = "my_pkg.machines:Ledger"')
    text = text.replace('peer = "127.0.0.1:7101"', 'peer = "[::1]:7101"')
    config = load_config(write(tmp_path, text))
    assert config.state_machine == "my_pkg.machines:Ledger"
    assert config.nodes[0].peer == Address("::1", 7101)
    assert str(config.nodes[0].peer) == "[::1]:7101"


def test_hostile_input_limits_default_and_a_public_address_runs_with_peer_auth(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert (config.max_command_bytes, config.max_client_connections, config.max_peer_connections) == (1 << 20, 256, 64)
    assert (config.handshake_timeout_ms, config.idle_timeout_ms, config.peer_auth) == (5000, 60_000, True)
    assert config.client_auth is False
    exposed = load_config(write(tmp_path, BASE.replace("127.0.0.1", "0.0.0.0")))
    assert exposed.peer_auth and exposed.nodes[0].peer == Address("0.0.0.0", 7101)
    local = load_config(write(tmp_path, variant("check_quorum = true", "check_quorum = true\npeer_auth = false")))
    assert local.peer_auth is False  # loopback only: allowed


def test_node_returns_the_node_with_that_id(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert config.node("n2").client == ("127.0.0.1", 7202)


def test_node_with_an_unknown_id_lists_the_valid_ids(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    config = load_config(path)
    with pytest.raises(ConfigError) as info:
        config.node("n9")
    message = str(info.value)
    assert str(path.resolve()) in message
    assert "'n9'" in message and "n1, n2, n3" in message


# --- write_config / default_config_text --------------------------------------------------------


def test_write_config_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text("keep me")
    with pytest.raises(FileExistsError):
        write_config(path)
    assert path.read_text() == "keep me"
    write_config(path, nodes=1, overwrite=True)
    assert load_config(path).node_ids == ("n1",)
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.toml"]  # no temporary file left


@pytest.mark.parametrize(
    ("nodes", "base_port", "fragment"),
    [
        (0, 7100, "between 1 and 100"),
        (101, 7100, "between 1 and 100"),
        (3, 65500, "outside the valid range"),
        (3, -5, "outside the valid range"),
    ],
)
def test_default_config_text_rejects_impossible_layouts(
    nodes: int, base_port: int, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        default_config_text(nodes, base_port)


# --- file-level errors -------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: file not found (`raftctl init` writes one)"
    assert info.value.key is None


def test_a_directory_is_not_a_cluster_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, variant("heartbeat_ms = 50", "heartbeat_ms 50"))
    assert error.key is None
    assert "invalid TOML" in error.reason
    assert "line 5" in error.reason


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_bytes(b'[cluster]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


# --- key-level errors --------------------------------------------------------------------------

CLUSTER_ONLY = BASE[: BASE.index("[[nodes]]")]
P1, P2, C1, C3 = (
    'peer = "127.0.0.1:7101"',
    'peer = "127.0.0.1:7102"',
    'client = "127.0.0.1:7201"',
    'client = "127.0.0.1:7203"',
)

# (case id, file text, offending key, fragment of the reason)
KEY_ERRORS = [
    # unknown keys
    ("unknown top-level key", "extra = 1\n" + BASE, "extra", "unknown key"),
    ("unknown cluster key", variant("pre_vote = true", "pre_vote = true\nheartbeat = 5"),
     "cluster.heartbeat", "unknown key"),
    ("unknown node key", variant('id = "n2"', 'id = "n2"\nport = 1'),
     "nodes[1].port", "unknown key"),
    # wrong types
    ("cluster not a table", "cluster = 5\n" + NODES_ONLY,
     "cluster", "expected a table ([cluster]), got integer"),
    ("string heartbeat", variant("heartbeat_ms = 50", 'heartbeat_ms = "50"'),
     "cluster.heartbeat_ms", "expected a positive integer, got string '50'"),
    ("boolean heartbeat", variant("heartbeat_ms = 50", "heartbeat_ms = true"),
     "cluster.heartbeat_ms", "got boolean True"),
    ("zero heartbeat", variant("heartbeat_ms = 50", "heartbeat_ms = 0"),
     "cluster.heartbeat_ms", "positive integer, got 0"),
    ("float timeout", variant("[150, 300]", "[150.0, 300]"),
     "cluster.election_timeout_ms[0]", "got float 150.0"),
    ("scalar timeout", variant("[150, 300]", "150"),
     "cluster.election_timeout_ms", "expected an array [min, max], got integer 150"),
    ("one timeout", variant("[150, 300]", "[150]"),
     "cluster.election_timeout_ms", "got 1 elements"),
    ("string pre_vote", variant("pre_vote = true", 'pre_vote = "yes"'),
     "cluster.pre_vote", "expected a boolean, got string 'yes'"),
    ("integer check_quorum", variant("check_quorum = true", "check_quorum = 1"),
     "cluster.check_quorum", "expected a boolean, got integer 1"),
    ("numeric name", variant('name = "demo"', "name = 5"), "cluster.name", "expected a string"),
    ("blank name", variant('name = "demo"', 'name = " "'), "cluster.name", "must not be empty"),
    ("bad state machine", variant('state_machine = "counter"', 'state_machine = "abacus"'),
     "cluster.state_machine", "counter, totals, kv"),
    ("integer node id", variant('id = "n3"', "id = 3"), "nodes[2].id", "expected a string"),
    ("integer peer", variant(P1, "peer = 7101"),
     "nodes[0].peer", 'expected a string "host:port", got integer 7101'),
    ("nodes not an array", 'nodes = "n1"\n' + CLUSTER_ONLY,
     "nodes", "expected an array of tables ([[nodes]]), got string"),
    ("node not a table", "nodes = [1]\n" + CLUSTER_ONLY, "nodes[0]", "expected a table"),
    # node ids
    ("missing node key", variant(C3 + "\n", ""), "nodes[2].client", "missing required key"),
    ("reserved id", variant('id = "n2"', 'id = "leader"'), "nodes[1].id", "reserved"),
    ("id with a comma", variant('id = "n2"', 'id = "n1,n2"'),
     "nodes[1].id", "not a valid node id"),
    ("duplicate id", variant('id = "n3"', 'id = "n1"'),
     "nodes[2].id", "duplicate node id 'n1' (also nodes[0].id)"),
    # addresses
    ("duplicate peer", variant(P2, P1),
     "nodes[1].peer", "duplicate address 127.0.0.1:7101 (also nodes[0].peer)"),
    ("client equals a peer", variant(C3, 'client = "127.0.0.1:7102"'),
     "nodes[2].client", "duplicate address 127.0.0.1:7102 (also nodes[1].peer)"),
    ("no port", variant(P2, 'peer = "127.0.0.1"'),
     "nodes[1].peer", "expected \"host:port\", got '127.0.0.1'"),
    ("empty host", variant(P2, 'peer = ":7102"'), "nodes[1].peer", "non-empty host"),
    ("non-numeric port", variant(C1, 'client = "127.0.0.1:http"'),
     "nodes[0].client", "port 'http' is not a number"),
    ("unbracketed IPv6", variant(P1, 'peer = "::1:7101"'),
     "nodes[0].peer", "IPv6 host must be in brackets"),
    ("port zero", variant(P1, 'peer = "127.0.0.1:0"'),
     "nodes[0].peer", "port 0 is out of range 1-65535"),
    ("port too high", variant(C3, 'client = "127.0.0.1:70000"'),
     "nodes[2].client", "port 70000 is out of range 1-65535"),
    # timing
    ("min above max", variant("[150, 300]", "[300, 150]"),
     "cluster.election_timeout_ms", "min 300 is greater than max 150"),
    ("heartbeat not below election min", variant("heartbeat_ms = 50", "heartbeat_ms = 150"),
     "cluster.heartbeat_ms", "must be less than the minimum election timeout (150), got 150"),
    # hostile-input limits and authentication
    ("tiny max_command_bytes", variant("check_quorum = true", "check_quorum = true\nmax_command_bytes = 10"),
     "cluster.max_command_bytes", "must be between 1024 and 8388608, got 10"),
    ("huge max_command_bytes", variant("check_quorum = true", "check_quorum = true\nmax_command_bytes = 100000000"),
     "cluster.max_command_bytes", "must be between 1024 and 8388608"),
    ("zero connections", variant("check_quorum = true", "check_quorum = true\nmax_client_connections = 0"),
     "cluster.max_client_connections", "positive integer, got 0"),
    ("string peer connections", variant("check_quorum = true", 'check_quorum = true\nmax_peer_connections = "9"'),
     "cluster.max_peer_connections", "expected a positive integer"),
    ("idle below handshake", variant("check_quorum = true", "check_quorum = true\nhandshake_timeout_ms = 900\nidle_timeout_ms = 800"),
     "cluster.idle_timeout_ms", "must be at least handshake_timeout_ms (900), got 800"),
    ("string client_auth", variant("check_quorum = true", 'check_quorum = true\nclient_auth = "no"'),
     "cluster.client_auth", "expected a boolean"),
    ("integer peer_auth", variant("check_quorum = true", "check_quorum = true\npeer_auth = 1"),
     "cluster.peer_auth", "expected a boolean"),
    ("0.0.0.0 without peer auth", variant("check_quorum = true", "check_quorum = true\npeer_auth = false").replace(
        'peer = "127.0.0.1:7102"', 'peer = "0.0.0.0:7102"'),
     "cluster.peer_auth", "node n2 binds a non-loopback address (0.0.0.0:7102, 127.0.0.1:7202): set peer_auth = true"),
    # nodes
    ("empty nodes", "nodes = []\n" + CLUSTER_ONLY, "nodes", "empty: at least one"),
    ("missing nodes", CLUSTER_ONLY, "nodes", "missing: at least one"),
]


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [case[1:] for case in KEY_ERRORS],
    ids=[case[0] for case in KEY_ERRORS],
)
def test_invalid_value_is_reported_with_file_key_and_reason(
    tmp_path: Path, text: str, key: str, fragment: str | None
) -> None:
    error = load_error(tmp_path, text)
    assert error.key == key
    if fragment is not None:
        assert fragment in error.reason
    assert str(error) == f"{tmp_path / 'cluster.toml'}: {key}: {error.reason}"


def test_unknown_key_message_lists_the_valid_keys(tmp_path: Path) -> None:
    error = load_error(tmp_path, variant('id = "n2"', 'id = "n2"\nport = 1'))
    assert error.reason == "unknown key (valid keys: id, peer, client, join)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:1", Address("localhost", 1)),
        ("10.0.0.7:65535", Address("10.0.0.7", 65535)),
        ("[fe80::1]:7101", Address("fe80::1", 7101)),
    ],
)
def test_parse_address_accepts_host_port(text: str, expected: Address) -> None:
    assert parse_address(text) == expected
    assert str(expected) == text
