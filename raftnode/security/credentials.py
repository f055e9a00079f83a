"""A cluster's identity and secrets: ``<state_dir>/secrets.toml``, readable by its owner only.

The file holds three values, made once from ``secrets`` (``raftctl init``, or the first
``raftctl up`` / ``HullAPI.from_config`` that finds none)::

    cluster_id = "..."    # names this cluster: every peer HELLO and client request carries it
    peer_secret = "..."   # the key of the peers' HMAC challenge-response (raftnode.handshake)
    admin_token = "..."   # what admin requests (faults, transfer, snapshot, membership, stop) carry
    client_token = "..."  # what client requests carry when cluster.toml sets client_auth = true

The file must be mode 0600 (no access for group or others): a node refuses to start otherwise,
naming the file and the command that fixes it. Standard library only; no trio, no core.
"""

from __future__ import annotations

import os
import secrets
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SECRETS_FILE",
    "Credentials",
    "CredentialsError",
    "ensure_credentials",
    "load_credentials",
    "secrets_path",
]

SECRETS_FILE = "secrets.toml"
_KEYS = ("cluster_id", "peer_secret", "admin_token", "client_token")


class CredentialsError(Exception):
    """The secrets file is missing, readable by others or malformed; the message says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Attributes:
    cluster_id: This cluster's identity (not a secret; hex).
    peer_secret: The HMAC key peers prove they hold.
    admin_token: The token admin requests must carry.
    client_token: The token client requests must carry under ``client_auth`` (the admin token
        serves too).
    """

    cluster_id: str
    peer_secret: bytes
    admin_token: str
    client_token: str = ""

    @classmethod
    def generate(cls) -> Credentials:
        return cls(secrets.token_hex(8), secrets.token_bytes(32), secrets.token_hex(24), secrets.token_hex(24))

    def client_fields(self, *, admin: bool = True) -> dict[str, str]:
        """The fields a client adds to each request: the cluster id, and the admin token
        (``admin``) or the client token."""
        return {"cluster_id": self.cluster_id, "token": self.admin_token if admin else self.client_token}

    def __repr__(self) -> str:  # never print a secret by accident
        return f"Credentials(cluster_id={self.cluster_id!r}, peer_secret=..., admin_token=..., client_token=...)"


def secrets_path(state_dir: str | os.PathLike[str]) -> Path:
    """Where the secrets of the cluster with this state directory live."""
    return Path(state_dir) / SECRETS_FILE


def load_credentials(path: str | os.PathLike[str]) -> Credentials:
    """Read the secrets file at ``path``; CredentialsError if it is missing, open to others or malformed."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise CredentialsError(
            f"{path}: the cluster's secrets file is missing (`raftctl init` or `raftctl up` creates it)"
        ) from None
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read the secrets file: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(
                f"{path}: the secrets file is accessible to other users (mode {stat.S_IMODE(mode):o}); "
                f"run `chmod 600 {path}`"
            )
        data = f.read(64 * 1024)
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CredentialsError(f"{path}: not a valid secrets file: {exc}") from None
    values = {}
    for key in _KEYS:
        value = document.get(key)
        if not isinstance(value, str) or len(value) < 16:
            raise CredentialsError(f"{path}: {key} must be a string of at least 16 characters")
        values[key] = value
    try:
        peer_secret = bytes.fromhex(values["peer_secret"])
    except ValueError:
        raise CredentialsError(f"{path}: peer_secret must be hexadecimal") from None
    return Credentials(values["cluster_id"], peer_secret, values["admin_token"], values["client_token"])


def ensure_credentials(path: str | os.PathLike[str]) -> tuple[Credentials, bool]:
    """The credentials at ``path``, made first (mode 0600, created exclusively) if there is no file.

    Returns ``(credentials, created)``. Raises CredentialsError as ``load_credentials``.
    """
    path = Path(path)
    fresh = Credentials.generate()
    text = (
        "# This cluster's identity and secrets (raftnode.security.credentials). Keep it mode 0600.\n"
        f'cluster_id = "{fresh.cluster_id}"\n'
        f'peer_secret = "{fresh.peer_secret.hex()}"\n'
        f'admin_token = "{fresh.admin_token}"\n'
        f'client_token = "{fresh.client_token}"\n'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_credentials(path), False
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return fresh, True
