"""Every shell drill in examples/drills passes against a fresh cluster of its own.

Each drill gets a temp directory with a cluster file written by ``raftctl init --base-port`` on
free ports, and a ``raftctl`` on PATH that runs this interpreter's raftctl. A drill is bounded by
its own watchdog (DRILL_TIMEOUT) and by the subprocess timeout here; whatever happens, the
cluster is torn down afterwards. The drills run two at a time to keep the suite quick.

With TLS on (``raftctl init --tls``: every peer and client connection under mutual TLS), a subset
runs again: killing the leader under load, and growing and shrinking the cluster (add-node issues
the new nodes' certificates) -- two more drills side by side, about a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftctl.clusterfile import write_config

from .raftctl_harness import REPO, Cluster, free_base_port

DRILLS = sorted((REPO / "examples" / "drills").glob("[0-9]*.sh"))
DRILL_TIMEOUT = 240  # seconds; a drill takes 35-50 s idle and up to ~100 s at load 17 on 2 cores


def test_there_are_at_least_five_drills_in_strict_mode() -> None:
    assert len(DRILLS) >= 5
    for drill in DRILLS:
        text = drill.read_text()
        assert os.access(drill, os.X_OK), f"{drill.name} is not executable"
        assert 'source "$(dirname "$0")/lib.sh"' in text, drill.name
    lib = (REPO / "examples" / "drills" / "lib.sh").read_text()
    assert "set -euo pipefail" in lib and "down --purge" in lib and "DRILL_TIMEOUT" in lib


class DrillRun:
    """One drill running as a process against its own cluster file."""

    def __init__(self, drill: Path, tmp_path: Path, *, tls: bool = False) -> None:
        self.drill = drill
        self.dir = tmp_path / drill.stem
        self.dir.mkdir()
        bin_dir = self.dir / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "raftctl"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m raftctl "$@"\n')
        shim.chmod(0o755)
        self.config = self.dir / "cluster.toml"
        nodes = 5 if "minority" in drill.name and "leader" in drill.name else 3
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "DRILL_TIMEOUT": str(DRILL_TIMEOUT - 10),
        }
        env.pop("RAFTCTL_CONFIG", None)
        init = subprocess.run(
            [sys.executable, "-m", "raftctl", "--config", str(self.config), "init", "--nodes", str(nodes),
             "--base-port", str(free_base_port(nodes)), *(["--tls"] if tls else [])],
            check=False, capture_output=True, text=True, env=env, timeout=30,
        )
        assert init.returncode == 0, init.stderr
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["bash", str(drill), str(self.config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=self.dir,
        )

    def finish(self) -> tuple[int, str, float]:
        try:
            output, _ = self.process.communicate(timeout=DRILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
            output += f"\n(killed after {DRILL_TIMEOUT} s)"
        return self.process.returncode, output, time.monotonic() - self.started

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        Cluster(self.dir, self.config).close()


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[DrillRun]]:
    started: list[DrillRun] = []
    try:
        yield started
    finally:
        for run in started:
            run.close()


def test_every_drill_passes_against_a_fresh_cluster(tmp_path: Path, runs: list[DrillRun]) -> None:
    run_in_pairs(DRILLS, tmp_path, runs, tls=False)


def test_every_drill_passes_with_tls_on(tmp_path: Path, runs: list[DrillRun]) -> None:
    """Issue 15: TLS on and off both pass the drills (each against a cluster of ``init --tls``)."""
    run_in_pairs(DRILLS, tmp_path, runs, tls=True)
    grown = next(drill for drill in DRILLS if drill.name.startswith("06-"))
    assert (tmp_path / grown.stem / ".raftctl" / "tls" / "node-d4.crt").exists()  # add-node issued it


def run_in_pairs(drills: list[Path], tmp_path: Path, runs: list[DrillRun], *, tls: bool) -> None:
    """Run ``drills`` two at a time, each against a fresh cluster; fail listing every failure."""
    failures = []
    timings = []
    pending = list(drills)
    while pending:
        batch, pending = pending[:2], pending[2:]
        current = []
        for drill in batch:
            run = DrillRun(drill, tmp_path, tls=tls)
            runs.append(run)
            current.append(run)
        for run in current:
            code, output, seconds = run.finish()
            timings.append(f"{run.drill.name}: {seconds:.1f} s")
            if code != 0 or "PASSED" not in output:
                failures.append(f"===== {run.drill.name}: exit {code}\n{output}")
            assert Cluster(run.dir, run.config).node_pids() == [], f"{run.drill.name} left nodes running"
    print("\n".join(timings))
    assert not failures, "\n".join(failures)


def test_a_drill_runs_from_any_directory_without_raftctl_on_the_path(tmp_path: Path) -> None:
    """Issue 17: `cd /tmp/x && path/to/drill.sh` finds the repository's cluster.toml and, with no
    `raftctl` installed, runs the repository's own. A copy of lib.sh in a stand-in repository
    (its cluster.toml on free ports) keeps the real one's state untouched."""
    repo = tmp_path / "repo"
    (repo / "examples" / "drills").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "drills" / "lib.sh", repo / "examples" / "drills" / "lib.sh")
    write_config(repo / "cluster.toml", 3, free_base_port(3))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = elsewhere / "probe.sh"
    probe.write_text(f'source "{repo}/examples/drills/lib.sh"\necho "config=$RAFTCTL_CONFIG"\n'
                     'code=0; raftctl leader || code=$?\necho "leader exit $code"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {key: value for key, value in os.environ.items() if key != "RAFTCTL_CONFIG"}
    env.update(PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", PYTHONPATH=str(REPO), DRILL_TIMEOUT="30")
    done = subprocess.run(["bash", str(probe)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"config={repo}/cluster.toml" in done.stdout
    assert "leader exit 5" in done.stdout and f"{repo}/cluster.toml is not running" in done.stderr
