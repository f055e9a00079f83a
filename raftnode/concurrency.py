"""Living with trio's strict exception groups.

Since trio 0.25 an exception leaving a nursery arrives wrapped in an ExceptionGroup, even when
it is the only one. Callers that map errors to answers (exit codes, client errors) want the
error itself: :func:`unwrapped` re-raises a group holding a single exception as that exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member groups, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextlib.contextmanager
def unwrapped() -> Iterator[None]:
    """Re-raise an exception group that holds a single exception as that exception."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf = single(group)
        if leaf is group:
            raise
        raise leaf from None
