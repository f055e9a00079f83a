"""The client and admin endpoint of a node: JSON requests in length-prefixed frames over TCP.

Every request is a JSON object with ``op`` and an optional ``id`` that the response echoes, so a
client may keep many requests in flight on one connection (each is served in its own task). The
requests are ``raftnode.wire.requests``'s records: a request is decoded there (strictly) and served by the
handler of its record type (``_HANDLERS``); a well-formed command or query takes a faster path
that checks the same fields in place (``_submit``), and the queries read together from one
connection go to the node as one read per (command, timeout) (``raftnode.node.readgroups``).

| op | request fields | response |
|---|---|---|
| ``run_command`` | ``command``, ``timeout`` (s); in a session ``session``, ``seq``, ``ack`` | the seed's CommandResult fields, ``node``, ``leader`` |
| ``run_many`` | ``commands`` (at most ``wire.MAX_BATCH_COMMANDS``), ``timeout``; in a session ``session``, ``seqs``, ``ack`` | ``results``: each command's CommandResult fields, in order; ``node``, ``leader`` |
| ``query`` | ``command``, ``timeout`` (s) | the same; a linearizable read served here without the log |
| ``query_many`` | ``commands`` (at most ``wire.MAX_BATCH_COMMANDS``), ``timeout`` (s) | as ``run_many``: each query's outcome, in order |
| ``register_session`` | ``timeout`` (s) | as ``run_command``; ``result`` is the new session's id |
| ``status`` | | the node's status (``status --json`` fields) |
| ``events`` | | then a stream of EVENT frames until the client hangs up |
| ``recent_events`` | | ``events``: the node's recent events (oldest first), without subscribing |
| ``set_faults`` | ``faults``: partitioned_from, drop_pct, delay_ms, jitter_ms, duplicate_pct | ``faults`` |
| ``clear_faults`` | | ``faults`` |
| ``transfer`` | ``target`` | ``ok`` |
| ``snapshot`` | | ``index`` |
| ``stop`` | | ``ok``, then the node stops |

A malformed request gets ``{"ok": false, "error": ...}`` naming what is wrong; a malformed frame
drops the connection. Neither disturbs the node.

Hostile input. A command longer than ``max_command_bytes`` (utf-8) is refused by name; an answer
longer than ``max_command_bytes`` plus headroom becomes an error answer; a request frame longer
than that closes the connection. No encoding or decoding error leaves a connection's tasks. The
endpoint holds at most ``max_connections`` connections; one that sends no complete request within
``handshake_timeout``, or has nothing in progress and sends nothing for ``idle_timeout``, is
closed; all partial frames together hold at most ``max_buffered_bytes``.

With ``tls`` (the node's server context, ``raftnode.security.tls``) every connection must complete a TLS
handshake with a client certificate of the cluster CA within ``handshake_timeout`` before its
first byte is read as a frame; a plaintext client or one without such a certificate is closed.

With ``credentials`` (as ``raftnode`` runs it): a request naming another ``cluster_id`` closes
its connection unanswered, and the admin ops (``wire.ADMIN_OPS``) need ``token`` = the admin token;
with ``client_auth`` every other request needs the client token (or the admin token).

The endpoint is split into rooms, each a module holding one base class of ``ClientService``:
``service_connections`` (accepting, securing, reading and bounding connections),
``service_commands`` (the command hot path, grouped reads and the answers), ``service_reads``
(``query_many``: batched reads on the hot path) and ``service_admin``
(status, events, faults, membership, snapshot, stop). This module holds the service itself: its
settings, the gate every request on the general path passes (cluster, tokens) and the one table
that dispatches a request by its record type (``_HANDLERS``).
"""

from __future__ import annotations

import hmac
import logging
import ssl
from functools import partial
from typing import Any

import trio

from ..config import Address
from ..core.errors import RaftError
from ..security.credentials import Credentials
from ..transport.faults import FaultyTransport
from ..wire import codec, requests as wire
from ..wire.streams import FrameWriter
from .runtime import NodeNotRunning, RaftNode
from .service_admin import AdminRoom
from .service_commands import REQUEST_HEADROOM, BadRequest, CommandRoom
from .service_connections import ConnectionRoom, _ConnectionState
from .service_reads import ReadRoom

log = logging.getLogger("raftnode.service")


class Unauthorized(Exception):
    """An admin request without the admin token; the message says what it needs."""


