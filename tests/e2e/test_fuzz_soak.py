"""A fuzzing soak: hypothesis-generated and mutated frames at both ports of a live 3-node cluster
while a client keeps committing.

Peer ports get frames with no HELLO and after a valid HELLO (the node then waits for a PROOF);
client ports get mutated requests of every op. Afterwards: no node exited, the cluster still
commits, every acknowledged ``incr 1`` is there (the fuzzed requests only read: ``get``), every
node holds the same value, and each node's resident memory stayed under ``RSS_BOUND`` (sampled
throughout). Hypothesis prints the failing example; its seed is printed with ``--hypothesis-seed``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftnode.client.syncclient import ClientError, SyncClusterClient
from raftnode.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from raftnode.transport import handshake
from raftnode.wire import codec

from .processes import IDS, RSS_BOUND, Processes, rss

EXAMPLES = 250

PEER_CORPUS = [
    codec.encode_frame(codec.FrameKind.PEER, codec.encode_message(m))
    for m in (
        RequestVote(term=7, src="n1", dst="n2", last_log_index=3, last_log_term=2, transfer=True),
        RequestVoteResponse(term=7, src="n2", dst="n1", granted=True),
        AppendEntries(term=7, src="n1", dst="n2", prev_index=1, prev_term=1, entries=(Entry(7, 2, b"incr 9"),), commit=2),
        AppendEntriesResponse(term=7, src="n2", dst="n1", success=False, index=3, conflict_index=1, conflict_term=1),
        Heartbeat(term=7, src="n1", dst="n2", commit=3),
        HeartbeatResponse(term=7, src="n2", dst="n1"),
        TimeoutNow(term=7, src="n1", dst="n2"),
        InstallSnapshot(term=7, src="n1", dst="n2", meta=SnapshotMeta(5, 3), offset=0, data=b"{}", done=True),
        InstallSnapshotResponse(term=7, src="n2", dst="n1", index=5, offset=2),
    )
] + [
    codec.encode_frame(codec.FrameKind.CHALLENGE, bytes(64)),
    codec.encode_frame(codec.FrameKind.PROOF, bytes(32)),
]
CLIENT_CORPUS = [
    codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json(request))
    for request in (
        {"op": "run_command", "command": "get", "timeout": 1, "id": 1},
        {"op": "status", "id": 2},
        {"op": "recent_events", "id": 3},
        {"op": "set_faults", "faults": {"drop_pct": 100}, "id": 4},
        {"op": "transfer", "target": "n2", "id": 5},
        {"op": "remove_node", "node": "n1", "id": 6},
        {"op": "stop", "token": "guess", "id": 7},
        {"op": "snapshot", "cluster_id": "0123456789abcdef", "id": 8},
    )
]

positions = st.integers(0, 400)
mutations = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), positions, st.integers(1, 255)),
        st.tuples(st.just("cut"), positions),
        st.tuples(st.just("insert"), positions, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("length"), st.integers(0, 2**32 - 1)),
    ),
    max_size=4,
)


def mutate(frame: bytes, changes: list[tuple]) -> bytes:
    data = bytearray(frame)
    for change in changes:
        if change[0] == "flip" and data:
            data[change[1] % len(data)] ^= change[2]
        elif change[0] == "cut":
            del data[change[1] % (len(data) + 1) :]
        elif change[0] == "insert":
            at = change[1] % (len(data) + 1)
            data[at:at] = change[2]
        elif change[0] == "length" and len(data) >= 4:
            data[:4] = struct.pack(">I", change[1])
    return bytes(data)


def frames(corpus: list[bytes]) -> st.SearchStrategy[bytes]:
    mutated = st.builds(mutate, st.sampled_from(corpus), mutations)
    return st.lists(mutated | st.binary(max_size=64), min_size=1, max_size=3).map(b"".join)


def send(port: int, data: bytes) -> None:
    """Send ``data`` on a new connection, take whatever comes back for a moment, and hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.settimeout(0.02)
        try:
            sock.sendall(data)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # the node closed it, or had nothing to say in time


