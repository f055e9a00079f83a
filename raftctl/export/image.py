"""The container image: a Dockerfile on a slim Python base, its entrypoint, and the source it copies.

The image holds raftnode and raftctl (copied from this installation into ``src/`` beside the
Dockerfile, so ``docker build DIR`` needs nothing else) and their runtime dependencies. Its
entrypoint copies the cluster's secrets from where the engine mounts them (``SECRETS_MOUNT``) into
the state dir, mode 0600 (what ``raftnode.security.credentials`` demands; engines mount secrets as
symlinks or with other modes), gives the state dir to the image's user, drops root and runs the
command.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import raftctl
import raftnode

from . import layout
from .files import ExportFile

BASE_IMAGE = "python:3.12-slim"
PACKAGES = ("raftnode", "raftctl")
ENTRYPOINT_NAME = "entrypoint.py"

ENTRYPOINT = f'''\
"""Container entrypoint: the cluster's secrets into the state dir (mode 0600), then the command
as user {layout.IMAGE_USER} ($RAFTCTL_USER). Written by `raftctl export`."""
import os
import pwd
import sys

SECRETS = os.environ.get("RAFTCTL_SECRETS_MOUNT", "{layout.SECRETS_MOUNT}")
STATE_DIR = os.environ.get("RAFTCTL_STATE_DIR", "{layout.STATE_DIR}")
USER = os.environ.get("RAFTCTL_USER", "{layout.IMAGE_USER}")


def install_secrets():
    """Copy SECRETS to STATE_DIR/secrets.toml, mode 0600; a missing SECRETS leaves it as it is."""
    try:
        with open(SECRETS, "rb") as source:
            data = source.read(64 * 1024)
    except FileNotFoundError:
        return
    os.makedirs(STATE_DIR, exist_ok=True)
    target = os.path.join(STATE_DIR, "secrets.toml")
    tmp = target + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)


def drop_root():
    """As root: give STATE_DIR to the image's user and become that user."""
    if os.getuid() != 0:
        return
    user = pwd.getpwnam(USER)
    for root, dirs, files in os.walk(STATE_DIR):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.lchown(name, user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: entrypoint.py COMMAND [ARG...]")
    install_secrets()
    drop_root()
    os.execvp(sys.argv[1], sys.argv[1:])
'''


def runtime_requirements() -> list[str]:
    """raftctl's runtime dependencies as installed (``pip`` requirement strings, no extras)."""
    try:
        requires = importlib.metadata.requires("raftctl") or []
    except importlib.metadata.PackageNotFoundError:
        from raftctl.errors import UsageProblem

        raise UsageProblem("raftctl is not installed (pip install -e .): its dependencies are unknown") from None
    return [r.split(";")[0].strip() for r in requires if "extra ==" not in r]


def dockerfile_text() -> str:
    """The Dockerfile: FROM the slim base, the dependencies, the source, the user, the entrypoint."""
    requirements = " ".join(f"'{r}'" for r in runtime_requirements())
    return f"""\
# The raftnode/raftctl image, written by `raftctl export`. Build: docker build -t IMAGE .
FROM {BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/raftctl
RUN pip install --no-cache-dir {requirements}
RUN useradd --system --uid {layout.IMAGE_UID} --home-dir {layout.STATE_DIR} --create-home {layout.IMAGE_USER}
COPY src/ /opt/raftctl/
COPY {ENTRYPOINT_NAME} /usr/local/bin/{ENTRYPOINT_NAME}
VOLUME {layout.STATE_DIR}
WORKDIR {layout.STATE_DIR}
ENTRYPOINT ["python", "/usr/local/bin/{ENTRYPOINT_NAME}"]
CMD ["python", "-m", "raftctl", "--help"]
"""


def source_files() -> list[ExportFile]:
    """The Python source of raftnode and raftctl, as ``src/<package>/...`` files."""
    files = []
    for package in (raftnode, raftctl):
        root = Path(package.__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root.parent)
            if "__pycache__" not in relative.parts:
                files.append(ExportFile(f"src/{relative.as_posix()}", path.read_text(encoding="utf-8")))
    return files


def image_files() -> list[ExportFile]:
    """Everything ``docker build`` needs: the Dockerfile, the entrypoint and the source."""
    return [ExportFile("Dockerfile", dockerfile_text()), ExportFile(ENTRYPOINT_NAME, ENTRYPOINT)] + source_files()


def default_image(cluster_name: str) -> str:
    """``raftctl-<cluster>:<version>``, the cluster name made a valid image name."""
    name = re.sub(r"[^a-z0-9]+", "-", cluster_name.lower()).strip("-") or "cluster"
    return f"raftctl-{name}:{raftnode.__version__}"