class ClientService(ConnectionRoom, CommandRoom, ReadRoom, AdminRoom):
    """Args:
    node: the node served.
    listen: the client address.
    faults: the node's fault layer, for ``set_faults``.
    max_command_bytes: the longest command (utf-8 bytes); frames and answers get ``REQUEST_HEADROOM`` more.
    max_connections: connections held at once; more are closed at once.
    handshake_timeout / idle_timeout: seconds (see the module documentation).
    max_buffered_bytes: partial request frames of all connections together (default: 8 frames).
    credentials: the cluster id and admin token to require; None serves everyone (tests).
    client_auth: client requests need ``credentials.client_token`` (or the admin token) too.
    tls: serve over TLS with this server context (a client certificate required); None: plain TCP.
    """

    def __init__(
        self,
        node: RaftNode,
        listen: Address,
        *,
        faults: FaultyTransport | None = None,
        max_command_bytes: int = 1 << 20,
        max_connections: int = 256,
        handshake_timeout: float = 5.0,
        idle_timeout: float = 60.0,
        max_buffered_bytes: int | None = None,
        credentials: Credentials | None = None,
        client_auth: bool = False,
        on_stop: Any = None,
        tls: ssl.SSLContext | None = None,
    ):
        self.node = node
        self.listen = listen
        self.faults = faults
        self.max_command_bytes = max_command_bytes
        self.max_frame_bytes = max_command_bytes + REQUEST_HEADROOM
        self._max_command_chars = max_command_bytes // 4  # surely within max_command_bytes as utf-8
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.max_buffered_bytes = max_buffered_bytes if max_buffered_bytes is not None else 8 * self.max_frame_bytes
        self.credentials = credentials
        #: The tokens a client request may carry under client_auth (None: client requests are open).
        self._client_tokens = (
            (credentials.client_token.encode(), credentials.admin_token.encode())
            if credentials is not None and client_auth
            else None
        )
        self.on_stop = on_stop or node.stop
        self.tls = tls
        self.stats = {
            "client_connections": 0,
            "bad_client_frames": 0,
            "bad_requests": 0,
            "refused_client_connections": 0,
            "unsendable_answers": 0,
        }
        self._connections = 0
        self._buffered = 0  # bytes of partial request frames, all connections together
        self._dirty: set[FrameWriter] = set()  # writers holding answers to flush after a batch
        self._json_names: dict[str | None, bytes] = {}  # node ids as JSON, for _success_frame
        self._answer_tails: dict[str | None, bytes] = {}  # by leader: the end of a success answer
        node.add_flush_handler(self._flush)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve clients until cancelled; raises OSError if the address is taken."""
        try:
            listeners = await trio.open_tcp_listeners(self.listen.port, host=self.listen.host)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on client address {self.listen}: {exc.strerror}") from None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, self._serve_connection, listeners))
            task_status.started()

    async def _dispatch(self, request: dict[str, Any], writer: FrameWriter, state: _ConnectionState) -> None:
        request_id = request.get("id")
        op = request.get("op")
        try:
            if isinstance(op, str) and op in wire.ADMIN_OPS and self.credentials is not None:
                self._check_admin(op, request)
            elif self._client_tokens is not None and not self._client_token_ok(request):
                raise Unauthorized(
                    f"{str(op)[:40]} needs the client token (client_auth is on; the client_token of the "
                    "cluster's secrets.toml in its state_dir)"
                )
            try:
                record = wire.decode_request(request)
            except wire.WireError as exc:
                raise BadRequest(str(exc)) from None
            if isinstance(record, wire.Subscribe):
                await self._stream_events(request_id, writer)
                return
            response = await _HANDLERS[type(record)](self, record)
        except BadRequest as exc:
            self.stats["bad_requests"] += 1
            response = {"ok": False, "error": str(exc)}
        except Unauthorized as exc:
            self.stats["unauthorized_requests"] = self.stats.get("unauthorized_requests", 0) + 1
            log.warning("%s: refused an admin request: %s", self.node.id, exc)
            response = {"ok": False, "error": str(exc), "unauthorized": True}
        except RaftError as exc:
            response = {"ok": False, "error": str(exc), "leader": self.node.raft.leader if self.node.raft else None}
        except TimeoutError as exc:
            response = {"ok": False, "error": str(exc), "timeout_expired": True}
        except NodeNotRunning as exc:
            # The endpoint listens before the node has loaded its storage (or after it stopped):
            # answer instead of letting the error take the whole process down.
            response = {"ok": False, "error": str(exc), "retry": True}
        except Exception as exc:  # noqa: BLE001 - no request may take the node down; say what failed
            log.exception("%s: serving %.40r failed", self.node.id, op)
            response = {"ok": False, "error": f"the node failed to serve {str(op)[:40]!r}: {type(exc).__name__}: {str(exc)[:300]}"}
        finally:
            state.in_flight -= 1
        response["id"] = request_id
        writer.write(self._frame(codec.FrameKind.CLIENT_RESPONSE, response))

    def _client_token_ok(self, request: dict[str, Any]) -> bool:
        assert self._client_tokens is not None
        token = request.get("token")
        if not isinstance(token, str):
            return False
        given = token.encode("utf-8", "surrogatepass")
        return any([hmac.compare_digest(given, expected) for expected in self._client_tokens])

    def _check_admin(self, op: str, request: dict[str, Any]) -> None:
        assert self.credentials is not None
        token = request.get("token")
        expected = self.credentials.admin_token.encode()
        if not isinstance(token, str) or not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected):
            what = "a wrong admin token" if isinstance(token, str) else "no admin token"
            raise Unauthorized(
                f"{op} needs the admin token and the request carried {what} "
                "(the admin_token of the cluster's secrets.toml in its state_dir; raftctl sends it)"
            )


#: The handler of each request record (``wire.Subscribe`` streams instead: ``_stream_events``).
_HANDLERS: dict[type[Any], Any] = {
    wire.RunCommand: ClientService._run_command,
    wire.RegisterSession: ClientService._register_session,
    wire.Query: ClientService._query,
    wire.QueryMany: ClientService._query_many,
    wire.Status: ClientService._status,
    wire.RecentEvents: ClientService._recent_events,
    wire.SetFaults: ClientService._set_faults,
    wire.ClearFaults: ClientService._clear_faults,
    wire.Transfer: ClientService._transfer,
    wire.Snapshot: ClientService._snapshot,
    wire.AddNode: ClientService._add_node,
    wire.RemoveNode: ClientService._remove_node,
    wire.Stop: ClientService._stop,
}
