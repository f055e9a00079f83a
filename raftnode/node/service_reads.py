"""The client endpoint's batched reads (a room of ``raftnode.node.service``): ``query_many``, many
linearizable reads in one request frame, each answered on its own in one answer frame.

On the hot path (``_submit_query_many``, no task per request) each distinct command of the frame
joins the connection's read groups (``raftnode.node.readgroups``) once, with the positions it
holds: the reader hands the groups to the node after the frames it read together, one read per
(command, timeout) whatever the number of frames and queries. Each query gets what ``query``
would: the result at the read index, the state machine's error, a redirect or retry (at a
follower, a read is served there by ReadIndex, as ``query`` is). A blank or too long command is
answered with its error and the others are served. The answer is ``run_many``'s
(``_batch_frame`` formatted in place, else ``_batch_response``).
"""

from __future__ import annotations

from typing import Any

from ..core.commands import CommandResult
from ..wire import requests as wire
from ..wire.streams import FrameWriter
from .readgroups import BatchReads
from .runtime import RaftNode
from .service_commands import BadRequest
from .service_connections import _ConnectionState


class ReadRoom:
    """``ClientService``'s ``query_many``. Uses the command room's ``_well_formed``, ``_command``,
    ``_batch_answer``, ``_batch_response``, ``_answer_reads`` and ``_flush``."""

    node: RaftNode
    _dirty: set[FrameWriter]

    def _submit_query_many(self, request: dict[str, Any], writer: FrameWriter, state: _ConnectionState) -> bool:
        """A well-formed query_many: its queries join the connection's read groups; one answer
        frame carries each query's own outcome once the last has one. Returns False for a request
        that is not one, lacks the client token, or reaches a node not running yet: ``_dispatch``
        says what is wrong."""
        if self.node.raft is None:
            return False
        record = self._well_formed(request)
        if record is None:
            return False
        assert isinstance(record, wire.QueryMany)
        state.in_flight += 1
        batch = BatchReads(len(record.commands), self._batch_answer(request.get("id"), writer, state))
        reads, timeout = state.reads, record.timeout
        for command, positions in _positions(record.commands).items():
            refusal = self._refusal(command)
            if refusal is None:
                reads.add_batch(command, timeout, batch, positions)
            else:
                batch.fill(positions, refusal)
        if self._dirty:  # every query refused at once
            self._flush()
        return True

    def _refusal(self, command: str) -> CommandResult | None:
        """The answer to a query_many's ``command`` that is not one the node reads (blank, too
        long); None for one it does."""
        try:
            self._command(command, wire.QueryMany.OP)
        except BadRequest as exc:
            return CommandResult(error=str(exc))
        return None

    def _answer_group(self, ids: list[Any], batches: list[tuple[BatchReads, Any]], writer: FrameWriter,
                      state: _ConnectionState, result: CommandResult) -> None:
        """The node's answer to one read group: to its queries (``_answer_reads``) and to the
        positions of the query_many requests it holds."""
        if ids:
            self._answer_reads(ids, writer, state, result)
        for batch, positions in batches:
            batch.fill(positions, result)

    async def _query_many(self, request: wire.QueryMany) -> dict[str, Any]:
        """The general path's query_many (a node not running yet: ``node.query`` says so)."""
        results = []
        for command in request.commands:
            refusal = self._refusal(command)
            results.append(refusal or await self.node.query(command, timeout=request.timeout))
        return self._batch_response(results, None)


def _positions(commands: list[str]) -> dict[str, list[int]]:
    """Each distinct command of ``commands`` and the positions it holds, in first-seen order."""
    positions: dict[str, list[int]] = {}
    for position, command in enumerate(commands):
        held = positions.get(command)
        if held is None:
            positions[command] = [position]
        else:
            held.append(position)
    return positions
