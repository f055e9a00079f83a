"""Tools around a cluster: ``sim`` (the deterministic simulator), ``bench`` (load), ``chaos``,
``check-history`` (linearizability of a recorded history) and ``export`` (deployment files)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from raftctl.cli import (
    App,
    CommandError,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    console,
    echo_json,
    finish,
    json_option,
    main,
    pass_app,
    run_domain,
)


@main.command()
@click.option("--seeds", type=click.IntRange(1), default=100, show_default=True, help="How many seeds to run.")
@click.option("--start-seed", type=click.IntRange(0), default=0, show_default=True, help="The first seed.")
@click.option("--seed", type=click.IntRange(0), default=None, help="Run this one seed (replay).")
@click.option("--nodes", type=click.IntRange(1, 15), default=5, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=2000, show_default=True, help="Random actions per seed.")
@click.option("--pre-vote/--no-pre-vote", default=True, show_default=True)
@click.option("--check-quorum/--no-check-quorum", default=True, show_default=True)
@click.option("--membership/--no-membership", default=True, show_default=True,
              help="Mix membership changes (add a node, remove one, remove the leader) into the schedules.")
@click.option("--disk-faults", is_flag=True,
              help="Mix in disk faults: torn writes, unsynced writes lost, failed fsyncs, full disks, corrupt "
                   "records, logs restored from an older copy.")
@click.option("--jobs", type=click.IntRange(1), default=None, help="Worker processes (default: one per core).")
@click.option("--trace", is_flag=True, help="With --seed: print one line per event, then the verdict.")
@click.option("--node", "trace_nodes", multiple=True, metavar="ID[,ID]",
              help="With --trace: only events at these nodes (and network faults touching them); repeatable.")
@click.option("--kind", "trace_kinds", multiple=True, metavar="KIND[,KIND]",
              help="With --trace: only events of these kinds (e.g. leader,network,crash); repeatable.")
@click.option("--from-tick", type=click.IntRange(0), default=None, help="With --trace: only events from this tick.")
@click.option("--to-tick", type=click.IntRange(0), default=None, help="With --trace: only events up to this tick.")
@json_option
def sim(
    seeds: int,
    start_seed: int,
    seed: int | None,
    nodes: int,
    steps: int,
    pre_vote: bool,
    check_quorum: bool,
    membership: bool,
    disk_faults: bool,
    jobs: int | None,
    trace: bool,
    trace_nodes: tuple[str, ...],
    trace_kinds: tuple[str, ...],
    from_tick: int | None,
    to_tick: int | None,
    as_json: bool,
) -> None:
    """Run the Raft core in the deterministic simulator under random faults.

    Each seed drives a cluster of NODES cores through STEPS random actions (ticks, client
    commands, partitions, lossy/slow/duplicating links, crashes and restarts, leadership
    transfers, membership changes), checks every safety invariant after every step, then stops the faults and checks
    that a leader emerges and a command commits. A violation prints the seed, the invariant and
    the command that replays it, and exits 1. Needs no running cluster.
    """
    import time

    from raftnode.sim.runner import run_seed

    from ..simulate import SimSettings, summarize, summary_lines, trace_filter, traced_lines

    if trace and seed is None:
        raise click.UsageError("--trace needs --seed S (one run, told as a story)")
    shown = _sim_trace_filter(trace, trace_nodes, trace_kinds, from_tick, to_tick, trace_filter)
    settings = SimSettings(nodes=nodes, steps=steps, pre_vote=pre_vote, check_quorum=check_quorum, membership=membership,
                           disk_faults=disk_faults)
    started = time.perf_counter()
    if seed is not None and trace:
        report = run_seed(seed, nodes=nodes, steps=steps, pre_vote=pre_vote, check_quorum=check_quorum,
                          membership=membership, disk_faults=disk_faults, trace=True)
        try:
            lines = list(traced_lines(report, shown))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--node") from None
        if not as_json:
            click.echo("\n".join(lines))
        reports = [report]
    else:
        todo = [seed] if seed is not None else range(start_seed, start_seed + seeds)
        reports = _run_sim_seeds(todo, settings, jobs, as_json)
    summary = summarize(reports, settings, time.perf_counter() - started)
    if not as_json:
        for line in summary_lines(summary, nodes, steps):
            click.echo(line)
    bad = len(summary["violations"])
    finish(as_json, summary, EXIT_REFUSED if bad else EXIT_OK, f"{bad} seed(s) violated a safety invariant")


def _sim_trace_filter(trace: bool, nodes: tuple[str, ...], kinds: tuple[str, ...], from_tick: int | None,
                      to_tick: int | None, make: Callable[..., Any]) -> Any:
    """The ``--trace`` filter from ``sim``'s options; a usage error if one is given without --trace."""
    if not trace and (nodes or kinds or from_tick is not None or to_tick is not None):
        raise click.UsageError("--node, --kind, --from-tick and --to-tick filter --trace: add --trace")
    try:
        return make(nodes, kinds, from_tick, to_tick)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _run_sim_seeds(todo: Iterable[int], settings: Any, jobs: int | None, as_json: bool) -> list[Any]:
    """Run the seeds; a violation is told on stderr as it is found, and on a terminal a counter
    of seeds done is kept up to date there."""
    import sys

    from ..simulate import run_seeds

    todo = list(todo)
    progress = sys.stderr.isatty() and len(todo) > 1
    reports = []
    for report in run_seeds(todo, settings, jobs=jobs):
        reports.append(report)
        if progress:
            click.echo(f"\r{len(reports)}/{len(todo)} seeds", err=True, nl=len(reports) == len(todo))
        if not report.ok and not as_json:
            click.echo(f"seed {report.seed}: VIOLATION of {report.violation}: {report.detail}", err=True)
            click.echo(f"  replay: {report.replay_command()}", err=True)
    return reports


