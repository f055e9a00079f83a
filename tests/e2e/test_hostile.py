"""The attacks of issue 15, rerun against a live 3-node cluster of real ``raftnode`` processes.

Each test attacks the peer or client ports as a process on the same host would, then shows: every
node is alive, leadership and term are unchanged where the attack was refused, the cluster still
commits, every acknowledged command is there, and each node's resident memory stays under
``RSS_BOUND``. Election timeouts are long (1-2 s) so that a leader change can only come from an
attack that worked, not from a busy machine.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from raftnode.client.trioclient import ClusterClient
from raftnode.core.messages import AppendEntries, Entry, Message, RequestVote, TimeoutNow
from raftnode.security.credentials import Credentials
from raftnode.transport import handshake
from raftnode.wire import codec

from tests.transport.helpers import closed_by_peer

from .processes import IDS, RSS_BOUND, Processes, rss, status, wait_leader

pytestmark = pytest.mark.trio

SETTINGS = {
    "election_timeout_ms": "[1000, 2000]",
    "handshake_timeout_ms": 500,
    "idle_timeout_ms": 1000,
    "max_client_connections": 64,
    "max_peer_connections": 16,
}


@contextmanager
def live_cluster(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path, **SETTINGS)
    try:
        for node_id in IDS:
            processes.start(node_id)
        yield processes
    finally:
        processes.close()


async def leadership(client: ClusterClient) -> tuple[str, int]:
    """The leader every node names, and its term."""
    leader = await wait_leader(client, list(IDS))
    answer = await status(client, leader)
    assert answer is not None
    return leader, answer["term"]


async def assert_healthy(processes: Processes, client: ClusterClient, before: tuple[str, int], acked: list[int]) -> None:
    """Every node alive and under RSS_BOUND, leader and term as ``before``, still committing,
    every acknowledged value at or below the counter, which is the same on every node."""
    for node_id, proc in processes.procs.items():
        assert proc.poll() is None, f"{node_id} exited with {proc.returncode}:\n{processes.logs_tail()}"
        assert rss(proc.pid) < RSS_BOUND, f"{node_id} holds {rss(proc.pid) >> 20} MiB"
    after = await leadership(client)
    assert after == before, f"leadership or term changed: {before} -> {after}"
    outcome = await client.run_command("incr 1", timeout=5)
    assert outcome.result.ok, outcome
    acked.append(outcome.result.result)
    assert acked == sorted(acked) and len(set(acked)) == len(acked)
    values = []
    for node_id in IDS:
        with trio.fail_after(5):
            while True:
                answer = await status(client, node_id)
                if answer is not None and answer["applied_index"] >= outcome.result.index:
                    values.append(answer["state"]["value"])
                    break
                await trio.sleep(0.05)
    assert values == [acked[-1]] * len(IDS), f"the nodes diverged: {values}"


# -- raw peer connections ------------------------------------------------------------------------


def peer_frame(message: Message) -> bytes:
    return codec.encode_frame(codec.FrameKind.PEER, codec.encode_message(message))


def hello_frame(node: str, cluster_id: str, nonce: bytes) -> bytes:
    return codec.encode_frame(codec.FrameKind.HELLO, codec.encode_hello(node, "e2e", cluster_id, nonce))


@asynccontextmanager
async def authenticated(port: int, me: str, target: str, credentials: Credentials) -> AsyncIterator[trio.SocketStream]:
    """A peer connection that passed the handshake as ``me`` (an attacker who stole the secret)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        nonce = handshake.new_nonce()
        await stream.send_all(hello_frame(me, credentials.cluster_id, nonce))
        decoder = codec.FrameDecoder()
        frames: list[codec.Frame] = []
        while not frames:
            frames = decoder.feed(await stream.receive_some(4096))
        assert frames[0].kind == codec.FrameKind.CHALLENGE
        theirs, _ = handshake.decode_challenge(frames[0].payload)
        mac = handshake.proof(credentials.peer_secret, "connect", credentials.cluster_id, me, target, nonce, theirs)
        await stream.send_all(codec.encode_frame(codec.FrameKind.PROOF, mac))
        yield stream


