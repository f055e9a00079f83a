"""The ``raftctl`` command line: the click group, its global options, the helpers every command
shares, and where each command lives (``COMMAND_MODULES``; the commands are in ``raftctl.commands``,
one module a group). Only this module and ``raftctl.commands`` import click.

Commands are thin: parse, load the cluster config through ``App.config()``, call one domain
function, print human output or (with ``--json``) one JSON document on stdout. Errors go to stderr.

Domain errors need no handling in commands: ``RaftctlGroup`` runs every command inside
``domain_errors()``, which turns any exception type registered in ``ERROR_EXIT_CODES`` into a
``CommandError`` carrying the exit code of the contract (``ConfigError`` -> 2). To add a command,
decorate a function in a module of ``raftctl.commands`` with ``@main.command()`` and ``@pass_app``
and name it in ``COMMAND_MODULES``; register new domain exception types in ``ERROR_EXIT_CODES``.
Import heavy modules (rich, trio) inside the commands that use them so ``raftctl --help`` and
``raftctl init`` stay fast.

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
    "sim": "tools",
    "bench": "tools",
    "check-history": "tools",
    "chaos": "tools",
    "export": "tools",
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


# -- running domain coroutines ---------------------------------------------------------------------

def run_domain(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the domain coroutine ``fn(*args, **kwargs)`` with trio (imported only now)."""
    import functools

    import trio

    from raftnode.concurrency import unwrapped

    with unwrapped():
        return trio.run(functools.partial(fn, *args, **kwargs))


def console() -> Any:
    """A rich console on stdout (``raftctl.render.terminal``, imported only now)."""
    from .render.terminal import console as stdout_console

    return stdout_console()


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


if __name__ == "__main__":  # the command modules register on raftctl.cli's group, not this copy's
    from raftctl.cli import main as registered

    registered()
