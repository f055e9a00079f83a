"""Cluster life commands: ``init``, ``up``, ``down``, ``start``, ``stop``, ``kill``, ``restart``,
``logs`` and ``snapshot`` (the domain is ``raftctl.cluster``; processes are ``raftctl.supervisor``'s)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import click

from raftctl import errors
from raftctl.cli import (
    App,
    CommandError,
    EXIT_USAGE,
    console,
    echo_json,
    grace_option,
    interruptible,
    json_option,
    main,
    node_argument,
    nodes_argument,
    pass_app,
    resolve_timeout_option,
    run_domain,
    select_nodes,
    select_one,
    timeout_option,
)
from raftctl.clusterfile import DEFAULT_BASE_PORT, MAX_INIT_NODES, write_config
from raftctl.locality import require_local


@main.command()
@click.option(
    "--nodes",
    type=click.IntRange(1, MAX_INIT_NODES),
    default=3,
    show_default=True,
    help="Number of nodes (n1..nN).",
)
@click.option(
    "--base-port",
    default=str(DEFAULT_BASE_PORT),
    show_default=True,
    metavar="BASE|auto",
    help="Node nK gets peer port BASE+K and client port BASE+100+K, all within 1024-65535; "
         "`auto` picks a BASE whose ports are free now.",
)
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
@click.option("--tls", is_flag=True,
              help="Peer and client traffic over mutual TLS: a cluster CA and a certificate per node and for clients.")
@json_option
@pass_app
def init(app: App, nodes: int, base_port: str, force: bool, tls: bool, as_json: bool) -> None:
    """Write a cluster file for NODES nodes on 127.0.0.1 to the --config path (with --tls, and
    the cluster's CA and certificates in STATE_DIR/tls, keys mode 0600).

    Refuses to overwrite an existing file unless --force is given (exit 2), and ports outside
    1024-65535 (exit 2).
    """
    path = app.config_path
    base = _base_port(base_port, nodes)
    try:
        write_config(path, nodes, base, overwrite=force, tls=tls)
    except FileExistsError:
        raise CommandError(f"{path} already exists; use --force to overwrite it", EXIT_USAGE)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--base-port'") from None
    except OSError as exc:
        raise CommandError(f"{path}: cannot write: {exc.strerror or exc}", EXIT_USAGE) from None

    config = app.config()  # read back what was written: proves it loads, and reports it
    from raftnode.security.credentials import secrets_path

    from ..oneshot import cluster_certificates, cluster_credentials

    try:
        cluster_credentials(config)  # the cluster's id and secrets, kept if the state dir has them
        cluster_certificates(config)  # with --tls: the CA and certificates, kept if they exist
    except errors.UsageProblem as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if as_json:
        echo_json(
            {
                "path": str(config.path),
                "secrets": str(secrets_path(config.state_dir)),
                **({"tls": str(config.tls.dir)} if config.tls else {}),
                "nodes": [
                    {"id": n.id, "peer": str(n.peer), "client": str(n.client)}
                    for n in config.nodes
                ],
            }
        )
        return
    ids = config.node_ids
    names = ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
    peers = _port_span(n.peer.port for n in config.nodes)
    clients = _port_span(n.client.port for n in config.nodes)
    click.echo(
        f"Wrote {path}: cluster {config.name!r}, {len(ids)} node{'s' * (len(ids) > 1)} "
        f"{names} on 127.0.0.1, peer ports {peers}, client ports {clients}; "
        f"cluster id and secrets in {secrets_path(config.state_dir)} (mode 0600)"
        + (f"; TLS CA and certificates in {config.tls.dir} (keys mode 0600)." if config.tls else ".")
    )


#: The ports ``init`` writes: no privileged ports (below 1024), none past the last.
INIT_PORTS = (1024, 65535)


def _base_port(text: str, nodes: int) -> int:
    """``--base-port``: a number whose ports all fall in ``INIT_PORTS``, or ``auto``."""
    if text == "auto":
        from ..supervisor import free_base_port

        return free_base_port(nodes)
    try:
        base = int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a port number nor `auto`", param_hint="'--base-port'") from None
    low, high = base + 1, base + 100 + nodes
    if low < INIT_PORTS[0] or high > INIT_PORTS[1]:
        raise click.BadParameter(f"base port {base} puts ports at {low}-{high}, outside {INIT_PORTS[0]}-{INIT_PORTS[1]}",
                                 param_hint="'--base-port'")
    return base


def _port_span(ports: Iterable[int]) -> str:
    """``"7101-7103"`` for a run of ports, ``"7101"`` for one."""
    ordered = sorted(ports)
    return str(ordered[0]) if len(ordered) == 1 else f"{ordered[0]}-{ordered[-1]}"


unsafe_no_fsync_option = click.option(
    "--unsafe-no-fsync", is_flag=True,
    help="Start nodes whose cluster file says fsync = false (UNSAFE: benchmarks and tests only).")


def _refuse_unsafe_fsync(config: Any, unsafe_no_fsync: bool) -> None:
    """A cluster file with fsync = false starts nodes only with --unsafe-no-fsync (exit 2 without)."""
    if not config.fsync and not unsafe_no_fsync:
        raise click.UsageError(
            f"{config.path} sets fsync = false: a crash can lose acknowledged commands (UNSAFE, for benchmarks "
            "and tests only); pass --unsafe-no-fsync to start it anyway, or set fsync = true")


@main.command()
@timeout_option(10.0, "for the nodes to start and elect a leader")
@click.option("--netns", is_flag=True, help="Each node in a network namespace of its own, with kernel partitions (root; addresses in 198.18.0.0/15).")
@unsafe_no_fsync_option
@json_option
@pass_app
def up(app: App, timeout: float, netns: bool, unsafe_no_fsync: bool, as_json: bool) -> None:
    """Start every node of the cluster file in the background and wait for a leader.

    Each node runs as `python -m raftnode` in its own session; pids, logs, data and the events
    log live in the cluster's state_dir. Already running: says so and exits 0. Ports are checked
    first (one in use: exit 2 naming the node and port, nothing started); a node that exits
    while starting has its last log lines shown and the nodes just started are stopped again
    (exit 5). No leader within --timeout: exit 3. Prints the status table. --netns (root, Linux):
    each node in a network namespace of its own; `partition`/`heal` then cut links in the kernel.
    A cluster file with fsync = false (UNSAFE) is refused (exit 2) without --unsafe-no-fsync.
    """
    from .. import cluster

    config = app.config()
    _refuse_unsafe_fsync(config, unsafe_no_fsync)
    if netns:
        from ..netns import setup

        setup(config)
    require_local(config, "up")
    result = run_domain(cluster.up, config, timeout=timeout)
    if as_json:
        echo_json(
            {
                "started": result.started,
                "already_running": result.already_running,
                "seconds": round(result.elapsed, 3),
                "status": result.status.to_json() if result.status else None,
            }
        )
        return
    if not result.started:
        click.echo(f"Cluster {config.name!r} is already running ({', '.join(result.already_running)}).")
    else:
        started = ", ".join(f"{n} (pid {pid})" for n, pid in result.started.items())
        click.echo(f"Started {started}; logs in {config.state_dir / 'logs'}.")
        leader = result.status.leader if result.status else None
        if result.already_running:  # the leader may have been there before: say what was found
            click.echo(f"Already running: {', '.join(result.already_running)}; "
                       f"leader {leader} {result.elapsed:.2f} s after start.")
        else:
            click.echo(f"Leader {leader} elected {result.elapsed:.2f} s after start.")
    if result.status is not None:
        from ..render import status_view

        console().print(status_view(result.status))


@main.command()
@click.option("--purge", is_flag=True, help="Also delete the data, logs, pid files and events log.")
@grace_option
@json_option
@pass_app
def down(app: App, purge: bool, grace: float, as_json: bool) -> None:
    """Stop every node: SIGTERM, then SIGKILL after --grace seconds.

    Not running: says so and exits 0. --purge also deletes the cluster's state (data, logs, pids,
    events), leaving other files in state_dir alone.
    """
    from .. import cluster

    config = app.config()
    require_local(config, "down")
    result = run_domain(cluster.down, config, purge=purge, grace=grace)
    from ..netns import teardown

    removed = teardown(config)  # the namespaces of `up --netns`, once their nodes are gone
    if as_json:
        echo_json(
            {
                "stopped": [{"node": s.node, "pid": s.pid, "signal": s.signal} for s in result.stopped],
                "purged": result.purged,
                **({"removed": removed} if removed else {}),  # only after `up --netns`
            }
        )
        return
    if result.stopped:
        done = ", ".join(f"{s.node} (pid {s.pid}, {s.signal})" for s in result.stopped)
        click.echo(f"Stopped {done}.")
    else:
        click.echo(f"Cluster {config.name!r} is not running; nothing to stop.")
    if removed:
        click.echo(f"Removed {', '.join(removed)}.")
    if purge:
        click.echo(f"Purged {config.state_dir}." if result.purged else "Nothing to purge.")


def _process_commands(as_json: bool, act: Callable[[str], Any], node_ids: list[str]) -> None:
    """Run ``act(node_id)`` on each node in turn and report each result.

    In JSON mode: ``{"results": [...]}``, with the one result's keys at the top as well when a
    single node was named (the document ``kill NODE --json`` always printed).
    """
    results = [act(node_id) for node_id in node_ids]
    if as_json:
        document = dict(results[0].to_json()) if len(results) == 1 else {}
        document["results"] = [r.to_json() for r in results]
        echo_json(document)
        return
    for result in results:
        _process_line(result)


def _process_line(result: Any) -> None:
    messages = {
        "killed": f"Killed {result.node} (pid {result.old_pid}, SIGKILL).",
        "stopped": f"Stopped {result.node} (pid {result.old_pid}, {result.signal}).",
        "started": f"Started {result.node} (pid {result.pid}).",
        "restarted": (
            f"Restarted {result.node} (pid {result.old_pid} -> {result.pid})."
            if result.old_pid
            else f"{result.node} was not running; started it (pid {result.pid})."
        ),
        "not-running": f"{result.node} is not running; nothing to do.",
        "already-running": f"{result.node} is already running (pid {result.pid}).",
    }
    click.echo(messages[result.action])


@main.command()
@nodes_argument
@resolve_timeout_option
@json_option
@pass_app
def kill(app: App, nodes: tuple[str, ...], everything: bool, timeout: float, as_json: bool) -> None:
    """SIGKILL the process of each NODE (a crash: no goodbye, no final fsync).

    A node that is not running: says so, exit 0. NODE... is one or more of a node id, `leader`
    (the node a majority follows), `follower` (any live follower; another one each time),
    `learner`, `all`, space- or comma-separated; --all is all.
    """
    from .. import cluster

    config = app.config()
    selected = select_nodes(app, nodes, everything, timeout, local_for="kill")
    _process_commands(as_json, lambda n: run_domain(cluster.kill, config, n, timeout=timeout), selected)


@main.command()
@nodes_argument
@grace_option
@resolve_timeout_option
@json_option
@pass_app
def stop(app: App, nodes: tuple[str, ...], everything: bool, grace: float, timeout: float, as_json: bool) -> None:
    """Stop each NODE gracefully: SIGTERM, then SIGKILL after --grace seconds.

    A node that is not running: says so, exit 0. NODE... as for `kill`.
    """
    from .. import cluster

    config = app.config()
    selected = select_nodes(app, nodes, everything, timeout, local_for="stop")
    _process_commands(as_json, lambda n: run_domain(cluster.stop, config, n, grace=grace, timeout=timeout), selected)


@main.command()
@nodes_argument
@timeout_option(10.0, "for the node to answer")
@unsafe_no_fsync_option
@json_option
@pass_app
def start(app: App, nodes: tuple[str, ...], everything: bool, timeout: float, unsafe_no_fsync: bool, as_json: bool) -> None:
    """Start each NODE (ids, `all` or --all: role words name running nodes) and wait until it answers.

    Already running: says so, exit 0. The faults raftctl set on it (a partition) are given back
    to it once it answers. A node that exits while starting has its last log lines shown (exit 5).
    A cluster file with fsync = false (UNSAFE) is refused (exit 2) without --unsafe-no-fsync.
    """
    from .. import cluster

    config = app.config()
    _refuse_unsafe_fsync(config, unsafe_no_fsync)
    selected = select_nodes(app, nodes, everything, timeout, roles=(), local_for="start")
    _process_commands(as_json, lambda n: run_domain(cluster.start, config, n, timeout=timeout), selected)


@main.command()
@nodes_argument
@grace_option
@timeout_option(10.0, "for the node to answer again")
@unsafe_no_fsync_option
@json_option
@pass_app
def restart(
    app: App, nodes: tuple[str, ...], everything: bool, grace: float, timeout: float, unsafe_no_fsync: bool, as_json: bool
) -> None:
    """Stop each NODE gracefully (if it runs), start it again and wait until it answers; one
    node after the other.

    The faults raftctl set on it are given back once it answers. NODE... as for `kill`. A cluster
    file with fsync = false (UNSAFE) is refused (exit 2) without --unsafe-no-fsync.
    """
    from .. import cluster

    config = app.config()
    _refuse_unsafe_fsync(config, unsafe_no_fsync)
    selected = select_nodes(app, nodes, everything, timeout, local_for="restart")
    _process_commands(as_json, lambda n: run_domain(cluster.restart, config, n, grace=grace, timeout=timeout), selected)


@main.command()
@nodes_argument
@timeout_option(30.0, "for the snapshot")
@json_option
@pass_app
def snapshot(app: App, nodes: tuple[str, ...], everything: bool, timeout: float, as_json: bool) -> None:
    """Make each NODE snapshot its state machine now and compact its log.

    NODE... is one or more of a node id, `leader` (the node a majority follows), `follower` (any
    live follower), `learner`, `all`, space- or comma-separated; --all is all. With --json and one
    node: {"node", "index"}; always also {"results": [...]}.
    """
    from .. import cluster

    config = app.config()
    taken = [run_domain(cluster.snapshot, config, n, timeout=timeout)
             for n in select_nodes(app, nodes, everything, min(timeout, 5.0))]
    if as_json:
        results = [{"node": node_id, "index": index} for node_id, index in taken]
        echo_json({**(results[0] if len(results) == 1 else {}), "results": results})
        return
    for node_id, index in taken:
        click.echo(f"{node_id}: snapshot at index {index}.")


@main.command()
@node_argument
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines as the node writes them (until Ctrl-C).")
@click.option("-n", "--lines", type=click.IntRange(0), default=None, metavar="N", help="Only the last N lines.")
@json_option
@pass_app
def logs(app: App, node: str, follow: bool, lines: int | None, as_json: bool) -> None:
    """Print NODE's log file (its stdout and stderr, across restarts).

    With --json: one document {"node", "path", "lines"}; with --follow too, one JSON object per
    line as it comes (JSON lines). NODE is a node id, `leader` (the node a majority follows),
    `follower` (any live follower) or `learner`.
    """
    import time

    from .. import events
    from ..supervisor import StatePaths

    config = app.config()
    node_id = select_one(app, node, 5.0, local_for="logs")
    path = StatePaths.of(config).log_file(node_id)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise errors.NotRunning(f"no log for {node_id} at {path}: it was never started by raftctl") from None
    existing = text.splitlines()
    if lines is not None:
        existing = existing[-lines:] if lines else []
    if as_json and not follow:
        echo_json({"node": node_id, "path": str(path), "lines": existing})
        return

    def emit(line: str) -> None:
        click.echo(json.dumps({"node": node_id, "line": line}) if as_json else line)

    for line in existing:
        emit(line)
    if not follow:
        return
    follower = events.LogFollower(path, from_end=False)
    follower.read_new()  # skip what was printed; the position is where `text` ended or later

    def tail() -> None:
        while True:
            for line in follower.read_new():
                emit(line)
            time.sleep(0.1)

    interruptible(tail)
