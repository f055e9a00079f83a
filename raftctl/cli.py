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
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from raftctl import errors
from raftctl.locality import require_local
from raftctl import output as formats
from raftnode import __version__
from raftnode.config import (
    ClusterConfig,
    ConfigError,
    load_config,
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
    "for a commit or condition; 5 the cluster or the named node is not running or unreachable; "
    "130 interrupted (Ctrl-C), after printing what was measured."
)

#: Domain exception type -> exit code; the closest registered base class of an error wins.
ERROR_EXIT_CODES: dict[type[Exception], int] = {
    ConfigError: EXIT_USAGE,
    errors.RaftctlError: EXIT_REFUSED,
    errors.Refused: EXIT_REFUSED,
    errors.UnknownNode: EXIT_USAGE,
    errors.UsageProblem: EXIT_USAGE,
    errors.NoLeaderError: EXIT_NO_LEADER,
    errors.WaitTimeout: EXIT_TIMEOUT,
    errors.NotRunning: EXIT_NOT_RUNNING,
}

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    """A failure that click reports on stderr as ``Error: <message>``, exiting with ``exit_code``.

    Args:
        message: The complete user-facing message.
        exit_code: One of the ``EXIT_*`` codes.
        document: In JSON mode, the fields the error document carries besides the error.
    """

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED, *, document: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        #: What the command measured or was answered, merged into the JSON error document.
        self.document = document


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


EXIT_INTERRUPTED = 130


#: Command name -> the module of ``raftctl.commands`` that defines it (with ``@main.command``);
#: a module is imported only when one of its commands runs or help lists the commands, so a
#: one-shot command loads its own group alone.
COMMAND_MODULES: dict[str, str] = {
    "watch": "observe",
    "events": "observe",
    "transfer-leader": "membership",
    "add-node": "membership",
    "remove-node": "membership",
    "status": "client",
    "members": "client",
    "health": "client",
    "leader": "client",
    "wait": "client",
    "run-command": "client",
    "query": "client",
    "init": "cluster",
    "up": "cluster",
    "down": "cluster",
    "kill": "cluster",
    "stop": "cluster",
    "start": "cluster",
    "restart": "cluster",
    "snapshot": "cluster",
    "logs": "cluster",
    "partition": "faults",
    "heal": "faults",
    "slow": "faults",
    "flaky": "faults",
    "duplicate": "faults",
    "fast": "faults",
}


class RaftctlGroup(click.Group):
    """A click group that runs its commands inside ``domain_errors()`` and reports failures as
    the contract says: exit codes, Ctrl-C as 130, and in JSON mode one error document on stdout.
    Commands listed in ``COMMAND_MODULES`` are loaded when first looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            import importlib

            importlib.import_module(f"raftctl.commands.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        with domain_errors():
            return super().invoke(ctx)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        import sys

        argv = list(sys.argv[1:] if args is None else args)
        app = App(output=formats.sniff(argv))
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, obj=app, **extra)
        except click.exceptions.Abort as exc:
            interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
            code = EXIT_INTERRUPTED if interrupted else EXIT_REFUSED
            report_failure(app, "interrupted" if interrupted else "aborted", code)
        except click.ClickException as exc:
            report_failure(app, exc.format_message(), exc.exit_code, getattr(exc, "document", None), exc)
            code = exc.exit_code
        code = code if isinstance(code, int) else EXIT_OK
        if not standalone_mode:
            return code
        sys.exit(code)


def report_failure(app: App, message: str, code: int, document: dict[str, Any] | None = None,
                   error: click.ClickException | None = None) -> None:
    """Tell a failure: click's text on stderr; in JSON mode also the error document on stdout."""
    if app.as_json:
        echo_json(formats.error_document(message, code, document))
    if error is not None:
        error.show()
    else:
        click.echo(f"Error: {message}", err=True)


@dataclass
class App:
    """What every command shares, stored on ``ctx.obj``.

    Attributes:
        config_path: The cluster file named by ``--config`` / ``RAFTCTL_CONFIG`` (before or
            after the subcommand).
        output: ``table``, ``json`` or ``jsonl`` (``-o/--output``, ``--json``).
    """

    config_path: Path = Path("cluster.toml")
    output: str = formats.TABLE
    _config: ClusterConfig | None = field(default=None, repr=False)

    @property
    def as_json(self) -> bool:
        """JSON mode: one JSON document on stdout for every outcome (JSON lines for streams)."""
        return self.output != formats.TABLE

    def config(self) -> ClusterConfig:
        """Load and validate the cluster file once per invocation.

        Raises:
            ConfigError: The file is missing or invalid (exit 2 through ``domain_errors``).
        """
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


pass_app = click.make_pass_decorator(App)


