"""A data directory that lost its log or its hard state is refused at start (issue 16).

Starting such a node as new would forget its term and vote — it could vote twice in a term —
and the entries it acknowledged. A new (missing or empty) directory still starts fresh.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raftnode.core.messages import Entry
from raftnode.core.ready import HardState
from raftnode.security.credentials import ensure_credentials, secrets_path
from raftnode.storage import LostStateError, SnapshotMeta
from raftnode.storage.disk import DiskStorage


def used_directory(directory: Path, *, snapshot: bool = False) -> None:
    with DiskStorage(directory) as s:
        s.set_hard_state(HardState(term=3, vote="n2", commit=2))
        s.append([Entry(3, i, b"incr 1") for i in range(1, 6)])
        s.sync()
        if snapshot:
            s.save_snapshot(SnapshotMeta(2, 3), b"2")
            s.compact(2)


@pytest.mark.parametrize("fresh", ["missing", "empty"])
def test_a_new_directory_starts_fresh(tmp_path, fresh):
    directory = tmp_path / "data"
    if fresh == "empty":
        directory.mkdir()
    with DiskStorage(directory) as s:
        state = s.load()
        assert (state.hard_state, state.entries, state.snapshot) == (HardState(), [], None)
    with DiskStorage(directory) as s:  # and the same directory reopens, now in use
        assert s.load().hard_state == HardState()


@pytest.mark.parametrize("snapshot", [False, True])
def test_a_directory_whose_log_was_deleted_is_refused_naming_what_is_missing_and_the_ways_on(tmp_path, snapshot):
    used_directory(tmp_path, snapshot=snapshot)
    for seg in tmp_path.glob("log-*.seg"):
        seg.unlink()
    with pytest.raises(LostStateError) as info:
        DiskStorage(tmp_path)
    message = str(info.value)
    assert "no log (log-*.seg files" in message and "LOCK file marked in use" in message
    assert ("a snapshot" in message) == snapshot
    assert "restore the missing files" in message and "raftctl remove-node" in message and "raftctl add-node" in message
    assert not list(tmp_path.glob("log-*.seg"))  # nothing was created in its place


def test_a_log_without_any_hard_state_is_refused(tmp_path):
    used_directory(tmp_path)
    seg = next(tmp_path.glob("log-*.seg"))
    buf, kept, pos = seg.read_bytes(), [], 0
    while pos < len(buf):
        end = pos + 8 + int.from_bytes(buf[pos : pos + 4], "little")
        if buf[pos + 24] != 0xFF:  # every hard-state record (kind 255) is gone
            kept.append(buf[pos:end])
        pos = end
    seg.write_bytes(b"".join(kept))
    (tmp_path / "hardstate").unlink(missing_ok=True)
    with pytest.raises(LostStateError, match=r"no hard state \(term and vote"):
        DiskStorage(tmp_path)


def test_a_deleted_hardstate_file_loses_nothing_once_the_log_was_written_after_a_truncation(tmp_path):
    used_directory(tmp_path)
    with DiskStorage(tmp_path) as s:
        s.set_hard_state(HardState(term=4, vote="n3", commit=2))
        s.sync()
        s.append([Entry(4, 3, b"decr 1")])  # truncates the log from index 3, hard state and all
        s.sync()
    assert (tmp_path / "hardstate").exists()
    (tmp_path / "hardstate").unlink()
    with DiskStorage(tmp_path) as s:
        assert s.load().hard_state == HardState(term=4, vote="n3", commit=2)


def test_raftnode_refuses_to_start_on_a_lost_log_and_exits_non_zero(tmp_path):
    config = tmp_path / "cluster.toml"
    config.write_text(
        '[cluster]\nname = "t"\nstate_dir = "state"\n\n'
        '[[nodes]]\nid = "n1"\npeer = "127.0.0.1:1"\nclient = "127.0.0.1:2"\n'
    )
    ensure_credentials(secrets_path(tmp_path / "state"))  # so the node gets as far as its data
    data = tmp_path / "state" / "data" / "n1"
    used_directory(data)
    for seg in data.glob("log-*.seg"):
        seg.unlink()
    out = subprocess.run([sys.executable, "-m", "raftnode", "--config", str(config), "--node", "n1"],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert out.returncode != 0
    assert "cannot start" in out.stderr and "no log" in out.stderr and "raftctl remove-node" in out.stderr
