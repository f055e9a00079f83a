"""The client endpoint's admin and status ops (a room of ``raftnode.node.service``): status, the
node's events (streamed or recent), faults, leadership transfer, membership, snapshot and stop.
Each handler takes its request's ``raftnode.wire.requests`` record and returns the answer's document.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..config import NodeConfig, check_node_id, parse_address, parse_context
from ..security.credentials import Credentials
from ..transport.faults import Faults, FaultyTransport
from ..wire import codec, requests as wire
from ..wire.streams import FrameWriter
from .runtime import RaftNode
from .service_commands import BadRequest

#: Events queued for a client that reads too slowly are dropped beyond this many.
_MAX_EVENT_BACKLOG = 1000


class AdminRoom:
    """``ClientService``'s admin and status handlers. Uses the service's settings and counters
    below and the command room's ``_frame``."""

    node: RaftNode
    stats: dict[str, int]
    faults: FaultyTransport | None
    credentials: Credentials | None
    on_stop: Any

    async def _stream_events(self, request_id: Any, writer: FrameWriter) -> None:
        events = self.node.subscribe()
        writer.write(self._frame(codec.FrameKind.CLIENT_RESPONSE, {"id": request_id, "ok": True}))
        async with events:
            async for event in events:
                if writer.backlog > _MAX_EVENT_BACKLOG:
                    self.stats["events_dropped_slow_client"] = self.stats.get("events_dropped_slow_client", 0) + 1
                    continue
                writer.write(self._frame(codec.FrameKind.EVENT, event.to_dict()))

    async def _status(self, request: wire.Status) -> dict[str, Any]:
        status = self.node.status().to_dict()
        status["stats"].update(self.stats)
        status.update(
            ok=True,
            node=self.node.id,  # "id" in every response is the request's id
            alive=True,
            pid=os.getpid(),
            faults=self.faults.faults.to_dict() if self.faults else None,
            cluster_id=self.credentials.cluster_id if self.credentials else None,
        )
        if request.digest:
            # A digest of the whole state, for checking that nodes agree: costs a snapshot, so only on request.
            status["state_digest"] = self.node.state_digest()
        return status

    async def _recent_events(self, request: wire.RecentEvents) -> dict[str, Any]:
        return {"ok": True, "events": [event.to_dict() for event in self.node.recent_events()]}

    async def _set_faults(self, request: wire.SetFaults) -> dict[str, Any]:
        if self.faults is None:
            raise BadRequest("this node has no fault layer")
        try:
            self.faults.faults = Faults.from_dict(request.faults)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        self.node._emit("fault", f"faults set: {json.dumps(self.faults.faults.to_dict())}")
        return {"ok": True, "faults": self.faults.faults.to_dict()}

    async def _clear_faults(self, request: wire.ClearFaults) -> dict[str, Any]:
        if self.faults is None:
            raise BadRequest("this node has no fault layer")
        self.faults.faults = Faults()
        self.node._emit("fault", "faults cleared")
        return {"ok": True, "faults": self.faults.faults.to_dict()}

    async def _transfer(self, request: wire.Transfer) -> dict[str, Any]:
        await self.node.transfer_leadership(request.target)
        return {"ok": True}

    async def _add_node(self, request: wire.AddNode) -> dict[str, Any]:
        node_id = request.node
        problem = check_node_id(node_id)
        if problem:
            raise BadRequest(problem)
        try:
            new = NodeConfig(node_id, parse_address(request.peer), parse_address(request.client))
        except ValueError as exc:
            raise BadRequest(f"add_node: {exc}") from None
        raft = self.node.raft
        if raft is not None:
            for member, context in sorted(raft.configuration.contexts.items()):
                try:
                    used = parse_context(context)
                except ValueError:
                    continue
                for address in (new.peer, new.client):
                    if address in used and member != node_id:
                        raise BadRequest(f"cannot add {node_id}: address {address} is already used by {member}")
        await self.node.add_node(node_id, new.context, timeout=request.timeout)
        return {"ok": True, **self._membership()}

    async def _remove_node(self, request: wire.RemoveNode) -> dict[str, Any]:
        await self.node.remove_node(request.node, timeout=request.timeout)
        return {"ok": True, **self._membership()}

    def _membership(self) -> dict[str, Any]:
        status = self.node.status()
        return {"node": self.node.id, "voters": status.voters, "learners": status.learners}

    async def _snapshot(self, request: wire.Snapshot) -> dict[str, Any]:
        return {"ok": True, "index": await self.node.take_snapshot()}

    async def _stop(self, request: wire.Stop) -> dict[str, Any]:
        self.on_stop()
        return {"ok": True}
