"""The terminal the rendering goes to: the console on stdout, and a live display redrawn in place."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.live import Live


def console() -> Console:
    """A rich console on stdout; 120 columns when not writing to a terminal (or $COLUMNS)."""
    stream = sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = 120
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def open_live(console: Console) -> Live:
    """A Live display on ``console``: no refresh thread, redrawn only on ``update(..., refresh=True)``.
    rich.live is imported only now: a one-shot table does without it."""
    from rich.live import Live

    return Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False, redirect_stderr=False)
