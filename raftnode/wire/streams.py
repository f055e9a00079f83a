"""Writing frames to a trio stream from many tasks at once, coalesced into few system calls.

Responses to pipelined requests finish in many tasks; each ``send_all`` is a system call, so
the writer gathers every frame queued meanwhile and sends them together. ``write`` queues a
frame for the writer's task. ``write_soon`` only queues it, and ``flush`` then writes all that
is queued straight to the socket from the calling task when the stream is idle (a non-blocking
write: no task switch), leaving any rest to the writer's task. The node's task uses the latter
to answer a whole batch of commands with one write per connection.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import trio


class FrameWriter:
    """Queue frames with ``write`` from any task; ``run`` sends them, coalesced, until cancelled."""

    def __init__(self, stream: trio.abc.SendStream):
        self._stream = stream
        self._frames: list[bytes] = []
        self._wakeup = trio.Event()
        self._sending = False  # the writer's task is inside send_all
        self._fd = stream.socket.fileno() if os.name == "posix" and isinstance(stream, trio.SocketStream) else None
        self.closed = False  # set by the stream's owner before it closes it: drop what comes later

    def write(self, frame: bytes) -> None:
        if self.closed:
            return
        self._frames.append(frame)
        self._wakeup.set()

    def write_soon(self, frame: bytes) -> None:
        """Queue ``frame`` without waking the writer's task: the caller will ``flush``."""
        if not self.closed:
            self._frames.append(frame)

    def flush(self) -> None:
        """Write what is queued now if the stream is idle; otherwise leave it to the writer's task."""
        frames = self._frames
        if not frames or self.closed:
            return
        if self._sending or self._fd is None:
            self._wakeup.set()
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        frames.clear()
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError:
            written = 0  # the writer's task meets the same error and reports it
        if written < len(data):
            frames.insert(0, data[written:])
            self._wakeup.set()

    @property
    def backlog(self) -> int:
        """Frames queued and not yet sent."""
        return len(self._frames)

    def backlog_bytes(self) -> int:
        """Bytes of the frames queued and not yet handed to the socket."""
        return sum(map(len, self._frames))

    async def run(self) -> None:
        """Send queued frames until cancelled; a broken stream raises BrokenResourceError."""
        frames = self._frames
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            while frames:
                data = frames[0] if len(frames) == 1 else b"".join(frames)
                frames.clear()
                self._sending = True
                try:
                    await self._stream.send_all(data)
                finally:
                    self._sending = False


_RECEIVE_BYTES = 65536


def plain_receiver(stream: trio.SocketStream) -> Callable[[], Awaitable[bytes]]:
    """``stream.receive_some`` for a plain TCP stream (peer links, client connections), in fewer
    steps: wait until the socket is readable, then one ``read`` (b"" at EOF; OSError when the
    connection breaks). Waiting first
    spares the read that finds nothing after each message; a read that finds data at once would
    yield to the scheduler anyway, as the wait does. The descriptor is asked of the socket right
    before each read, never kept: once the socket is closed (its number may then be another
    file's) the read raises ClosedResourceError instead."""
    sock = stream.socket
    read, wait_readable = os.read, trio.lowlevel.wait_readable

    async def receive() -> bytes:
        while True:
            if sock.fileno() < 0:
                raise trio.ClosedResourceError("the connection was closed")
            await wait_readable(sock)
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the connection was closed")
            try:
                return read(fd, _RECEIVE_BYTES)
            except BlockingIOError:  # a spurious wake-up
                continue

    return receive