async def test_forged_peers_change_nothing_and_no_peer_input_takes_a_node_down(tmp_path: Path) -> None:
    with live_cluster(tmp_path) as processes, trio.fail_after(60):
        async with ClusterClient(processes.addresses, fields=processes.credentials.client_fields()) as client:
            acked = [(await client.run_command("incr 1", timeout=5)).result.result]
            before = await leadership(client)
            leader, term = before
            follower = next(n for n in IDS if n != leader)
            port = {n: p for n, p in zip(IDS, processes.peer_ports)}
            cluster_id = processes.credentials.cluster_id

            # A forged HELLO (real node id, cluster name and id: all public) without the secret,
            # then a vote for a transfer at term 1000, a TimeoutNow, and an AppendEntries at the
            # current term: the node sends its CHALLENGE and decodes none of them as Raft.
            forged = [
                RequestVote(term=1000, src=leader, dst=follower, last_log_index=10**6, last_log_term=999, transfer=True),
                TimeoutNow(term=term, src=leader, dst=follower),
                AppendEntries(term=term, src=leader, dst=follower, prev_index=0, prev_term=0,
                              entries=(Entry(term, 1, b"incr 1000000"),), commit=1),
            ]
            for target in (follower, leader):
                for message in forged:
                    message = dataclasses.replace(message, dst=target, src=follower if target == leader else leader)
                    stream = await trio.open_tcp_stream("127.0.0.1", port[target])
                    async with stream:
                        await stream.send_all(hello_frame(message.src, cluster_id, handshake.new_nonce()) + peer_frame(message))
                        assert await closed_by_peer(stream, timeout=5)
            # The same with a made-up PROOF.
            stream = await trio.open_tcp_stream("127.0.0.1", port[follower])
            async with stream:
                await stream.send_all(hello_frame(leader, cluster_id, handshake.new_nonce()))
                await stream.send_all(codec.encode_frame(codec.FrameKind.PROOF, bytes(32)) + peer_frame(forged[1]))
                assert await closed_by_peer(stream, timeout=5)
            await assert_healthy(processes, client, before, acked)

            # Someone who holds the secret sends a term of 2**64-2, then a TimeoutNow: malformed
            # on decode (a term over 2**63-1), so no node adopts a term it could not encode.
            for target in IDS:
                src = next(n for n in IDS if n != target)
                async with authenticated(port[target], src, target, processes.credentials) as stream:
                    huge = RequestVote(term=2**64 - 2, src=src, dst=target, last_log_index=2**64 - 2, last_log_term=2**64 - 2)
                    await stream.send_all(peer_frame(huge))
                    assert await closed_by_peer(stream, timeout=5)
                async with authenticated(port[target], src, target, processes.credentials) as stream:
                    await stream.send_all(peer_frame(TimeoutNow(term=2**64 - 2, src=src, dst=target)))
                    assert await closed_by_peer(stream, timeout=5)
            await assert_healthy(processes, client, before, acked)

            # 8 connections each announcing a 60 MB frame and sending part of its body: refused at
            # the header (4 KiB before authentication), nothing buffered.
            streams = []
            for _ in range(8):
                stream = await trio.open_tcp_stream("127.0.0.1", port[leader])
                streams.append(stream)
                try:
                    await stream.send_all(struct.pack(">IBB", 60_000_000, codec.PROTOCOL_VERSION, codec.FrameKind.HELLO))
                    await stream.send_all(bytes(1 << 20))
                except (trio.BrokenResourceError, OSError):
                    pass  # the node already closed it
            for stream in streams:
                assert await closed_by_peer(stream, timeout=5)
                await stream.aclose()

            # 200 slowloris connections (issue 15's count; max_peer_connections = 16): a byte now
            # and then, never a complete HELLO; closed at once beyond the limit, the rest at the deadline.
            slow = [await trio.open_tcp_stream("127.0.0.1", port[leader]) for _ in range(200)]
            for stream in slow:
                try:
                    await stream.send_all(b"\x00")
                except (trio.BrokenResourceError, OSError):
                    pass  # beyond the limit: already closed
            for stream in slow:
                assert await closed_by_peer(stream, timeout=10)
                await stream.aclose()
            await assert_healthy(processes, client, before, acked)


# -- the client port -----------------------------------------------------------------------------


