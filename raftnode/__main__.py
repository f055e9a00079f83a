"""``raftnode --config PATH --node ID``: run one node of the cluster described by cluster.toml.

This is the composition root: the only place that will pick concrete storage, transport and
state-machine implementations. The node runtime itself arrives in a later version; for now the
command validates its arguments and says plainly that it cannot run a node yet.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from raftnode import __version__
from raftnode.config import ConfigError, load_config

#: Exit status for a bad command line or cluster file (as raftctl's exit code 2).
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``raftnode`` command.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status. Always 2 in this version: either the config file or node id is invalid
        (the ConfigError message is printed on stderr) or they are valid but the node runtime is
        not available yet (a message on stderr says so).
    """
    parser = argparse.ArgumentParser(
        prog="raftnode", description="Run one Raft node of the cluster described by a cluster file."
    )
    parser.add_argument(
        "--config",
        default="cluster.toml",
        metavar="PATH",
        help="cluster file (default: %(default)s)",
    )
    parser.add_argument("--node", required=True, metavar="ID", help="id of the node to run")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
        node = config.node(args.node)
    except ConfigError as exc:
        print(f"raftnode: {exc}", file=sys.stderr)
        return EXIT_USAGE

    print(
        f"raftnode: {config.path} and node {node.id!r} are valid, but the node runtime is not "
        f"available yet in raftnode {__version__}.\n"
        "raftnode: `raftctl sim` runs the protocol in the simulator.",
        file=sys.stderr,
    )
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