def test_fuzzed_frames_at_both_ports_take_no_node_down_and_lose_no_acknowledged_command(tmp_path: Path) -> None:
    processes = Processes(tmp_path, handshake_timeout_ms=300, idle_timeout_ms=1000)
    credentials = processes.credentials
    acked: list[int] = []
    uncertain = [0]
    peak = dict.fromkeys(IDS, 0)
    stop = threading.Event()

    def commit_forever() -> None:
        with SyncClusterClient(processes.addresses, fields=credentials.client_fields(admin=False)) as client:
            while not stop.is_set():
                try:
                    answer = client.run_command("incr 1", timeout=3)
                except ClientError:
                    uncertain[0] += 1  # it may or may not have been applied
                    continue
                acked.append(answer.response["result"])

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(
        target=st.sampled_from(range(len(IDS))),
        where=st.sampled_from(["peer", "peer after HELLO", "client"]),
        peer_data=frames(PEER_CORPUS),
        client_data=frames(CLIENT_CORPUS),
    )
    def attack(target: int, where: str, peer_data: bytes, client_data: bytes) -> None:
        if where == "client":
            send(processes.client_ports[target], client_data)
        else:
            prefix = b""
            if where == "peer after HELLO":
                other = IDS[(target + 1) % len(IDS)]
                hello = codec.encode_hello(other, "e2e", credentials.cluster_id, handshake.new_nonce())
                prefix = codec.encode_frame(codec.FrameKind.HELLO, hello)
            send(processes.peer_ports[target], prefix + peer_data)
        for node_id, proc in processes.procs.items():
            assert proc.poll() is None, f"{node_id} exited with {proc.returncode}:\n{processes.logs_tail()}"
            peak[node_id] = max(peak[node_id], rss(proc.pid))

    try:
        for node_id in IDS:
            processes.start(node_id)
        with SyncClusterClient(processes.addresses) as client:
            client.run_command("incr 0", timeout=15)  # a leader is in place
        committer = threading.Thread(target=commit_forever, daemon=True)
        committer.start()
        attack()
        stop.set()
        committer.join(timeout=10)
        assert not committer.is_alive()

        with SyncClusterClient(processes.addresses, fields=credentials.client_fields(admin=False)) as client:
            last = client.run_command("incr 1", timeout=10).response
            values = client.call_each({n: {"op": "status"} for n in IDS}, timeout=5)
        print(f"soak: {len(acked)} acknowledged, {uncertain[0]} uncertain, peak RSS "
              f"{ {n: v >> 20 for n, v in peak.items()} } MiB, stats "
              f"{ {n: {k: s['stats'][k] for k in ('rejected_connections', 'bad_client_frames', 'bad_requests')} for n, s in values.items()} }")
        assert len(acked) > 10, f"the cluster committed only {len(acked)} commands under the soak"
        assert acked == sorted(set(acked)), "an acknowledged value repeated or went back"
        assert acked[-1] < last["result"] <= len(acked) + uncertain[0] + 1
        for node_id, status in values.items():
            assert not isinstance(status, ClientError), (node_id, status)
        # the fuzz reached the nodes: both ports refused connections
        assert sum(s["stats"]["rejected_connections"] for s in values.values()) > EXAMPLES // 4
        assert sum(s["stats"]["bad_client_frames"] + s["stats"]["bad_requests"] for s in values.values()) > EXAMPLES // 10
        # every node applies up to the last command and holds the same value
        with SyncClusterClient(processes.addresses) as client:
            for node_id in IDS:
                for _ in range(200):
                    status = client.call(node_id, {"op": "status"}, timeout=2)
                    if status["applied_index"] >= last["index"]:
                        break
                    time.sleep(0.02)
                assert status["state"]["value"] == last["result"], (node_id, status["state"])
        assert max(peak.values()) < RSS_BOUND, {n: v >> 20 for n, v in peak.items()}
        for node_id, proc in processes.procs.items():
            assert proc.poll() is None, f"{node_id} exited"
    finally:
        stop.set()
        processes.close()

