"""TEST ONLY: break a real node's disk on command, for the disk-fault drills (tests/e2e).

``python -m raftnode`` honours ``RAFTNODE_DISK_FAULTS=DIR`` and nothing else reads it. While
the file ``DIR/enospc`` exists, every fsync of the node's log fails with ENOSPC (a full disk)
and ``recover`` finds no room; while ``DIR/eio`` exists, every fsync fails with EIO (a failing
disk). Deleting the file ends the fault, so a drill turns a fault on and off from outside the
process without root or a tmpfs. It wraps one DiskStorage instance; it never touches the data.
Never set it outside tests: it exists to break the node on purpose.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from .disk import DiskStorage

ENV_VAR = "RAFTNODE_DISK_FAULTS"
#: Trigger file name → the errno every fsync fails with while it exists.
FAULTS = {"enospc": errno.ENOSPC, "eio": errno.EIO}


def active_fault(directory: Path) -> int | None:
    """The errno of the fault whose trigger file exists in ``directory``, if any."""
    for name, code in FAULTS.items():
        if (directory / name).exists():
            return code
    return None


def _raise(code: int, directory: Path) -> None:
    raise OSError(code, f"{os.strerror(code)} (injected: {directory} holds the trigger file)")


def inject_disk_faults(storage: DiskStorage, directory: Path) -> None:
    """Make ``storage``'s fsyncs (and ``recover`` under ENOSPC) fail while a trigger file exists."""
    real_fsync, real_recover = storage._fsync, storage.recover

    def fsync(fd: int) -> None:
        code = active_fault(directory)
        if code is not None:
            _raise(code, directory)
        real_fsync(fd)

    def recover() -> None:
        if active_fault(directory) == errno.ENOSPC:
            _raise(errno.ENOSPC, directory)
        real_recover()

    patched: Any = storage
    patched._fsync = fsync  # recover() re-runs __init__, which keeps these instance attributes
    patched.recover = recover


def from_environment(storage: object) -> None:
    """Wrap ``storage`` if ``RAFTNODE_DISK_FAULTS`` names a directory (``python -m raftnode`` only)."""
    directory = os.environ.get(ENV_VAR)
    if directory and isinstance(storage, DiskStorage):
        inject_disk_faults(storage, Path(directory))
