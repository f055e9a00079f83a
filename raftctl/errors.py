"""The domain errors of raftctl, each standing for one exit code of the contract.

``raftctl.cli`` registers these classes in ``ERROR_EXIT_CODES``; domain modules raise them and
never deal with exit codes or click. ``str(error)`` is the complete user-facing message. This
module imports nothing heavy, so the CLI can register the classes without importing trio.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The hint every "cluster not running" message ends with.
UP_HINT = "start it with `raftctl up`"


class RaftctlError(Exception):
    """Base class: the cluster refused something or a state machine returned an error (exit 1)."""


class Refused(RaftctlError):
    """The command ran and the cluster refused it, or the state machine returned an error (exit 1)."""


class UnknownNode(RaftctlError):
    """A NODE argument names no node of the cluster file (exit 2).

    Attributes:
        name: What the user typed.
        valid: The node ids of the cluster file.
    """

    def __init__(self, name: str, valid: Iterable[str], *, extra: str = "") -> None:
        self.name = name
        self.valid = tuple(valid)
        super().__init__(
            f"unknown node {name!r}; valid ids: {', '.join(self.valid)} "
            f"(or `leader`, `follower`, `learner`, `all`){extra}"
        )


class UsageProblem(RaftctlError):
    """The arguments are inconsistent with each other or with the cluster file (exit 2)."""


class PortInUse(UsageProblem):
    """An address of cluster.toml is taken by another process (exit 2)."""

    def __init__(self, node: str, what: str, address: str, reason: str) -> None:
        self.node = node
        self.address = address
        super().__init__(
            f"node {node}: {what} address {address} is already in use ({reason}); "
            "stop whatever listens there or change the port in the cluster file"
        )


class NoLeaderError(RaftctlError):
    """No leader could be found within the timeout (exit 3)."""


class WaitTimeout(RaftctlError):
    """Timed out waiting for a commit or a condition (exit 4)."""


class NotRunning(RaftctlError):
    """The cluster, or the named node, is not running or not reachable (exit 5)."""


class ClusterNotRunning(NotRunning):
    """No node of the cluster is running (exit 5); the message hints at ``raftctl up``."""

    def __init__(self, config_path: object, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"the cluster of {config_path} is not running{extra}; {UP_HINT}"
        )


class NodeCrashed(NotRunning):
    """A node process exited while starting (exit 5); the message carries its last log lines."""

    def __init__(
        self,
        node: str,
        exit_status: int | None,
        log_path: object,
        last_lines: list[str],
        *,
        others: list[str] | None = None,
    ) -> None:
        self.node = node
        self.last_lines = last_lines
        status = f"exit status {exit_status}" if exit_status is not None else "it exited"
        shown = "\n".join(f"  | {line}" for line in last_lines) or "  | (the log is empty)"
        also = f" ({', '.join(others)} too; see `raftctl logs NODE`)" if others else ""
        super().__init__(
            f"node {node} crashed while starting ({status}){also}; last lines of {log_path}:\n{shown}"
        )