def allow_open_files(count: int) -> None:
    """Raise this process's soft limit on open files to hold ``count`` more (up to the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = soft + count if hard == resource.RLIM_INFINITY else min(hard, soft + count)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    assert wanted >= count, f"this machine allows {hard} open files: the test needs {count}"


async def raw_request(address: Any, document: dict[str, Any]) -> dict[str, Any] | None:
    """One request on a fresh connection; its answer, or None if the node closed the connection."""
    stream = await trio.open_tcp_stream(address.host, address.port)
    async with stream:
        try:
            await stream.send_all(codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json(document)))
        except (trio.BrokenResourceError, OSError):
            return None
        decoder = codec.FrameDecoder()
        while True:
            try:
                data = await stream.receive_some(1 << 20)
            except (trio.BrokenResourceError, OSError):
                return None
            if not data:
                return None
            for frame in decoder.feed(data):
                return codec.decode_json(frame.payload)


async def test_no_client_request_takes_a_node_down_and_admin_ops_need_the_token(tmp_path: Path) -> None:
    with live_cluster(tmp_path) as processes, trio.fail_after(60):
        credentials = processes.credentials
        async with ClusterClient(processes.addresses, fields=credentials.client_fields()) as client:
            acked = [(await client.run_command("incr 1", timeout=5)).result.result]
            before = await leadership(client)
            leader, _ = before
            address = processes.addresses[leader]

            # 0.9 MB: within max_command_bytes; the counter refuses it and its error (the command
            # twice) is too long to send, so the answer is an error naming the bound.
            answer = await raw_request(address, {"op": "run_command", "command": "incr " + "9" * 900_000, "id": 1})
            assert answer is not None and answer["ok"] is False and "max_command_bytes" in answer["error"], answer
            # One byte over the limit: refused at submit, by name and limit.
            answer = await raw_request(address, {"op": "run_command", "command": "x" * ((1 << 20) + 1), "id": 2})
            assert answer is not None and "cluster.max_command_bytes = 1048576" in answer["error"], answer
            # 100 MB: the frame is refused at its header; the connection closes.
            stream = await trio.open_tcp_stream(address.host, address.port)
            async with stream:
                head = struct.pack(">IBB", 100_000_002, codec.PROTOCOL_VERSION, codec.FrameKind.CLIENT_REQUEST)
                try:
                    await stream.send_all(head + b'{"op":"run_command","command":"' + bytes(1 << 20))
                except (trio.BrokenResourceError, OSError):
                    pass
                assert await closed_by_peer(stream, timeout=5)
            await assert_healthy(processes, client, before, acked)

            # Admin ops without the token, or with a wrong one: refused, nothing done.
            for request in (
                {"op": "set_faults", "faults": {"partitioned_from": list(IDS)}},
                {"op": "transfer", "target": next(n for n in IDS if n != leader)},
                {"op": "remove_node", "node": leader},
                {"op": "snapshot"},
                {"op": "stop"},
                {"op": "stop", "token": "guess", "cluster_id": credentials.cluster_id},
            ):
                for node_id in IDS:
                    answer = await raw_request(processes.addresses[node_id], {**request, "id": 3})
                    assert answer is not None and answer.get("unauthorized") is True, (request, answer)
                    assert "admin token" in answer["error"]
            # A request that names another cluster is never answered.
            assert await raw_request(address, {"op": "status", "cluster_id": "0123456789abcdef"}) is None
            await assert_healthy(processes, client, before, acked)

            # 2,000 idle connections (issue 15's count; max_client_connections = 64): the extra ones
            # are closed at once, the rest after the handshake timeout; leadership is undisturbed.
            allow_open_files(2_000 + 200)
            idle = [await trio.open_tcp_stream(address.host, address.port) for _ in range(2_000)]
            for stream in idle:
                assert await closed_by_peer(stream, timeout=10)
                await stream.aclose()
            await assert_healthy(processes, client, before, acked)
            # The token works: a snapshot through the authenticated client.
            answer = await client.call(leader, {"op": "snapshot"})
            assert answer["ok"] is True, answer


async def test_planted_bug_without_peer_auth_the_same_forged_timeout_now_moves_leadership(tmp_path: Path) -> None:
    """What the checks above would see if authentication were broken: with ``peer_auth = false``
    (allowed on loopback) one forged TimeoutNow hands leadership to the node it names."""
    processes = Processes(tmp_path, **SETTINGS, peer_auth="false")
    try:
        for node_id in IDS:
            processes.start(node_id)
        with trio.fail_after(30):
            async with ClusterClient(processes.addresses, fields=processes.credentials.client_fields()) as client:
                await client.run_command("incr 1", timeout=5)
                leader, term = await leadership(client)
                follower = next(n for n in IDS if n != leader)
                port = dict(zip(IDS, processes.peer_ports))[follower]
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    await stream.send_all(
                        hello_frame(leader, processes.credentials.cluster_id, b"")
                        + peer_frame(TimeoutNow(term=term, src=leader, dst=follower))
                    )
                    while (await wait_leader(client, list(IDS))) != follower:
                        await trio.sleep(0.05)
    finally:
        processes.close()
