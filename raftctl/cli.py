"""The ``raftctl`` command line: the only module that imports click.

Commands are thin: parse, load the cluster config through ``App.config()``, call one domain
function, print human output or (with ``--json``) one JSON document on stdout. Errors go to stderr.

Domain errors need no handling in commands: ``RaftctlGroup`` runs every command inside
``domain_errors()``, which turns any exception type registered in ``ERROR_EXIT_CODES`` into a
``CommandError`` carrying the exit code of the contract (``ConfigError`` -> 2). To add a command,
decorate a function with ``@main.command()`` and ``@pass_app``; register new domain exception
types in ``ERROR_EXIT_CODES``. Import heavy modules (rich, trio) inside the commands that use them
so ``raftctl --help`` and ``raftctl init`` stay fast.

Exit codes are the ``EXIT_*`` constants below, as listed in ``EXIT_CODES_HELP``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from raftnode import __version__
from raftnode.config import (
    DEFAULT_BASE_PORT,
    MAX_INIT_NODES,
    ClusterConfig,
    ConfigError,
    load_config,
    write_config,
)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NO_LEADER = 3
EXIT_TIMEOUT = 4
EXIT_NOT_RUNNING = 5

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 the cluster refused the command or the state machine returned an "
    "error; 2 usage or configuration error; 3 no leader within the timeout; 4 timed out waiting "
    "for a commit or condition; 5 the cluster or the named node is not running or unreachable."
)

#: Domain exception type -> exit code; the closest registered base class of an error wins.
ERROR_EXIT_CODES: dict[type[Exception], int] = {
    ConfigError: EXIT_USAGE,
}

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    """A failure that click reports on stderr as ``Error: <message>``, exiting with ``exit_code``.

    Args:
        message: The complete user-facing message.
        exit_code: One of the ``EXIT_*`` codes.
    """

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(error: BaseException) -> int | None:
    """Return the exit code registered for ``error``'s type or its closest base class.

    Returns:
        The ``EXIT_*`` code, or None if no class in ``error``'s MRO is in ``ERROR_EXIT_CODES``.
    """
    for cls in type(error).__mro__:
        code = ERROR_EXIT_CODES.get(cls)
        if code is not None:
            return code
    return None


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Turn registered domain errors raised in the block into ``CommandError``.

    The message is ``str(error)``; unregistered exceptions (bugs) propagate unchanged.

    Raises:
        CommandError: A registered domain error was raised in the block.
    """
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        raise CommandError(str(exc), code) from exc


class RaftctlGroup(click.Group):
    """A click group that runs its commands inside ``domain_errors()``."""

    def invoke(self, ctx: click.Context) -> Any:
        with domain_errors():
            return super().invoke(ctx)


@dataclass
class App:
    """What every command shares, stored on ``ctx.obj``.

    Attributes:
        config_path: The cluster file named by ``--config`` / ``RAFTCTL_CONFIG``.
    """

    config_path: Path
    _config: ClusterConfig | None = field(default=None, repr=False)

    def config(self) -> ClusterConfig:
        """Load and validate the cluster file once per invocation.

        Raises:
            ConfigError: The file is missing or invalid (exit 2 through ``domain_errors``).
        """
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


pass_app = click.make_pass_decorator(App)


