"""``raftctl status --watch``: the status picture again every interval.

On a terminal the table is redrawn in place (``rich.live.Live``, no refresh thread: a frame is
drawn only when complete); into a file or pipe each picture follows the last under a line with
its time; with ``-o json``/``jsonl`` each picture is one JSON document per line, with its
``time``. A moment when no node answers is shown (the error document in JSON) and the watch goes
on: a cluster being restarted comes back into view by itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from typing import Any

from raftnode.config import ClusterConfig

from . import errors, oneshot
from . import output as formats
from .members import status_document

#: One look at the cluster: the picture, or why there is none.
Look = Callable[[], Any]


def refresh(look: Look, show: Callable[[Any], None], *, interval: float, count: int | None,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Any:
    """``show(look())`` every ``interval`` seconds (from the start of one look to the next),
    ``count`` times (None: until interrupted); returns the last thing looked at."""
    shown = 0
    while True:
        began = clock()
        seen = look()
        show(seen)
        shown += 1
        if count is not None and shown >= count:
            return seen
        sleep(max(0.0, began + interval - clock()))


def look_at(config: ClusterConfig) -> Look:
    """A look: the status picture, or the NotRunning error when no node answers."""
    def look() -> Any:
        try:
            return oneshot.status(config)
        except errors.NotRunning as exc:
            return exc
    return look


def watch_status(config: ClusterConfig, only: Callable[[Any], set[str]] | None, *, interval: float,
                 count: int | None, as_json: bool, echo: Callable[[str], None], console: Any) -> Any:
    """Run ``status --watch``; returns the last thing seen (a picture, or NotRunning)."""
    if as_json:
        last = refresh(look_at(config), lambda seen: echo(json.dumps(_document(config, seen, only))),
                       interval=interval, count=count)
    elif console.is_terminal:
        from .render.terminal import open_live

        with open_live(console) as live:
            last = refresh(look_at(config), lambda seen: live.update(_view(seen, only), refresh=True),
                           interval=interval, count=count)
    else:
        def print_one(seen: Any) -> None:
            console.print(f"status at {time.strftime('%H:%M:%S')}")
            console.print(_view(seen, only))
            console.file.flush()

        last = refresh(look_at(config), print_one, interval=interval, count=count)
    return last


def _document(config: ClusterConfig, seen: Any, only: Callable[[Any], set[str]] | None) -> dict[str, Any]:
    if isinstance(seen, errors.NotRunning):
        from .cli import EXIT_NOT_RUNNING

        document = formats.error_document(str(seen), EXIT_NOT_RUNNING)
    else:
        document = status_document(config, seen, only(seen) if only else None)
    return {"time": round(time.time(), 3), **document}


def _view(seen: Any, only: Callable[[Any], set[str]] | None) -> Any:
    from .render import no_answer_view, status_view

    if isinstance(seen, errors.NotRunning):
        return no_answer_view(time.strftime('%H:%M:%S'), seen)
    return status_view(seen, only=only(seen) if only else None)
