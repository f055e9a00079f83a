"""`raftnode --config PATH --node ID` refuses a bad cluster file or node id with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftctl.clusterfile import write_config
from raftnode.__main__ import main


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml")


def test_an_unknown_node_lists_the_valid_ids(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config_path), "--node", "n7"]) == 2
    err = capsys.readouterr().err
    assert "'n7'" in err and "n1, n2, n3" in err


def test_a_bad_config_names_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text("[cluster]\nelection_timeout_ms = [300, 150]\n")
    assert main(["--config", str(path), "--node", "n1"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: cluster.election_timeout_ms: min 300 is greater than max 150" in err
    assert "Traceback" not in err


def test_node_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "--node" in capsys.readouterr().err


def test_listening_beyond_loopback_needs_peer_auth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\npeer_auth = false\n[[nodes]]\nid = "n1"\npeer = "127.0.0.1:7101"\nclient = "127.0.0.1:7201"\n')
    assert main(["--config", str(path), "--node", "n1", "--listen-host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--listen-host 0.0.0.0 is not a loopback address: set peer_auth = true" in err
