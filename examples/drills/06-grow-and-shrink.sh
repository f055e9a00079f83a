#!/usr/bin/env bash
# Drill: grow the cluster by two nodes, then remove the leader and a follower.
#
# add-node starts each new node empty; the leader catches it up as a learner and makes it a voter.
# remove-node removes the leader too: it hands over once the change commits, and a new leader
# carries on. Every increment committed along the way is still there at the end. The cluster file
# is restored afterwards (add-node and remove-node edit it).
source "$(dirname "$0")/lib.sh"

cp "$RAFTCTL_CONFIG" "$DRILL_TMP/cluster.toml.orig"
drill_cleanup() {
    raftctl down --purge --grace 2 >/dev/null 2>&1 || true
    cp "$DRILL_TMP/cluster.toml.orig" "$RAFTCTL_CONFIG"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

step "start the cluster"
start_cluster
raftctl wait --leader
raftctl run-command incr 1 --expect 1

expected=1
for node in d4 d5; do
    step "add $node: a learner first, then a voter"
    raftctl add-node "$node" --peer "127.0.0.1:$(free_port)" --client "127.0.0.1:$(free_port)"
    expected=$((expected + 1))
    raftctl run-command incr 1 --expect "$expected" --node "$node"   # answered through the leader
done
raftctl wait --converged --timeout 15
raftctl status

step "a second node with the same id is refused, and nothing changes"
must_fail raftctl add-node d4 --peer "127.0.0.1:$(free_port)" --client "127.0.0.1:$(free_port)"

step "remove the leader: it hands over once the change commits"
raftctl remove-node leader
raftctl wait --leader --timeout 10
expected=$((expected + 1))
raftctl run-command --timeout 10 incr 1 --expect "$expected"

step "remove a follower"
raftctl remove-node follower
raftctl wait --converged --timeout 15
raftctl status

step "every increment survived, on three voters"
raftctl query get --expect "$expected"
voters=$(raftctl status --json | json_field voters | python3 -c 'import ast, sys; print(len(ast.literal_eval(sys.stdin.read())))')
[ "$voters" -eq 3 ] || fail "expected 3 voters, found $voters"
