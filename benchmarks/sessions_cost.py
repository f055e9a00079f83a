"""What client sessions (thesis §6.3) cost the leader, in one run: issue 19's session lever.

    python3 benchmarks/sessions_cost.py [--in-flight 512] [--duration 3] [--rounds 2] [--profile DIR]
                                        [--against SOURCE_TREE]

A fresh 3-node ``counter`` cluster in a temporary directory (``raftctl init --base-port auto``,
``up``), then ``raftctl bench``'s load (``--command "incr 1"``) with one session per connection
and without sessions (``Workload.sessions=False``) in turn, ``--rounds`` times; the machine is
shared, so the two alternate and the ratio is of the totals over all rounds. With ``--profile``
the leader is sampled by ``py-spy record`` (if installed) during each run, into DIR. With
``--against`` a second cluster runs the nodes of another source tree (``git archive REV | tar -x``)
and the runs alternate between the two clusters too: a before/after measured in one run.
Exit 0 when every run completed, 2 when the cluster or a run failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from raftctl import bench as load  # noqa: E402
from raftctl import supervisor  # noqa: E402
from raftnode.config import load_config  # noqa: E402


def raftctl(config: Path, *args: str, tree: Path = REPO) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-m", "raftctl", "--config", str(config), *args], env=env,
                   capture_output=True, text=True, check=True, timeout=600)


def one_run(config_path: Path, sessions: bool, args: argparse.Namespace, profile: Path | None) -> dict:
    config = load_config(config_path)
    workload = load.Workload(load.parse_mix(["incr 1"]), in_flight=args.in_flight, duration=args.duration,
                             warmup=0.5, sessions=sessions)
    spy = None
    if profile is not None and shutil.which("py-spy"):
        leader = trio.run(lambda: load.find_leader({n.id: n.client for n in config.nodes}))
        pid = supervisor.live_pids(config)[leader]
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "-r", "250", "-d", str(int(args.duration)), "-f", "raw",
                                "-o", str(profile), "--nonblocking"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    report = trio.run(lambda: load.cluster_bench(config, workload))
    if spy is not None:
        spy.wait(timeout=60)
    return report


def summary(totals: dict[tuple[str, bool], list[float]]) -> list[str]:
    """A line per cluster: the throughput with and without sessions and what sessions cost in CPU
    per command. ``totals[(cluster, sessions)]``: acknowledged commands, measured seconds, commands
    answered while the CPU was read, the leader's and all nodes' CPU seconds (summed over rounds)."""
    lines = []
    for name in dict.fromkeys(t for t, _ in totals):
        rates = {s: v[0] / v[1] for (t, s), v in totals.items() if t == name}
        leader = {s: 1e6 * v[3] / v[2] for (t, s), v in totals.items() if t == name}
        nodes = {s: 1e6 * v[4] / v[2] for (t, s), v in totals.items() if t == name}
        lines.append(
            f"{name}: with sessions {rates[True]:,.0f} cmds/s, without {rates[False]:,.0f}: sessions keep "
            f"{rates[True] / rates[False]:.1%} of the throughput; CPU per command with/without sessions: "
            f"leader {leader[True]:.1f}/{leader[False]:.1f} us (+{leader[True] - leader[False]:.1f}), "
            f"3 nodes {nodes[True]:.1f}/{nodes[False]:.1f} us (+{nodes[True] - nodes[False]:.1f})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, default=512)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", type=Path, help="a directory for py-spy's raw profiles of the leader")
    parser.add_argument("--against", type=Path, help="another source tree whose nodes run a second cluster")
    args = parser.parse_args()
    trees = {"this": REPO, **({"against": args.against.resolve()} if args.against else {})}
    # (acknowledged, seconds, commands answered while the CPU was read, leader CPU s, all nodes' CPU s)
    totals: dict[tuple[str, bool], list[float]] = {(t, s): [0, 0.0, 0, 0.0, 0.0] for t in trees for s in (True, False)}
    with tempfile.TemporaryDirectory(prefix="sessions-cost-") as directory:
        configs = {name: Path(directory) / name / "cluster.toml" for name in trees}
        try:
            for name, tree in trees.items():
                configs[name].parent.mkdir()
                raftctl(configs[name], "init", "--base-port", "auto", tree=tree)
                raftctl(configs[name], "up", tree=tree)
            for round_ in range(args.rounds):
                order = list(totals) if round_ % 2 == 0 else list(reversed(totals))  # neither always first
                for name, sessions in order:
                    label = f"{name}/{'sessions' if sessions else 'plain'}"
                    profile = args.profile / f"{label.replace('/', '-')}-{round_}.txt" if args.profile else None
                    report = one_run(configs[name], sessions, args, profile)
                    ok, seconds, cpu = report["acknowledged"], report["seconds"], report["cpu_seconds"]["nodes"]
                    answered = ok + report["warmup_acknowledged"] + report["late"]
                    leader_cpu = cpu[report["leader"]] or 0.0
                    for slot, value in enumerate((ok, seconds, answered, leader_cpu, sum(v or 0.0 for v in cpu.values()))):
                        totals[name, sessions][slot] += value
                    print(f"round {round_ + 1} {label:17}: {ok / seconds:9.0f} cmds/s, leader "
                          f"{1e6 * leader_cpu / answered:5.1f} us cpu/cmd", flush=True)
        except (subprocess.CalledProcessError, RuntimeError, KeyError) as exc:
            print(f"failed: {getattr(exc, 'stderr', None) or exc!r}", file=sys.stderr)
            return 2
        finally:
            for name, tree in trees.items():
                subprocess.run([sys.executable, "-m", "raftctl", "--config", str(configs[name]), "down"],
                               env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, timeout=120)
    for line in summary(totals):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
