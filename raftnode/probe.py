"""``python -m raftnode.probe``: is the node on this host alive (and ready)? For container probes.

It asks the node listening on ``127.0.0.1:PORT`` for its ``status`` through the ordinary client
(``SyncClusterClient``), with the cluster's credentials from the state dir of ``--config``.
Alive: the node answers. Ready (``--ready``): it answers ``ok`` and knows a leader. Exit status
0 when the check holds, 1 when it does not (one line on stderr says why), 2 for a bad cluster file
or secrets file. Standard library and the client only: no trio, fast to start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from raftnode.client.clientproto import ClientError
from raftnode.client.syncclient import SyncClusterClient
from raftnode.config import Address, ConfigError, load_config
from raftnode.security.credentials import CredentialsError, load_credentials, secrets_path
from raftnode.security.tls import client_context
from raftnode.wire import requests as wire

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2


def check(address: Address, fields: dict[str, str], *, ready: bool, timeout: float, tls: Any = None) -> str | None:
    """Why the node at ``address`` fails the check, or None when it passes (``tls``: a client context)."""
    with SyncClusterClient({"local": address}, connect_timeout=timeout, fields=fields, sessions=False, tls=tls) as client:
        try:
            answer = client.call("local", wire.Status(), timeout=timeout)
        except ClientError as exc:
            return f"no answer from {address}: {exc}"
    if not ready:
        return None
    if not answer.get("ok", True):
        return f"not ready: {answer.get('error')}"
    if answer.get("leader") is None:
        return "not ready: no known leader"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raftnode.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cluster.toml", metavar="PATH", help="cluster file (default: %(default)s)")
    parser.add_argument("--port", type=int, required=True, help="the node's client port on 127.0.0.1")
    parser.add_argument("--ready", action="store_true", help="also require an ok status and a known leader")
    parser.add_argument("--timeout", type=float, default=2.0, metavar="S", help="seconds to wait (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        credentials = load_credentials(secrets_path(config.state_dir))
        tls = client_context(config) if config.tls is not None else None
    except (ConfigError, CredentialsError) as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = check(Address("127.0.0.1", args.port), credentials.client_fields(admin=False),
                    ready=args.ready, timeout=args.timeout, tls=tls)
    if problem:
        print(f"probe: {problem}", file=sys.stderr)
        return EXIT_UNHEALTHY
    return EXIT_HEALTHY


if __name__ == "__main__":
    sys.exit(main())
