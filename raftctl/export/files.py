"""Writing an export's files into its output directory, never over a file without ``force``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raftctl.errors import UsageProblem


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One file of an export: its name in the output directory, its text and its mode
    (0600 for anything holding a secret)."""

    name: str
    text: str
    mode: int = 0o644


def write_files(out: Path, files: Sequence[ExportFile], *, force: bool = False) -> list[Path]:
    """Write ``files`` into ``out`` (made if missing); returns their paths.

    Raises:
        UsageProblem: Without ``force``, one of the files exists already (nothing is written);
            or ``out`` cannot be made or written.
    """
    targets = [out / f.name for f in files]
    if not force:
        existing = [str(t) for t in targets if t.exists() or t.is_symlink()]
        if existing:
            raise UsageProblem(f"refusing to overwrite {', '.join(existing)} (--force overwrites)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for target, f in zip(targets, files):
            _write(target, f)
    except OSError as exc:
        raise UsageProblem(f"cannot write the export to {out}: {exc.strerror or exc}") from None
    return targets


def _write(target: Path, f: ExportFile) -> None:
    """Write through a temporary file, created with the final mode, so a secret is never readable
    by others, not even for a moment, and a file is complete or absent."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, f.mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            os.fchmod(stream.fileno(), f.mode)  # the umask may have taken bits away
            stream.write(f.text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
