"""Writing frames to a trio stream from many tasks at once, one ``send_all`` per wakeup.

Responses to pipelined requests finish in many tasks; each ``send_all`` is a system call, so
the writer gathers every frame queued meanwhile and sends them together.
"""

from __future__ import annotations

import math

import trio


class FrameWriter:
    """Queue frames with ``write`` from any task; ``run`` sends them, coalesced, until cancelled."""

    def __init__(self, stream: trio.abc.SendStream):
        self._stream = stream
        self._send, self._receive = trio.open_memory_channel[bytes](math.inf)

    def write(self, frame: bytes) -> None:
        self._send.send_nowait(frame)

    @property
    def backlog(self) -> int:
        """Frames queued and not yet sent."""
        return self._send.statistics().current_buffer_used

    async def run(self) -> None:
        """Send queued frames until cancelled; a broken stream raises BrokenResourceError."""
        receive = self._receive
        async for frame in receive:
            frames = [frame]
            while True:
                try:
                    frames.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._stream.send_all(frames[0] if len(frames) == 1 else b"".join(frames))