def _set_output(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value:
        ctx.ensure_object(App).output = formats.JSON if value is True else value


def _set_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:  # the group's default always; a subcommand's only when given
        app = ctx.ensure_object(App)
        app.config_path, app._config = value, None


_OUTPUT_OPTIONS = (
    click.option("--json", is_flag=True, expose_value=False, callback=_set_output,
                 help="The same as -o json."),
    click.option("-o", "--output", type=click.Choice(formats.MODES), default=None, expose_value=False,
                 callback=_set_output, help="table (human, the default), json (one document) or jsonl (JSON lines)."),
)

_CONFIG_OPTION = click.option(
    "--config", type=click.Path(dir_okay=False, path_type=Path), default=None, expose_value=False,
    callback=_set_config, help="The cluster file (as before the subcommand).",
)


def json_option(command: F) -> F:
    """Add the contract's ``-o/--output``, ``--json`` and ``--config`` options to a command, which
    receives ``as_json`` (any JSON mode) from the App; they may also come before the subcommand."""

    @functools.wraps(command)
    def with_mode(*args: Any, **kwargs: Any) -> Any:
        return command(*args, as_json=click.get_current_context().ensure_object(App).as_json, **kwargs)

    for option in (*_OUTPUT_OPTIONS, _CONFIG_OPTION):
        with_mode = option(with_mode)
    return with_mode  # type: ignore[return-value]


def current_output() -> str:
    """The output mode of this invocation (``table``, ``json`` or ``jsonl``)."""
    return click.get_current_context().ensure_object(App).output


def echo_json(document: Any) -> None:
    """Print ``document`` as the single JSON document of a ``--json`` command."""
    click.echo(json.dumps(document))


def finish(as_json: bool, document: dict[str, Any], code: int, message: str) -> None:
    """End a command whose outcome is ``document``: print it in JSON mode; exit ``code``.

    A failure (``code`` not 0) in JSON mode prints the document once, with ``error``, ``code``
    and ``exit_code`` added (``RaftctlGroup.main``), and ``message`` goes to stderr either way.
    """
    if code != EXIT_OK:
        raise CommandError(message, code, document=document if as_json else None)
    if as_json:
        echo_json(document)


@click.group(cls=RaftctlGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "group_config",
    type=click.Path(dir_okay=False, path_type=Path),
    default="cluster.toml",
    show_default=True,
    envvar="RAFTCTL_CONFIG",
    show_envvar=True,
    expose_value=False,
    callback=_set_config,
    help="The cluster file (also accepted after the subcommand).",
)
@_OUTPUT_OPTIONS[0]
@_OUTPUT_OPTIONS[1]
@click.version_option(__version__, prog_name="raftctl")
def main() -> None:
    """Run, inspect and break a Raft cluster described by a cluster file."""


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

    from .simulate import SimSettings, summarize, summary_lines, trace_filter, traced_lines

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

    from .simulate import run_seeds

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


# -- running domain coroutines ---------------------------------------------------------------------

def run_domain(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the domain coroutine ``fn(*args, **kwargs)`` with trio (imported only now)."""
    import functools

    import trio

    from raftnode.concurrency import unwrapped

    with unwrapped():
        return trio.run(functools.partial(fn, *args, **kwargs))


def console() -> Any:
    """A rich console on stdout; 120 columns when not writing to a terminal (or $COLUMNS)."""
    import os
    import sys

    from rich.console import Console

    stream = sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = 120
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def warn(message: str) -> None:
    """A warning on stderr (the command still succeeds)."""
    click.echo(f"Warning: {message}", err=True)


def interruptible(fn: Callable[[], None]) -> None:
    """Run ``fn`` until it returns or Ctrl-C, which ends the command quietly with exit 130."""
    try:
        fn()
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None


NODE_GRAMMAR = (
    "NODE is a node id, `leader` (the node a majority follows), `follower` (a live follower) or "
    "`learner` (a live learner)."
)
NODES_GRAMMAR = (
    "NODE... is one or more of a node id, `leader` (the node a majority follows), `follower` (a "
    "live follower; another one each time), `learner`, `all`, space- or comma-separated; --all is all."
)


def complete_nodes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of NODE words: the ids of the cluster file (``--config`` as typed so far),
    then the role words; after a comma, the next word of the list."""
    from click.shell_completion import CompletionItem

    from .selectors import KEYWORDS

    head, _, last = incomplete.rpartition(",")
    prefix = f"{head}," if head else ""
    try:
        ids = load_config(ctx.ensure_object(App).config_path).node_ids
    except (ConfigError, OSError):
        ids = ()
    return [CompletionItem(prefix + word) for word in (*ids, *KEYWORDS) if word.startswith(last)]


def node_argument(command: F) -> F:
    """One NODE of the selector grammar (``raftctl.selectors``): an id or a role word."""
    return click.argument("node", metavar="NODE", shell_complete=complete_nodes)(command)


def nodes_argument(command: F) -> F:
    """NODE... of the selector grammar plus ``--all``, passed as ``nodes`` and ``everything``."""
    command = click.option("--all", "everything", is_flag=True, help="Every node of the cluster file.")(command)
    return click.argument("nodes", nargs=-1, metavar="NODE...", shell_complete=complete_nodes)(command)


def select_nodes(app: App, nodes: Iterable[str], everything: bool, timeout: float,
                 roles: tuple[str, ...] | None = None, *, local_for: str | None = None) -> list[str]:
    """The node ids NODE... and --all name (``raftctl.selectors``), role words resolved.

    ``local_for``: the name of a command that needs the nodes' processes on this machine; it is
    refused (``RemoteNode``) before anything is asked of the cluster if a named node — any node,
    for a role word — runs on another host."""
    from . import selectors

    config = app.config()
    chosen = selectors.parse(nodes, config.node_ids, everything=everything,
                             roles=selectors.ROLE_WORDS if roles is None else roles)
    if local_for is not None:
        require_local(config, local_for, None if set(chosen) & set(selectors.ROLE_WORDS) else chosen)
    return selectors.resolve(config, chosen, timeout=timeout)


def select_one(app: App, node: str, timeout: float, *, local_for: str | None = None) -> str:
    """The node id one NODE names (an id or a role word; several nodes or `all` are refused).
    ``local_for``: as for ``select_nodes``."""
    from . import selectors

    config = app.config()
    chosen = selectors.parse_one([node], config.node_ids)
    if local_for is not None:
        require_local(config, local_for, None if chosen in selectors.ROLE_WORDS else [chosen])
    return selectors.resolve(config, [chosen], timeout=timeout)[0]


def timeout_option(default: float, what: str) -> Callable[[F], F]:
    return click.option(
        "--timeout",
        type=click.FloatRange(0, 3600),
        default=default,
        show_default=True,
        metavar="S",
        help=f"Seconds to wait {what}.",
    )


#: ``--timeout`` of the commands whose NODE may be ``leader`` or ``follower``.
resolve_timeout_option = timeout_option(5.0, "for `leader`/`follower` to name a node")

grace_option = click.option(
    "--grace",
    type=click.FloatRange(0, 600),
    default=5.0,
    show_default=True,
    metavar="S",
    help="Seconds between SIGTERM and SIGKILL.",
)


# -- looking at the cluster ------------------------------------------------------------------------


# -- commands --------------------------------------------------------------------------------------


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
              help="Commands per request: above 1 they go as run_many requests of up to B commands, "
                   "which the leader proposes as one batch (each command still answered on its own).")
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
    from . import bench as load

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
        out = console()
        with load.ProgressBar(out, workload) as bar:
            report = run_domain(load.cluster_bench, config, workload, progress=bar.update, stop_on_sigint=True)
        out.print(load.report_view(report))
    code, message = EXIT_OK, ""
    if report["interrupted"]:
        code, message = EXIT_INTERRUPTED, "interrupted: the report covers what ran until Ctrl-C"
    elif report["stalled"]:
        code, message = EXIT_TIMEOUT, "the run stalled: no answer within the timeout; see `raftctl status`"
    elif report["errors"]:
        sample = next(iter(report["error_samples"]), "")
        code, message = EXIT_REFUSED, f"the cluster refused {report['errors']} commands ({sample})"
    finish(as_json, report, code, message)


# -- logs and events -------------------------------------------------------------------------------


# -- linearizability of a recorded history ---------------------------------------------------------


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
    from .linearizability import ANOMALY, MODELS, OK, Budget, HistoryError, ModelMismatch, check_history
    from .linearizability.history import MAX_LINE_CHARS, parse_history

    try:
        with history_file.open("rb") as stream:
            history = parse_history(iter(lambda: stream.readline(MAX_LINE_CHARS + 1), b""))
        verdict = check_history(history, MODELS[model_name], Budget(steps=None, seconds=budget))
    except OSError as exc:
        raise CommandError(f"cannot read {history_file}: {exc.strerror or exc}", EXIT_USAGE) from None
    except (HistoryError, ModelMismatch) as exc:
        raise CommandError(f"{history_file}: {exc}", EXIT_USAGE) from None
    if html_path is not None:
        from .linearizability.report import html_report

        try:
            html_path.write_text(html_report(history, verdict, title=f"{history_file.name}: linearizability"),
                                 encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {html_path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if not as_json:
        from .render import linearizability_view

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

    from .chaosrun.plan import FAULT_KINDS
    from .chaosrun.run import ChaosOptions, run_chaos

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
        from .render import chaos_view

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


# -- deployment files ------------------------------------------------------------------------------


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
    from .export import export

    written = export(app.config(), kind, out, force=force, image_name=image_name, storage=storage, python=python)
    if as_json:
        echo_json({"kind": kind, "files": [str(p) for p in written]})
    else:
        click.echo(f"Wrote {len(written)} files to {out} ({kind}).")


if __name__ == "__main__":  # the command modules register on raftctl.cli's group, not this copy's
    from raftctl.cli import main as registered

    registered()