def json_option(command: F) -> F:
    """Add the contract's ``--json`` flag, passed to the command as ``as_json``."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document on stdout instead of human output.",
    )(command)


def echo_json(document: Any) -> None:
    """Print ``document`` as the single JSON document of a ``--json`` command."""
    click.echo(json.dumps(document))


@click.group(cls=RaftctlGroup, epilog=EXIT_CODES_HELP)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="cluster.toml",
    show_default=True,
    envvar="RAFTCTL_CONFIG",
    show_envvar=True,
    help="The cluster file.",
)
@click.version_option(__version__, prog_name="raftctl")
@click.pass_context
def main(ctx: click.Context, config_path: Path) -> None:
    """Run, inspect and break a Raft cluster described by a cluster file."""
    ctx.obj = App(config_path=config_path)


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
    type=click.IntRange(0, 65535),
    default=DEFAULT_BASE_PORT,
    show_default=True,
    help="Node nK gets peer port BASE+K and client port BASE+100+K.",
)
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
@json_option
@pass_app
def init(app: App, nodes: int, base_port: int, force: bool, as_json: bool) -> None:
    """Write a cluster file for NODES nodes on 127.0.0.1 to the --config path.

    Refuses to overwrite an existing file unless --force is given (exit 2).
    """
    path = app.config_path
    try:
        write_config(path, nodes, base_port, overwrite=force)
    except FileExistsError:
        raise CommandError(f"{path} already exists; use --force to overwrite it", EXIT_USAGE)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--base-port'") from None
    except OSError as exc:
        raise CommandError(f"{path}: cannot write: {exc.strerror or exc}", EXIT_USAGE) from None

    config = app.config()  # read back what was written: proves it loads, and reports it
    if as_json:
        echo_json(
            {
                "path": str(config.path),
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
        f"{names} on 127.0.0.1, peer ports {peers}, client ports {clients}."
    )


def _port_span(ports: Iterable[int]) -> str:
    """``"7101-7103"`` for a run of ports, ``"7101"`` for one."""
    ordered = sorted(ports)
    return str(ordered[0]) if len(ordered) == 1 else f"{ordered[0]}-{ordered[-1]}"


@main.command()
@click.option("--seeds", type=click.IntRange(1), default=100, show_default=True, help="How many seeds to run.")
@click.option("--start-seed", type=click.IntRange(0), default=0, show_default=True, help="The first seed.")
@click.option("--seed", type=click.IntRange(0), default=None, help="Run this one seed (replay).")
@click.option("--nodes", type=click.IntRange(1, 15), default=5, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=2000, show_default=True, help="Random actions per seed.")
@click.option("--pre-vote/--no-pre-vote", default=True, show_default=True)
@click.option("--check-quorum/--no-check-quorum", default=True, show_default=True)
@click.option("--jobs", type=click.IntRange(1), default=None, help="Worker processes (default: one per core).")
@click.option("--trace", is_flag=True, help="With --seed: print one line per event, then the verdict.")
@json_option
def sim(
    seeds: int,
    start_seed: int,
    seed: int | None,
    nodes: int,
    steps: int,
    pre_vote: bool,
    check_quorum: bool,
    jobs: int | None,
    trace: bool,
    as_json: bool,
) -> None:
    """Run the Raft core in the deterministic simulator under random faults.

    Each seed drives a cluster of NODES cores through STEPS random actions (ticks, client
    commands, partitions, lossy/slow/duplicating links, crashes and restarts, leadership
    transfers), checks every safety invariant after every step, then stops the faults and checks
    that a leader emerges and a command commits. A violation prints the seed, the invariant and
    the command that replays it, and exits 1. Needs no running cluster.
    """
    import time

    from raftnode.sim.runner import run_seed

    from .simulate import SimSettings, run_seeds, summarize

    if trace and seed is None:
        raise click.UsageError("--trace needs --seed S (one run, told as a story)")
    settings = SimSettings(nodes=nodes, steps=steps, pre_vote=pre_vote, check_quorum=check_quorum)
    started = time.perf_counter()
    if seed is not None and trace:
        report = run_seed(seed, nodes=nodes, steps=steps, pre_vote=pre_vote, check_quorum=check_quorum, trace=True)
        if not as_json:
            click.echo(f"{'tick':>6} {'node':<4} {'role':<13} {'term':<5} {'commit':<7} what")
            for line in report.trace or ():
                click.echo(line)
        reports = [report]
    else:
        todo = [seed] if seed is not None else range(start_seed, start_seed + seeds)
        reports = []
        for report in run_seeds(todo, settings, jobs=jobs):
            reports.append(report)
            if not report.ok and not as_json:
                click.echo(f"seed {report.seed}: VIOLATION of {report.violation}: {report.detail}", err=True)
                click.echo(f"  replay: {report.replay_command()}", err=True)
    summary = summarize(reports, settings, time.perf_counter() - started)
    if as_json:
        echo_json(summary)
    else:
        bad = len(summary["violations"])
        totals = summary["totals"]
        click.echo(
            f"{summary['seeds']} seed{'s' * (summary['seeds'] != 1)}, {nodes} nodes, {steps} steps: "
            f"{bad} violation{'s' * (bad != 1)}; {totals['leaders_elected']} leaders elected, "
            f"{totals['acknowledged']} commands acknowledged, {totals['ticks']} ticks "
            f"in {summary['seconds']:.1f} s"
        )
        for v in summary["violations"]:
            click.echo(f"  seed {v['seed']}: {v['invariant']} — replay: {v['replay']}")
    if summary["violations"]:
        raise SystemExit(EXIT_REFUSED)


if __name__ == "__main__":
    main()
