"""``fsync = false`` in cluster.toml: UNSAFE, for benchmarks and tests only. The storage skips its
fsyncs only then, a node says so loudly at start, and ``raftctl up``, ``start`` and ``restart``
refuse such a cluster without ``--unsafe-no-fsync``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from raftctl.cli import main
from raftctl.clusterfile import write_config
from raftctl.supervisor import free_base_port
from raftnode.api import HullAPI
from raftnode.config import ConfigError, load_config, parse_config
from raftnode.core.messages import Entry
from raftnode.node.statemachines import Counter
from raftnode.storage import disk
from raftnode.storage.disk import DiskStorage

NODE = '\n[[nodes]]\nid = "n1"\npeer = "127.0.0.1:7101"\nclient = "127.0.0.1:7201"\n'


def test_fsync_is_on_unless_the_file_turns_it_off_and_must_be_a_boolean(tmp_path: Path) -> None:
    assert parse_config(NODE, path=tmp_path / "c.toml").fsync is True
    assert parse_config("[cluster]\nfsync = false\n" + NODE, path=tmp_path / "c.toml").fsync is False
    with pytest.raises(ConfigError, match="cluster.fsync"):
        parse_config('[cluster]\nfsync = "no"\n' + NODE, path=tmp_path / "c.toml")


def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of os.fsync and os.fdatasync (what the storage makes durable with)."""
    calls: list[int] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(disk.os, name)

        def counted(fd: int, real: Any = real) -> None:
            calls.append(fd)
            real(fd)

        monkeypatch.setattr(disk.os, name, counted)
    return calls


@pytest.mark.parametrize("fsync", [True, False])
def test_the_disk_storage_skips_fsync_only_when_told_and_still_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    storage = DiskStorage(tmp_path / "data", fsync=fsync)
    calls = count_fsyncs(monkeypatch)
    storage.append([Entry(1, 1, b"incr 1"), Entry(1, 2, b"incr 2")])
    storage.sync()
    stats = storage.stats()
    storage.close()
    if fsync:
        assert calls and stats["fsyncs"] >= 1 and stats["fsyncs_skipped"] == 0
    else:
        assert not calls and stats["fsyncs_skipped"] >= 1
    reopened = DiskStorage(tmp_path / "data")
    assert [e.data for e in reopened.load().entries] == [b"incr 1", b"incr 2"]  # written all the same
    reopened.close()


def test_a_node_with_fsync_off_says_so_loudly_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = parse_config("[cluster]\nfsync = false\n" + NODE, path=tmp_path / "cluster.toml")
    with caplog.at_level(logging.WARNING, logger="raftnode"):
        hull = HullAPI.from_config(config, "n1", pilot=Counter())
    try:
        assert hull.node.storage.fsync is False  # type: ignore[attr-defined]
        (record,) = [r for r in caplog.records if "UNSAFE" in r.getMessage()]
        assert record.levelno == logging.WARNING and "fsync = false" in record.getMessage()
    finally:
        hull.node.storage.close()


@pytest.mark.parametrize("command", [["up"], ["start", "n2"], ["restart", "n2"]], ids=" ".join)
def test_raftctl_refuses_to_start_nodes_with_fsync_off_without_the_unsafe_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    from raftctl import cluster

    path = write_config(tmp_path / "cluster.toml", 3, free_base_port(3))
    path.write_text(path.read_text().replace("fsync = true", "fsync = false"))
    assert load_config(path).fsync is False
    started: list[Any] = []

    def starts(config: Any, *args: Any, **kwargs: Any) -> Any:
        started.append(config)
        raise RuntimeError("stop here: the check passed")

    monkeypatch.setattr(cluster, command[0], starts)
    refused = CliRunner().invoke(main, ["--config", str(path), *command])
    assert refused.exit_code == 2 and not started
    assert "fsync = false" in refused.stderr and "--unsafe-no-fsync" in refused.stderr
    allowed = CliRunner().invoke(main, ["--config", str(path), *command, "--unsafe-no-fsync"])
    assert started and "the check passed" in str(allowed.exception)