@main.command()
@click.option("--in-flight", type=click.IntRange(1, 1_000_000), default=64, show_default=True, metavar="N",
              help="Commands outstanding at every moment (a closed loop).")
@click.option("--connections", type=click.IntRange(1), default=None, metavar="C",
              help="Connections to the leader that share them, each in its own client session (at most "
                   "4096 in flight)  [default: min(N, 4), more beyond 16384]")
@click.option("--count", type=click.IntRange(1), default=None, metavar="N", help="Stop after N commands.")
@click.option("--duration", type=click.FloatRange(0, 86_400, min_open=True), default=None, metavar="S",
              help="Stop after S seconds  [default: 10 without --count]")
@click.option("--command", "commands", multiple=True, metavar="[W:]CMD",
              help="A command of the mix, with an optional weight (`3:incr 1`); repeat for a mix  [default: incr 1]")
@click.option("--warmup", type=click.FloatRange(0, 600), default=0.0, show_default=True, metavar="S",
              help="Seconds of the same load first, not measured.")
@click.option("--timeout", type=click.FloatRange(0, 3600, min_open=True), default=10.0, show_default=True,
              metavar="S", help="Seconds the leader may take to commit one command.")
@click.option("--log-reads", is_flag=True,
              help="Send get through the log like any command, not as a linearizable query (ReadIndex).")
@click.option("--spread", is_flag=True,
              help="Open the connections to every node in turn, not only the leader (followers serve reads).")
@click.option("--batch", type=click.IntRange(1, 1024), default=1, show_default=True, metavar="B",
              help="Commands per request: above 1 writes go as run_many requests of up to B commands, "
                   "which the leader proposes as one batch, and reads (get) as query_many requests of up "
                   "to B reads, never mixed in one request (each command still answered on its own).")
@json_option
@pass_app
def bench(app: App, in_flight: int, connections: int | None, count: int | None, duration: float | None,
          commands: tuple[str, ...], warmup: float, timeout: float, log_reads: bool, spread: bool,
          batch: int, as_json: bool) -> None:
    """Load the running cluster with a closed loop of commands and report throughput, latency
    p50/p90/p99/max, errors, redirects and retries, and the CPU seconds of each node and of the
    client. A get is a linearizable query served without the log (`--command get` measures
    reads). Nothing running: exit 5; no leader: exit 3; commands refused: exit 1; stalled: exit 4;
    Ctrl-C: the report of what ran so far, exit 130.
    """
    from .. import bench as load

    if count is not None and duration is not None:
        raise click.UsageError("give --count or --duration, not both")
    if connections is not None and connections > in_flight:
        raise click.UsageError(f"--connections {connections} is more than --in-flight {in_flight}")
    try:
        mix = load.parse_mix(commands)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--command'") from None
    try:
        workload = load.Workload(mix, in_flight=in_flight, connections=connections, count=count,
                                 duration=duration if count is None and duration is not None else (None if count else 10.0),
                                 warmup=warmup, command_timeout=timeout, reads_through_log=log_reads,
                                 spread=spread, batch=batch)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    config = app.config()
    if as_json:
        report = run_domain(load.cluster_bench, config, workload, stop_on_sigint=True)
    else:
        from ..render.bench import ProgressBar, report_view

        out = console()
        with ProgressBar(out, workload) as bar:
            report = run_domain(load.cluster_bench, config, workload, progress=bar.update, stop_on_sigint=True)
        out.print(report_view(report))
    code, message = EXIT_OK, ""
    if report["interrupted"]:
        code, message = EXIT_INTERRUPTED, "interrupted: the report covers what ran until Ctrl-C"
    elif report["stalled"]:
        code, message = EXIT_TIMEOUT, "the run stalled: no answer within the timeout; see `raftctl status`"
    elif report["errors"]:
        sample = next(iter(report["error_samples"]), "")
        code, message = EXIT_REFUSED, f"the cluster refused {report['errors']} commands ({sample})"
    finish(as_json, report, code, message)


