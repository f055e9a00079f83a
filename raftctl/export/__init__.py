"""``raftctl export compose|k8s|systemd``: deployment files for engines people already run.

``export`` gathers what every kind needs (the cluster's secrets, made if missing) and writes the
kind's files (``compose``, ``k8s``, ``systemd`` modules) into one directory, refusing to
overwrite a file without ``force``.
"""

from __future__ import annotations

from pathlib import Path

from raftnode.config import ClusterConfig
from raftnode.security.credentials import secrets_path

from . import compose, image, k8s, systemd
from .files import write_files

KINDS = ("compose", "k8s", "systemd")


def export(
    config: ClusterConfig, kind: str, out: Path, *, force: bool = False, image_name: str | None = None,
    storage: str = "1Gi", python: str = "/usr/bin/python3",
) -> list[Path]:
    """Write the ``kind`` files for ``config`` into ``out``; returns the paths written.

    Raises:
        UsageProblem: an unknown kind, a file exists (without ``force``), the secrets file is
            unusable, or ``out`` cannot be written.
    """
    from raftctl.oneshot import cluster_credentials

    if kind in ("compose", "k8s") and config.tls is not None:
        from raftctl.errors import UsageProblem

        raise UsageProblem(
            f"{config.path.name} has a [tls] table and `export {kind}` cannot ship its certificates into the "
            f"containers yet, so the nodes would talk in plaintext: export a cluster without [tls], or use "
            f"`export systemd` (its nodes read the certificates in {config.tls.dir})"
        )
    if kind == "systemd":
        return write_files(out, systemd.systemd_files(config, python), force=force)
    cluster_credentials(config)  # made now if the cluster has none: the nodes must share them
    secrets_text = secrets_path(config.state_dir).read_text(encoding="utf-8")
    image_name = image_name or image.default_image(config.name)
    if kind == "compose":
        files = compose.compose_files(config, secrets_text, image_name)
    elif kind == "k8s":
        files = image.image_files() + k8s.k8s_files(config, secrets_text, image_name, storage)
    else:
        from raftctl.errors import UsageProblem

        raise UsageProblem(f"unknown export kind {kind!r} (valid: {', '.join(KINDS)})")
    return write_files(out, files, force=force)
