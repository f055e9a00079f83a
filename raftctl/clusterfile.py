"""Writing and editing ``cluster.toml``: ``raftctl init``, ``add-node``, ``remove-node``, ``down --purge``.

Every change is checked by parsing the new text with ``raftnode.config.parse_config`` before the
file is replaced, and the file is replaced atomically (a temporary file renamed over it). Reading
and validating the file is ``raftnode.config``'s; raftnode itself never writes it.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path

import tomli_w

from raftnode.config import DEFAULT_CLUSTER, Address, parse_config

__all__ = [
    "DEFAULT_BASE_PORT",
    "MAX_INIT_NODES",
    "default_config_text",
    "write_config",
    "add_node_to_file",
    "remove_node_from_file",
    "clear_join_flags",
]

#: ``raftctl init`` puts peer ports at ``base + 1..`` and client ports at ``base + 101..``.
DEFAULT_BASE_PORT = 7100
_CLIENT_PORT_OFFSET = 100
#: Beyond this many nodes the generated peer ports would run into the client ports.
MAX_INIT_NODES = _CLIENT_PORT_OFFSET


def default_config_text(nodes: int = 3, base_port: int = DEFAULT_BASE_PORT, *, tls: bool = False) -> str:
    """Return the text of a cluster file with ``nodes`` nodes ``n1..nN`` on 127.0.0.1 (with
    ``tls``, a ``[tls]`` table: certificates in state_dir/tls).

    Node ``nK`` gets peer port ``base_port + K`` and client port ``base_port + 100 + K``; every
    ``[cluster]`` key has its default value. The result passes ``parse_config``.

    Raises:
        ValueError: ``nodes`` is not in 1..MAX_INIT_NODES, or the ports fall outside 1-65535.
    """
    if not 1 <= nodes <= MAX_INIT_NODES:
        raise ValueError(f"nodes must be between 1 and {MAX_INIT_NODES}, got {nodes}")
    highest = base_port + _CLIENT_PORT_OFFSET + nodes
    if base_port < 0 or highest > 65535:
        raise ValueError(
            f"base port {base_port} puts ports at {base_port + 1}-{highest}, "
            "outside the valid range 1-65535"
        )
    cluster = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in DEFAULT_CLUSTER.items()
    }
    # One chunk per table so that nodes come out as readable [[nodes]] blocks after [cluster]
    # (tomli-w alone would write them as one inline array before it).
    chunks = [tomli_w.dumps({"cluster": cluster})]
    if tls:
        chunks.append("# Peer and client traffic over mutual TLS; the CA and certificates are in state_dir/tls\n"
                      "# (set dir = \"...\" to put them elsewhere, relative to this file).\n"
                      + tomli_w.dumps({"tls": {"enabled": True}}))
    for k in range(1, nodes + 1):
        node = {
            "id": f"n{k}",
            "peer": str(Address("127.0.0.1", base_port + k)),
            "client": str(Address("127.0.0.1", base_port + _CLIENT_PORT_OFFSET + k)),
        }
        chunks.append("[[nodes]]\n" + tomli_w.dumps(node))
    header = (
        "# A raftctl cluster file, written by `raftctl init`.\n"
        '# state_machine: counter | totals | kv | "package.module:Class"\n'
        "# state_dir holds pids, logs, data and events; it is relative to this file.\n"
        "# Each node's peer address carries Raft traffic; its client address serves clients.\n\n"
    )
    return header + "\n".join(chunks)


def write_config(
    path: str | os.PathLike[str],
    nodes: int = 3,
    base_port: int = DEFAULT_BASE_PORT,
    *,
    overwrite: bool = False,
    tls: bool = False,
) -> Path:
    """Write ``default_config_text(nodes, base_port)`` to ``path``.

    The file appears complete or not at all: with ``overwrite`` it is written to a temporary file
    in the same directory and renamed over ``path``; without it, it is created exclusively.

    Returns:
        ``path`` as a Path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        ValueError: As ``default_config_text``.
        OSError: The file cannot be written (e.g. its directory does not exist).
    """
    text = default_config_text(nodes, base_port, tls=tls)
    target = Path(path)
    if not overwrite:
        with target.open("x", encoding="utf-8") as f:
            f.write(text)
        return target
    _replace_file(target, text)
    return target


def add_node_to_file(path: str | os.PathLike[str], node_id: str, peer: Address, client: Address) -> None:
    """Append a ``[[nodes]]`` entry marked ``join = true`` to the cluster file, keeping its text.

    Raises:
        ConfigError: the id or an address is already in the file (the file is left unchanged).
    """
    target = Path(path)
    text = target.read_text(encoding="utf-8")
    block = "\n[[nodes]]\n" + tomli_w.dumps({"id": node_id, "peer": str(peer), "client": str(client), "join": True})
    new_text = text.rstrip("\n") + "\n" + block
    parse_config(new_text, path=target)  # refuses duplicates with the file's name, key and reason
    _replace_file(target, new_text)


def remove_node_from_file(path: str | os.PathLike[str], node_id: str) -> bool:
    """Delete the ``[[nodes]]`` entry of ``node_id`` from the cluster file; False if absent."""
    target = Path(path)
    text = target.read_text(encoding="utf-8")
    blocks = _table_blocks(text)
    kept = [b for b in blocks if _node_id_of(b) != node_id]
    if len(kept) == len(blocks):
        return False
    new_text = "".join(kept)
    parse_config(new_text, path=target)
    _replace_file(target, new_text)
    return True


def _table_blocks(text: str) -> list[str]:
    """``text`` cut before each table header, so that the pieces join back to it: a node's block
    ends where the next table (``[tls]``, ...) begins. A line that only looks like a header (inside
    a multi-line array or string) is no cut: a cut is made only where the text before it parses."""
    cuts = [0]
    for match in re.finditer(r"(?m)^[ \t]*\[", text):
        try:
            tomllib.loads(text[: match.start()])
        except tomllib.TOMLDecodeError:
            continue  # inside a value that spans lines
        cuts.append(match.start())
    cuts.append(len(text))
    return [text[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def _node_id_of(block: str) -> object:
    """The ``id`` of the one ``[[nodes]]`` entry ``block`` holds, else None."""
    try:
        document = tomllib.loads(block)
    except tomllib.TOMLDecodeError:
        return None  # the preamble's comments, say: the whole file parsed, so never a node
    nodes = document.get("nodes")
    if len(document) != 1 or not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
        return None
    return nodes[0].get("id")


def clear_join_flags(path: str | os.PathLike[str]) -> bool:
    """Drop every ``join = true`` from the cluster file (its nodes found the next new cluster).

    For ``raftctl down --purge``: once the data is gone, every node in the file starts the new
    cluster together. Returns whether the file changed.
    """
    target = Path(path)
    text = target.read_text(encoding="utf-8")
    new_text = re.sub(r"(?m)^join\s*=\s*true\s*\n", "", text)
    if new_text == text:
        return False
    parse_config(new_text, path=target)
    _replace_file(target, new_text)
    return True


def _replace_file(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