@main.command("check-history")
@click.argument("history_file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_name", type=click.Choice(["kv", "counter"]), default="kv", show_default=True,
              help="The state machine the operations ran on (counter: also totals, one counter per key).")
@click.option("--budget", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True, metavar="S",
              help="Seconds of search per key before the key counts as unknown.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Also write the report as one self-contained HTML page (time line, latency, anomalies).")
@json_option
def check_history_command(history_file: Path, model_name: str, budget: float, html_path: Path | None,
                          as_json: bool) -> None:
    """Check a recorded history (JSON lines: invoke/ok/fail/info records) for linearizability.

    Each key is checked on its own (Wing & Gong / Lowe's search). An anomaly is explained by the
    first operation that cannot be linearized and the longest linearization found before it.
    --html writes a page to open in a browser. Exit 0 linearizable, 1 anomaly, 4 the budget ran
    out on some key (named), 2 a bad file (the line and the problem). The format is documented in
    raftctl/linearizability/history.py.
    """
    from ..linearizability import ANOMALY, MODELS, OK, Budget, HistoryError, ModelMismatch, check_history
    from ..linearizability.history import MAX_LINE_CHARS, parse_history

    try:
        with history_file.open("rb") as stream:
            history = parse_history(iter(lambda: stream.readline(MAX_LINE_CHARS + 1), b""))
        verdict = check_history(history, MODELS[model_name], Budget(steps=None, seconds=budget))
    except OSError as exc:
        raise CommandError(f"cannot read {history_file}: {exc.strerror or exc}", EXIT_USAGE) from None
    except (HistoryError, ModelMismatch) as exc:
        raise CommandError(f"{history_file}: {exc}", EXIT_USAGE) from None
    if html_path is not None:
        from ..linearizability.report import html_report

        try:
            html_path.write_text(html_report(history, verdict, title=f"{history_file.name}: linearizability"),
                                 encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {html_path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if not as_json:
        from ..render import linearizability_view

        console().print(linearizability_view(verdict, str(history_file)))
    code = EXIT_OK if verdict.status == OK else EXIT_REFUSED if verdict.status == ANOMALY else EXIT_TIMEOUT
    finish(as_json, verdict.to_json(), code, f"{history_file}: {verdict.status}")


@main.command("chaos")
@click.option("--duration", type=click.FloatRange(1), default=60.0, show_default=True, metavar="S",
              help="Seconds of concurrent clients and faults.")
@click.option("--nodes", type=click.IntRange(3, 9), default=5, show_default=True)
@click.option("--clients", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--faults", default=",".join(("partition", "kill", "restart", "slow", "flaky", "transfer", "membership")),
              show_default=True, help="Comma-separated fault kinds; 'none' for none.")
@click.option("--seed", type=click.IntRange(0), default=None, help="The run's seed (default: random, printed).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the run's cluster, history and report go (default: chaos-runs/seed-S).")
@click.option("--keys", type=click.IntRange(2, 64), default=6, show_default=True,
              help="Keys in use at a time (half registers for get/set/cas, half counters for get/incr).")
@click.option("--op-timeout", type=click.FloatRange(0.1), default=2.0, show_default=True, metavar="S",
              help="A client gives up on an operation after this long (a write then counts as unknown).")
@click.option("--budget", type=click.FloatRange(0, min_open=True), default=60.0, show_default=True, metavar="S",
              help="Seconds of linearizability search per key before the key counts as unknown.")
@click.option("--keep", is_flag=True, help="Keep the cluster's data after the run.")
@click.option("--state-machine", default="kv", show_default=True, metavar="kv|package.module:Class",
              help="The state machine under test: kv, or your own class with kv's commands (set, get, cas, incr).")
@json_option
def chaos_command(duration: float, nodes: int, clients: int, faults: str, seed: int | None, directory: Path | None,
                  keys: int, op_timeout: float, budget: float, keep: bool, state_machine: str, as_json: bool) -> None:
    """Prove the cluster linearizable under faults: clients and a seeded nemesis, then a check.

    Starts a NODES-node kv cluster of its own on free loopback ports, runs CLIENTS concurrent
    clients (get, set with unique values, cas, incr on a rotating set of keys) for DURATION
    seconds while faults are injected one at a time, records everything to history.jsonl, checks
    that every node converged to the same state and that the history is linearizable per key.
    Exit 0 linearizable, 1 an anomaly (or nodes that disagree), 4 the checker ran out of budget
    on some key (named).
    """
    import random

    from ..chaosrun.plan import FAULT_KINDS
    from ..chaosrun.run import ChaosOptions, run_chaos

    kinds = tuple(k for k in (w.strip() for w in faults.split(",")) if k and k != "none")
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise click.BadParameter(f"unknown fault kind {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}",
                                 param_hint="'--faults'")
    seed = random.SystemRandom().randrange(1 << 31) if seed is None else seed
    directory = directory or Path("chaos-runs") / f"seed-{seed}"
    if directory.exists() and any(directory.iterdir()):
        raise CommandError(f"{directory} is not empty; name another with --dir", EXIT_USAGE)
    options = ChaosOptions(directory=directory.resolve(), seed=seed, duration=duration, nodes=nodes, clients=clients,
                           faults=kinds, keys=keys, op_timeout=op_timeout, check_seconds=budget, keep=keep,
                           state_machine=state_machine)
    if not as_json:
        click.echo(f"chaos: seed {seed}, {nodes} nodes, {clients} clients, {duration:g} s, "
                   f"faults {', '.join(kinds) or 'none'}; writing to {directory}", err=True)
    result = run_domain(run_chaos, options, progress=None if as_json else _chaos_progress())
    if not as_json and click.get_text_stream("stderr").isatty():
        click.echo("", err=True)  # end the progress line
    if not as_json:
        from ..render import chaos_view

        console().print(chaos_view(result))
    finish(as_json, result.to_json(), result.exit_code, f"chaos run (seed {seed}): exit {result.exit_code}, see the report")


def _chaos_progress() -> Callable[[str, float], None]:
    """Progress on stderr: one line rewritten in place on a terminal, else a line per phase."""
    import sys

    shown = {"line": "", "phase": ""}

    def tell(phase: str, fraction: float) -> None:
        line = f"  {fraction * 100:5.1f}%  {phase}"
        if sys.stderr.isatty():
            sys.stderr.write("\r" + line.ljust(len(shown["line"])))
            sys.stderr.flush()
            shown["line"] = line
        elif fraction >= 1.0 and phase != shown["phase"]:
            sys.stderr.write(f"  {phase}\n")
            shown["phase"] = phase

    return tell


@main.command("export")
@click.argument("kind", type=click.Choice(["compose", "k8s", "systemd"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory to write into.")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.option("--image", "image_name", default=None, help="Image name (compose, k8s; default raftctl-<cluster>:<version>).")
@click.option("--storage", default="1Gi", show_default=True, help="Size of each node's volume (k8s).")
@click.option("--python", default="/usr/bin/python3", show_default=True, help="Python on the hosts (systemd).")
@json_option
@pass_app
def export_command(app: App, kind: str, out: Path, force: bool, image_name: str | None, storage: str, python: str, as_json: bool) -> None:
    """Write deployment files for KIND from the cluster file: a Dockerfile and compose file, a
    Kubernetes StatefulSet (and Secret), or systemd units. Nodes listen on 0.0.0.0 in containers,
    with peer authentication and the admin token; see README "Running on several hosts".
    """
    from ..export import export

    written = export(app.config(), kind, out, force=force, image_name=image_name, storage=storage, python=python)
    if as_json:
        echo_json({"kind": kind, "files": [str(p) for p in written]})
    else:
        click.echo(f"Wrote {len(written)} files to {out} ({kind}).")
