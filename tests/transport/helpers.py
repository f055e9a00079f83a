"""Loopback helpers for the transport and client-endpoint tests (real sockets, real time)."""

from __future__ import annotations

from collections.abc import Callable

import trio

from tests.e2e.processes import free_ports  # noqa: F401 - re-exported for the transport tests


async def wait_until(condition: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition") -> None:
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.005)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def closed_by_peer(stream: trio.SocketStream, *, timeout: float = 3.0) -> bool:
    """Whether the other end closes ``stream`` within ``timeout`` (reading and discarding data)."""
    with trio.move_on_after(timeout):
        try:
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        return True
    return False
